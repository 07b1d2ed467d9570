#!/bin/sh
# initramfs.sh — the guest initramfs: lohar as /init, the kernel modules the
# guest needs, and /etc/lohar/modules listing them in load order (lohar
# loads them, mounts the root disk and switches to it; see agent/init.c).
#
# Usage: images/initramfs.sh OUT LOHAR   (after images/kernel.sh OUT)
# Writes OUT/initramfs.cpio (uncompressed: nothing to inflate under TCG).
set -eu
out=$1
lohar=$2
kver=$(cat "$out/kernel-version")
moddir="$out/kernel/lib/modules/$kver"

# What the guest needs; dependencies are added from modules.dep. ext4 wants
# crc32c, which modules.dep does not say (only modules.softdep): listed here.
WANT="virtio_mmio virtio_blk crc32c_generic ext4 virtio_console virtio_net"

# Resolve to paths, dependencies first, each once.
order=$(awk -v want="$WANT" '
	function base(p,   b) { b = p; sub(/.*\//, "", b); sub(/\.ko$/, "", b); gsub(/-/, "_", b); return b }
	function visit(p,   n, i, d) {
		if (p in seen) return
		seen[p] = 1
		n = split(deps[p], d, " ")
		for (i = n; i >= 1; i--) visit(d[i])
		print p
	}
	{
		p = $1; sub(/:$/, "", p)
		deps[p] = ""
		for (i = 2; i <= NF; i++) deps[p] = deps[p] " " $i
		byname[base(p)] = p
	}
	END {
		n = split(want, w, " ")
		for (i = 1; i <= n; i++) {
			if (!(w[i] in byname)) { print "missing module " w[i] > "/dev/stderr"; exit 1 }
			visit(byname[w[i]])
		}
	}' "$moddir/modules.dep")

stage="$out/initramfs.stage"
rm -rf "$stage"
mkdir -p "$stage/etc/lohar" "$stage/dev" "$stage/proc" "$stage/sys" "$stage/newroot"
cp "$lohar" "$stage/init"
: > "$stage/etc/lohar/modules"
for m in $order; do
	mkdir -p "$stage/lib/modules/$kver/$(dirname "$m")"
	cp "$moddir/$m" "$stage/lib/modules/$kver/$m"
	echo "/lib/modules/$kver/$m" >> "$stage/etc/lohar/modules"
done
# the console, for the kernel to open before /dev is mounted
mknod -m 600 "$stage/dev/console" c 5 1 2>/dev/null || true

(cd "$stage" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) > "$out/initramfs.cpio.tmp"
mv "$out/initramfs.cpio.tmp" "$out/initramfs.cpio"
echo "initramfs: $out/initramfs.cpio ($(wc -l < "$stage/etc/lohar/modules") modules, $(du -k "$out/initramfs.cpio" | cut -f1) KiB)"
