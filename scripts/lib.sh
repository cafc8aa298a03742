# Shared helpers of the Trialog scripts: dependencies, build, local
# PostgreSQL, process start/stop by pid. Sourced, not run.
set -euo pipefail

TL_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TL_VAR="$TL_ROOT/var"
TL_BUILD="${TL_BUILD:-$TL_ROOT/build}"
TL_PG_PORT="${TL_PG_PORT:-5433}"
mkdir -p "$TL_VAR/run" "$TL_VAR/log"

# Where the local cluster lives: var/pg, unless we are root and the postgres
# user cannot reach var/ (a checkout under /root, say): then /var/lib/trialog.
# Decided after the packages are installed, when the postgres user exists.
# TL_PG_DIR, when set, names another place (tests/local's upgrade test).
tl_pg_dir() {
    [ -z "${TL_PG_DIR:-}" ] || return 0
    TL_PG_DIR="$TL_VAR/pg"
    if [ "$(id -u)" -eq 0 ] && ! runuser -u postgres -- test -x "$TL_VAR" 2>/dev/null; then
        TL_PG_DIR="/var/lib/trialog/pg-$(printf '%s' "$TL_ROOT" | md5sum | cut -c1-12)"
    fi
}

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# python3-confluent-kafka (+ avro, requests): the third-party client the
# research export's test reads the research topics with, as an analyst would.
TL_PACKAGES="build-essential cmake pkg-config librdkafka-dev libavro-dev libmicrohttpd-dev
 libcmocka-dev libpq-dev libjansson-dev libcurl4-openssl-dev libssl-dev postgresql
 postgresql-contrib kcat curl jq python3-confluent-kafka python3-avro python3-requests
 python3-yaml"

# tl_deps [EXTRA-PACKAGE...]: installs whatever of TL_PACKAGES (and the extras) is missing.
tl_deps() {
    local missing=""
    for p in $TL_PACKAGES "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
            missing="$missing $p"
    done
    if [ -n "$missing" ]; then
        say "installing:$missing"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        # shellcheck disable=SC2086
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
    fi
}

# tl_test_packages: what the contract tests need besides TL_PACKAGES (tests/contract):
# python3-venv (the API tester's venv) and node with npm (the OpenAPI validator),
# from Debian unless a node with its npm is there already (NodeSource's nodejs
# ships npm, and Debian's npm package conflicts with it).
tl_test_packages() {
    printf '%s\n' python3-venv
    command -v npm >/dev/null 2>&1 && command -v node >/dev/null 2>&1 || printf '%s\n' nodejs npm
}

tl_build() {
    local type="${1:-RelWithDebInfo}" sanitize="${2:-OFF}"
    say "building ($type, sanitizers $sanitize) in $TL_BUILD"
    cmake -S "$TL_ROOT" -B "$TL_BUILD" -DCMAKE_BUILD_TYPE="$type" -DTL_SANITIZE="$sanitize" >/dev/null
    cmake --build "$TL_BUILD" -j"$(nproc)" >/dev/null
}

pg_bin() { echo "/usr/lib/postgresql/$(ls /usr/lib/postgresql | sort -V | tail -1)/bin"; }

