# Sourced by scripts/test and scripts/run-local: make sure .venv exists with the project and its test and bench extras.
root=$(cd "$(dirname "$0")/.." && pwd)
venv="$root/.venv"
stamp="$venv/.installed-$(cksum < "$root/pyproject.toml" | cut -d' ' -f1)"
if [ ! -x "$venv/bin/python" ]; then
  echo "creating $venv" >&2
  "${PYTHON:-python3}" -m venv "$venv"
fi
if [ ! -f "$stamp" ]; then
  echo "installing the project and its test and bench extras into $venv" >&2
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -e "$root[test,bench]"
  rm -f "$venv"/.installed-* && touch "$stamp"
fi
# AWS's Runtime Interface Emulator for the RIE test tier (tests/test_rie.py), when Go is at hand: the version
# pinned in scripts/local_lambda/rie.py, built once into .venv/tools/bin. Without Go the tier skips (fails under CI=true).
if command -v go >/dev/null 2>&1; then
  "$venv/bin/python" -m local_lambda.rie install >/dev/null || echo "warning: aws-lambda-rie could not be installed" >&2
fi
# The other runtimes' interface clients for tests/test_rie_runtimes.py, once into .venv/tools (pinned in
# scripts/local_lambda/rie_runtimes.py): aws-lambda-ric from npm (it builds native code, ~1 min) and AWS's Java
# client from Maven Central. What cannot be installed makes those tests skip (fail under CI=true).
"$venv/bin/python" -m local_lambda.rie_runtimes install >/dev/null || echo "warning: a runtime interface client could not be installed" >&2
# The Java client's Maven build (layer/java/pom.xml), fetched once per pom into ~/.m2 so that the tests run it
# offline (mvn -o). A test run that selects no test fetches what dependency:go-offline misses (surefire's JUnit
# provider, the plexus-utils Maven 3.8 adds to plugins). Without it the tests run Maven online.
if command -v mvn >/dev/null 2>&1; then
  mstamp="$venv/.maven-$(cksum < "$root/layer/java/pom.xml" | cut -d' ' -f1)"
  if [ ! -f "$mstamp" ]; then
    mbuild=$(mktemp -d)
    if (cd "$root/layer/java" && mvn -B -q -Dbuild.dir="$mbuild/build" test -Dtest=NoSuchTest \
          -Dsurefire.failIfNoSpecifiedTests=false >"$mbuild/log" 2>&1); then
      rm -f "$venv"/.maven-* && touch "$mstamp"
    else
      cat "$mbuild/log" >&2; echo "warning: the Java client's Maven dependencies could not be fetched" >&2
    fi
    rm -rf "$mbuild"
  fi
fi
