#!/bin/sh
# rootfs-minimal.sh — the `minimal` guest root filesystem: Debian bookworm
# (debootstrap minbase) with bash, sudo, ca-certificates, curl, procps,
# iproute2, less and openssh (client and server, for the ssh baseline of
# bench/engine), a `lohar` user (uid 1000, passwordless sudo) owning
# /workspace. An ext4 image made without loop mounts. Needs root and the
# Debian mirror; takes a minute or more.
#
# Usage: images/rootfs-minimal.sh OUT   → OUT/rootfs-minimal.ext4
set -eu
out=$1
size=${MINIMAL_SIZE:-4G}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
stage="$out/rootfs-minimal.stage"
pkgs=bash,sudo,ca-certificates,curl,procps,iproute2,less,openssh-server,openssh-client,libnss-myhostname

if [ "$(id -u)" != 0 ]; then
	echo "rootfs-minimal: debootstrap needs root" >&2
	exit 1
fi
rm -rf "$stage"
mkdir -p "$stage"
echo "rootfs-minimal: debootstrap bookworm (minbase + $pkgs)"
start=$(date +%s)
debootstrap --variant=minbase --include="$pkgs" bookworm "$stage" "$mirror" \
	> "$out/rootfs-minimal.log" 2>&1 || {
	echo "rootfs-minimal: debootstrap failed; see $out/rootfs-minimal.log" >&2
	tail -n 20 "$out/rootfs-minimal.log" >&2
	exit 1
}
echo "rootfs-minimal: debootstrap done in $(( $(date +%s) - start ))s"

chroot "$stage" /usr/sbin/groupadd -g 1000 lohar
chroot "$stage" /usr/sbin/useradd -m -u 1000 -g 1000 -s /bin/bash -G sudo lohar
echo 'lohar ALL=(ALL) NOPASSWD:ALL' > "$stage/etc/sudoers.d/lohar"
chmod 0440 "$stage/etc/sudoers.d/lohar"
mkdir -p "$stage/workspace" "$stage/etc/lohar"
chown 1000:1000 "$stage/workspace"
# the hostname lives in the kernel only: lohar writes no file for it (a
# symlink tells it the image manages these; agent/init.c)
ln -sf /proc/sys/kernel/hostname "$stage/etc/hostname"
printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' \
	> "$stage/etc/lohar/hosts"
ln -sf lohar/hosts "$stage/etc/hosts"
echo "minimal" > "$stage/etc/lohar/tier"
# Every sandbox would share these: a user who wants sshd runs ssh-keygen -A.
rm -f "$stage"/etc/ssh/ssh_host_*
# Smaller image: no package caches or lists (apt-get update refetches them).
rm -rf "$stage"/var/cache/apt/*.bin "$stage"/var/cache/apt/archives/*.deb \
	"$stage"/var/lib/apt/lists/* "$stage"/var/log/*.log

rm -f "$out/rootfs-minimal.ext4.tmp"
mkfs.ext4 -q -F -L bhatti-root -b 4096 -d "$stage" "$out/rootfs-minimal.ext4.tmp" "$size"
mv "$out/rootfs-minimal.ext4.tmp" "$out/rootfs-minimal.ext4"
rm -rf "$stage"
echo "rootfs-minimal: $out/rootfs-minimal.ext4 ($size, $(du -k "$out/rootfs-minimal.ext4" | cut -f1) KiB used)"
