#!/usr/bin/env bash
# Prepare this machine to build palisade and run its tests and demo:
# Debian packages (etcd, ZooKeeper, pgBackRest, HAProxy, protoc for the
# etcd client, PostgreSQL 15) and the unprivileged user the servers run as.
# Idempotent: does nothing that is already done. Needs root.
set -euo pipefail

USER_NAME="${PALISADE_TEST_USER:-palisade}"
# What this script installs. protoc needs libprotobuf-dev for the .proto
# files etcd-client's protos import (google/protobuf/descriptor.proto).
# chromium and its WebDriver run the status page's browser test
# (tests/tests/status_page.rs).
ADDED=(etcd-server etcd-client zookeeper pgbackrest haproxy protobuf-compiler libprotobuf-dev chromium chromium-driver)
# On the base image already; installed here only if missing (man-db: the
# packages test renders the generated man pages with `man -l`; iproute2:
# the fault campaign makes network namespaces with `ip`).
BASE=(postgresql-15 python3-venv curl openssl man-db iproute2)
PACKAGES=("${ADDED[@]}" "${BASE[@]}")

# scripts/fresh-machine-check.sh purges what this script adds.
if [ "${1:-}" = "--added-packages" ]; then
    echo "${ADDED[*]}"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "scripts/setup.sh: run as root (it installs packages and creates the '$USER_NAME' user)" >&2
    exit 1
fi

missing=()
for p in "${PACKAGES[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Packaged services must not hold the ports or data the tests use. The
# tests and the demo start their own etcd and ZooKeeper (own ports, own
# data directories), so neither runs system-wide, now or after a reboot.
# (Debian's zookeeper package ships no service; zookeeperd would.)
for svc in etcd zookeeper haproxy postgresql; do
    if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$svc" 2>/dev/null; then
        systemctl stop "$svc" || true
    fi
done
for svc in etcd zookeeper; do
    if command -v systemctl >/dev/null 2>&1 && systemctl is-enabled --quiet "$svc" 2>/dev/null; then
        systemctl disable --quiet "$svc" || true
    fi
    # Without systemd (a container), the package's SysV script may have
    # started it as the package's own user. Its `stop` would match every
    # etcd binary, the tests' too: stop only that user's processes.
    if [ ! -d /run/systemd/system ] && id "$svc" >/dev/null 2>&1; then
        for pid in $(pgrep -u "$svc" || true); do
            kill -TERM "$pid" 2>/dev/null || true
        done
    fi
done

if ! id "$USER_NAME" >/dev/null 2>&1; then
    useradd --system --user-group --no-create-home --shell /bin/sh "$USER_NAME"
    echo "created user $USER_NAME"
fi

if ! command -v cargo-nextest >/dev/null 2>&1 && ! cargo nextest --version >/dev/null 2>&1; then
    echo "cargo-nextest is missing: installing it (once)"
    cargo install --locked cargo-nextest
fi
