#!/bin/sh
# rootfs-tiny.sh — the `tiny` guest root filesystem: busybox (static) with
# every applet linked, a `lohar` user (uid 1000) owning /workspace. Builds
# in seconds; the tests use it. An ext4 image made without loop mounts.
#
# Usage: images/rootfs-tiny.sh OUT   → OUT/rootfs-tiny.ext4
set -eu
out=$1
size=${TINY_SIZE:-256M}
busybox=$(command -v busybox)
if ! file -L "$busybox" | grep -q 'statically linked'; then
	echo "rootfs-tiny: $busybox is not static (install busybox-static)" >&2
	exit 1
fi

stage="$out/rootfs-tiny.stage"
rm -rf "$stage"
mkdir -p "$stage"
for d in bin sbin usr/bin usr/sbin etc dev proc sys tmp run root var/tmp \
	 home/lohar workspace etc/lohar; do
	mkdir -p "$stage/$d"
done
chmod 1777 "$stage/tmp" "$stage/var/tmp"
chmod 700 "$stage/root"
cp "$busybox" "$stage/bin/busybox"
"$busybox" --list-full | while read -r applet; do
	[ "$applet" = bin/busybox ] && continue
	ln -sf /bin/busybox "$stage/$applet"
done

cat > "$stage/etc/passwd" <<'PW'
root:x:0:0:root:/root:/bin/sh
lohar:x:1000:1000:lohar:/home/lohar:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
PW
cat > "$stage/etc/group" <<'GR'
root:x:0:
tty:x:5:
lohar:x:1000:
nogroup:x:65534:
GR
# the hostname lives in the kernel only: lohar writes no file for it (a
# symlink tells it the image manages these; agent/init.c)
ln -sf /proc/sys/kernel/hostname "$stage/etc/hostname"
printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' \
	> "$stage/etc/lohar/hosts"
ln -sf lohar/hosts "$stage/etc/hosts"
echo "tiny" > "$stage/etc/lohar/tier"
chown -R 1000:1000 "$stage/home/lohar" "$stage/workspace"

rm -f "$out/rootfs-tiny.ext4.tmp"
mkfs.ext4 -q -F -L bhatti-root -b 4096 \
	-d "$stage" "$out/rootfs-tiny.ext4.tmp" "$size"
mv "$out/rootfs-tiny.ext4.tmp" "$out/rootfs-tiny.ext4"
echo "rootfs-tiny: $out/rootfs-tiny.ext4 ($size, $(du -k "$out/rootfs-tiny.ext4" | cut -f1) KiB used)"
