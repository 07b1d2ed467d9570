#!/bin/sh
# deps.sh — install the Debian packages bhatti needs to build, test and run.
#
# Idempotent: installs only what is missing. Works as root or through sudo.
# `make deps` runs it; `install.sh` reuses it. Debian packages only.
set -eu

# Build and test: compilers, libraries, test and fuzz tools; the VM side
# (QEMU, the tools images/*.sh use); age and sqlite3 for the tests;
# openssl, pebble (a test ACME CA) and uacme (the ACME client
# scripts/uacme-hook.sh serves) for the TLS and ACME tests; chromium for
# the browser test of published pages (headless).
PKGS="build-essential pkg-config musl-tools clang libclang-rt-14-dev file
libcjson-dev libyaml-dev libsodium-dev libsqlite3-dev libcurl4-openssl-dev
libwebsockets-dev libssl-dev libcap-dev zlib1g-dev libvterm-dev libncurses-dev libcmocka-dev
tmux socat python3 procps psmisc iproute2
qemu-system-x86 busybox-static e2fsprogs xz-utils cpio kmod debootstrap
openssh-client age sqlite3 curl nftables openssl pebble uacme chromium"

if [ "${1:-}" = "--list" ]; then
	echo $PKGS
	exit 0
fi

missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done

if [ -z "$missing" ]; then
	exit 0
fi

echo "deps: installing:$missing"
SUDO=""
if [ "$(id -u)" != 0 ]; then
	if command -v sudo >/dev/null 2>&1; then
		SUDO="sudo"
	else
		echo "deps: need root (or sudo) to install:$missing" >&2
		exit 1
	fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq || echo "deps: apt-get update failed; trying with the cached package lists" >&2
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing
