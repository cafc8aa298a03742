#!/usr/bin/env bash
# make test: installs what is missing, builds, starts the local PostgreSQL
# and runs every test (unit + integration) with ctest. Integration tests
# start their own Apache Kafka broker (jars fetched once by scripts/kafka.sh),
# projector and gateway processes, each test with its own database schema.
# The contract tests (tests/contract) install their own tools on first use: an
# OpenAPI validator (npm) and a property-based API tester (a venv under var/tools).
# --sanitize: the same under address+UB sanitizers.
source "$(dirname "$0")/lib.sh"
# shellcheck disable=SC2046
tl_deps $(tl_test_packages)
"$TL_ROOT/scripts/kafka.sh" fetch >/dev/null
if [ "${1:-}" = --sanitize ]; then
    export TL_BUILD="$TL_ROOT/build-asan"
    tl_build Debug ON
    export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1
else
    tl_build
fi
# the local cluster's DSN names its password file (passfile=...), which holds
# the passwords of both trialog and postgres (scripts/lib.sh)
TRIALOG_TEST_PG_DSN=$(tl_pg_start)
# the harness secures each test's archive (trialog db secure) and the
# archive's tamper test acts as the database superuser: the same DSN as user
# postgres (for the local cluster, what `tl_pg_dsn postgres` prints)
TRIALOG_TEST_PG_SUPER_DSN=${TRIALOG_TEST_PG_SUPER_DSN:-${TRIALOG_TEST_PG_DSN/user=trialog/user=postgres}}
export TRIALOG_TEST_PG_DSN TRIALOG_TEST_PG_SUPER_DSN
cd "$TL_BUILD"
ctest --output-on-failure --timeout 300
