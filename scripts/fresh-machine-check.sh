#!/usr/bin/env bash
# Prove that README.md's two commands work on a machine that has only the
# base image and Rust:
#   1. purge every package scripts/setup.sh adds (and the dependencies only
#      they needed), delete the test user and the Patroni virtualenv;
#   2. clone this repository's HEAD (committed work only) into a new
#      directory, with no target/;
#   3. run `scripts/demo.sh` there (it must start a working 3-node cluster),
#      stop and clean the demo;
#   4. run `scripts/test.sh` there (the whole suite).
# It prints the packages it removed and the outcome of both commands, and
# exits non-zero if either fails.
#
# It removes system packages: it needs root and --yes.
#   scripts/fresh-machine-check.sh --yes [--keep]   (--keep: leave the clone)
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
WORK="${FRESH_DIR:-/var/tmp/palisade-fresh}"
USER_NAME="${PALISADE_TEST_USER:-palisade}"
yes=0
keep=0
for arg in "$@"; do
    case "$arg" in
        --yes) yes=1 ;;
        --keep) keep=1 ;;
        *) echo "usage: $0 --yes [--keep]" >&2; exit 2 ;;
    esac
done
if [ "$(id -u)" -ne 0 ]; then
    echo "$0: run as root (it purges packages and deletes the '$USER_NAME' user)" >&2
    exit 1
fi
if [ "$yes" -ne 1 ]; then
    echo "$0 purges these packages and what only they needed: $("$ROOT/scripts/setup.sh" --added-packages)" >&2
    echo "and deletes the user '$USER_NAME' and /var/tmp/palisade-patroni-venv. Run it with --yes." >&2
    exit 2
fi

installed() { dpkg-query -W -f='${db:Status-Abbrev} ${Package}\n' | awk '$1 == "ii" {print $2}' | sort; }

echo "== 1. back to the base image"
before=$(installed)
read -r -a added <<<"$("$ROOT/scripts/setup.sh" --added-packages)"
present=()
for p in "${added[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 && present+=("$p")
done
if [ "${#present[@]}" -gt 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq --auto-remove "${present[@]}" >/dev/null
fi
removed=$(comm -23 <(echo "$before") <(installed) | tr '\n' ' ')
echo "removed packages: ${removed:-none (none was installed)}"
if id "$USER_NAME" >/dev/null 2>&1; then
    if userdel "$USER_NAME"; then
        echo "deleted user $USER_NAME"
    else
        echo "NOTE: user $USER_NAME is in use by running processes and was kept (the check is weaker for it)"
    fi
fi
rm -rf /var/tmp/palisade-patroni-venv /var/tmp/palisade-patroni-venv.lock
for tool in etcd protoc pgbackrest haproxy; do
    if command -v "$tool" >/dev/null 2>&1; then
        echo "still on the machine after the purge: $tool ($(command -v "$tool"))" >&2
        exit 1
    fi
done
[ -e /usr/share/zookeeper/bin/zkServer.sh ] && { echo "ZooKeeper is still installed" >&2; exit 1; }
[ -e /usr/include/google/protobuf/descriptor.proto ] && { echo "descriptor.proto is still installed" >&2; exit 1; }

echo "== 2. a fresh clone of HEAD ($(git -C "$ROOT" rev-parse --short HEAD)) in $WORK/palisade"
rm -rf "$WORK"
mkdir -p "$WORK"
git clone -q --no-hardlinks "$ROOT" "$WORK/palisade"
cd "$WORK/palisade"
unset CARGO_TARGET_DIR

status=0
echo "== 3. README command 1: scripts/demo.sh"
export DEMO_DIR="$WORK/demo"
if scripts/demo.sh; then
    demo="passed"
else
    demo="FAILED"
    status=1
fi
scripts/demo.sh clean >/dev/null 2>&1 || true
echo "scripts/demo.sh: $demo"

echo "== 4. README command 2: scripts/test.sh"
if scripts/test.sh; then
    tests="passed"
else
    tests="FAILED"
    status=1
fi

cd /
[ "$keep" -eq 1 ] || rm -rf "$WORK"
echo
echo "fresh-machine check: packages removed: ${removed:-none}"
echo "fresh-machine check: scripts/demo.sh $demo; scripts/test.sh $tests"
exit "$status"
