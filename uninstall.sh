#!/bin/bash
# uninstall.sh — removes a bhatti server install.sh made: stops the daemon
# (and its sandboxes' QEMUs), removes the systemd unit, the binary, the
# network rules and bridges; keeps the data dir (sandboxes, users, keys,
# age.key) and the config, and says so, unless --purge, which asks first
# (or takes --yes) and removes them too. Works piped:
#   curl -fsSL URL/uninstall.sh | sudo bash -s -- [--purge [--yes]]
# A CLI-only install is one file: rm ~/.local/bin/bhatti ~/.bhatti.
set -euo pipefail

say() { printf 'uninstall: %s\n' "$*"; }
die() { printf 'uninstall: %s\n' "$*" >&2; exit 1; }

main() {
exec </dev/null
purge=""
yes=""
conf_dir=${BHATTI_CONF_DIR:-/etc/bhatti}
while [ $# -gt 0 ]; do
	case $1 in
	--purge) purge=1 ;;
	-y|--yes) yes=1 ;;
	--conf-dir) [ $# -ge 2 ] || die "--conf-dir needs a value"; conf_dir=$2; shift ;;
	--conf-dir=*) conf_dir=${1#*=} ;;
	-h|--help)
		echo "usage: uninstall.sh [--purge [--yes]] [--conf-dir DIR (/etc/bhatti)]"
		exit 0 ;;
	*) die "unknown option '$1' (--help)" ;;
	esac
	shift
done
[ "$(id -u)" = 0 ] || die "run as root (sudo)"

record="$conf_dir/install.conf"
[ -f "$record" ] || die "no bhatti install recorded in $record (--conf-dir DIR names another)"
get() { sed -n "s/^$1=//p" "$record"; }
prefix=$(get PREFIX)
data_dir=$(get DATA_DIR)
src_dir=$(get SRC_DIR)
service=$(get SERVICE)
[ -n "$prefix" ] && [ -n "$data_dir" ] || die "$record is incomplete"

if [ -n "$purge" ] && [ -z "$yes" ]; then
	if { : </dev/tty; } 2>/dev/null; then
		printf 'Remove %s (every sandbox, user, secret and age.key) and %s for good? [y/N] ' \
			"$data_dir" "$conf_dir" >/dev/tty
		read -r a </dev/tty || true
		case $a in y|Y|yes) ;; *) die "nothing removed" ;; esac
	else
		die "--purge deletes every sandbox, secret and age.key: add --yes to confirm (no terminal to ask on)"
	fi
fi

# the daemon
if [ "$service" = systemd ] && command -v systemctl >/dev/null 2>&1 &&
   [ -f /etc/systemd/system/bhatti.service ]; then
	systemctl disable --now bhatti.service >/dev/null 2>&1 || true
	rm -f /etc/systemd/system/bhatti.service
	systemctl daemon-reload
	say "stopped and removed bhatti.service"
fi
pidfile="$data_dir/serve.pid"
if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
	pid=$(cat "$pidfile")
	kill "$pid"
	i=0
	while kill -0 "$pid" 2>/dev/null && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
	say "stopped the daemon (pid $pid)"
fi
rm -f "$pidfile"
# The sandboxes' QEMUs outlive the daemon (the next one re-adopts them):
# kept running unless everything goes (--purge).
vms=""
for p in /proc/[0-9]*; do
	cmd=$({ tr '\0' ' ' <"$p/cmdline"; } 2>/dev/null || true)
	case $cmd in
	*qemu-system*"$data_dir/"*) vms="$vms ${p#/proc/}" ;;
	esac
done
if [ -n "$vms" ] && [ -n "$purge" ]; then
	kill -9 $vms 2>/dev/null || true
	say "stopped $(echo $vms | wc -w) running sandbox VM(s)"
elif [ -n "$vms" ]; then
	say "$(echo $vms | wc -w) sandbox VM(s) keep running (an install again re-adopts them; --purge stops them)"
fi

# host networking the daemon made: the nftables tables (inet and bridge
# "bhatti"), users' bridges bhbr<N> and sandboxes' TAPs bt<id>. Only with
# --purge (without it the VMs keep running, and keep their isolation) and
# only for a system install (a throwaway one, --no-service, shares the
# host with other installs)
if [ "$service" != none ] && [ -n "$purge" ]; then
	if command -v nft >/dev/null 2>&1; then
		nft list tables 2>/dev/null | awk '$3 ~ /^bhatti/ { print $2, $3 }' | while read -r fam tbl; do
			nft delete table "$fam" "$tbl" && say "removed nftables table $fam $tbl"
		done
	fi
	for l in $(ip -o link show 2>/dev/null | awk -F': ' '$2 ~ /^(bhbr[0-9]+|bt[0-9a-f]+|btx[0-9a-z]+)(@|$)/ { sub(/@.*/, "", $2); print $2 }'); do
		ip link delete "$l" && say "removed the link $l"
	done
fi

rm -f "$prefix/bin/bhatti"
rm -f "$prefix/share/man/man1/bhatti.1" "$prefix/share/bash-completion/completions/bhatti" \
	"$prefix/share/fish/vendor_completions.d/bhatti.fish"
rm -rf "$prefix/share/bhatti" "$prefix/lib/bhatti"
say "removed $prefix/bin/bhatti"
# (a release install.sh downloaded and built; never a checkout)
if [ -n "$src_dir" ] && [ -f "$src_dir/Makefile" ]; then
	rm -rf "$src_dir"
	say "removed $src_dir"
fi

if [ -n "$purge" ]; then
	rm -rf "$data_dir" "$conf_dir"
	if [ "$service" != none ]; then
		for f in /etc/subuid /etc/subgid; do
			[ -f "$f" ] && sed -i '/^bhatti-vms:/d' "$f"
		done
	fi
	say "purged $data_dir and $conf_dir (age.key included)"
else
	say "kept $data_dir (sandboxes, users, keys, age.key) and $conf_dir/config.yaml: install.sh again picks them up; --purge removes them"
fi
}

main "$@"
