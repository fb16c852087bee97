#!/usr/bin/env bash
# Local infrastructure for Attune: a real Apache Kafka broker (KRaft, from Maven Central jars) and
# FerretDB (a MongoDB-compatible server, embedded in deploy/ferretdb, SQLite files).
#
#   deploy/infra.sh setup    fetch the Kafka jars and build FerretDB once (cached in .cache/)
#   deploy/infra.sh up       start both (idempotent), wait until they answer
#   deploy/infra.sh down     stop both, leave no process behind
#   deploy/infra.sh status   say what runs
#   deploy/infra.sh reset    down, then delete the local data (var/)
#   deploy/infra.sh stop kafka|ferretdb, start kafka|ferretdb   one component (fault injection)
#
# When KAFKA_BOOTSTRAP_SERVERS or MONGODB_URI point anywhere but the local defaults, the matching
# local server is neither started nor stopped: that is how Attune runs against production clusters.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE="$ROOT/.cache"
RUN="${ATTUNE_RUN_DIR:-$ROOT/var}"
KAFKA_LIBS="$CACHE/kafka/libs"
FERRET_BIN="$CACHE/bin/attune-ferretdb"
KAFKA_PORT=9092
CONTROLLER_PORT=9093
MONGO_PORT=27017
KAFKA_HEAP="${ATTUNE_KAFKA_HEAP:-768m}"
LOCAL_KAFKA="127.0.0.1:$KAFKA_PORT"
LOCAL_MONGO="mongodb://127.0.0.1:$MONGO_PORT"

say() { printf '[infra] %s\n' "$*"; }
die() { printf '[infra] error: %s\n' "$*" >&2; exit 1; }

