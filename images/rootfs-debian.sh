#!/bin/sh
# rootfs-debian.sh — the Debian guest tiers (images/tiers/<tier>.sh:
# minimal, browser, docker): debootstrap bookworm (minbase), the tier's
# packages and those of the tiers it builds on, its setup, then an ext4
# image made without loop mounts (mkfs.ext4 -d). Needs root and the Debian
# mirror; a few minutes per tier the first time.
#
# Usage: images/rootfs-debian.sh TIER OUT   → OUT/rootfs-TIER.ext4
#
# Cached: OUT/rootfs-TIER.inputs holds the hash of everything the image is
# made from (this script, the tier files down to minimal, the suite and
# mirror, the kernel for tiers that carry modules); the image is rebuilt
# only when that changes (or with BHATTI_REBUILD=1). A tier's staged tree
# (OUT/rootfs-TIER.stage) is kept for the tiers built on it; downloaded
# packages are kept in OUT/cache/debs (debootstrap's and apt's).
# Progress: each step, apt's percentage, debootstrap's package counts.
set -eu
tier=$1
out=$(cd "$2" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
suite=${DEBIAN_SUITE:-bookworm}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

say() { printf 'rootfs-%s: %s\n' "$tier" "$*"; }
die() { printf 'rootfs-%s: %s\n' "$tier" "$*" >&2; exit 1; }

[ -f "$here/tiers/$tier.sh" ] || die "no tier '$tier' (images/tiers/: $(cd "$here/tiers" && ls | sed 's/\.sh$//' | tr '\n' ' '))"
[ "$(id -u)" = 0 ] || die "debootstrap needs root"

# The chain of tiers, base first: minimal browser
chain=""
t=$tier
while [ -n "$t" ]; do
	chain="$t $chain"
	BASE=""
	. "$here/tiers/$t.sh"
	t=$BASE
done

# hash of the inputs of tier $1 (its chain's files, suite, mirror, kernel)
inputs_of() {
	(
		echo "$suite $mirror"
		cat "$here/rootfs-debian.sh"
		t=$1
		while [ -n "$t" ]; do
			cat "$here/tiers/$t.sh"
			BASE="" NEEDS_KERNEL=""
			. "$here/tiers/$t.sh"
			[ -n "$NEEDS_KERNEL" ] && cat "$out/kernel.stamp"
			t=$BASE
		done
	) | sha256sum | cut -d' ' -f1
}

want=$(inputs_of "$tier")
if [ "${BHATTI_REBUILD:-}" != 1 ] && [ -f "$out/rootfs-$tier.ext4" ] &&
   [ "$(cat "$out/rootfs-$tier.inputs" 2>/dev/null)" = "$want" ]; then
	say "cached ($(du -m "$out/rootfs-$tier.ext4" | cut -f1) MiB used, inputs ${want%"${want#????????????}"})"
	exit 0
fi

# Mounts made below (proc, sys, the package cache) live in a mount
# namespace of our own: they vanish with it, whatever happens.
if [ "${BHATTI_ROOTFS_NS:-}" != 1 ]; then
	BHATTI_ROOTFS_NS=1 exec unshare --mount --propagation private sh "$0" "$@"
fi

mkdir -p "$out/cache/debs"
log="$out/rootfs-$tier.log"
: > "$log"
start=$(date +%s)

# debootstrap with its phases and package counts as progress
bootstrap() {
	stage=$1
	say "debootstrap $suite (minbase) from $mirror"
	debootstrap --variant=minbase --cache-dir="$out/cache/debs" "$suite" "$stage" "$mirror" 2>&1 |
		tee -a "$log" | awk -v t="$tier" '
		/^I: Retrieving Release/ { print "rootfs-" t ": retrieving the package lists"; fflush() }
		/^I: (Retrieving|Extracting|Unpacking|Configuring) [a-z0-9]/ {
			phase = $2
			if (phase != last) {
				if (last != "") print "rootfs-" t ":   " tolower(last) " " n " packages"
				last = phase; n = 0
			}
			n++
			if (n % 25 == 0) { print "rootfs-" t ":   " tolower(phase) " " n " packages..."; fflush() }
		}
		/^E: / { print; fflush() }
		END { if (last != "") print "rootfs-" t ":   " tolower(last) " " n " packages" }'
	[ -x "$stage/bin/bash" ] || die "debootstrap failed; see $log"
}

# apt-get install in the stage, its percentage from APT::Status-Fd
install_pkgs() {
	stage=$1
	shift
	say "installing $(echo "$@" | wc -w) packages and their dependencies"
	# nothing starts services in the stage; packages from the cache
	printf '#!/bin/sh\nexit 101\n' > "$stage/usr/sbin/policy-rc.d"
	chmod 0755 "$stage/usr/sbin/policy-rc.d"
	mount --bind "$out/cache/debs" "$stage/var/cache/apt/archives"
	cp /etc/resolv.conf "$stage/etc/resolv.conf" 2>/dev/null || true
	chroot "$stage" apt-get update -q >>"$log" 2>&1 || die "apt-get update failed; see $log"
	# status lines on fd 3 ("pmstatus:pkg:PCT:text", "dlstatus:N:PCT:text")
	# become one line per 10 %; apt's own output goes to the log
	{ DEBIAN_FRONTEND=noninteractive chroot "$stage" apt-get install -y -q \
		--no-install-recommends -o APT::Status-Fd=3 -o APT::Keep-Downloaded-Packages=true \
		"$@" 3>&1 1>>"$log" 2>&1 || echo "FAILED"; } |
		awk -F: -v t="$tier" '
		$1 == "FAILED" { failed = 1 }
		$1 == "dlstatus" || $1 == "pmstatus" {
			what = ($1 == "dlstatus") ? "downloading" : "installing"
			p = int($3 / 10) * 10
			if (what != lastw || p != lastp) {
				printf "rootfs-%s:   %s %d%%\n", t, what, p; fflush()
				lastw = what; lastp = p
			}
		}
		END { exit failed }' || die "apt-get install failed; see $log"
	umount "$stage/var/cache/apt/archives"
	rm -f "$stage/usr/sbin/policy-rc.d"
}

# Stage each tier of the chain (a kept stage of a base tier is reused when
# its inputs are unchanged), then make the image of the last.
prev=""
for t in $chain; do
	stage="$out/rootfs-$t.stage"
	h=$(inputs_of "$t")
	if [ "$t" != "$tier" ] && [ -f "$stage/.inputs" ] && [ "$(cat "$stage/.inputs")" = "$h" ]; then
		say "reusing the staged '$t' tree"
		prev=$stage
		continue
	fi
	rm -rf "$stage"
	if [ -z "$prev" ]; then
		bootstrap "$stage"
		# the security and updates suites too (chromium comes from there)
		cat > "$stage/etc/apt/sources.list" <<EOF
deb $mirror $suite main
deb $mirror $suite-updates main
deb ${mirror%/debian}/debian-security $suite-security main
EOF
	else
		say "copying the staged tree of '$(basename "$prev" .stage | sed 's/^rootfs-//')'"
		cp -a --reflink=auto "$prev" "$stage"
	fi
	rm -f "$stage/.inputs"
	BASE="" PKGS="" NEEDS_KERNEL=""
	. "$here/tiers/$t.sh"
	mount -t proc proc "$stage/proc"
	mount -t sysfs sysfs "$stage/sys"
	# shellcheck disable=SC2086
	install_pkgs "$stage" $PKGS
	if [ -n "$NEEDS_KERNEL" ]; then
		KERNEL_DIR="$out/kernel"
		KERNEL_VERSION=$(cat "$out/kernel-version") ||
			die "needs the guest kernel first (images/kernel.sh $out)"
	fi
	say "setting up"
	tier_setup "$stage"
	umount "$stage/sys" "$stage/proc"
	# the hostname lives in the kernel only: lohar writes no file for it (a
	# symlink tells it the image manages these; agent/init.c)
	mkdir -p "$stage/etc/lohar"
	ln -sf /proc/sys/kernel/hostname "$stage/etc/hostname"
	printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' \
		> "$stage/etc/lohar/hosts"
	ln -sf lohar/hosts "$stage/etc/hosts"
	echo "$t" > "$stage/etc/lohar/tier"
	# no host settings left behind (lohar writes resolv.conf when configured)
	: > "$stage/etc/resolv.conf"
	# smaller image: no package caches or lists (apt-get update refetches them)
	rm -rf "$stage"/var/cache/apt/*.bin "$stage"/var/cache/apt/archives/*.deb \
		"$stage"/var/lib/apt/lists/* "$stage"/var/log/*.log "$stage"/var/log/apt/*
	echo "$h" > "$stage/.inputs"
	prev=$stage
done

say "making the ext4 image ($SIZE)"
rm -f "$out/rootfs-$tier.ext4.tmp"
# (.inputs is the build's, not the guest's: left out of the image)
mv "$stage/.inputs" "$out/rootfs-$tier.stage.inputs"
mkfs.ext4 -q -F -L bhatti-root -b 4096 -d "$stage" "$out/rootfs-$tier.ext4.tmp" "$SIZE"
mv "$out/rootfs-$tier.stage.inputs" "$stage/.inputs"
mv "$out/rootfs-$tier.ext4.tmp" "$out/rootfs-$tier.ext4"
echo "$want" > "$out/rootfs-$tier.inputs"
size=$SIZE
# only stages other tiers build on are kept
keep=""
for f in "$here"/tiers/*.sh; do
	BASE=""
	. "$f"
	[ "$BASE" = "$tier" ] && keep=1
done
[ -n "$keep" ] || rm -rf "$stage"
say "$out/rootfs-$tier.ext4 ($size, $(du -m "$out/rootfs-$tier.ext4" | cut -f1) MiB used) in $(( $(date +%s) - start ))s"
