#!/usr/bin/env bash
# Runs bench/mount.ts (options in its header comment) after building. Needs root: it mounts FUSE.
#   bench/mount.sh [--rounds N] [--seconds N] [--bulk-mb N] [--speedtest-size N] [--targets a,b,…] [--json FILE]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh >/dev/null 2>&1 || echo "bench/mount: the build reported type errors; using what it emitted" >&2
exec node --enable-source-maps dist/bench/mount.js "$@"