kafka_is_local() { [[ "${KAFKA_BOOTSTRAP_SERVERS:-$LOCAL_KAFKA}" =~ ^(127\.0\.0\.1|localhost):$KAFKA_PORT$ ]]; }
mongo_is_local() { [[ "${MONGODB_URI:-$LOCAL_MONGO}" =~ ^mongodb://(127\.0\.0\.1|localhost):$MONGO_PORT/?$ ]]; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
pid_alive() { [[ -f "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

need() { command -v "$1" >/dev/null 2>&1 || die "$1 is not installed: $2"; }

setup_kafka() {
  if [[ -f "$KAFKA_LIBS/.complete" && "$KAFKA_LIBS/.complete" -nt "$ROOT/deploy/kafka/pom.xml" ]]; then
    say "kafka jars: cached ($KAFKA_LIBS)"; return
  fi
  need java "install a JDK 17 (Debian: openjdk-17-jre-headless)"
  need mvn "install Maven (Debian: maven)"
  say "kafka jars: resolving from Maven Central (deploy/kafka/pom.xml) ..."
  rm -rf "$KAFKA_LIBS"; mkdir -p "$KAFKA_LIBS"
  mvn -q -B -f "$ROOT/deploy/kafka/pom.xml" dependency:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$KAFKA_LIBS"
  touch "$KAFKA_LIBS/.complete"
  say "kafka jars: $(ls "$KAFKA_LIBS" | wc -l) jars in $KAFKA_LIBS"
}

setup_ferretdb() {
  local src="$ROOT/deploy/ferretdb"
  local newest; newest=$(ls -t "$src"/*.go "$src"/go.mod "$src"/go.sum | head -1)
  if [[ -x "$FERRET_BIN" && "$FERRET_BIN" -nt "$newest" ]]; then
    say "ferretdb: cached ($FERRET_BIN)"; return
  fi
  need go "install Go 1.22 or newer"
  say "ferretdb: building the embedded FerretDB v1.24 server (first time takes a minute) ..."
  mkdir -p "$CACHE/bin"
  (cd "$src" && go build -trimpath -o "$FERRET_BIN.tmp" . && mv "$FERRET_BIN.tmp" "$FERRET_BIN")
  say "ferretdb: built $FERRET_BIN"
}

start_kafka() {
  local pidf="$RUN/kafka.pid" data="$RUN/kafka-data" logs="$RUN/log/kafka"
  if pid_alive "$pidf"; then say "kafka: already running (pid $(cat "$pidf"))"; return; fi
  if port_open $KAFKA_PORT || port_open $CONTROLLER_PORT; then
    die "port $KAFKA_PORT or $CONTROLLER_PORT is taken by a process this script did not start; stop it, or point KAFKA_BOOTSTRAP_SERVERS at it"
  fi
  [[ -f "$KAFKA_LIBS/.complete" ]] || die "kafka jars missing: run 'make setup' first"
  mkdir -p "$data" "$logs"
  sed -e "s#@DATA_DIR@#$data#" -e "s#@KAFKA_PORT@#$KAFKA_PORT#g" -e "s#@CONTROLLER_PORT@#$CONTROLLER_PORT#g" \
      "$ROOT/deploy/kafka/server.properties.in" > "$RUN/kafka-server.properties"
  local java_opts=(-Xms256m "-Xmx$KAFKA_HEAP" -XX:+UseG1GC -Djava.awt.headless=true
                   "-Dkafka.logs.dir=$logs" "-Dlog4j2.configurationFile=$ROOT/deploy/kafka/log4j2.yaml")
  if [[ ! -f "$data/meta.properties" ]]; then
    [[ -f "$RUN/kafka-cluster-id" ]] || java "${java_opts[@]}" -cp "$KAFKA_LIBS/*" kafka.tools.StorageTool random-uuid \
        2>/dev/null | tail -n 1 > "$RUN/kafka-cluster-id"
    say "kafka: formatting storage (cluster $(cat "$RUN/kafka-cluster-id"))"
    java "${java_opts[@]}" -cp "$KAFKA_LIBS/*" kafka.tools.StorageTool format --standalone --ignore-formatted \
        -t "$(cat "$RUN/kafka-cluster-id")" -c "$RUN/kafka-server.properties" > "$logs/format.log" 2>&1 \
        || { cat "$logs/format.log" >&2; die "kafka storage format failed"; }
  fi
  say "kafka: starting on $LOCAL_KAFKA (heap $KAFKA_HEAP, logs $logs)"
  setsid nohup java "${java_opts[@]}" -cp "$KAFKA_LIBS/*" kafka.Kafka "$RUN/kafka-server.properties" \
      > "$logs/stdout.log" 2>&1 < /dev/null &
  echo $! > "$pidf"
}

start_ferretdb() {
  local pidf="$RUN/ferretdb.pid" logs="$RUN/log/ferretdb"
  if pid_alive "$pidf"; then say "ferretdb: already running (pid $(cat "$pidf"))"; return; fi
  if port_open $MONGO_PORT; then
    die "port $MONGO_PORT is taken by a process this script did not start; stop it, or point MONGODB_URI at it"
  fi
  [[ -x "$FERRET_BIN" ]] || die "ferretdb binary missing: run 'make setup' first"
  mkdir -p "$RUN/ferretdb-data" "$logs"
  say "ferretdb: starting on $LOCAL_MONGO (data $RUN/ferretdb-data)"
  # ATTUNE_FERRETDB_FLAGS: extra flags, e.g. "-pprof 127.0.0.1:6060" to profile the store
  # shellcheck disable=SC2086
  setsid nohup "$FERRET_BIN" --listen "127.0.0.1:$MONGO_PORT" --data "$RUN/ferretdb-data" ${ATTUNE_FERRETDB_FLAGS:-} \
      > "$logs/stdout.log" 2>&1 < /dev/null &
  echo $! > "$pidf"
}

wait_ready() {
  # Readiness is a real protocol answer (Kafka metadata, MongoDB ping), polled; never a fixed sleep.
  local args=()
  kafka_is_local && args+=(--kafka "$LOCAL_KAFKA")
  mongo_is_local && args+=(--mongo "$LOCAL_MONGO")
  [[ ${#args[@]} -eq 0 ]] && return
  if ! "$ROOT/.venv/bin/python" "$ROOT/deploy/wait_ready.py" "${args[@]}" --timeout "${ATTUNE_READY_TIMEOUT:-90}"; then
    for f in "$RUN/log/kafka/stdout.log" "$RUN/log/ferretdb/stdout.log"; do
      [[ -f "$f" ]] && { echo "--- last lines of $f" >&2; tail -n 20 "$f" >&2; }
    done
    die "infrastructure did not become ready"
  fi
}

stop_one() {
  local name=$1 pidf="$RUN/$1.pid"
  if ! pid_alive "$pidf"; then rm -f "$pidf"; say "$name: not running"; return; fi
  local pid; pid=$(cat "$pidf")
  say "$name: stopping (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  if kill -0 "$pid" 2>/dev/null; then say "$name: did not stop in 30 s, killing"; kill -KILL "$pid" 2>/dev/null || true; fi
  rm -f "$pidf"
}

cmd=${1:-}
case "$cmd" in
  setup) setup_kafka; setup_ferretdb ;;
  up)
    mkdir -p "$RUN"
    if kafka_is_local; then setup_kafka; start_kafka; else say "kafka: using $KAFKA_BOOTSTRAP_SERVERS (nothing started)"; fi
    if mongo_is_local; then setup_ferretdb; start_ferretdb; else say "mongodb: using the configured MONGODB_URI (nothing started)"; fi
    wait_ready
    "$ROOT/.venv/bin/python" -m attune_shared.kafka_admin ensure-topics
    ;;
  down)
    kafka_is_local && stop_one kafka
    mongo_is_local && stop_one ferretdb
    true ;;
  start)
    # One local component only (the fault-injection tests restart the broker or the store alone).
    case "${2:-}" in
      kafka) start_kafka; "$ROOT/.venv/bin/python" "$ROOT/deploy/wait_ready.py" --kafka "$LOCAL_KAFKA" --timeout "${ATTUNE_READY_TIMEOUT:-90}" ;;
      ferretdb) start_ferretdb; "$ROOT/.venv/bin/python" "$ROOT/deploy/wait_ready.py" --mongo "$LOCAL_MONGO" --timeout "${ATTUNE_READY_TIMEOUT:-90}" ;;
      *) echo "usage: $0 start kafka|ferretdb" >&2; exit 2 ;;
    esac ;;
  stop)
    case "${2:-}" in
      kafka|ferretdb) stop_one "$2" ;;
      *) echo "usage: $0 stop kafka|ferretdb" >&2; exit 2 ;;
    esac ;;
  status)
    for n in kafka ferretdb; do
      if pid_alive "$RUN/$n.pid"; then say "$n: running (pid $(cat "$RUN/$n.pid"))"; else say "$n: stopped"; fi
    done ;;
  reset) "$0" down; rm -rf "$RUN"; say "local data removed ($RUN)" ;;
  *) echo "usage: $0 setup|up|down|status|reset|start kafka|ferretdb|stop kafka|ferretdb" >&2; exit 2 ;;
esac
