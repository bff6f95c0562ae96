#!/usr/bin/env bash
# Local infrastructure without Docker: Apache Kafka (KRaft, combined broker+controller, run on the
# JDK from jars resolved off Maven Central) and FerretDB (MongoDB wire protocol, built with Go from
# the module proxy), plus the SMTP sink that writes every received mail under var/mail/.
# Everything lives under var/ (git-ignored). Processes are started once and reused.
#
# FerretDB's backend: BILLING_FERRETDB_BACKEND=postgresql (default: a PostgreSQL 15 cluster under
# var/postgres on BILLING_POSTGRES_PORT, default 15432, started with Debian's server binaries from
# BILLING_POSTGRES_BIN, default /usr/lib/postgresql/15/bin, installed with apt-get when missing and
# we are root; run as the `postgres` account when this script runs as root; every index FerretDB
# creates gets a GIN twin, runtime/src/billing_runtime/postgres_gin_twins.sql) or sqlite (files
# under var/ferretdb). docs/operations.md "The database backend" says why PostgreSQL. FerretDB runs
# with Go's soft memory limit BILLING_FERRETDB_MEMORY_LIMIT (GOMEMLIMIT; default 384MiB); the
# broker with the JVM options BILLING_KAFKA_JVM_OPTS (default -Xms64m -Xmx320m -XX:+UseSerialGC:
# with a 1 GiB G1 heap the broker reached 756 MB of RSS in the 1,000,000-line pipeline benchmark,
# over the 500 MB a process may take; G1's own tables alone took ~50 MB more at 320 MB of heap).
#
#   scripts/infra.sh build   fetch/build what is missing (idempotent; build-ferretdb: only FerretDB)
#   scripts/infra.sh up      build, then start whatever is not running; wait until each answers
#   scripts/infra.sh down    stop what runs
#   scripts/infra.sh status  print what runs, one line each
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
VAR="$ROOT/var"
# where the processes keep their data, logs and pid files (builds stay under var/): a second,
# private stack (bench/chaos.py) sets its own with its own ports
STATE=${BILLING_INFRA_STATE:-$VAR}
KAFKA_PORT=${BILLING_KAFKA_PORT:-19092}
KAFKA_CONTROLLER_PORT=${BILLING_KAFKA_CONTROLLER_PORT:-19093}
MONGO_PORT=${BILLING_MONGO_PORT:-27117}
SMTP_PORT=${BILLING_SMTP_PORT:-2525}
BACKEND=${BILLING_FERRETDB_BACKEND:-postgresql}
KAFKA_JVM_OPTS=${BILLING_KAFKA_JVM_OPTS:--Xms64m -Xmx320m -XX:+UseSerialGC}
PG_PORT=${BILLING_POSTGRES_PORT:-15432}
PG_BIN=${BILLING_POSTGRES_BIN:-/usr/lib/postgresql/15/bin}
PG_DIR="$STATE/postgres"
KAFKA_VERSION=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$ROOT/infra/kafka/pom.xml")
FERRETDB_VERSION=$(sed -n 's:^require github.com/FerretDB/FerretDB \(v[0-9.]*\).*:\1:p' "$ROOT/infra/ferretdb/go.mod")

mkdir -p "$STATE/run" "$STATE/log" "$STATE/mail"

die() { echo "infra: $*" >&2; exit 1; }

case "$BACKEND" in
  sqlite | postgresql) ;;
  *) die "BILLING_FERRETDB_BACKEND must be sqlite or postgresql, not '$BACKEND'" ;;
esac

need_java() {
  command -v java >/dev/null 2>&1 || die "no Java found: install a JDK 17 or newer (Debian: apt-get install openjdk-17-jdk-headless)"
  local major
  major=$(java -XshowSettings:properties -version 2>&1 | sed -n 's/ *java.specification.version = //p')
  [ "${major%%.*}" -ge 17 ] 2>/dev/null || die "Kafka $KAFKA_VERSION needs Java 17 or newer, found $major: install openjdk-17-jdk-headless"
  command -v mvn >/dev/null 2>&1 || die "no Maven found: install Maven 3 (Debian: apt-get install maven) to fetch the Kafka jars"
}
need_go() {
  command -v go >/dev/null 2>&1 || die "no Go toolchain found: install Go 1.22 or newer (Debian: apt-get install golang) to build FerretDB"
}