# Runs a command as the cluster owner: postgres when we are root, else us.
as_pg() {
    if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# The local cluster trusts nobody: its one pg_hba.conf line asks every role
# for its password (SCRAM), over the Unix socket only (no TCP listener).
# Every role that logs in (postgres, the superuser; trialog, the
# application's) has a random password made when the cluster is, kept only
# in $TL_PG_DIR/pgpass: a libpq password file (mode 0600, owned by whoever
# runs the scripts) that the DSNs name (passfile=...), so no password is
# ever on a command line, in the environment or in a log. The cluster's
# directory and its socket are its owner's alone (0700): when we are root
# the cluster runs as postgres and root reaches them anyway; otherwise the
# cluster runs as us.
TL_PG_HBA="# Trialog's local cluster (scripts/lib.sh): the Unix socket only, and a
# password (SCRAM) for every role: the passwords are in ../pgpass
local all all scram-sha-256"

# tl_pg_dsn USER [DBNAME]: the local cluster's DSN for USER (trialog; or
# postgres, the superuser), database trialog unless DBNAME says otherwise;
# it names the password file, which holds both roles' passwords.
tl_pg_dsn() {
    tl_pg_dir
    echo "host='$TL_PG_DIR/run' port=$TL_PG_PORT dbname=${2:-trialog} user=$1 passfile='$TL_PG_DIR/pgpass'"
}

# A new password: 24 random bytes in base64 (nothing to escape, neither in
# the password file nor in SQL).
pg_new_password() { head -c 24 /dev/urandom | base64 | tr -d '\n'; }

# pg_write_passfile SUPERUSER-PASSWORD TRIALOG-PASSWORD: $TL_PG_DIR/pgpass,
# replaced whole. printf is a builtin: the passwords are in no process's
# arguments.
pg_write_passfile() {
    local f="$TL_PG_DIR/pgpass" host="$TL_PG_DIR/run"
    host=${host//\\/\\\\}
    host=${host//:/\\:}
    (umask 077 && printf '%s:*:*:postgres:%s\n%s:*:*:trialog:%s\n' "$host" "$1" "$host" "$2" >"$f.new")
    mv -f "$f.new" "$f"
}

# pg_passfile_get ROLE: ROLE's password from the password file.
# (Role and password are the last two fields: neither holds a ":".)
pg_passfile_get() { awk -F: -v role="$1" '$(NF - 1) == role { print $NF; exit }' "$TL_PG_DIR/pgpass"; }

# pg_set_password ROLE PASSWORD PSQL...: sets ROLE's password (creating
# ROLE, able to log in, if it does not exist) through PSQL (psql and its
# connection options). The server gets a SCRAM verifier computed here, never
# the password; the statement reaches psql on its standard input, and
# neither psql nor the server logs it, even on an error.
pg_set_password() {
    local role=$1 pw=$2 verifier
    shift 2
    verifier=$(printf '%s' "$pw" | python3 -c '
import base64, hashlib, hmac, os, sys
pw, salt, rounds = sys.stdin.buffer.read(), os.urandom(16), 4096
salted = hashlib.pbkdf2_hmac("sha256", pw, salt, rounds)
client = hmac.new(salted, b"Client Key", "sha256").digest()
server = hmac.new(salted, b"Server Key", "sha256").digest()
b64 = lambda b: base64.b64encode(b).decode()
print("SCRAM-SHA-256$%d:%s$%s:%s" % (rounds, b64(salt), b64(hashlib.sha256(client).digest()), b64(server)))
') || die "could not compute a password verifier (python3)"
    printf '%s\n' "SET log_statement = 'none';" "SET log_min_error_statement = 'panic';" \
        "SELECT NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$role') AS missing \\gset" \
        '\if :missing' "CREATE ROLE $role LOGIN;" '\endif' \
        "ALTER ROLE $role PASSWORD '$verifier';" | "$@" -qAt -v ON_ERROR_STOP=1 >/dev/null 2>&1 ||
        die "could not set the password of the PostgreSQL role $role (see $TL_PG_DIR/postgresql.log)"
}

# pg_private: the cluster's directory and socket directory are its owner's
# alone, the password file ours alone (also on a tree an older version made).
pg_private() {
    chmod 700 "$TL_PG_DIR" "$TL_PG_DIR/run"
    if [ -f "$TL_PG_DIR/pgpass" ]; then chmod 600 "$TL_PG_DIR/pgpass"; fi
}

# pg_conf_add LINE...: adds to postgresql.conf each line it does not have
# (as the cluster's owner, who keeps the file).
pg_conf_add() {
    local line
    for line in "$@"; do
        grep -qxF "$line" "$TL_PG_DIR/data/postgresql.conf" ||
            printf '%s\n' "$line" | as_pg tee -a "$TL_PG_DIR/data/postgresql.conf" >/dev/null
    done
}
# What makes the cluster private: no TCP listener, a socket for its owner
# alone, passwords kept as SCRAM verifiers.
TL_PG_PRIVATE=("listen_addresses = ''" "unix_socket_permissions = 0700"
    "password_encryption = 'scram-sha-256'")

# pg_create BIN: a new cluster, its superuser's password set by initdb and
# both passwords in the password file.
pg_create() {
    local bin=$1 pwfile="$TL_PG_DIR/initdb.pw"
    say "creating a PostgreSQL cluster in $TL_PG_DIR (its passwords: $TL_PG_DIR/pgpass)"
    mkdir -p "$TL_PG_DIR/data" "$TL_PG_DIR/run"
    chmod 700 "$TL_PG_DIR" "$TL_PG_DIR/data" "$TL_PG_DIR/run"
    if [ "$(id -u)" -eq 0 ]; then chown -R postgres:postgres "$TL_PG_DIR"; fi
    pg_write_passfile "$(pg_new_password)" "$(pg_new_password)"
    # initdb reads the superuser's password from a file: the cluster
    # owner's alone, in its own directory, gone once read
    (umask 077 && pg_passfile_get postgres >"$pwfile")
    if [ "$(id -u)" -eq 0 ]; then chown postgres "$pwfile"; fi
    if ! as_pg "$bin/initdb" -D "$TL_PG_DIR/data" -U postgres --auth=scram-sha-256 \
        --pwfile="$pwfile" -E UTF8 --no-locale >/dev/null; then
        rm -f "$pwfile"
        die "initdb failed in $TL_PG_DIR"
    fi
    rm -f "$pwfile"
    printf '%s\n' "$TL_PG_HBA" | as_pg tee "$TL_PG_DIR/data/pg_hba.conf" >/dev/null
    pg_conf_add "${TL_PG_PRIVATE[@]}" "unix_socket_directories = '$TL_PG_DIR/run'" \
        "port = $TL_PG_PORT" "max_connections = 300" "shared_buffers = 256MB" \
        "synchronous_commit = on" "fsync = on"
}

# pg_secure_old BIN: a running cluster made by an older version of this file,
# which trusted every local user: both roles get new passwords (set while it
# still trusts), the password file is written, pg_hba.conf asks for
# passwords from then on and the cluster restarts (the socket's mode is a
# start-time setting).
pg_secure_old() {
    local bin=$1 super trialog
    local psql=("$bin/psql" -h "$TL_PG_DIR/run" -p "$TL_PG_PORT" -U postgres -d postgres)
    say "securing the PostgreSQL cluster in $TL_PG_DIR: it trusted every local user; now every role needs its password, kept in $TL_PG_DIR/pgpass (the cluster restarts once)"
    super=$(pg_new_password)
    trialog=$(pg_new_password)
    pg_set_password postgres "$super" "${psql[@]}"
    pg_set_password trialog "$trialog" "${psql[@]}"
    pg_write_passfile "$super" "$trialog"
    printf '%s\n' "$TL_PG_HBA" | as_pg tee "$TL_PG_DIR/data/pg_hba.conf" >/dev/null
    pg_conf_add "${TL_PG_PRIVATE[@]}"
    as_pg "$bin/pg_ctl" -D "$TL_PG_DIR/data" -l "$TL_PG_DIR/postgresql.log" -m fast -w restart >/dev/null ||
        die "PostgreSQL did not restart (see $TL_PG_DIR/postgresql.log)"
}

# Starts (or reuses) the project's own PostgreSQL cluster under var/pg,
# listening only on a Unix socket in var/pg/run, and prints the trialog
# role's DSN (tl_pg_dsn). A cluster an older version made (trust for
# everyone) is secured on the way.
tl_pg_start() {
    if [ -n "${TRIALOG_PG_DSN:-}" ]; then echo "$TRIALOG_PG_DSN"; return; fi
    local bin; bin=$(pg_bin)
    id postgres >/dev/null 2>&1 || [ "$(id -u)" -ne 0 ] || die "no postgres user: is the postgresql package installed?"
    tl_pg_dir
    if [ ! -f "$TL_PG_DIR/data/PG_VERSION" ]; then pg_create "$bin"; fi
    pg_private
    if ! as_pg "$bin/pg_ctl" -D "$TL_PG_DIR/data" status >/dev/null 2>&1; then
        say "starting PostgreSQL"
        as_pg "$bin/pg_ctl" -D "$TL_PG_DIR/data" -l "$TL_PG_DIR/postgresql.log" -w start >/dev/null
    fi
    if grep -Eq '^[^#]*[[:space:]]trust([[:space:]]|$)' "$TL_PG_DIR/data/pg_hba.conf"; then
        pg_secure_old "$bin"
    fi
    [ -s "$TL_PG_DIR/pgpass" ] || die "the PostgreSQL cluster in $TL_PG_DIR asks for passwords, but its password file $TL_PG_DIR/pgpass is gone: put it back, or stop the stack (make stop) and delete $TL_PG_DIR to start afresh (losing that cluster's data)"
    local psql=("$bin/psql" "$(tl_pg_dsn postgres postgres)" -qAt)
    "${psql[@]}" -c "SELECT 1" >/dev/null 2>&1 ||
        die "could not connect to the PostgreSQL cluster in $TL_PG_DIR as postgres with the password file $TL_PG_DIR/pgpass (see $TL_PG_DIR/postgresql.log)"
    if [ "$("${psql[@]}" -c "SELECT 1 FROM pg_roles WHERE rolname = 'trialog'")" != 1 ]; then
        pg_set_password trialog "$(pg_passfile_get trialog)" "${psql[@]}"
    fi
    if [ "$("${psql[@]}" -c "SELECT 1 FROM pg_database WHERE datname = 'trialog'")" != 1 ]; then
        "${psql[@]}" -c "CREATE DATABASE trialog OWNER trialog" >/dev/null
    fi
    tl_pg_dsn trialog
}

# The superuser's DSN of the cluster tl_pg_start runs (db secure, tests).
tl_pg_super_dsn() { tl_pg_dsn postgres; }

tl_pg_stop() {
    local bin; bin=$(pg_bin)
    tl_pg_dir
    if [ -f "$TL_PG_DIR/data/PG_VERSION" ]; then
        as_pg "$bin/pg_ctl" -D "$TL_PG_DIR/data" -m fast stop >/dev/null 2>&1 || true
    fi
}

# tl_demo_admins DIR: the demo's two administrators (demo-admin, and
# demo-admin-2: signing enrolments take two, docs/SECURITY.md), each with a
# fresh token in DIR/admin.token and DIR/admin2.token (mode 0600) whose
# earlier tokens are revoked (each a TokenRevoked event with its reason), so
# a demo run leaves one valid token each. Needs TRIALOG_PG_DSN and
# TRIALOG_KAFKA_BROKERS; says what it did on standard error.
tl_demo_admins() {
    local why="superseded by a new demo token"
    "$TL_BUILD/trialog" admin bootstrap demo-admin --out "$1/admin.token" --revoke-others "$why" &&
        "$TL_BUILD/trialog" admin bootstrap demo-admin-2 --out "$1/admin2.token" \
            --revoke-others "$why"
}

# tl_secret_key FILE: FILE holds a new random 256-bit key, in hex, mode 0600.
tl_secret_key() {
    (umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$1")
    chmod 600 "$1"
}

# tl_spawn NAME CMD...: runs CMD in the background, pid in var/run/NAME.pid.
tl_spawn() {
    local name=$1; shift
    nohup "$@" >>"$TL_VAR/log/$name.log" 2>&1 &
    echo $! >"$TL_VAR/run/$name.pid"
}

# tl_stop_pids SECONDS PID...: SIGTERM to each, at most SECONDS for all of
# them to end, then SIGKILL to what is left, saying so; never an unbounded wait
tl_stop_pids() {
    local limit=$1 p alive
    shift
    for p in "$@"; do kill -TERM "$p" 2>/dev/null || true; done
    for _ in $(seq $((limit * 10))); do
        alive=false
        for p in "$@"; do kill -0 "$p" 2>/dev/null && alive=true && break; done
        $alive || return 0
        sleep 0.1
    done
    for p in "$@"; do
        kill -0 "$p" 2>/dev/null && echo "pid $p did not stop in ${limit} s, killing it" >&2
        kill -KILL "$p" 2>/dev/null || true
    done
}

tl_kill() {
    local f="$TL_VAR/run/$1.pid"
    [ -f "$f" ] || return 0
    tl_stop_pids 5 "$(cat "$f")"
    rm -f "$f"
}

tl_alive() { [ -f "$TL_VAR/run/$1.pid" ] && kill -0 "$(cat "$TL_VAR/run/$1.pid")" 2>/dev/null; }
