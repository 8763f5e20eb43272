#!/usr/bin/env bash
# Start/stop a real single-node Apache Kafka (KRaft, broker+controller in one
# JVM) for local development and tests. No Docker: the jars come from Maven
# Central into a cache, and the broker runs as a plain background java process.
#
#   scripts/kafka.sh start    # prints KAFKA_BOOTSTRAP=127.0.0.1:9092 on stdout
#   scripts/kafka.sh stop
#   scripts/kafka.sh status
#   scripts/kafka.sh reset    # stop and wipe the broker's data
#
# Environment (all optional):
#   HOTLINE_KAFKA_BOOTSTRAP  use this already-running broker; start only checks it
#   HOTLINE_KAFKA_VERSION    org.apache.kafka:kafka_2.13 version (default 4.1.1)
#   HOTLINE_KAFKA_PORT       client listener port (default 9092)
#   HOTLINE_KAFKA_CONTROLLER_PORT  KRaft controller port (default 9093)
#   HOTLINE_KAFKA_HEAP       JVM -Xmx (default 512m)
#   HOTLINE_KAFKA_START_TIMEOUT  seconds to wait for readiness (default 90)
#   HOTLINE_CACHE            cache root (default ~/.cache/hotline12345)
#   HOTLINE_RUN_DIR          pid/log/data root (default $HOTLINE_CACHE/run)
set -euo pipefail

# shellcheck disable=SC2034  # used by log() in lib.sh
HOTLINE_LOG_TAG=kafka
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

KAFKA_VERSION="${HOTLINE_KAFKA_VERSION:-4.1.1}"
KAFKA_PORT="${HOTLINE_KAFKA_PORT:-9092}"
CONTROLLER_PORT="${HOTLINE_KAFKA_CONTROLLER_PORT:-9093}"
KAFKA_HEAP="${HOTLINE_KAFKA_HEAP:-512m}"
START_TIMEOUT="${HOTLINE_KAFKA_START_TIMEOUT:-90}"

KAFKA_HOME="$HOTLINE_CACHE/kafka/$KAFKA_VERSION"
KAFKA_LIB="$KAFKA_HOME/lib"
DATA_DIR="$HOTLINE_RUN_DIR/kafka-data"
LOGS_DIR="$HOTLINE_RUN_DIR/kafka-logs"
CONF_FILE="$HOTLINE_RUN_DIR/kafka-server.properties"
PID_FILE="$HOTLINE_RUN_DIR/kafka.pid"
STATE_FILE="$HOTLINE_RUN_DIR/kafka.state"   # "version port controller-port" of the running broker
OUT_FILE="$LOGS_DIR/kafka.out"
BOOTSTRAP="127.0.0.1:$KAFKA_PORT"

# ---------------------------------------------------------------- helpers --

# our broker's pid, if the pid file names a live kafka.Kafka JVM
broker_pid() {
    local pid
    pid="$(pid_alive "$PID_FILE")" || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'kafka\.Kafka' || return 1
    echo "$pid"
}

# Stdlib-only Kafka probe, one request and its answer. "metadata": Metadata v1
# succeeds when the broker answers with at least one (unfenced) broker, i.e. it
# serves clients. "coordinator": FindCoordinator v0 for a probe group succeeds when
# the broker names a coordinator (error code 0); on a fresh broker that first creates
# __consumer_offsets, and until then consumer groups cannot join.
kafka_probe() {
    python3 - "$1" "$2" <<'PY' 2>/dev/null
import socket, struct, sys
host, _, port = sys.argv[1].rpartition(":")
host = host.strip("[]") or "127.0.0.1"
client = b"hotline-probe"
if sys.argv[2] == "metadata":
    api, version, corr, rest = 3, 1, 7, struct.pack(">i", -1)
else:
    api, version, corr, rest = 10, 0, 11, struct.pack(">h", len(client)) + client
body = struct.pack(">hhih", api, version, corr, len(client)) + client + rest
with socket.create_connection((host, int(port)), timeout=3) as s:
    s.settimeout(3)
    s.sendall(struct.pack(">i", len(body)) + body)
    def read(n):
        buf = b""
        while len(buf) < n:
            chunk = s.recv(n - len(buf))
            if not chunk:
                raise EOFError
            buf += chunk
        return buf
    size, = struct.unpack(">i", read(4))
    resp = read(size)
if sys.argv[2] == "metadata":
    answered, nbrokers = struct.unpack(">ii", resp[:8])
    ok = nbrokers > 0
else:
    answered, error = struct.unpack(">ih", resp[:6])
    ok = error == 0
sys.exit(0 if answered == corr and ok else 1)
PY
}
kafka_ready() { kafka_probe "$1" metadata; }
kafka_coordinator_ready() { kafka_probe "$1" coordinator; }