build_kafka() {
  if [ -f "$VAR/kafka/libs/kafka_2.13-$KAFKA_VERSION.jar" ]; then return; fi
  need_java
  echo "infra: fetching Apache Kafka $KAFKA_VERSION jars from Maven Central (once)..."
  rm -rf "$VAR/kafka/libs"
  mvn -q -B -f "$ROOT/infra/kafka/pom.xml" -Dmaven.repo.local="$VAR/m2" \
    dependency:copy-dependencies -DoutputDirectory="$VAR/kafka/libs" -DincludeScope=runtime \
    || die "could not fetch the Kafka jars with Maven (see the output above)"
}

ferretdb_build_id() { # the FerretDB version and our launcher's source: a change to either rebuilds
  echo "$FERRETDB_VERSION $(cat "$ROOT/infra/ferretdb/main.go" "$ROOT/infra/ferretdb/go.mod" | sha256sum | cut -c1-16)"
}

build_ferretdb() {
  if [ -x "$VAR/bin/ferretdb" ] && [ -f "$VAR/bin/ferretdb.version" ] \
     && [ "$(cat "$VAR/bin/ferretdb.version")" = "$(ferretdb_build_id)" ]; then return; fi
  need_go
  echo "infra: building FerretDB $FERRETDB_VERSION with Go (once, about two minutes)..."
  (cd "$ROOT/infra/ferretdb" && GOPATH="$VAR/go" GOMODCACHE="$VAR/go/mod" GOTOOLCHAIN=local \
     go build -o "$VAR/bin/ferretdb" .) \
    || die "could not build FerretDB with Go (see the output above)"
  ferretdb_build_id > "$VAR/bin/ferretdb.version"
}

