#!/usr/bin/env python3
"""The local PostgreSQL cluster trusts nobody (scripts/lib.sh, docs/SECURITY.md).

ClusterTest inspects the cluster scripts/test.sh started, through the DSNs it
exports (TRIALOG_TEST_PG_DSN, TRIALOG_TEST_PG_SUPER_DSN): its password file is
ours alone (0600), its directory and socket are its owner's alone, every
pg_hba.conf rule asks for a SCRAM password over the Unix socket, there is no
TCP listener, every role that logs in has a SCRAM verifier, and a client
without the password file, or with wrong passwords, is refused.

UpgradeTest makes a cluster the way the scripts did before (initdb -A trust,
a socket anyone could reach) in a directory of its own, runs tl_pg_start on it
and checks that it secured it in place, keeping its data; and that a cluster
whose password file is gone is refused with a message that says how to fix it.

No password is ever printed: failures name files and roles, not contents.

Usage: test_local_pg.py SOURCE_DIR [ClusterTest|UpgradeTest]  (ctest runs it)."""
import os
import pwd
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import unittest

ROOT = sys.argv.pop(1) if len(sys.argv) > 1 else "."
LIB = os.path.join(ROOT, "scripts", "lib.sh")


def parse_dsn(dsn):
    """A libpq key=value connection string into a dict (values may be quoted)."""
    out = {}
    for m in re.finditer(r"\s*(\w+)\s*=\s*('((?:[^'\\]|\\.)*)'|\S+)", dsn):
        out[m.group(1)] = re.sub(r"\\(.)", r"\1", m.group(3)) if m.group(3) is not None else m.group(2)
    return out


def make_dsn(fields):
    return " ".join("%s='%s'" % (k, v.replace("\\", "\\\\").replace("'", "\\'"))
                    for k, v in fields.items())


