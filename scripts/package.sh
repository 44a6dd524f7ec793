#!/usr/bin/env bash
# Build palisade's Debian packages with dpkg-deb:
#
#   palisade                   /usr/bin/palisade, /usr/bin/palisadectl, the
#                              systemd units, man pages, palisadectl's shell
#                              completions, an example configuration;
#                              Provides: palisade-plugin-api-N
#   palisade-<kind>-<name>     one per plugin, its .so in /usr/lib/palisade/plugins;
#                              Depends: palisade-plugin-api-N
#
# usage: scripts/package.sh [--profile release|debug] [--out DIR] [--no-build]
#
# --profile  the cargo profile whose binaries are packaged (default release)
# --out      where the .deb files go (default $CARGO_TARGET_DIR/debian or target/debian)
# --no-build package what the target directory holds, without running cargo
#            (the packages test does this with the debug build)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PROFILE=release
OUT=""
BUILD=1
while [ $# -gt 0 ]; do
    case "$1" in
        --profile) PROFILE="${2:?--profile needs release or debug}"; shift 2 ;;
        --out) OUT="${2:?--out needs a directory}"; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "scripts/package.sh: unknown argument '$1'" >&2; exit 2 ;;
    esac
done
case "$PROFILE" in
    release|debug) ;;
    *) echo "scripts/package.sh: --profile must be release or debug, not '$PROFILE'" >&2; exit 2 ;;
esac

TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
BIN="$TARGET/$PROFILE"
OUT="${OUT:-$TARGET/debian}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"

# The plugins: crate (= package) name, the plugin's kind and name (its file
# is libpalisade_<kind>_<name>.so) and its documentation page.
PLUGINS=(
    "palisade-dcs-etcd3 dcs etcd3 dcs-etcd3"
    "palisade-dcs-etcd dcs etcd dcs-etcd"
    "palisade-dcs-zookeeper dcs zookeeper dcs-zookeeper"
    "palisade-dcs-exhibitor dcs exhibitor dcs-exhibitor"
    "palisade-dcs-consul dcs consul dcs-consul"
    "palisade-dcs-kubernetes dcs kubernetes dcs-kubernetes"
    "palisade-replica-basebackup replica basebackup replica-basebackup"
    "palisade-replica-command replica command replica-command"
    "palisade-replica-pgbackrest replica pgbackrest replica-pgbackrest"
    "palisade-replica-walg replica walg replica-walg"
    "palisade-callback-script callback script callback-script"
    "palisade-mpp-citus mpp citus mpp-citus"
)

if [ "$BUILD" = 1 ]; then
    profile_flag=()
    [ "$PROFILE" = release ] && profile_flag=(--release)
    # One cargo run for the host and one per plugin: cargo unifies the
    # features of everything one run builds, so a single run would give
    # the daemon HTTP/2 and a process driver in every plugin (code that
    # ends up resident in each daemon).
    (cd "$ROOT" && cargo build "${profile_flag[@]}" -p palisade-daemon -p palisade-ctl -p palisade-docgen)
    for p in "${PLUGINS[@]}"; do
        read -r crate _ <<<"$p"
        (cd "$ROOT" && cargo build "${profile_flag[@]}" -p "$crate")
    done
fi

need() {
    local flag=""
    [ "$PROFILE" = release ] && flag=" --release"
    [ -f "$1" ] || { echo "scripts/package.sh: $1 is missing: build it (cargo build$flag -p $2), or drop --no-build" >&2; exit 1; }
}
need "$BIN/palisade" palisade-daemon
need "$BIN/palisadectl" palisade-ctl
need "$BIN/palisade-docgen" palisade-docgen

VERSION="$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' "$ROOT/Cargo.toml")"
API="$(sed -n 's/^pub const API_VERSION: u32 = \([0-9]*\);/\1/p' "$ROOT/plugin-api/src/lib.rs")"
[ -n "$VERSION" ] && [ -n "$API" ] || { echo "scripts/package.sh: cannot read the version or the plugin API version" >&2; exit 1; }
ARCH="$(dpkg --print-architecture)"
MAINTAINER="palisade developers <palisade@localhost>"
# Debug builds are large: compress them fast. Release packages use xz.
if [ "$PROFILE" = release ]; then COMPRESS=(-Zxz); else COMPRESS=(-Zgzip -z1); fi

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

# libc6's version: the newest GLIBC_ symbol version the files use.
libc_depends() {
    local v
    v="$(objdump -T "$@" 2>/dev/null | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -n1)"
    echo "libc6 (>= ${v:-2.31}), libgcc-s1"
}

# install_file SRC DEST MODE: copy, stripping debug information from ELF files
# (as dh_strip does; the packaged files stay usable for backtraces).
install_file() {
    install -D -m "$3" "$1" "$2"
    if [ "$3" = 0755 ] || [[ "$2" == *.so ]]; then
        objcopy --strip-debug "$2"
    fi
}

copyright() {
    mkdir -p "$1/usr/share/doc/$2"
    cat >"$1/usr/share/doc/$2/copyright" <<EOF
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: palisade

Files: *
License: MIT
 See the LICENSE text of the palisade source distribution.
EOF
}