running() { # name
  local pidfile="$STATE/run/$1.pid"
  [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() { # name port seconds
  local i
  for ((i = 0; i < $3 * 10; i++)); do
    port_open "$2" && return 0
    running "$1" || die "$1 exited during start-up; its log: $STATE/log/$1.log"
    sleep 0.1
  done
  die "$1 did not listen on 127.0.0.1:$2 within $3 s; its log: $STATE/log/$1.log"
}

start_kafka() {
  running kafka && return
  port_open "$KAFKA_PORT" && die "port $KAFKA_PORT is taken by another process (set BILLING_KAFKA_PORT)"
  local cfg="$STATE/kafka/server.properties" data="$STATE/kafka/data"
  mkdir -p "$data"
  cat > "$cfg" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$data
num.partitions=4
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
group.initial.rebalance.delay.ms=0
log.retention.hours=168
PROPS
  cat > "$STATE/kafka/log4j2.properties" <<PROPS
rootLogger.level=WARN
rootLogger.appenderRef.stdout.ref=STDOUT
appender.stdout.type=Console
appender.stdout.name=STDOUT
appender.stdout.layout.type=PatternLayout
appender.stdout.layout.pattern=[%d] %p %m (%c)%n
logger.kafka.name=kafka
logger.kafka.level=WARN
logger.server.name=org.apache.kafka.server
logger.server.level=INFO
PROPS
  local cp="$VAR/kafka/libs/*"
  if [ ! -f "$data/meta.properties" ]; then
    java -cp "$cp" -Dlog4j2.configurationFile="$STATE/kafka/log4j2.properties" kafka.tools.StorageTool \
      format --standalone --cluster-id="$(python3 -c 'import base64,uuid;print(base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("="))')" \
      -c "$cfg" > "$STATE/log/kafka-format.log" 2>&1 || die "formatting KRaft storage failed: $STATE/log/kafka-format.log"
  fi
  nohup java $KAFKA_JVM_OPTS -cp "$cp" -Dlog4j2.configurationFile="$STATE/kafka/log4j2.properties" \
    kafka.Kafka "$cfg" > "$STATE/log/kafka.log" 2>&1 &
  echo $! > "$STATE/run/kafka.pid"
  wait_port kafka "$KAFKA_PORT" 90
}

pg_installed() { [ -x "$PG_BIN/initdb" ] && [ -x "$PG_BIN/pg_ctl" ] && [ -x "$PG_BIN/psql" ]; }

need_postgres() {
  pg_installed && return
  # Debian's server, installed when missing and we may (root, apt-get, the default location)
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
     && [ "$PG_BIN" = /usr/lib/postgresql/15/bin ]; then
    echo "infra: installing PostgreSQL 15 with apt-get (once)..."
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql-15 > "$STATE/log/postgres-install.log" 2>&1 \
      || { apt-get update -q > /dev/null 2>&1 \
           && DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql-15 > "$STATE/log/postgres-install.log" 2>&1; } \
      || die "apt-get install postgresql-15 failed: $STATE/log/postgres-install.log"
    pg_installed && return
  fi
  die "FerretDB's $BACKEND backend needs the PostgreSQL 15 server, not found in $PG_BIN: install it (Debian: apt-get install postgresql-15; as root, this script does), set BILLING_POSTGRES_BIN to its bin/ folder, or use BILLING_FERRETDB_BACKEND=sqlite"
}

as_pg() { # command...: PostgreSQL refuses to run as root; use the `postgres` account then
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || die "running as root, PostgreSQL needs a non-root account: create the 'postgres' user (Debian's postgresql package does)"
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

pg_pid() { head -n1 "$PG_DIR/data/postmaster.pid" 2>/dev/null; }

start_postgres() {
  need_postgres
  if [ -f "$PG_DIR/data/postmaster.pid" ] && kill -0 "$(pg_pid)" 2>/dev/null; then
    pg_pid > "$STATE/run/postgres.pid"; install_gin_twins; return
  fi
  port_open "$PG_PORT" && die "port $PG_PORT is taken by another process (set BILLING_POSTGRES_PORT)"
  mkdir -p "$PG_DIR/socket"
  [ "$(id -u)" = 0 ] && chown postgres: "$PG_DIR" "$PG_DIR/socket"
  if [ ! -f "$PG_DIR/data/PG_VERSION" ]; then
    echo "infra: creating the PostgreSQL cluster under $PG_DIR/data (once)..."
    as_pg "$PG_BIN/initdb" -D "$PG_DIR/data" -U ferretdb --auth=trust -E UTF8 --locale=C.UTF-8 \
      > "$STATE/log/postgres-initdb.log" 2>&1 || die "initdb failed: $STATE/log/postgres-initdb.log"
  fi
  as_pg "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/postgres.log" -w -t 60 start \
    -o "-p $PG_PORT -c listen_addresses=127.0.0.1 -k $PG_DIR/socket" > /dev/null \
    || die "PostgreSQL did not start; its log: $PG_DIR/postgres.log"
  pg_pid > "$STATE/run/postgres.pid"
  as_pg "$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U ferretdb -d postgres -tAc \
    "SELECT 1 FROM pg_database WHERE datname = 'ferretdb'" | grep -q 1 \
    || as_pg "$PG_BIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U ferretdb ferretdb \
    || die "could not create the database 'ferretdb'"
  install_gin_twins
}

install_gin_twins() { # every index FerretDB creates gets a GIN twin PostgreSQL can read (idempotent)
  as_pg "$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U ferretdb -d ferretdb -v ON_ERROR_STOP=1 -q \
    --single-transaction -f - < "$ROOT/runtime/src/billing_runtime/postgres_gin_twins.sql" \
    > "$STATE/log/postgres-gin-twins.log" 2>&1 \
    || die "could not install the GIN twins' event trigger: $STATE/log/postgres-gin-twins.log"
}

stop_postgres() {
  [ -f "$PG_DIR/data/postmaster.pid" ] && kill -0 "$(pg_pid)" 2>/dev/null \
    && as_pg "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m fast -w stop > /dev/null \
    && echo "infra: stopped postgres"
  rm -f "$STATE/run/postgres.pid"
}

start_ferretdb() {
  if running ferretdb; then
    local was
    was=$(cat "$STATE/run/ferretdb.backend" 2>/dev/null || echo sqlite)
    # a running FerretDB is reused whatever its backend, unless another one is asked for
    [ "$was" = "$BACKEND" ] || [ -z "${BILLING_FERRETDB_BACKEND:-}" ] \
      || die "FerretDB already runs on the $was backend, not $BACKEND: 'make down' first to switch"
    BACKEND=$was
    return
  fi
  port_open "$MONGO_PORT" && die "port $MONGO_PORT is taken by another process (set BILLING_MONGO_PORT)"
  local backend_args
  if [ "$BACKEND" = postgresql ]; then
    start_postgres
    backend_args=(--handler=postgresql --postgresql-url="postgres://ferretdb@127.0.0.1:$PG_PORT/ferretdb")
  else
    mkdir -p "$STATE/ferretdb"
    backend_args=(--handler=sqlite --sqlite-url="file:$STATE/ferretdb/?_pragma=synchronous(normal)")
  fi
  # Go's soft memory limit: the collector works harder near it instead of letting the heap
  # double (FerretDB reached 507 MB in the 1,000,000-line pipeline benchmark without it)
  GOMEMLIMIT="${BILLING_FERRETDB_MEMORY_LIMIT:-384MiB}" nohup "$VAR/bin/ferretdb" "${backend_args[@]}" \
    --listen-addr="127.0.0.1:$MONGO_PORT" --log-level=warn > "$STATE/log/ferretdb.log" 2>&1 &
  echo $! > "$STATE/run/ferretdb.pid"
  echo "$BACKEND" > "$STATE/run/ferretdb.backend"
  wait_port ferretdb "$MONGO_PORT" 30
}

start_smtp() {
  running smtp-sink && return
  port_open "$SMTP_PORT" && die "port $SMTP_PORT is taken by another process (set BILLING_SMTP_PORT)"
  [ -x "$ROOT/.venv/bin/python" ] || die "the Python environment is missing: run 'make install' first"
  nohup "$ROOT/.venv/bin/python" -m billing_devtools.mail_sink --host 127.0.0.1 --port "$SMTP_PORT" \
    --directory "$STATE/mail" > "$STATE/log/smtp-sink.log" 2>&1 &
  echo $! > "$STATE/run/smtp-sink.pid"
  wait_port smtp-sink "$SMTP_PORT" 30
}

stop() { # name
  local pidfile="$STATE/run/$1.pid" pid i
  [ -f "$pidfile" ] || return 0
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid"
    for ((i = 0; i < 300; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
    echo "infra: stopped $1"
  fi
  rm -f "$pidfile"
}

status() {
  local n
  for n in kafka ferretdb smtp-sink; do
    if running "$n"; then echo "$n: running (pid $(cat "$STATE/run/$n.pid"))"; else echo "$n: stopped"; fi
  done
  if running ferretdb; then
    echo "ferretdb backend: $(cat "$STATE/run/ferretdb.backend" 2>/dev/null || echo sqlite)"
  fi
  if [ -f "$PG_DIR/data/postmaster.pid" ] && kill -0 "$(pg_pid)" 2>/dev/null; then
    echo "postgres: running (pid $(pg_pid), 127.0.0.1:$PG_PORT, data $PG_DIR/data)"
  elif [ "$BACKEND" = postgresql ] || [ -d "$PG_DIR/data" ]; then
    echo "postgres: stopped"
  fi
  echo "KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:$KAFKA_PORT"
  echo "MONGODB_URL=mongodb://127.0.0.1:$MONGO_PORT/"
  echo "SMTP=127.0.0.1:$SMTP_PORT (mail written to $STATE/mail)"
}

case "${1:-}" in
  build) build_kafka; build_ferretdb ;;
  build-ferretdb) build_ferretdb ;;
  up)
    build_kafka; build_ferretdb
    start_kafka; start_ferretdb; start_smtp
    echo "infra: Kafka $KAFKA_VERSION on 127.0.0.1:$KAFKA_PORT, FerretDB $FERRETDB_VERSION ($BACKEND) on 127.0.0.1:$MONGO_PORT, SMTP sink on 127.0.0.1:$SMTP_PORT"
    ;;
  down) stop smtp-sink; stop ferretdb; rm -f "$STATE/run/ferretdb.backend"; stop_postgres; stop kafka ;;
  status) status ;;
  *) echo "usage: $0 build|build-ferretdb|up|down|status" >&2; exit 2 ;;
esac
