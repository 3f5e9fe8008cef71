#!/usr/bin/env bash
# Idempotent set-up for a fresh Debian 12 machine: the Debian packages LiteFS and its tests use,
# the npm dependencies (npm ci, only when package-lock.json changed), and the TypeScript build.
# Sourced or run by scripts/test and scripts/demo; safe to run again (it skips what is done).
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
for pkg in fuse3 sqlite3 etcd-server etcd-client iproute2 python3 gcc make; do
  have_pkg "$pkg" || need+=("$pkg")
done
if ((${#need[@]})); then
  echo "setup: installing Debian packages: ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq "${need[@]}" >/dev/null
fi
# The Debian etcd-server package starts a system etcd on 2379; our tests start their own on other ports.

stamp=node_modules/.litefs-lock-hash
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [[ ! -f $stamp || $(cat "$stamp") != "$want" ]]; then
  echo "setup: npm ci" >&2
  npm ci --no-audit --no-fund >&2
  echo "$want" >"$stamp"
fi

bash scripts/build.sh
