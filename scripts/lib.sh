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
tl_pg_dir() {
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

# Starts (or reuses) the project's own PostgreSQL cluster under var/pg,
# listening only on a Unix socket in var/pg/run, and prints its DSN.
tl_pg_start() {
    if [ -n "${TRIALOG_PG_DSN:-}" ]; then echo "$TRIALOG_PG_DSN"; return; fi
    local bin; bin=$(pg_bin)
    id postgres >/dev/null 2>&1 || [ "$(id -u)" -ne 0 ] || die "no postgres user: is the postgresql package installed?"
    tl_pg_dir
    if [ ! -f "$TL_PG_DIR/data/PG_VERSION" ]; then
        say "creating a PostgreSQL cluster in $TL_PG_DIR"
        mkdir -p "$TL_PG_DIR/data" "$TL_PG_DIR/run"
        [ "$(id -u)" -eq 0 ] && chown -R postgres:postgres "$TL_PG_DIR"
        chmod 700 "$TL_PG_DIR/data"
        as_pg "$bin/initdb" -D "$TL_PG_DIR/data" -U postgres -A trust -E UTF8 --no-locale >/dev/null
        cat >>"$TL_PG_DIR/data/postgresql.conf" <<CONF
listen_addresses = ''
unix_socket_directories = '$TL_PG_DIR/run'
port = $TL_PG_PORT
max_connections = 300
shared_buffers = 256MB
synchronous_commit = on
fsync = on
CONF
    fi
    if ! as_pg "$bin/pg_ctl" -D "$TL_PG_DIR/data" status >/dev/null 2>&1; then
        say "starting PostgreSQL"
        as_pg "$bin/pg_ctl" -D "$TL_PG_DIR/data" -l "$TL_PG_DIR/postgresql.log" -w start >/dev/null
    fi
    local psql=("$bin/psql" -h "$TL_PG_DIR/run" -p "$TL_PG_PORT" -U postgres -d postgres -qAt)
    if [ "$("${psql[@]}" -c "SELECT 1 FROM pg_roles WHERE rolname = 'trialog'")" != 1 ]; then
        "${psql[@]}" -c "CREATE ROLE trialog LOGIN" >/dev/null
    fi
    if [ "$("${psql[@]}" -c "SELECT 1 FROM pg_database WHERE datname = 'trialog'")" != 1 ]; then
        "${psql[@]}" -c "CREATE DATABASE trialog OWNER trialog" >/dev/null
    fi
    echo "host='$TL_PG_DIR/run' port=$TL_PG_PORT dbname=trialog user=trialog"
}

# The superuser's DSN of the cluster tl_pg_start runs (db secure, tests).
tl_pg_super_dsn() {
    local dsn; dsn=$(tl_pg_start)
    echo "${dsn/user=trialog/user=postgres}"
}

tl_pg_stop() {
    local bin; bin=$(pg_bin)
    tl_pg_dir
    if [ -f "$TL_PG_DIR/data/PG_VERSION" ]; then
        as_pg "$bin/pg_ctl" -D "$TL_PG_DIR/data" -m fast stop >/dev/null 2>&1 || true
    fi
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