# finish DIR PACKAGE: control's Installed-Size, md5sums, and the .deb.
finish() {
    local dir="$1" pkg="$2"
    (cd "$dir" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) >"$dir/DEBIAN/md5sums"
    local size
    size="$(du -sk --exclude=DEBIAN "$dir" | cut -f1)"
    sed -i "s/^Installed-Size: .*/Installed-Size: $size/" "$dir/DEBIAN/control"
    find "$dir" -type d -exec chmod 0755 {} +
    dpkg-deb --root-owner-group "${COMPRESS[@]}" --build "$dir" "$OUT/${pkg}_${VERSION}_${ARCH}.deb" >/dev/null
    echo "$OUT/${pkg}_${VERSION}_${ARCH}.deb"
}

# --- palisade -------------------------------------------------------------
P="$WORK/palisade"
install_file "$BIN/palisade" "$P/usr/bin/palisade" 0755
install_file "$BIN/palisadectl" "$P/usr/bin/palisadectl" 0755
install -D -m 0644 "$ROOT/packaging/palisade.service" "$P/lib/systemd/system/palisade.service"
install -D -m 0644 "$ROOT/packaging/palisade@.service" "$P/lib/systemd/system/palisade@.service"
install -D -m 0644 "$ROOT/packaging/palisade.yml" "$P/usr/share/doc/palisade/examples/palisade.yml"
install -D -m 0644 "$ROOT/README.md" "$P/usr/share/doc/palisade/README.md"
for doc in operations configuration palisadectl differences-from-patroni; do
    install -D -m 0644 "$ROOT/docs/$doc.md" "$P/usr/share/doc/palisade/$doc.md"
done
mkdir -p "$P/usr/lib/palisade/plugins" "$P/etc/palisade"
copyright "$P" palisade

# Man pages and completions come from the command-line definitions.
"$BIN/palisade-docgen" "$WORK/generated" >/dev/null
mkdir -p "$P/usr/share/man/man1"
for page in "$WORK"/generated/man/*.1; do
    gzip -9n -c "$page" >"$P/usr/share/man/man1/$(basename "$page").gz"
done
install -D -m 0644 "$WORK/generated/completions/palisadectl.bash" "$P/usr/share/bash-completion/completions/palisadectl"
install -D -m 0644 "$WORK/generated/completions/_palisadectl" "$P/usr/share/zsh/vendor-completions/_palisadectl"
install -D -m 0644 "$WORK/generated/completions/palisadectl.fish" "$P/usr/share/fish/vendor_completions.d/palisadectl.fish"

mkdir -p "$P/DEBIAN"
cat >"$P/DEBIAN/control" <<EOF
Package: palisade
Version: $VERSION
Architecture: $ARCH
Maintainer: $MAINTAINER
Installed-Size: 0
Depends: $(libc_depends "$BIN/palisade" "$BIN/palisadectl")
Recommends: postgresql, palisade-replica-basebackup
Suggests: palisade-dcs-etcd3 | palisade-dcs-etcd | palisade-dcs-consul | palisade-dcs-zookeeper | palisade-dcs-exhibitor | palisade-dcs-kubernetes
Provides: palisade-plugin-api-$API
Section: database
Priority: optional
Description: PostgreSQL high-availability daemon (a Patroni re-implementation)
 palisade runs PostgreSQL as Patroni does, from the same configuration
 files, REST API and DCS layout, with its stores and replica methods as
 plugins: install the palisade-dcs-* package of your store and the
 palisade-replica-* packages of your replica methods.
 .
 This package holds the daemon (palisade), palisadectl, the systemd units
 palisade.service and palisade@.service, the man pages and palisadectl's
 shell completions.
EOF
finish "$P" palisade

# --- one package per plugin -----------------------------------------------
for p in "${PLUGINS[@]}"; do
    read -r crate kind name doc <<<"$p"
    lib="$BIN/lib${crate//-/_}.so"
    need "$lib" "$crate"
    file="libpalisade_${kind}_${name}.so"
    D="$WORK/$crate"
    install_file "$lib" "$D/usr/lib/palisade/plugins/$file" 0644
    install -D -m 0644 "$ROOT/docs/plugins/$doc.md" "$D/usr/share/doc/$crate/README.md"
    copyright "$D" "$crate"
    manifest="$(grep -l "^name = \"$crate\"" "$ROOT"/plugins/*/Cargo.toml "$ROOT"/callbacks/*/Cargo.toml | head -n1)"
    summary="$(sed -n 's/^description = "\(.*\)"/\1/p' "$manifest" | head -n1)"
    mkdir -p "$D/DEBIAN"
    cat >"$D/DEBIAN/control" <<EOF
Package: $crate
Version: $VERSION
Architecture: $ARCH
Maintainer: $MAINTAINER
Installed-Size: 0
Depends: palisade-plugin-api-$API, $(libc_depends "$lib")
Enhances: palisade
Section: database
Priority: optional
Description: palisade $kind plugin '$name'
$(echo "${summary:-The $name $kind plugin of palisade.}" | fold -s -w 72 | sed 's/ *$//; s/^/ /')
 .
 Installs $file
 in /usr/lib/palisade/plugins, where palisade looks for plugins by
 default. It speaks palisade's plugin API version $API.
EOF
    finish "$D" "$crate"
done
