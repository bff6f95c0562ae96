#!/usr/bin/env bash
# Runs the five services and the portal as background processes of the local stack (logs in var/log/,
# pid files in var/run/). Settings come from the environment (BILLING_<SERVICE>_*); the
# defaults point at the local infrastructure of scripts/infra.sh. This is local development:
# unless API tokens are given, ingest takes usage events without a token
# (BILLING_INGEST_ALLOW_ANONYMOUS=true; elsewhere it refuses to start without tokens).
#
#   scripts/services.sh up [NAME...]      start (the ones not running) and wait until healthy
#   scripts/services.sh down [NAME...]    stop gracefully (SIGTERM)
#   scripts/services.sh kill NAME         SIGKILL, as a crash would
#   scripts/services.sh status
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
VAR="$ROOT/var"
PY="$ROOT/.venv/bin/python"
ALL=(ingest rating invoicing notify webhooks portal)
declare -A PORT=([ingest]=8101 [rating]=8102 [invoicing]=8103 [notify]=8104 [webhooks]=8105 [portal]=8106)
mkdir -p "$VAR/run" "$VAR/log"

# The portal signs short-lived API tokens with a key invoicing shares; locally, one key made
# once under var/run (production takes both from a Secret and never generates one).
if [ -z "${BILLING_PORTAL_API_SIGNING_KEY:-}" ]; then
  [ -s "$VAR/run/portal-signing.key" ] || (umask 077; "$PY" -c 'import secrets; print(secrets.token_urlsafe(48))' > "$VAR/run/portal-signing.key")
  BILLING_PORTAL_API_SIGNING_KEY=$(cat "$VAR/run/portal-signing.key")
  export BILLING_PORTAL_API_SIGNING_KEY
fi
export BILLING_INVOICING_PORTAL_TOKEN_KEY="${BILLING_INVOICING_PORTAL_TOKEN_KEY:-$BILLING_PORTAL_API_SIGNING_KEY}"
# Notify reads the PDFs it attaches from invoicing's API with a document-reader token; locally,
# one token made once under var/run, given to both.
if [ -z "${BILLING_NOTIFY_INVOICING_TOKEN:-}" ]; then
  [ -s "$VAR/run/document-reader.token" ] || (umask 077; "$PY" -c 'import secrets; print(secrets.token_urlsafe(32))' > "$VAR/run/document-reader.token")
  BILLING_NOTIFY_INVOICING_TOKEN=$(cat "$VAR/run/document-reader.token")
  export BILLING_NOTIFY_INVOICING_TOKEN
fi
export BILLING_INVOICING_DOCUMENT_READER_TOKENS="${BILLING_INVOICING_DOCUMENT_READER_TOKENS:-$BILLING_NOTIFY_INVOICING_TOKEN}"
export BILLING_INGEST_PORTAL_TOKEN_KEY="${BILLING_INGEST_PORTAL_TOKEN_KEY:-$BILLING_PORTAL_API_SIGNING_KEY}"
export BILLING_PORTAL_LOCAL_DEV="${BILLING_PORTAL_LOCAL_DEV:-true}"

die() { echo "services: $*" >&2; exit 1; }
pidfile() { echo "$VAR/run/svc-$1.pid"; }
running() { [ -f "$(pidfile "$1")" ] && kill -0 "$(cat "$(pidfile "$1")")" 2>/dev/null; }
port_of() {
  local var="BILLING_${1^^}_HTTP_PORT"
  echo "${!var:-${PORT[$1]}}"
}
export BILLING_NOTIFY_INVOICING_URL="${BILLING_NOTIFY_INVOICING_URL:-http://127.0.0.1:$(port_of invoicing)}"

wait_healthy() { # name
  local port i code
  port=$(port_of "$1")
  for ((i = 0; i < 600; i++)); do
    running "$1" || die "$1 exited during start-up; its log: $VAR/log/$1.log"
    code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/health" || true)
    [ "$code" = "200" ] && return 0
    sleep 0.1
  done
  die "$1 did not become healthy on port $port within 60 s; its log: $VAR/log/$1.log"
}

start() { # name
  running "$1" && return 0
  [ -x "$PY" ] || die "the Python environment is missing: run 'make install' first"
  if [ "$1" = ingest ] && [ -z "${BILLING_INGEST_API_TOKENS:-}${BILLING_INGEST_API_TOKENS_FILE:-}" ]; then
    export BILLING_INGEST_ALLOW_ANONYMOUS="${BILLING_INGEST_ALLOW_ANONYMOUS:-true}"
  fi
  if [ "$1" = webhooks ]; then  # local receivers may be plain HTTP on this machine
    export BILLING_WEBHOOKS_ALLOW_HTTP_URLS="${BILLING_WEBHOOKS_ALLOW_HTTP_URLS:-true}"
  fi
  nohup "$PY" -m "billing_$1" >> "$VAR/log/$1.log" 2>&1 &
  echo $! > "$(pidfile "$1")"
}

stop() { # name signal
  local pid i
  [ -f "$(pidfile "$1")" ] || return 0
  pid=$(cat "$(pidfile "$1")")
  if kill -0 "$pid" 2>/dev/null; then
    kill "-$2" "$pid"
    for ((i = 0; i < 400; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
  fi
  rm -f "$(pidfile "$1")"
}

cmd=${1:-}; shift || true
names=("$@"); [ ${#names[@]} -gt 0 ] || names=("${ALL[@]}")
case "$cmd" in
  up)
    for n in "${names[@]}"; do start "$n"; done
    for n in "${names[@]}"; do wait_healthy "$n"; echo "services: $n healthy on :$(port_of "$n")"; done
    ;;
  down) for n in "${names[@]}"; do stop "$n" TERM; done ;;
  kill) for n in "${names[@]}"; do stop "$n" KILL; echo "services: $n killed (SIGKILL)"; done ;;
  status)
    for n in "${ALL[@]}"; do
      if running "$n"; then echo "$n: running (pid $(cat "$(pidfile "$n")"), :$(port_of "$n"))"
      else echo "$n: stopped"; fi
    done
    ;;
  *) echo "usage: $0 up|down|kill|status [NAME...]" >&2; exit 2 ;;
esac
