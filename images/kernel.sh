#!/bin/sh
# kernel.sh — the guest kernel: Debian's linux-image-amd64, unpacked, with
# the ELF vmlinux extracted for direct (PVH) boot and modules.dep built.
#
# Usage: images/kernel.sh OUT   (e.g. build/images)
# Writes OUT/vmlinux, OUT/kernel-version, OUT/kernel/ (the unpacked
# package: lib/modules/VERSION/...). Cached: does nothing when the package
# version is unchanged. Downloads only from the configured Debian mirror.
set -eu
out=$1
mkdir -p "$out/cache"

# The package the metapackage points at, e.g. linux-image-6.1.0-56-amd64.
pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-/{print $2; exit}')
if [ -z "$pkg" ]; then
	echo "kernel: cannot resolve linux-image-amd64 (run apt-get update?)" >&2
	exit 1
fi
ver=$(apt-cache policy "$pkg" | awk '/Candidate:/{print $2}')
stamp="$pkg $ver"
if [ -f "$out/kernel.stamp" ] && [ "$(cat "$out/kernel.stamp")" = "$stamp" ] && [ -f "$out/vmlinux" ]; then
	echo "kernel: $pkg $ver (cached)"
	exit 0
fi

echo "kernel: downloading $pkg $ver"
deb=$(ls "$out/cache/${pkg}_"*.deb 2>/dev/null | head -n 1 || true)
if [ -z "$deb" ] || ! dpkg-deb -f "$deb" Version | grep -qx "$ver"; then
	rm -f "$out/cache/${pkg}_"*.deb
	(cd "$out/cache" && apt-get download "$pkg=$ver" 2>&1 | grep -v '^W: Download is performed unsandboxed' || true)
	deb=$(ls "$out/cache/${pkg}_"*.deb | head -n 1)
fi

echo "kernel: unpacking"
rm -rf "$out/kernel"
mkdir -p "$out/kernel"
dpkg-deb -x "$deb" "$out/kernel"
kver=$(ls "$out/kernel/lib/modules" | head -n 1)

# vmlinuz is a bzImage whose payload is an xz stream holding the ELF
# vmlinux; find the stream and decompress it (xz ignores what follows).
vmlinuz="$out/kernel/boot/vmlinuz-$kver"
off=$(LC_ALL=C grep -obUaP '\xFD7zXZ\x00' "$vmlinuz" | head -n 1 | cut -d: -f1)
if [ -z "$off" ]; then
	echo "kernel: no xz stream in $vmlinuz" >&2
	exit 1
fi
tail -c +"$((off + 1))" "$vmlinuz" | xz -dc > "$out/vmlinux.tmp" 2>/dev/null || true
if [ "$(head -c 4 "$out/vmlinux.tmp" | od -An -c | tr -d ' ')" != "177ELF" ]; then
	echo "kernel: extracted vmlinux is not an ELF file" >&2
	exit 1
fi
mv "$out/vmlinux.tmp" "$out/vmlinux"

echo "kernel: depmod $kver"
depmod -b "$out/kernel" "$kver"
echo "$kver" > "$out/kernel-version"
echo "$stamp" > "$out/kernel.stamp"
echo "kernel: $out/vmlinux ($kver)"