def clean_env():
    """No password from anywhere but the DSN: no PGPASSWORD, PGPASSFILE or ~/.pgpass."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["HOME"] = tempfile.gettempdir()
    return env


def psql(dsn, sql):
    """(exit code, output) of psql running sql; never prompts for a password."""
    p = subprocess.run(["psql", "-w", "-qAtX", "-d", dsn, "-c", sql], env=clean_env(),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return p.returncode, p.stdout.strip()


def passfile_entries(path):
    """[(host, port, db, user, password)] of a libpq password file."""
    rows = []
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if line and not line.startswith("#"):
                parts = re.split(r"(?<!\\):", line)
                rows.append(tuple(re.sub(r"\\(.)", r"\1", p) for p in parts))
    return rows


class Checks(unittest.TestCase):
    def assert_private_dir(self, path, what):
        st = os.stat(path)
        self.assertTrue(stat.S_ISDIR(st.st_mode), what)
        self.assertEqual(stat.S_IMODE(st.st_mode) & 0o077, 0,
                         "%s %s is mode %o: others may reach it" % (what, path, stat.S_IMODE(st.st_mode)))

    def assert_secret_file(self, path, what):
        st = os.lstat(path)
        self.assertTrue(stat.S_ISREG(st.st_mode), "%s %s is not a plain file" % (what, path))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o600,
                         "%s %s is mode %o, not 0600" % (what, path, stat.S_IMODE(st.st_mode)))
        self.assertEqual(st.st_uid, os.getuid(), "%s %s is not ours" % (what, path))

    def assert_refused(self, dsn, user):
        rc, _ = psql(dsn, "SELECT 1")
        self.assertNotEqual(rc, 0, "%s connected without its password" % user)

    def assert_secured(self, dsn, super_dsn):
        """Everything ClusterTest checks, for the cluster of dsn."""
        f = parse_dsn(dsn)
        for key in ("host", "port", "passfile"):
            self.assertIn(key, f, "the DSN names no %s" % key)
        sockdir, passfile = f["host"], f["passfile"]
        self.assertTrue(sockdir.startswith("/"), "the DSN's host is not a socket directory")
        # the files
        self.assert_secret_file(passfile, "the password file")
        self.assert_private_dir(sockdir, "the socket directory")
        self.assert_private_dir(os.path.dirname(sockdir), "the cluster's directory")
        sock = os.path.join(sockdir, ".s.PGSQL.%s" % f["port"])
        self.assertEqual(stat.S_IMODE(os.stat(sock).st_mode) & 0o077, 0,
                         "the socket %s is reachable by others" % sock)
        entries = passfile_entries(passfile)
        users = {e[3] for e in entries}
        self.assertTrue({"postgres", "trialog"} <= users, "the password file lacks a role")
        for e in entries:
            self.assertEqual(len(e), 5, "a line of the password file has no 5 fields")
            self.assertEqual(e[0], sockdir, "a line of the password file names another host")
            self.assertGreaterEqual(len(e[4]), 24, "%s's password is short" % e[3])
        # with the password file: both roles
        self.assertEqual(psql(dsn, "SELECT current_user"), (0, f["user"]))
        self.assertEqual(psql(super_dsn, "SELECT current_user"), (0, "postgres"))
        # without it, or with wrong passwords: nobody
        for user in ("postgres", "trialog"):
            self.assert_refused(make_dsn(dict(f, user=user, passfile="/dev/null")), user)
        with tempfile.TemporaryDirectory() as tmp:
            wrong = os.path.join(tmp, "pgpass")
            with open(wrong, "w") as w:
                for e in entries:
                    w.write("%s:%s:%s:%s:%s\n" % (e[0].replace(":", "\\:"), e[1], e[2], e[3],
                                                  "not-" + e[4][:8]))
            os.chmod(wrong, 0o600)
            for user in ("postgres", "trialog"):
                self.assert_refused(make_dsn(dict(f, user=user, passfile=wrong)), user)
        # the server's side: passwords over the socket only, kept as SCRAM verifiers
        rules = psql(super_dsn, "SELECT count(*), count(*) FILTER (WHERE type <> 'local'"
                     " OR auth_method <> 'scram-sha-256' OR error IS NOT NULL)"
                     " FROM pg_hba_file_rules")
        self.assertEqual(rules[0], 0)
        total, bad = rules[1].split("|")
        self.assertGreaterEqual(int(total), 1, "pg_hba.conf has no rule")
        self.assertEqual(bad, "0", "a pg_hba.conf rule is not 'local ... scram-sha-256'")
        self.assertEqual(psql(super_dsn, "SHOW listen_addresses"), (0, ""))
        self.assertEqual(psql(super_dsn, "SHOW unix_socket_permissions"), (0, "0700"))
        self.assertEqual(psql(super_dsn, "SHOW password_encryption"), (0, "scram-sha-256"))
        self.assertEqual(psql(super_dsn, "SELECT string_agg(rolname, ',') FROM pg_authid"
                              " WHERE rolcanlogin AND (rolpassword IS NULL"
                              " OR rolpassword NOT LIKE 'SCRAM-SHA-256$%')"),
                         (0, ""), "a role logs in without a SCRAM password")
        # the server's log never saw a password (it is beside the password file)
        log = os.path.join(os.path.dirname(passfile), "postgresql.log")
        if os.path.exists(log):
            with open(log, errors="replace") as lf:
                text = lf.read()
            for e in entries:
                self.assertNotIn(e[4], text, "%s holds %s's password" % (log, e[3]))


class ClusterTest(Checks):
    """The cluster scripts/test.sh started."""

    def test_cluster_is_private(self):
        if os.environ.get("TRIALOG_PG_DSN"):
            self.skipTest("the tests run against a cluster of yours (TRIALOG_PG_DSN)")
        dsn = os.environ.get("TRIALOG_TEST_PG_DSN", "")
        super_dsn = os.environ.get("TRIALOG_TEST_PG_SUPER_DSN", "")
        if not dsn or not super_dsn:
            self.fail("TRIALOG_TEST_PG_DSN and TRIALOG_TEST_PG_SUPER_DSN are not set:"
                      " run the tests with `make test`")
        self.assert_secured(dsn, super_dsn)


def bash(script, env):
    """(exit code, stdout, stderr) of bash running script after sourcing scripts/lib.sh."""
    p = subprocess.run(["bash", "-c", 'source "$LIB"\n' + script], env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=240)
    return p.returncode, p.stdout.strip(), p.stderr


# How scripts/lib.sh made its cluster before it asked for passwords: trust for
# every local user, a socket directory and a socket anyone could reach.
OLD_CLUSTER = r'''
bin=$(pg_bin)
mkdir -p "$TL_PG_DIR/data" "$TL_PG_DIR/run"
if [ "$(id -u)" -eq 0 ]; then chown -R postgres:postgres "$TL_PG_DIR"; fi
chmod 700 "$TL_PG_DIR/data"
chmod 755 "$TL_PG_DIR" "$TL_PG_DIR/run"
as_pg "$bin/initdb" -D "$TL_PG_DIR/data" -U postgres -A trust -E UTF8 --no-locale >/dev/null
cat >>"$TL_PG_DIR/data/postgresql.conf" <<CONF
listen_addresses = ''
unix_socket_directories = '$TL_PG_DIR/run'
port = $TL_PG_PORT
CONF
as_pg "$bin/pg_ctl" -D "$TL_PG_DIR/data" -l "$TL_PG_DIR/postgresql.log" -w start >/dev/null
psql=("$bin/psql" -h "$TL_PG_DIR/run" -p "$TL_PG_PORT" -U postgres -d postgres -qAt)
"${psql[@]}" -c "CREATE ROLE trialog LOGIN" >/dev/null
"${psql[@]}" -c "CREATE DATABASE trialog OWNER trialog" >/dev/null
"$bin/psql" -h "$TL_PG_DIR/run" -p "$TL_PG_PORT" -U trialog -d trialog -qAt \
    -c "CREATE TABLE kept (v text); INSERT INTO kept VALUES ('from before')" >/dev/null
'''


class UpgradeTest(Checks):
    """A cluster an older version of scripts/lib.sh made, secured in place."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="trialog-pg-upgrade-")
        os.chmod(self.tmp, 0o755)  # the postgres user (when we are root) reaches its cluster
        self.env = dict(clean_env(), LIB=LIB, TL_PG_DIR=os.path.join(self.tmp, "pg"),
                        TL_PG_PORT="5499")
        self.env.pop("TRIALOG_PG_DSN", None)
        if os.getuid() == 0:
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                self.skipTest("no postgres user")

    def tearDown(self):
        bash("tl_pg_stop", self.env)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def test_old_cluster_is_secured_in_place(self):
        rc, _, err = bash(OLD_CLUSTER, self.env)
        self.assertEqual(rc, 0, "could not make an old-style cluster: " + err[-2000:])
        sockdir = os.path.join(self.env["TL_PG_DIR"], "run")
        old = "host='%s' port=5499 dbname=trialog user=trialog" % sockdir
        self.assertEqual(psql(old, "SELECT 1"), (0, "1"), "the old cluster does not trust")
        # as make stop leaves it: tl_pg_start starts it, then secures it
        self.assertEqual(bash("tl_pg_stop", self.env)[0], 0)

        rc, dsn, err = bash("tl_pg_start", self.env)
        self.assertEqual(rc, 0, "tl_pg_start failed on an old cluster: " + err[-2000:])
        self.assertIn("securing the PostgreSQL cluster", err)
        self.assert_secured(dsn, dsn.replace("user=trialog", "user=postgres"))
        self.assertEqual(psql(dsn, "SELECT v FROM kept"), (0, "from before"), "data lost")
        self.assert_refused(old, "trialog")

        # once is enough: a second start reuses it as it is
        rc, again, err = bash("tl_pg_start", self.env)
        self.assertEqual((rc, again), (0, dsn), err[-2000:])
        self.assertNotIn("securing", err)

        # a password file that is gone: refused, saying what to do
        passfile = parse_dsn(dsn)["passfile"]
        os.rename(passfile, passfile + ".away")
        rc, _, err = bash("tl_pg_start", self.env)
        self.assertNotEqual(rc, 0, "tl_pg_start went on without the password file")
        self.assertIn("password file", err)
        self.assertIn("delete", err)
        os.rename(passfile + ".away", passfile)
        self.assertEqual(bash("tl_pg_start", self.env)[0], 0)


if __name__ == "__main__":
    unittest.main()
