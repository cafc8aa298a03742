#!/usr/bin/env bash
# The local Apache Kafka broker: jars from Maven Central (tools/kafka/pom.xml,
# one pinned version), KRaft mode, no ZooKeeper, no Docker.
#
#   scripts/kafka.sh fetch
#       installs a JDK and Maven if missing, copies the broker's jars once into
#       $TRIALOG_KAFKA_HOME (var/kafka/<version>) and prints that directory.
#   scripts/kafka.sh run DIR NODE_ID PORT CONTROLLER_PORT VOTERS [KEY=VALUE...]
#       formats DIR once (cluster id: $TRIALOG_KAFKA_CLUSTER_ID, or DIR/cluster.id,
#       made once) and runs the node in the foreground (exec: the caller's pid
#       is the JVM's). VOTERS: "1@127.0.0.1:9093,2@…". KEY=VALUE pairs are added
#       after tools/kafka/broker.properties and test.properties (last wins).
#   scripts/kafka.sh version
#       the pinned version.
#   scripts/kafka.sh cluster-id
#       a new cluster id, for the nodes of one cluster (TRIALOG_KAFKA_CLUSTER_ID).
# Heap: $TRIALOG_KAFKA_HEAP (512m). $TRIALOG_KAFKA_SCRAM, when set, is given to the
# format as --add-scram (SCRAM users exist from the start, e.g.
# 'SCRAM-SHA-512=[name=trialog,password=…]'; only at the first format).
set -euo pipefail
KROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
KTOOLS="$KROOT/tools/kafka"
KVERSION=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$KTOOLS/pom.xml")
[ -n "$KVERSION" ] || { echo "kafka.sh: no kafka.version in $KTOOLS/pom.xml" >&2; exit 1; }
KHOME="${TRIALOG_KAFKA_HOME:-$KROOT/var/kafka/$KVERSION}"

fetch() {
    if [ -f "$KHOME/.complete" ] && [ "$(cat "$KHOME/.complete")" = "$(md5sum <"$KTOOLS/pom.xml")" ]; then
        echo "$KHOME"
        return
    fi
    local need=""
    command -v java >/dev/null 2>&1 || need="$need openjdk-17-jre-headless"
    command -v mvn >/dev/null 2>&1 || need="$need maven"
    if [ -n "$need" ]; then
        echo "==> installing:$need" >&2
        local sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
        $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        # shellcheck disable=SC2086
        $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need >/dev/null
    fi
    echo "==> fetching Apache Kafka $KVERSION from Maven Central into $KHOME" >&2
    rm -rf "$KHOME.tmp"
    mkdir -p "$KHOME.tmp"
    # Maven's own cache (~/.m2) keeps the downloads; a second fetch is a copy.
    mvn -q -B -Dstyle.color=never -f "$KTOOLS/pom.xml" dependency:copy-dependencies -DincludeScope=runtime \
        -DoutputDirectory="$KHOME.tmp/libs" >&2 || { echo "kafka.sh: maven failed" >&2; exit 1; }
    ls "$KHOME.tmp/libs/kafka_2.13-$KVERSION.jar" >/dev/null
    md5sum <"$KTOOLS/pom.xml" >"$KHOME.tmp/.complete"
    rm -rf "$KHOME"
    mv "$KHOME.tmp" "$KHOME"
    echo "$KHOME"
}

# A Kafka cluster id: 16 random bytes, base64url without padding, not
# starting with "-" (the storage tool would take it for an option; Kafka's own
# Uuid.randomUuid() avoids those too).
new_cluster_id() {
    local id
    for _ in $(seq 100); do
        id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')
        [ "${id#-}" = "$id" ] && { echo "$id"; return; }
    done
    return 1
}

run() {
    [ $# -ge 5 ] || { echo "usage: kafka.sh run DIR NODE_ID PORT CONTROLLER_PORT VOTERS [KEY=VALUE...]" >&2; exit 2; }
    local dir=$1 id=$2 port=$3 cport=$4 voters=$5
    shift 5
    [ -f "$KHOME/.complete" ] || { echo "kafka.sh: no broker jars in $KHOME: run scripts/kafka.sh fetch" >&2; exit 1; }
    mkdir -p "$dir/data"
    local props="$dir/server.properties" cp="$KHOME/libs/*"
    {
        cat "$KTOOLS/broker.properties" "$KTOOLS/test.properties"
        echo "node.id=$id"
        echo "controller.quorum.voters=$voters"
        echo "listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport"
        echo "advertised.listeners=PLAINTEXT://127.0.0.1:$port"
        echo "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
        echo "log.dirs=$dir/data"
        local kv
        for kv in "$@"; do echo "$kv"; done
    } >"$props.tmp"
    mv "$props.tmp" "$props"
    local jvm=(-Xms"${TRIALOG_KAFKA_HEAP:-512m}" -Xmx"${TRIALOG_KAFKA_HEAP:-512m}" -XX:+UseG1GC
        -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 -Djava.awt.headless=true
        -Dlog4j.configuration="file:$KTOOLS/log4j.properties")
    if [ ! -f "$dir/data/meta.properties" ]; then
        local cid=${TRIALOG_KAFKA_CLUSTER_ID:-}
        if [ -z "$cid" ]; then
            [ -s "$dir/cluster.id" ] || new_cluster_id >"$dir/cluster.id"
            cid=$(cat "$dir/cluster.id")
        fi
        local scram=()
        [ -z "${TRIALOG_KAFKA_SCRAM:-}" ] || scram=(--add-scram "$TRIALOG_KAFKA_SCRAM")
        java "${jvm[@]}" -cp "$cp" kafka.tools.StorageTool format -t "$cid" -c "$props" \
            --ignore-formatted "${scram[@]}" >&2
    fi
    exec java "${jvm[@]}" -cp "$cp" kafka.Kafka "$props"
}

case "${1:-}" in
fetch) fetch ;;
run) shift; run "$@" ;;
version) echo "$KVERSION" ;;
cluster-id) new_cluster_id ;;
*) echo "usage: $0 fetch | run DIR NODE_ID PORT CONTROLLER_PORT VOTERS [KEY=VALUE...] | version | cluster-id" >&2; exit 2 ;;
esac
