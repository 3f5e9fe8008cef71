#!/usr/bin/env bash
# Builds the project and libfuse's C passthrough, then runs the side-by-side FUSE passthrough benchmark
# (direct directory vs C passthrough_ll vs ours). Arguments go to bench/fuse-passthrough.ts.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
cbin=$(bash ../shared/tools/fuse-passthrough-c | tail -n 1)
exec node --enable-source-maps dist/bench/fuse-passthrough.js --c-binary "$cbin" "$@"
