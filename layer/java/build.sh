#!/usr/bin/env bash
# Builds the Java client library of the cache extension into one jar (standard library only, Java 11).
#
#   layer/java/build.sh OUT_JAR
#
# Compiles every .java file under layer/java/src/main/java with `javac --release 11` (warnings are errors)
# in a temporary directory and writes OUT_JAR; nothing is written inside the repository. The jar's entries
# carry a fixed time stamp so that a rebuild of the same sources gives the same bytes (same JDK).
set -euo pipefail

if [[ $# -ne 1 || "$1" == -h || "$1" == --help ]]; then
    echo "usage: $0 OUT_JAR" >&2
    exit 2
fi
out=$1
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
src="$here/src/main/java"

for tool in javac jar; do
    command -v "$tool" >/dev/null || { echo "$0: $tool not found (a JDK 11 or newer is needed)" >&2; exit 1; }
done

work=$(mktemp -d "${TMPDIR:-/tmp}/cache-extension-java.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/classes"

find "$src" -name '*.java' -print | LC_ALL=C sort > "$work/sources.txt"
if [[ ! -s "$work/sources.txt" ]]; then
    echo "$0: no sources under $src" >&2
    exit 1
fi

javac --release 11 -encoding UTF-8 -Xlint:all -Werror -implicit:none -d "$work/classes" @"$work/sources.txt"

mkdir -p "$(dirname "$out")"
rm -f "$out"
# --date (JDK 17+) fixes the entries' time stamps; older jar tools just get the current time.
if jar --help 2>&1 | grep -q -- '--date'; then
    jar --create --file "$out" --date=2000-01-01T00:00:02Z -C "$work/classes" .
else
    jar --create --file "$out" -C "$work/classes" .
fi
echo "built $out" >&2
