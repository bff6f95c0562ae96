#!/usr/bin/env bash
# One line per missing prerequisite, saying what to install; exit 1 if any is missing.
missing=0
need() { # command message
  command -v "$1" >/dev/null 2>&1 || { echo "missing: $2"; missing=1; }
}
need python3 "Python 3.11 or newer (Debian: apt-get install python3)"
need java "a JDK 17 or newer for Kafka (Debian: apt-get install openjdk-17-jdk-headless)"
need mvn "Maven 3 to fetch the Kafka jars (Debian: apt-get install maven)"
need go "Go 1.22 or newer to build FerretDB (Debian: apt-get install golang, or go.dev/dl)"
need curl "curl for the health checks (Debian: apt-get install curl)"
PG_BIN=${BILLING_POSTGRES_BIN:-/usr/lib/postgresql/15/bin}
if [ ! -x "$PG_BIN/initdb" ]; then
  if [ "${BILLING_FERRETDB_BACKEND:-postgresql}" = sqlite ]; then
    echo "note: no PostgreSQL 15 server in $PG_BIN: FerretDB runs over SQLite (BILLING_FERRETDB_BACKEND=sqlite); make test's PostgreSQL-backend tests need it (Debian: apt-get install postgresql-15)"
  elif [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && [ "$PG_BIN" = /usr/lib/postgresql/15/bin ]; then
    echo "note: no PostgreSQL 15 server yet: scripts/infra.sh installs it with apt-get (postgresql-15) on the first make up"
  else
    echo "missing: the PostgreSQL 15 server under FerretDB (Debian: apt-get install postgresql-15; or set BILLING_POSTGRES_BIN; or BILLING_FERRETDB_BACKEND=sqlite)"
    missing=1
  fi
fi
command -v kubectl >/dev/null 2>&1 \
  || echo "note: no kubectl: make demo works, make test's manifest tests need it (its built-in kustomize)"
if ! ldconfig -p 2>/dev/null | grep -q 'libpango-1.0'; then
  echo "missing: Pango for WeasyPrint's PDFs (Debian: apt-get install libpango-1.0-0 libpangoft2-1.0-0 fonts-dejavu-core)"
  missing=1
fi
if command -v python3 >/dev/null 2>&1 && ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "missing: Python 3.11 or newer (found $(python3 --version 2>&1))"; missing=1
fi
[ -x "${BILLING_CHROMIUM:-/usr/bin/chromium}" ] \
  || echo "note: no Chromium: make test installs it as root (apt-get install chromium); otherwise install it for the portal's browser tests, or set BILLING_CHROMIUM"
command -v npm >/dev/null 2>&1 \
  || echo "note: no npm: make test fetches axe-core with it once (Debian: apt-get install npm)"
exit $missing
