#!/usr/bin/env bash
# Build everything and run the whole test suite: unit tests, the plugin
# loader, the DCS conformance suite against real etcd (v3 and v2 APIs) and
# ZooKeeper servers (plus Exhibitor's discovery endpoint as a test double)
# and the in-memory reference DCS, and the cluster tests (real etcd or
# ZooKeeper, PostgreSQL 15, palisade and Patroni processes on 127.0.0.1).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -eq 0 ]; then
    scripts/setup.sh
fi

# The tests load the plugins (cdylibs) and run the binaries from target/.
cargo build --workspace --all-targets
cargo nextest run --workspace --no-fail-fast "$@"
