#!/usr/bin/env bash
# The Mustang e-invoice validator (org.mustangproject:validator, Maven Central), run on the JDK the
# local Kafka already needs, plus OpenPeppol's BIS Billing 3.0 rules (phive-rules-peppol) on
# Peppol UBL files. Its jars are resolved through infra/mustang/pom.xml into
# var/mustang/libs (git-ignored), once; docs/einvoice.md says what it checks.
#
#   scripts/einvoice-validator.sh fetch                        resolve the jars (idempotent)
#   scripts/einvoice-validator.sh validate REPORT_DIR FILE...  validate; a report per file in REPORT_DIR
#   scripts/einvoice-validator.sh classpath                    fetch, then print the classpath
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
VAR="$ROOT/var"
LIBS="$VAR/mustang/libs"
MUSTANG_VERSION=$(sed -n 's:.*<mustang.version>\(.*\)</mustang.version>.*:\1:p' "$ROOT/infra/mustang/pom.xml")
PEPPOL_VERSION=$(sed -n 's:.*<phive.peppol.version>\(.*\)</phive.peppol.version>.*:\1:p' "$ROOT/infra/mustang/pom.xml")

die() { echo "einvoice-validator: $*" >&2; exit 1; }

fetch() {
  if [ -f "$LIBS/validator-$MUSTANG_VERSION.jar" ] && [ -f "$LIBS/phive-rules-peppol-$PEPPOL_VERSION.jar" ]; then
    return
  fi
  command -v java >/dev/null 2>&1 || die "no Java found: install a JDK 17 or newer (Debian: apt-get install openjdk-17-jdk-headless)"
  command -v mvn >/dev/null 2>&1 || die "no Maven found: install Maven 3 (Debian: apt-get install maven)"
  echo "einvoice-validator: fetching Mustang validator $MUSTANG_VERSION from Maven Central (once)..." >&2
  rm -rf "$LIBS"
  mkdir -p "$VAR/log"
  mvn -q -B -s "$ROOT/infra/mustang/settings.xml" -f "$ROOT/infra/mustang/pom.xml" \
    -Dmaven.repo.local="$VAR/m2" dependency:copy-dependencies -DoutputDirectory="$LIBS" \
    -DincludeScope=runtime > "$VAR/log/mustang-fetch.log" 2>&1 \
    || die "fetching the validator failed: $VAR/log/mustang-fetch.log"
}

case "${1:-}" in
  fetch) fetch ;;
  classpath) fetch; echo "$LIBS/*" ;;
  validate)
    shift
    [ $# -ge 2 ] || die "usage: $0 validate REPORT_DIR FILE..."
    fetch
    # Mustang logs through SLF4J without a provider: its "no providers" notice goes to stderr.
    # -XX:-OmitStackTraceInFastThrow: Validate.java recognises Mustang's known crash by its stack
    # trace; after a few dozen of them in one JVM, HotSpot throws the NullPointerException
    # without one (seen: every XRechnung of a 100-invoice run judged invalid from the 45th on).
    exec java -XX:-OmitStackTraceInFastThrow -cp "$LIBS/*" "$ROOT/infra/mustang/Validate.java" "$@" 2> >(grep -v '^SLF4J' >&2)
    ;;
  *) die "usage: $0 fetch | classpath | validate REPORT_DIR FILE..." ;;
esac
