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
