#!/usr/bin/env bash
# Starts or stops the whole local stack: PostgreSQL, an Apache Kafka broker
# (KRaft, jars from Maven Central, scripts/kafka.sh; log on disk under
# var/kafka-node, port TRIALOG_KAFKA_PORT, 9092; unless TRIALOG_KAFKA_BROKERS
# names a cluster of yours), every topic (`trialog topics ensure`), the projectors
# (participants, schedules, access, forms, the research export, the dataset
# release worker, the ingest consumer, the audit archive) and the gateway
# (on 127.0.0.1 unless TRIALOG_HTTP_BIND says otherwise), and writes fresh tokens of the
# two demo administrators to var/demo/admin.token and admin2.token (mode 0600),
# revoking their earlier ones. The research export's pseudonym key is
# var/research.key (made once, mode 0600) unless TRIALOG_RESEARCH_KEY_FILE
# names another.
# Everything runs in the background; state lives under var/.
#   scripts/stack.sh start   # returns once the gateway answers /readyz
#   scripts/stack.sh stop
source "$(dirname "$0")/lib.sh"

PORT="${TRIALOG_HTTP_PORT:-8080}"

start() {
    local dsn brokers
    dsn=$(tl_pg_start)
    # A second start restarts the programs (new build), keeping the broker.
    tl_kill gateway; tl_kill projector-participants; tl_kill projector-schedules
    tl_kill projector-access; tl_kill projector-forms; tl_kill projector-audit
    tl_kill projector-research; tl_kill projector-release-export; tl_kill projector-ingest
    if [ -n "${TRIALOG_KAFKA_BROKERS:-}" ]; then
        brokers=$TRIALOG_KAFKA_BROKERS
    else
        local kport="${TRIALOG_KAFKA_PORT:-9092}" fresh=false
        brokers="127.0.0.1:$kport"
        "$TL_ROOT/scripts/kafka.sh" fetch >/dev/null
        if ! tl_alive broker; then
            [ -f "$TL_VAR/kafka-node/data/meta.properties" ] || fresh=true
            say "starting Apache Kafka $("$TL_ROOT/scripts/kafka.sh" version) on $brokers (KRaft, log in var/kafka-node)"
            tl_spawn broker "$TL_ROOT/scripts/kafka.sh" run "$TL_VAR/kafka-node" 1 "$kport" \
                "$((kport + 1))" "1@127.0.0.1:$((kport + 1))"
        fi
    fi
    # Topics are code: made (or checked) before anything produces.
    local tries=0
    until TRIALOG_KAFKA_BROKERS="$brokers" "$TL_BUILD/trialog" topics ensure \
        >>"$TL_VAR/log/topics.log" 2>&1; do
        tries=$((tries + 1))
        [ -z "${TRIALOG_KAFKA_BROKERS:-}" ] && ! tl_alive broker &&
            die "the Kafka broker exited (see var/log/broker.log)"
        [ "$tries" -lt 3 ] || die "trialog topics ensure failed (see var/log/topics.log)"
        sleep 1
    done
    # A new local cluster beside an archive of an earlier one (var/kafka-node
    # was deleted): disaster recovery, the log comes back from the archive.
    if [ "${fresh:-false}" = true ] &&
        [ "$(psql "$dsn" -qAtc "SELECT COALESCE(to_regclass('trialog_archive.audit_log'),
             to_regclass('trialog.audit_log')) IS NOT NULL")" = t ]; then
        say "the local broker is new but the archive is not: restoring the log (trialog reseed)"
        TRIALOG_PG_DSN="$dsn" TRIALOG_KAFKA_BROKERS="$brokers" "$TL_BUILD/trialog" reseed \
            >>"$TL_VAR/log/reseed.log" || die "re-seed failed (see var/log/reseed.log)"
    fi
    mkdir -p "$TL_VAR/demo"
    chmod 700 "$TL_VAR/demo"
    printf 'export TRIALOG_PG_DSN=%q\nexport TRIALOG_KAFKA_BROKERS=%q\nexport TRIALOG_HTTP_PORT=%q\n' \
        "$dsn" "$brokers" "$PORT" >"$TL_VAR/env"
    export TRIALOG_PG_DSN="$dsn" TRIALOG_KAFKA_BROKERS="$brokers" TRIALOG_HTTP_PORT="$PORT"
    # The key undoes the pseudonyms: it never enters the log or the database.
    if [ -z "${TRIALOG_RESEARCH_KEY_FILE:-}" ]; then
        export TRIALOG_RESEARCH_KEY_FILE="$TL_VAR/research.key"
        if [ ! -s "$TRIALOG_RESEARCH_KEY_FILE" ]; then
            tl_secret_key "$TRIALOG_RESEARCH_KEY_FILE"
            say "made the research pseudonym key: var/research.key (mode 0600; keep it, and keep it apart)"
        fi
        chmod 600 "$TRIALOG_RESEARCH_KEY_FILE"
    fi
    # The archive's signing key (Ed25519): its checkpoints anchor the audit
    # trail outside the database; the public half is all `trialog audit
    # verify` needs. Then the archive's owner role (as the superuser).
    if [ -z "${TRIALOG_AUDIT_SIGNING_KEY:-}" ]; then
        export TRIALOG_AUDIT_SIGNING_KEY="$TL_VAR/audit-signing.pem"
        if [ ! -s "$TRIALOG_AUDIT_SIGNING_KEY" ]; then
            "$TL_BUILD/trialog" audit keygen "$TRIALOG_AUDIT_SIGNING_KEY" "$TL_VAR/audit-signing.pub.pem" \
                >>"$TL_VAR/log/admin.log" 2>&1 || die "could not make the audit signing key"
            say "made the audit signing key: var/audit-signing.pem (mode 0600; keep it apart); var/audit-signing.pub.pem verifies"
        fi
    fi
    printf 'export TRIALOG_AUDIT_PUBLIC_KEY=%q\n' "${TRIALOG_AUDIT_PUBLIC_KEY:-$TL_VAR/audit-signing.pub.pem}" >>"$TL_VAR/env"
    TRIALOG_PG_SUPER_DSN="${TRIALOG_PG_SUPER_DSN:-$(tl_pg_super_dsn)}" "$TL_BUILD/trialog" db secure \
        >>"$TL_VAR/log/admin.log" 2>&1 || die "could not secure the audit archive (see var/log/admin.log)"
    # dataset releases: the worker writes them here, the gateway serves them
    export TRIALOG_RELEASE_DIR="${TRIALOG_RELEASE_DIR:-$TL_VAR/releases}"
    # the demo's gateway listens on loopback only, unless told otherwise
    export TRIALOG_HTTP_BIND="${TRIALOG_HTTP_BIND:-127.0.0.1}"
    # the connectors' topics the ingest consumer reads (docs/CONNECTORS.md)
    export TRIALOG_INGEST_SOURCES="${TRIALOG_INGEST_SOURCES:-oct}"
    local p assigned=()
    for p in participants schedules access forms research release-export ingest; do
        assigned+=("$(grep -c partitions_assigned "$TL_VAR/log/projector-$p.log" 2>/dev/null || true)")
        say "starting the $p projector"
        tl_spawn "projector-$p" "$TL_BUILD/trialog-projector" "$p"
    done
    say "starting the audit archive"
    tl_spawn projector-audit "$TL_BUILD/trialog-projector" audit
    say "starting the gateway on $TRIALOG_HTTP_BIND port $PORT"
    tl_spawn gateway "$TL_BUILD/trialog-gateway"
    # The projectors hold their partitions after the group join (~3 s).
    local i=0
    for p in participants schedules access forms research release-export ingest; do
        for _ in $(seq 300); do
            [ "$(grep -c partitions_assigned "$TL_VAR/log/projector-$p.log")" -gt "${assigned[$i]:-0}" ] && break
            tl_alive "projector-$p" || die "the $p projector exited (see var/log/projector-$p.log)"
            sleep 0.1
        done
        i=$((i + 1))
    done
    for _ in $(seq 150); do
        if curl -fsS "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1; then
            for p in participants schedules access forms research release-export ingest; do
                tl_alive "projector-$p" || die "the $p projector exited (see var/log/projector-$p.log)"
            done
            # the administrators: nobody could ask the API for the first one
            tl_demo_admins "$TL_VAR/demo" >>"$TL_VAR/log/admin.log" 2>&1 ||
                die "could not issue the admin tokens (see var/log/admin.log)"
            say "admin token (valid 30 days, mode 0600): var/demo/admin.token"
            say "ready: http://127.0.0.1:$PORT"
            return 0
        fi
        tl_alive gateway || die "the gateway exited (see var/log/gateway.log)"
        sleep 0.2
    done
    die "the gateway did not become ready (see var/log/gateway.log)"
}

stop() {
    tl_kill gateway
    tl_kill projector-participants
    tl_kill projector-schedules
    tl_kill projector-access
    tl_kill projector-forms
    tl_kill projector-research
    tl_kill projector-release-export
    tl_kill projector-ingest
    tl_kill projector-audit
    [ -f "$TL_VAR/run/broker.pid" ] && tl_stop_pids 30 "$(cat "$TL_VAR/run/broker.pid")"
    rm -f "$TL_VAR/run/broker.pid"
    tl_pg_stop
    say "stopped"
}

case "${1:-}" in
start) start ;;
stop) stop ;;
*) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