need_tools() {
    local missing=()
    command -v java >/dev/null || missing+=(default-jre-headless)
    command -v mvn >/dev/null || missing+=(maven)
    command -v python3 >/dev/null || missing+=(python3)
    apt_install "${missing[@]}"
}

# Resolve kafka_2.13 + every runtime dependency into $KAFKA_LIB (once).
ensure_jars() {
    if [ -f "$KAFKA_HOME/.complete" ] && compgen -G "$KAFKA_LIB/kafka_2.13-*.jar" >/dev/null; then
        return 0
    fi
    log "resolving org.apache.kafka:kafka_2.13:$KAFKA_VERSION and its runtime jars (Maven Central)"
    local t0=$SECONDS tmp="$KAFKA_HOME/lib.tmp.$$"
    mkdir -p "$KAFKA_HOME"
    rm -rf "$tmp"
    if ! mvn -B -q -Dstyle.color=never -f "$HOTLINE_SCRIPTS_DIR/kafka/pom.xml" \
            -Dkafka.version="$KAFKA_VERSION" \
            dependency:copy-dependencies -DincludeScope=runtime \
            -DoutputDirectory="$tmp" 2>&1 \
            | sed -e 's/\x1b\[[0-9;]*m//g' -e '/^$/d' >&2; then  # Debian's mvn -q leaks colour codes
        rm -rf "$tmp"
        rmdir "$KAFKA_HOME" 2>/dev/null || true
        die "could not resolve Kafka $KAFKA_VERSION from Maven (set HOTLINE_KAFKA_VERSION to another 4.x?)"
    fi
    rm -rf "$KAFKA_LIB"
    mv "$tmp" "$KAFKA_LIB"
    touch "$KAFKA_HOME/.complete"
    log "resolved $(find "$KAFKA_LIB" -name '*.jar' | wc -l) jars in $((SECONDS - t0))s into $KAFKA_LIB"
}

write_config() {
    mkdir -p "$DATA_DIR" "$LOGS_DIR"
    cat >"$CONF_FILE" <<EOF
# generated by scripts/kafka.sh -- single-node KRaft for local tests
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$DATA_DIR
num.partitions=3
auto.create.topics.enable=true
delete.topic.enable=true
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=3
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=3
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
log.retention.hours=24
log.segment.bytes=67108864
# the controller's no-op metadata record (a liveness mark for a quorum's followers and its
# metrics; one node here): every 5 s, not 0.5 s. Each is a raft append, a metadata
# image published and the controller's work: an idle broker 19.1 -> 13.7 ms of CPU a
# second (A B B A A B, 60 s windows)
metadata.max.idle.interval.ms=5000
EOF
}

java_cmd() {
    # $1: main class; rest: its args
    local main="$1"; shift
    # TieredStopAtLevel=1: C1's code only, no C2. A fresh broker's C2 compiled for tens of
    # minutes of load (2.9 s of CPU in the first 10,000-ticket bench, still 1 s in the
    # fourth), the broker's largest cost on 2 cores; C1's code serves requests about as
    # cheaply, and the JVM starts faster.
    JAVA_CMD=(java "-Xmx$KAFKA_HEAP" -Xms128m -XX:+UseG1GC -XX:MaxGCPauseMillis=20
        -XX:TieredStopAtLevel=1
        -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true
        "-Dkafka.logs.dir=$LOGS_DIR"
        "-Dlog4j2.configurationFile=$HOTLINE_SCRIPTS_DIR/kafka/log4j2.properties"
        -cp "$KAFKA_LIB/*" "$main" "$@")
}

