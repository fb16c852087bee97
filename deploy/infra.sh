#!/usr/bin/env bash
# Local infrastructure for Attune: a real Apache Kafka broker (KRaft, from Maven Central jars) and
# FerretDB (a MongoDB-compatible server, embedded in deploy/ferretdb) on a PostgreSQL 15 cluster of
# the project's own (Debian's package, data under var/).
#
#   deploy/infra.sh setup    fetch the Kafka jars and build FerretDB once (cached in .cache/), install
#                            Debian's PostgreSQL 15 when it is missing
#   deploy/infra.sh up       start them (idempotent), wait until they answer
#   deploy/infra.sh down     stop them all, leave no process behind
#   deploy/infra.sh status   say what runs
#   deploy/infra.sh reset    down, then delete the local data (var/)
#   deploy/infra.sh stop|start|kill kafka|ferretdb|postgres   one component (fault injection); `kill`
#                            ends it with no clean shutdown (SIGKILL; PostgreSQL's immediate stop)
#   deploy/infra.sh psql [ARGS]   psql on the local cluster's `ferretdb` database (over its socket)
#
# The store is PostgreSQL: event triggers (deploy/postgres/gin-indexes.sql) add the GIN indexes
# FerretDB's filter pushdown can use. (FerretDB's SQLite store was selectable with
# ATTUNE_LOCAL_STORE=sqlite until its figures were in: it did not drain the 50,000-record bench in 13
# minutes, docs/performance.md, so it was removed.)
# The cluster: ATTUNE_PG_PORT (default 55432, on 127.0.0.1), ATTUNE_PG_SYNC=on for
# synchronous_commit (off by default: MongoDB's default write concern does not wait for the journal
# either), ATTUNE_PG_BIN (default Debian's /usr/lib/postgresql/15/bin).
#
# When KAFKA_BOOTSTRAP_SERVERS or MONGODB_URI point anywhere but the local defaults, the matching
# local server is neither started nor stopped: that is how Attune runs against production clusters.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE="$ROOT/.cache"
RUN="${ATTUNE_RUN_DIR:-$ROOT/var}"
KAFKA_LIBS="$CACHE/kafka/libs"
FERRET_BIN="$CACHE/bin/attune-ferretdb"
# Other ports (ATTUNE_KAFKA_PORT, ATTUNE_CONTROLLER_PORT, ATTUNE_MONGO_PORT, with ATTUNE_RUN_DIR and
# KAFKA_BOOTSTRAP_SERVERS / MONGODB_URI to match) run a second local stack beside the default one.
KAFKA_PORT="${ATTUNE_KAFKA_PORT:-9092}"
CONTROLLER_PORT="${ATTUNE_CONTROLLER_PORT:-9093}"
MONGO_PORT="${ATTUNE_MONGO_PORT:-27017}"
KAFKA_HEAP="${ATTUNE_KAFKA_HEAP:-768m}"
LOCAL_KAFKA="127.0.0.1:$KAFKA_PORT"
LOCAL_MONGO="mongodb://127.0.0.1:$MONGO_PORT"
PG_BIN="${ATTUNE_PG_BIN:-/usr/lib/postgresql/15/bin}"
PG_PORT="${ATTUNE_PG_PORT:-55432}"
PG_DATA="$RUN/pg-data"   # also the folder of its Unix socket, which only its owner (and root) may use
# Run as root from a checkout the postgres user cannot reach (under /root, say), the cluster lives in
# a folder of its own under /var/tmp instead, named after the run folder so two checkouts never share
# it; `reset` deletes it with the rest.
if [[ $(id -u) -eq 0 ]] && id postgres >/dev/null 2>&1 \
   && ! (mkdir -p "$RUN" && cd / && runuser -u postgres -- test -x "$RUN") 2>/dev/null; then
  PG_DATA="/var/tmp/attune-pg-$(printf '%s' "$RUN" | md5sum | cut -c1-12)"
  PG_LOGS="$PG_DATA.log"
fi
PG_LOGS="${PG_LOGS:-$RUN/log/postgres}"
PG_DB=ferretdb           # the PostgreSQL database FerretDB keeps its schemas (MongoDB databases) in
# FerretDB's pool of PostgreSQL connections (its default is 50): each matching statement of a bulk
# command holds one until the command ends, so this bounds the statements in flight across every
# service and instance (bulks are sent 25 at a time: attune_shared.standin)
FERRET_PG_POOL="${ATTUNE_FERRETDB_PG_POOL:-400}"

