#!/usr/bin/env bash
# Builds dist/ with tsc when any source is newer than the last build. Serialised with flock so that
# several `bin/litefs` started at once (a local cluster) build only once.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p dist
exec 9>dist/.build.lock
flock 9
stamp=dist/.build-stamp
if [[ -f $stamp ]] && [[ -z $(find src test bench scripts examples tsconfig.json package.json -newer "$stamp" \( -name '*.ts' -o -name '*.json' \) -print -quit 2>/dev/null) ]]; then
  exit 0
fi
echo "build: tsc" >&2
touch "$stamp.new"
npx tsc -p tsconfig.json
mv "$stamp.new" "$stamp"