format_storage() {
    [ -f "$DATA_DIR/meta.properties" ] && return 0
    local cluster_id
    # Kafka's own Uuid.randomUuid() never starts an id with '-': the storage tool would
    # read such an id as an option (1 run in 64 failed to format)
    cluster_id="$(python3 -c 'import base64,uuid
while (i := base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")).startswith("-"): pass
print(i)')"
    log "formatting KRaft storage in $DATA_DIR (cluster id $cluster_id)"
    java_cmd kafka.tools.StorageTool format -t "$cluster_id" -c "$CONF_FILE" --ignore-formatted
    "${JAVA_CMD[@]}" >>"$LOGS_DIR/storage-format.log" 2>&1 \
        || { cat "$LOGS_DIR/storage-format.log" >&2; die "storage format failed"; }
}

# ---------------------------------------------------------------- commands --

cmd_start() {
    if [ -n "${HOTLINE_KAFKA_BOOTSTRAP:-}" ]; then
        local first="${HOTLINE_KAFKA_BOOTSTRAP%%,*}"
        kafka_ready "$first" || die "HOTLINE_KAFKA_BOOTSTRAP=$HOTLINE_KAFKA_BOOTSTRAP does not answer as a Kafka broker"
        log "using the already-running broker at $HOTLINE_KAFKA_BOOTSTRAP"
        echo "KAFKA_BOOTSTRAP=$HOTLINE_KAFKA_BOOTSTRAP"
        return 0
    fi
    mkdir -p "$HOTLINE_RUN_DIR"
    # one start at a time (parallel test runners, make -j ...)
    exec 9>"$HOTLINE_RUN_DIR/kafka.lock"
    flock -w 600 9 || die "timed out waiting for another kafka.sh start"

    need_tools
    ensure_jars   # before touching a running broker: a bad version changes nothing
    local pid want="$KAFKA_VERSION $KAFKA_PORT $CONTROLLER_PORT"
    if pid="$(broker_pid)" && [ "$(cat "$STATE_FILE" 2>/dev/null)" != "$want" ]; then
        log "running broker has [$(cat "$STATE_FILE" 2>/dev/null)], wanted [$want] (version ports): restarting"
        cmd_stop
    fi
    if pid="$(broker_pid)"; then
        log "already running (pid $pid)"
    else
        rm -f "$PID_FILE"
        if tcp_open 127.0.0.1 "$KAFKA_PORT"; then
            die "port $KAFKA_PORT is taken by a process this script did not start; stop it, or set HOTLINE_KAFKA_PORT, or point HOTLINE_KAFKA_BOOTSTRAP at it"
        fi
        if tcp_open 127.0.0.1 "$CONTROLLER_PORT"; then
            die "controller port $CONTROLLER_PORT is taken; set HOTLINE_KAFKA_CONTROLLER_PORT"
        fi
        write_config
        format_storage
        log "starting Kafka $KAFKA_VERSION on $BOOTSTRAP (logs: $LOGS_DIR/server.log)"
        java_cmd kafka.Kafka "$CONF_FILE"
        {
            echo "===== $(date -Is) start"
        } >>"$OUT_FILE"
        # setsid: own session, so the broker outlives the caller's terminal
        # / make's process group; the shell writes its pid then execs java.
        setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' _ "$PID_FILE" "${JAVA_CMD[@]}" \
            </dev/null >>"$OUT_FILE" 2>&1 9>&- &
        echo "$want" >"$STATE_FILE"
        local tries=0
        while [ ! -s "$PID_FILE" ] && [ $tries -lt 50 ]; do sleep 0.1; tries=$((tries + 1)); done
        pid="$(broker_pid)" || { tail -n 30 "$OUT_FILE" >&2; die "broker did not start"; }
    fi

    local t0=$SECONDS deadline=$((SECONDS + START_TIMEOUT))
    until kafka_ready "$BOOTSTRAP" && kafka_coordinator_ready "$BOOTSTRAP"; do
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 40 "$OUT_FILE" >&2 || true
            tail -n 40 "$LOGS_DIR/server.log" >&2 2>/dev/null || true
            rm -f "$PID_FILE"
            die "broker exited during startup (see $LOGS_DIR; stale data from another version? try: $0 reset)"
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            tail -n 40 "$LOGS_DIR/server.log" >&2 2>/dev/null || true
            die "broker not ready after ${START_TIMEOUT}s (pid $pid still running; see $LOGS_DIR)"
        fi
        sleep 0.5
    done
    log "ready (pid $pid, waited $((SECONDS - t0))s)"
    echo "KAFKA_BOOTSTRAP=$BOOTSTRAP"
}

cmd_stop() {
    local pid
    if ! pid="$(broker_pid)"; then
        rm -f "$PID_FILE"
        log "not running"
        return 0
    fi
    log "stopping pid $pid"
    kill -TERM "$pid" 2>/dev/null || true
    if ! wait_pid_exit "$pid" 60; then
        log "no exit after 60s; killing"
        kill -KILL "$pid" 2>/dev/null || true
        wait_pid_exit "$pid" 10 || die "pid $pid survives SIGKILL"
    fi
    rm -f "$PID_FILE" "$STATE_FILE"
    log "stopped"
}

cmd_status() {
    local pid
    if pid="$(broker_pid)"; then
        # report the port it was started with, not the one in our environment
        local state
        read -r -a state <"$STATE_FILE" 2>/dev/null || true
        BOOTSTRAP="127.0.0.1:${state[1]:-$KAFKA_PORT}"
        if kafka_ready "$BOOTSTRAP"; then
            echo "kafka: running (pid $pid) on $BOOTSTRAP"
        else
            echo "kafka: starting or unhealthy (pid $pid) on $BOOTSTRAP"
        fi
        return 0
    fi
    echo "kafka: not running"
    return 3
}

cmd_reset() {
    cmd_stop
    rm -rf "$DATA_DIR"
    log "wiped $DATA_DIR"
}

case "${1:-}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    reset) cmd_reset ;;
    *) echo "usage: $0 start|stop|status|reset" >&2; exit 2 ;;
esac