say() { printf '[infra] %s\n' "$*"; }
die() { printf '[infra] error: %s\n' "$*" >&2; exit 1; }

kafka_is_local() { [[ "${KAFKA_BOOTSTRAP_SERVERS:-$LOCAL_KAFKA}" =~ ^(127\.0\.0\.1|localhost):$KAFKA_PORT$ ]]; }
mongo_is_local() { [[ "${MONGODB_URI:-$LOCAL_MONGO}" =~ ^mongodb://(127\.0\.0\.1|localhost):$MONGO_PORT/?$ ]]; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
pid_alive() { [[ -f "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

need() { command -v "$1" >/dev/null 2>&1 || die "$1 is not installed: $2"; }

# ATTUNE_LOCAL_STORE named the store once (sqlite or postgresql); only postgresql is left. Checked
# where a store is started (`up`, `start ferretdb`), so that `down` and `status` still work.
check_store() {
  [[ "${ATTUNE_LOCAL_STORE:-postgresql}" == postgresql ]] \
    || die "ATTUNE_LOCAL_STORE=${ATTUNE_LOCAL_STORE}: the SQLite store was removed (docs/performance.md); unset it, the store is PostgreSQL"
  # A FerretDB started by an earlier release on its SQLite store says so in this file.
  if [[ "$(cat "$RUN/ferretdb.store" 2>/dev/null || true)" == sqlite ]] && running_pid ferretdb >/dev/null; then
    die "ferretdb runs on the SQLite store of an earlier release: run 'deploy/infra.sh down' first"
  fi
}

# PostgreSQL's programs refuse to run as root: as root they run as the `postgres` user (from /, a
# folder it may enter), otherwise as the current user, who then owns the cluster.
as_pg() {
  if [[ $(id -u) -eq 0 ]]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi
}

# The pid of the cluster's postmaster while it runs (PostgreSQL's own postmaster.pid says which).
pg_pid() {
  local pid
  pid=$(head -n 1 "$PG_DATA/postmaster.pid" 2>/dev/null) || return 1
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null && printf '%s' "$pid"
}

# The pid of a running component (nothing, and false, when it is not running).
running_pid() {
  case $1 in
    postgres) pg_pid ;;
    *) pid_alive "$RUN/$1.pid" && cat "$RUN/$1.pid" ;;
  esac
}

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

# Whether the built binary is newer than every source file of deploy/ferretdb.
ferret_current() {
  local src="$ROOT/deploy/ferretdb"
  local newest; newest=$(ls -t "$src"/*.go "$src"/go.mod "$src"/go.sum | head -1)
  [[ -x "$FERRET_BIN" && "$FERRET_BIN" -nt "$newest" ]]
}

setup_ferretdb() {
  local src="$ROOT/deploy/ferretdb"
  if ferret_current; then
    say "ferretdb: cached ($FERRET_BIN)"; return
  fi
  need go "install Go 1.22 or newer"
  say "ferretdb: building the embedded FerretDB v1.24 server (first time takes a minute) ..."
  mkdir -p "$CACHE/bin"
  (cd "$src" && go build -trimpath -o "$FERRET_BIN.tmp" . && mv "$FERRET_BIN.tmp" "$FERRET_BIN")
  say "ferretdb: built $FERRET_BIN"
}

setup_postgres() {
  if [[ -x "$PG_BIN/initdb" && -x "$PG_BIN/pg_ctl" && -x "$PG_BIN/psql" ]]; then
    say "postgres: installed ($PG_BIN)"; return
  fi
  [[ -z "${ATTUNE_PG_BIN:-}" ]] || die "no initdb, pg_ctl and psql in ATTUNE_PG_BIN=$PG_BIN"
  command -v apt-get >/dev/null 2>&1 || die "PostgreSQL 15 is not installed ($PG_BIN): install it, or set ATTUNE_PG_BIN"
  local sudo=""
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null 2>&1 || die "PostgreSQL 15 is not installed: run as root (or install sudo) so apt-get can install it"
    sudo="sudo"
  fi
  # The package creates a cluster of its own (/var/lib/postgresql/15/main) and would start it on
  # 5432; Attune does not use it, so policy-rc.d keeps it from starting during the install.
  local policy=/usr/sbin/policy-rc.d made_policy=0
  if [[ ! -e "$policy" ]]; then
    printf '#!/bin/sh\n# temporary: deploy/infra.sh setup\nexit 101\n' | $sudo tee "$policy" >/dev/null
    $sudo chmod 0755 "$policy"; made_policy=1
  fi
  say "postgres: apt-get install postgresql (Debian's PostgreSQL 15) ..."
  local ok=0
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null 2>&1 \
    || { $sudo apt-get update -qq && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; } \
    || ok=$?
  if [[ $made_policy -eq 1 ]]; then $sudo rm -f "$policy"; fi
  [[ $ok -eq 0 ]] || die "apt-get install postgresql failed"
  [[ -x "$PG_BIN/initdb" ]] || die "PostgreSQL installed, but not version 15 in $PG_BIN: set ATTUNE_PG_BIN to its bin folder"
  say "postgres: installed ($("$PG_BIN/postgres" --version))"
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

# The cluster's settings, written at every start (so the environment decides them each time) into
# attune.conf, which the cluster's postgresql.conf includes.
pg_settings() {
  cat <<EOF
# Written by deploy/infra.sh at every start: edits here are lost.
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$PG_DATA'
unix_socket_permissions = 0700
# off: a commit returns before its WAL is flushed, so a crash of PostgreSQL or of the machine can
# lose the last few hundred milliseconds of commits (never tear one, never corrupt), as MongoDB's
# default write concern (journal flushed every 100 ms) can
synchronous_commit = $1
# FerretDB sends the field of each pushed-down equality as a parameter (_jsonb -> \$1 @> \$2) of a
# cached prepared statement; only a custom plan sees 'field' and can use the GIN index on
# (_jsonb -> 'field'), a generic plan would read the whole table
plan_cache_mode = force_custom_plan
# JIT compilation costs more than it saves on the short queries of a local store
jit = off
# FerretDB holds one connection per matching statement of a bulk command until the command ends,
# from one pool for every database (FERRET_PG_POOL); with its default of 50, two services sending a
# 25-statement bulk at once took every connection and waited for more for ever, wedging the store
max_connections = $((FERRET_PG_POOL + 20))
EOF
  # Per-statement counts and times, for measuring the store (`deploy/infra.sh psql`, then
  # CREATE EXTENSION IF NOT EXISTS pg_stat_statements; SELECT ... FROM pg_stat_statements)
  if [[ -f "$PG_BIN/../lib/pg_stat_statements.so" ]]; then
    echo "shared_preload_libraries = 'pg_stat_statements'"
    echo "pg_stat_statements.max = 10000"
  fi
}

init_postgres() {
  local logs=$1
  say "postgres: creating the cluster in $PG_DATA"
  mkdir -p "$PG_DATA"
  if [[ $(id -u) -eq 0 ]]; then chown postgres:postgres "$PG_DATA"; fi
  chmod 0700 "$PG_DATA"
  as_pg test -w "$PG_DATA" \
    || die "the postgres user cannot write $PG_DATA (is a parent folder closed to it?); set ATTUNE_RUN_DIR to a folder it can reach"
  # superuser `postgres` (FerretDB's user; event triggers need a superuser), trusted on the socket
  # only: TCP logins need a password, and none is set
  as_pg "$PG_BIN/initdb" -D "$PG_DATA" -U postgres --encoding=UTF8 --locale=C \
      --auth-local=trust --auth-host=scram-sha-256 > "$logs/initdb.log" 2>&1 \
    || { cat "$logs/initdb.log" >&2; rm -rf "$PG_DATA"; die "initdb failed"; }
  echo "include 'attune.conf'" | as_pg tee -a "$PG_DATA/postgresql.conf" >/dev/null
}

# psql on the local cluster, over its socket, as its superuser; stops at the first error.
pg_psql() { "$PG_BIN/psql" -X -v ON_ERROR_STOP=1 -h "$PG_DATA" -p "$PG_PORT" -U postgres "$@"; }

start_postgres() {
  local logs="$PG_LOGS" sync=${ATTUNE_PG_SYNC:-off} pid
  if pid=$(pg_pid); then say "postgres: already running (pid $pid)"; echo "$pid" > "$RUN/postgres.pid"; return; fi
  [[ "$sync" == on || "$sync" == off ]] || die "ATTUNE_PG_SYNC must be on or off, not '$sync'"
  if port_open "$PG_PORT"; then
    die "port $PG_PORT is taken by a process this script did not start; stop it, or set ATTUNE_PG_PORT to a free port"
  fi
  [[ -x "$PG_BIN/pg_ctl" ]] || die "PostgreSQL 15 missing ($PG_BIN): run 'make setup' first"
  if [[ "$PG_DATA" != "$RUN"/* ]]; then
    # /var/tmp is shared: a folder someone else made there first (or a symlink) is never used as root
    local d
    for d in "$PG_DATA" "$PG_LOGS"; do
      if [[ -L "$d" ]] || { [[ -e "$d" ]] && [[ $(stat -c %U "$d") != postgres ]]; }; then
        die "$d exists and is not the postgres user's own folder: remove it, or set ATTUNE_RUN_DIR to a folder the postgres user can reach"
      fi
    done
  fi
  local sock="$PG_DATA/.s.PGSQL.$PG_PORT"
  (( ${#sock} < 108 )) || die "the socket path $sock is too long for a Unix socket: set ATTUNE_RUN_DIR to a shorter folder"
  mkdir -p "$logs"
  if [[ $(id -u) -eq 0 ]]; then chown postgres:postgres "$logs"; fi
  [[ -f "$PG_DATA/PG_VERSION" ]] || init_postgres "$logs"
  pg_settings "$sync" | as_pg tee "$PG_DATA/attune.conf" >/dev/null
  say "postgres: starting on 127.0.0.1:$PG_PORT (synchronous_commit $sync, data $PG_DATA)"
  as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$logs/postgres.log" -w -t 60 start > /dev/null \
    || { tail -n 20 "$logs/postgres.log" >&2; die "postgres did not start"; }
  pg_pid > "$RUN/postgres.pid"
  # FerretDB's database, and the event triggers that keep its GIN indexes (loaded at every start:
  # the file is idempotent, and catches up on tables made before it)
  if [[ -z $(pg_psql -d postgres -Atc "SELECT 1 FROM pg_database WHERE datname = '$PG_DB'") ]]; then
    pg_psql -d postgres -qc "CREATE DATABASE $PG_DB"
  fi
  local added
  added=$(pg_psql -d "$PG_DB" -1 -qAt -f "$ROOT/deploy/postgres/gin-indexes.sql") \
    || die "loading deploy/postgres/gin-indexes.sql failed"
  [[ "$added" == 0 ]] || say "postgres: added $added missing GIN indexes"
}

# mode: fast (clean: ends the sessions, checkpoints) or immediate (a crash: no checkpoint, every
# process exits at once, the next start recovers from the WAL)
stop_postgres() {
  local mode=${1:-fast} pid
  if ! pid=$(pg_pid); then rm -f "$RUN/postgres.pid"; say "postgres: not running"; return; fi
  say "postgres: stopping (pid $pid, $mode shutdown)"
  if ! as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m "$mode" -w -t 60 stop > /dev/null; then
    say "postgres: did not stop in 60 s, immediate shutdown"
    as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m immediate -w -t 30 stop > /dev/null || true
  fi
  # pg_ctl returns when the postmaster has exited; wait until it is reaped too (a few seconds at most)
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  rm -f "$RUN/postgres.pid"
}

start_ferretdb() {
  local pidf="$RUN/ferretdb.pid" logs="$RUN/log/ferretdb" pid
  check_store
  if pid=$(running_pid ferretdb); then
    say "ferretdb: already running (pid $pid)"; return
  fi
  if port_open $MONGO_PORT; then
    die "port $MONGO_PORT is taken by a process this script did not start; stop it, or point MONGODB_URI at it"
  fi
  [[ -x "$FERRET_BIN" ]] || die "ferretdb binary missing: run 'make setup' first"
  ferret_current || die "the ferretdb binary is older than deploy/ferretdb: run 'make setup' (or 'deploy/infra.sh up')"
  start_postgres
  local store_flags=(--postgresql-url "postgres://postgres@/$PG_DB?host=${PG_DATA// /%20}&port=$PG_PORT&pool_max_conns=$FERRET_PG_POOL")
  mkdir -p "$logs"
  say "ferretdb: starting on $LOCAL_MONGO (PostgreSQL store)"
  # ATTUNE_FERRETDB_FLAGS: extra flags, e.g. "-pprof 127.0.0.1:6060" to profile the store
  # shellcheck disable=SC2086
  setsid nohup "$FERRET_BIN" --listen "127.0.0.1:$MONGO_PORT" "${store_flags[@]}" ${ATTUNE_FERRETDB_FLAGS:-} \
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
    for f in "$RUN/log/kafka/stdout.log" "$RUN/log/ferretdb/stdout.log" "$PG_LOGS/postgres.log"; do
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

# A crash: SIGKILL, then wait until the process is gone. PostgreSQL: its immediate shutdown (a
# SIGKILL of the postmaster alone would leave its sessions running a while).
kill_one() {
  local name=$1 pidf="$RUN/$1.pid"
  if [[ "$name" == postgres ]]; then stop_postgres immediate; return; fi
  if ! pid_alive "$pidf"; then rm -f "$pidf"; say "$name: not running"; return; fi
  local pid; pid=$(cat "$pidf")
  say "$name: killing (pid $pid)"
  kill -KILL "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  rm -f "$pidf"
}

cmd=${1:-}
case "$cmd" in
  setup) setup_kafka; setup_ferretdb; setup_postgres ;;
  up)
    mkdir -p "$RUN"
    if kafka_is_local; then setup_kafka; start_kafka; else say "kafka: using $KAFKA_BOOTSTRAP_SERVERS (nothing started)"; fi
    if mongo_is_local; then
      setup_ferretdb; setup_postgres
      start_ferretdb
    else
      say "mongodb: using the configured MONGODB_URI (nothing started)"
    fi
    wait_ready
    "$ROOT/.venv/bin/python" -m attune_shared.kafka_admin ensure-topics
    ;;
  down)
    kafka_is_local && stop_one kafka
    if mongo_is_local; then
      stop_one ferretdb     # before its store, so it never sees the store go away
      stop_postgres
      rm -f "$RUN/ferretdb.store"   # left by a release that could run on SQLite
    fi
    true ;;
  start)
    # One local component only (the fault-injection tests restart the broker or the store alone).
    # `start ferretdb` starts the PostgreSQL cluster too when it is stopped.
    case "${2:-}" in
      kafka) start_kafka; "$ROOT/.venv/bin/python" "$ROOT/deploy/wait_ready.py" --kafka "$LOCAL_KAFKA" --timeout "${ATTUNE_READY_TIMEOUT:-90}" ;;
      ferretdb) start_ferretdb; "$ROOT/.venv/bin/python" "$ROOT/deploy/wait_ready.py" --mongo "$LOCAL_MONGO" --timeout "${ATTUNE_READY_TIMEOUT:-90}" ;;
      postgres) mkdir -p "$RUN"; start_postgres ;;   # pg_ctl -w has waited until it accepts connections
      *) echo "usage: $0 start kafka|ferretdb|postgres" >&2; exit 2 ;;
    esac ;;
  stop)
    case "${2:-}" in
      kafka|ferretdb) stop_one "$2" ;;
      postgres) stop_postgres ;;
      *) echo "usage: $0 stop kafka|ferretdb|postgres" >&2; exit 2 ;;
    esac ;;
  kill)
    case "${2:-}" in
      kafka|ferretdb|postgres) kill_one "$2" ;;
      *) echo "usage: $0 kill kafka|ferretdb|postgres" >&2; exit 2 ;;
    esac ;;
  status)
    for n in kafka ferretdb postgres; do
      if pid=$(running_pid $n); then
        detail=""
        [[ $n == ferretdb ]] && detail=", PostgreSQL store"
        [[ $n == postgres ]] && detail=", 127.0.0.1:$PG_PORT"
        say "$n: running (pid $pid$detail)"
      else
        say "$n: stopped"
      fi
    done ;;
  psql) shift; pg_psql -d "$PG_DB" "$@" ;;
  reset) "$0" down; rm -rf "$RUN"; [[ "$PG_DATA" == "$RUN"/* ]] || rm -rf "$PG_DATA" "$PG_LOGS"; say "local data removed ($RUN)" ;;
  *) echo "usage: $0 setup|up|down|status|reset|psql [ARGS]|start|stop|kill kafka|ferretdb|postgres" >&2; exit 2 ;;
esac
