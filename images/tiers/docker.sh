# docker — minimal plus Debian's docker.io, and the guest kernel modules
# it needs (overlay, bridge, veth, netfilter with NAT) under /lib/modules
# so the guest's modprobe finds them. `start-docker` (it sudoes itself) mounts the
# cgroup2 hierarchy, loads the modules and starts dockerd (the guest has
# no service manager: lohar is PID 1). Sourced by images/rootfs-debian.sh.
BASE=minimal
SIZE=8G
NEEDS_KERNEL=1
PKGS="docker.io iptables kmod"

# Module directories (under kernel/) copied whole; their dependencies from
# modules.dep follow.
MODDIRS="fs/overlayfs net/bridge net/802 net/llc net/netfilter net/ipv4/netfilter
net/ipv6/netfilter drivers/net/veth.ko drivers/net/dummy.ko drivers/net/macvlan.ko
drivers/net/vxlan net/sched"

tier_setup() {
	stage=$1
	kernel=$KERNEL_DIR                        # OUT/kernel (images/kernel.sh)
	kver=$KERNEL_VERSION
	src="$kernel/lib/modules/$kver"
	dst="$stage/lib/modules/$kver"
	rm -rf "$dst"
	mkdir -p "$dst"
	cp "$src"/modules.builtin "$src"/modules.builtin.modinfo "$src"/modules.order "$dst"/
	want=$(cd "$src" && for d in $MODDIRS; do
		[ -e "kernel/$d" ] && find "kernel/$d" -name '*.ko'
	done)
	# each module with its dependencies (modules.dep: "path: dep dep ...")
	all=$(printf '%s\n' $want | awk 'NR == FNR { w[$0] = 1; next }
		{ p = $1; sub(/:$/, "", p); if (p in w) { print p; for (i = 2; i <= NF; i++) print $i } }' \
		- "$src/modules.dep" | sort -u)
	for m in $all; do
		mkdir -p "$dst/$(dirname "$m")"
		cp "$src/$m" "$dst/$m"
	done
	depmod -b "$stage" "$kver"
	chroot "$stage" /usr/sbin/usermod -aG docker lohar
	cat > "$stage/usr/local/bin/start-docker" <<'SH'
#!/bin/sh
# start-docker — start dockerd in this sandbox (lohar is PID 1: there is
# no service manager). Idempotent. Log: /var/log/dockerd.log.
set -eu
[ "$(id -u)" = 0 ] || exec sudo "$0" "$@"
if [ -S /var/run/docker.sock ] && docker info >/dev/null 2>&1; then
	exit 0
fi
mountpoint -q /sys/fs/cgroup || mount -t cgroup2 cgroup2 /sys/fs/cgroup
for m in overlay bridge br_netfilter veth nf_nat nf_conntrack xt_MASQUERADE \
	 xt_addrtype xt_conntrack nft_chain_nat nft_compat iptable_nat iptable_filter; do
	modprobe "$m" 2>/dev/null || true
done
# a session of its own: the exec that started it may end (or be cancelled,
# which kills its process group) while dockerd runs on
setsid -f dockerd >/var/log/dockerd.log 2>&1 </dev/null
i=0
until docker info >/dev/null 2>&1; do
	i=$((i + 1))
	if [ $i -gt 300 ]; then
		echo "start-docker: dockerd did not come up; see /var/log/dockerd.log" >&2
		tail -n 20 /var/log/dockerd.log >&2
		exit 1
	fi
	sleep 0.1
done
# lohar's execs run as uid 1000 without supplementary groups (the docker
# group does not reach them): the socket is the sandbox user's, who has
# passwordless sudo anyway
chmod 0666 /var/run/docker.sock
SH
	chmod 0755 "$stage/usr/local/bin/start-docker"
}
