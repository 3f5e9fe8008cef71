#!/usr/bin/env bash
# Runs bench/failover.ts (options in its header comment) after building. Needs root (FUSE mounts) and
# /usr/bin/etcd (Debian's etcd-server; the bench starts its own on free loopback ports).
#   bench/failover.sh [--runs N] [--failover-runs N] [--handoff-runs N] [--proxy-handoff-runs N] [--ttl 2s]
#                     [--lock-delay 0s] [--handoff-back] [--json FILE] [--logs DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh >/dev/null 2>&1 || echo "bench/failover: the build reported type errors; using what it emitted" >&2
exec node --enable-source-maps dist/bench/failover.js "$@"
