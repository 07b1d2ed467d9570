#!/bin/bash
# install.sh — installs or updates bhatti: the server (daemon, images,
# config, service, an admin user) or just the CLI. The same script runs
# from a checkout and piped:
#
#   curl -fsSL URL/install.sh | sudo bash -s -- --server --tier minimal
#   curl -fsSL URL/install.sh | bash -s -- --cli
#   sudo ./install.sh [OPTIONS]          (from a checkout or an unpacked release)
#
# Piped (or run outside a source tree), it downloads the release tarball
# from BHATTI_RELEASE_URL (the directory `make dist` fills), checks it
# against SHA256SUMS, unpacks it under --src-dir (/usr/local/src/bhatti,
# kept across updates so image builds are cached), builds and installs.
# Re-running is an update: config, data, users, keys and running sandboxes
# are kept (the daemon restarts and re-adopts them); only what changed is
# rebuilt. With a terminal it asks what flags and environment leave open
# (on /dev/tty, so it works piped); without one it never waits for input.
# Debian packages only. `./install.sh --help` lists the options.
set -euo pipefail

RELEASE_URL_DEFAULT="@RELEASE_URL@"       # filled in by `make dist`
VM_UIDS_DEFAULT=1000000000-1000099999     # reserved as bhatti-vms in /etc/subuid, /etc/subgid

say() { printf 'install: %s\n' "$*"; }
warn() { printf 'install: warning: %s\n' "$*" >&2; }
die() { printf 'install: %s\n' "$*" >&2; exit 1; }
need() { [ $# -ge 2 ] && [ -n "$2" ] || die "$1 needs a value (--help)"; }

usage() {
	cat <<'EOF'
usage: install.sh [--server | --cli] [OPTIONS]

  --server            the daemon, images, config, service, admin user (default as root)
  --cli               the `bhatti` CLI only (default otherwise; no root needed)
  --tier NAME         the default image tier (minimal, browser, docker, tiny); default minimal
  --tiers all|A,B     more tiers to build and install beside it
  --prefix DIR        where bin/bhatti goes (server: /usr/local; CLI: ~/.local, /usr/local as root)
  --conf-dir DIR      server config (/etc/bhatti)
  --data-dir DIR      server data (/var/lib/bhatti)
  --src-dir DIR       where a downloaded release is unpacked and built (/usr/local/src/bhatti)
  --listen HOST:PORT  the daemon's address (127.0.0.1:8080)
  --vm-uids A-B       the VM uid range (default reserved as bhatti-vms in /etc/subuid)
  --no-service        no service manager: start the daemon in the background (log and
                      pid file in the data dir); nothing outside the given dirs is touched
  -y, --yes           ask nothing (also when there is no terminal)
  -h, --help          this text

environment: BHATTI_MODE (cli|server), BHATTI_TIER, BHATTI_TIERS, BHATTI_RELEASE_URL,
BHATTI_PREFIX, BHATTI_CONF_DIR, BHATTI_DATA_DIR, BHATTI_LISTEN
EOF
}

# Piped, bash reads this script from stdin as it goes: everything is in
# main(), called on the last line, so all of it is read before anything
# runs, and nothing we start reads the rest of it (stdin is /dev/null).
main() {
exec </dev/null
# ---- options --------------------------------------------------------------
mode=${BHATTI_MODE:-}
tier=${BHATTI_TIER:-}
tiers=${BHATTI_TIERS:-}
prefix=${BHATTI_PREFIX:-}
conf_dir=${BHATTI_CONF_DIR:-}
data_dir=${BHATTI_DATA_DIR:-}
src_dir=${BHATTI_SRC_DIR:-}
listen=${BHATTI_LISTEN:-}
vm_uids=""
no_service=""
yes=""
release_url=${BHATTI_RELEASE_URL:-}
tier_given=""
while [ $# -gt 0 ]; do
	opt=$1
	case $opt in
	--*=*) set -- "${opt%%=*}" "${opt#*=}" "${@:2}"; continue ;;
	esac
	case $opt in
	--server) mode=server ;;
	--cli) mode=cli ;;
	--tier) need "$@"; tier=$2; tier_given=1; shift ;;
	--tiers) need "$@"; tiers=$2; shift ;;
	--prefix) need "$@"; prefix=$2; shift ;;
	--conf-dir) need "$@"; conf_dir=$2; shift ;;
	--data-dir) need "$@"; data_dir=$2; shift ;;
	--src-dir) need "$@"; src_dir=$2; shift ;;
	--listen) need "$@"; listen=$2; shift ;;
	--vm-uids) need "$@"; vm_uids=$2; shift ;;
	--no-service) no_service=1 ;;
	-y|--yes) yes=1 ;;
	-h|--help) usage; exit 0 ;;
	*) usage >&2; die "unknown option '$opt'" ;;
	esac
	shift
done
[ -n "${BHATTI_TIER:-}" ] && tier_given=1
case $vm_uids in *[!0-9-]*) die "--vm-uids wants FIRST-LAST, not '$vm_uids'" ;; esac
case $listen in *[!A-Za-z0-9.:_\[\]-]*) die "--listen wants HOST:PORT, not '$listen'" ;; esac
case $tier$tiers in *[!a-z0-9,-]*) die "tier names are [a-z0-9-] (--tier, --tiers)" ;; esac

# A terminal to ask on: /dev/tty opens only when there is one (piped
# installs read the script from stdin, so stdin is never asked).
tty=""
if [ -z "$yes" ] && { : </dev/tty; } 2>/dev/null && [ -t 2 ]; then
	tty=1
fi
ask() {   # ask PROMPT DEFAULT → the answer on stdout
	local a=""
	printf '%s [%s]: ' "$1" "$2" >/dev/tty
	read -r a </dev/tty || true
	printf '%s' "${a:-$2}"
}

os=$(uname -s)
arch=$(uname -m)
[ "$os" = Linux ] || die "bhatti runs on Linux (this is $os)"
root=""
[ "$(id -u)" = 0 ] && root=1

if [ -z "$mode" ]; then
	if [ -n "$tty" ]; then
		d=cli
		[ -n "$root" ] && d=server
		mode=$(ask "install the server (daemon + images) or only the CLI? server/cli" "$d")
	elif [ -n "$root" ]; then
		mode=server
	else
		mode=cli
	fi
fi
case $mode in
server|cli) ;;
*) die "mode must be 'server' or 'cli', not '$mode'" ;;
esac

# ---- an earlier server install: its choices are the defaults -------------
conf_dir=${conf_dir:-/etc/bhatti}
record="$conf_dir/install.conf"
# an update takes what the last install chose, unless told otherwise
if [ -n "$root" ] && [ "$mode" != cli ] && [ -f "$record" ]; then
	prev_prefix=$(sed -n 's/^PREFIX=//p' "$record")
	prev_data=$(sed -n 's/^DATA_DIR=//p' "$record")
	prev_tiers=$(sed -n 's/^TIERS=//p' "$record")
	prev_service=$(sed -n 's/^SERVICE=//p' "$record")
	prev_url=$(sed -n 's/^RELEASE_URL=//p' "$record")
	prefix=${prefix:-$prev_prefix}
	data_dir=${data_dir:-$prev_data}
	[ -z "$no_service" ] && [ "$prev_service" = none ] && no_service=1
	release_url=${release_url:-$prev_url}
	src_dir=${src_dir:-$(sed -n 's/^SRC_DIR=//p' "$record")}
	say "updating the install recorded in $record"
fi
# a CLI install's record (bhatti update --cli-only runs us with --prefix)
cli_record="$HOME/.bhatti/install.conf"
if [ "$mode" = cli ] && [ -f "$cli_record" ]; then
	release_url=${release_url:-$(sed -n 's/^RELEASE_URL=//p' "$cli_record")}
	src_dir=${src_dir:-$(sed -n 's/^SRC_DIR=//p' "$cli_record")}
fi

# ---- the source tree: this checkout, or the release tarball ---------------
here=""
if [ -n "${BASH_SOURCE[0]:-}" ] && [ -f "${BASH_SOURCE[0]}" ]; then
	here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
fi

fetch() {   # fetch URL FILE
	case $1 in
	/*) cp "$1" "$2" ;;
	*) curl -fsSL --retry 2 -o "$2" "$1" || die "cannot download $1" ;;
	esac
}

if [ -n "$here" ] && [ -f "$here/Makefile" ] && [ -f "$here/daemon/serve.c" ]; then
	SRC=$here
	say "installing from the source tree $SRC"
else
	# next to a `make dist` output, install.sh takes the tarball beside it
	if [ -z "$release_url" ] && [ -n "$here" ] && [ -f "$here/SHA256SUMS" ]; then
		release_url=$here
	fi
	case $RELEASE_URL_DEFAULT in @*) ;; *) release_url=${release_url:-$RELEASE_URL_DEFAULT} ;; esac
	[ -n "$release_url" ] || die "no release to download: set BHATTI_RELEASE_URL (the directory holding bhatti-*.tar.gz and SHA256SUMS)"
	release_url=${release_url%/}
	if [ -z "$src_dir" ]; then
		if [ -n "$root" ]; then src_dir=/usr/local/src/bhatti; else src_dir=$HOME/.local/src/bhatti; fi
	fi
	command -v curl >/dev/null || die "curl is needed (apt-get install curl)"
	dl=$(mktemp -d)
	say "downloading the release from $release_url"
	fetch "$release_url/SHA256SUMS" "$dl/SHA256SUMS"
	tarball=$(awk '$2 ~ /^\*?bhatti-.*\.tar\.gz$/ { sub(/^\*/, "", $2); print $2; exit }' "$dl/SHA256SUMS")
	[ -n "$tarball" ] || die "SHA256SUMS at $release_url names no bhatti-*.tar.gz"
	case $tarball in */*|..*) die "SHA256SUMS names a bad file '$tarball'" ;; esac
	fetch "$release_url/$tarball" "$dl/$tarball"
	if ! (cd "$dl" && grep -E "^[0-9a-f]{64} [ *]$tarball\$" SHA256SUMS | sha256sum -c --status); then
		rm -rf "$dl"
		die "$tarball does not match its SHA256SUMS: refusing to install it (a broken download, or a tampered file)"
	fi
	say "$tarball: checksum ok"
	# the same directory across updates: build/ (objects, image caches) is kept
	if [ -d "$src_dir" ] && [ -n "$(ls -A "$src_dir" | grep -vx build)" ] && [ ! -f "$src_dir/daemon/serve.c" ]; then
		die "--src-dir $src_dir holds something else than bhatti's sources: not touching it"
	fi
	# Only files whose content changed are replaced (and so get a new
	# mtime: make rebuilds what depends on them, whatever the tarball's
	# times); files gone from the release go; build/ stays (objects and
	# image caches: an update rebuilds only what changed).
	mkdir -p "$src_dir" "$dl/src"
	tar -xzf "$dl/$tarball" -C "$dl/src" --strip-components=1 --no-same-owner
	(cd "$dl/src" && find . -type f) | while read -r f; do
		if ! cmp -s "$dl/src/$f" "$src_dir/$f"; then
			mkdir -p "$(dirname "$src_dir/$f")"
			cp -p "$dl/src/$f" "$src_dir/$f.new" && touch "$src_dir/$f.new" && mv "$src_dir/$f.new" "$src_dir/$f"
		fi
	done
	(cd "$src_dir" && find . -path ./build -prune -o -type f -print) | while read -r f; do
		[ -e "$dl/src/$f" ] || rm -f "$src_dir/$f"
	done
	rm -rf "$dl"
	SRC=$src_dir
	say "unpacked into $SRC"
fi
cd "$SRC"
VERSION=$(sed -n 's/^VERSION *:= *//p' Makefile)

# ---- CLI ------------------------------------------------------------------
install_bin() {   # install_bin DIR
	mkdir -p "$1/bin"
	install -m 755 build/bhatti "$1/bin/bhatti.new"
	mv "$1/bin/bhatti.new" "$1/bin/bhatti"
	say "installed $1/bin/bhatti ($VERSION)"
	# the man page and shell completion, both generated from the command table
	install -D -m 644 build/bhatti.1 "$1/share/man/man1/bhatti.1"
	local sh
	for sh in bash zsh fish; do build/bhatti completion $sh >"build/bhatti.$sh"; done
	install -D -m 644 build/bhatti.bash "$1/share/bash-completion/completions/bhatti"
	install -D -m 644 build/bhatti.zsh "$1/share/bhatti/completion.zsh"
	install -D -m 644 build/bhatti.fish "$1/share/fish/vendor_completions.d/bhatti.fish"
	say "installed the man page and bash and fish completion (zsh: add 'source $1/share/bhatti/completion.zsh' to ~/.zshrc)"
	# the themes of bhatti tui (it has the default and mono built in)
	install -d "$1/share/bhatti/themes"
	install -m 644 themes/*.yaml "$1/share/bhatti/themes/"
	say "installed the themes of bhatti tui in $1/share/bhatti/themes"
}

# What is installed comes from build/, built as a plain `make` would: not
# by the caller's make configuration (run from a make recipe, as in `make
# asan`'s tests, MAKEFLAGS and the environment carry BUILD=build/asan
# SAN=1: the targets under build/ were then not made, or by a sanitizer
# build)
unset MAKEFLAGS MFLAGS MAKELEVEL
build() {   # build TARGETS...
	local owner
	owner=$(stat -c %U "$SRC")
	set -- BUILD=build SAN= "$@"
	if [ -n "$root" ] && [ "$owner" != root ] && command -v runuser >/dev/null 2>&1; then
		runuser -u "$owner" -- make -C "$SRC" --no-print-directory -j"$(nproc)" "$@"   # build/ stays theirs
	else
		make -C "$SRC" --no-print-directory -j"$(nproc)" "$@"
	fi
}

if [ "$mode" = cli ]; then
	if [ -z "$prefix" ]; then
		if [ -n "$root" ]; then prefix=/usr/local; else prefix=$HOME/.local; fi
	fi
	sh scripts/deps.sh || die "missing build dependencies (see above); scripts/deps.sh --list names them"
	say "building the CLI"
	build build/bhatti build/bhatti.1 >/dev/null
	install_bin "$prefix"
	mkdir -p "$HOME/.bhatti"
	printf '# written by install.sh --cli: what `bhatti update` uses\nRELEASE_URL=%s\nPREFIX=%s\nSRC_DIR=%s\n' \
		"${release_url:-}" "$prefix" "${src_dir:-}" >"$cli_record"
	case ":$PATH:" in *":$prefix/bin:"*) ;; *) say "add $prefix/bin to your PATH" ;; esac
	if [ -n "$tty" ] && [ ! -f "$HOME/.bhatti/config.yaml" ]; then
		say "now the server's URL and your API key (bhatti setup)"
		"$prefix/bin/bhatti" setup </dev/tty || warn "setup did not finish: run 'bhatti setup' later"
	elif [ ! -f "$HOME/.bhatti/config.yaml" ]; then
		say "next: bhatti setup --url http://SERVER:8080 --token bht_..."
	fi
	exit 0
fi

# ---- server ----------------------------------------------------------------
[ -n "$root" ] || die "the server installs as root (sudo), or use --cli for the CLI only"
case $arch in
x86_64|amd64) ;;
*) die "the server runs on x86_64 only (QEMU microvm with Debian's amd64 guest kernel); this is $arch. The CLI works here: --cli" ;;
esac

prefix=${prefix:-/usr/local}
data_dir=${data_dir:-/var/lib/bhatti}
listen=${listen:-127.0.0.1:8080}

config="$conf_dir/config.yaml"
if [ -z "$tier" ] && [ -f "$config" ]; then
	tier=$(sed -n 's/^default_image: *\([a-z0-9-]*\).*/\1/p' "$config")
fi
if [ -z "$tier" ]; then
	tier=minimal
	[ -n "$tty" ] && tier=$(ask "default image tier (minimal, browser, docker, tiny)" minimal)
fi
[ -f "images/tiers/$tier.sh" ] || [ "$tier" = tiny ] ||
	die "no tier '$tier' (tiers: tiny $(ls images/tiers | sed 's/\.sh$//' | tr '\n' ' '))"
[ "$tiers" = all ] && tiers=$(ls images/tiers | sed 's/\.sh$//' | tr '\n' ',')
# every tier installed before stays (and is updated)
all_tiers=$(printf '%s\n' "$tier" $(echo "${tiers:-}" | tr ',' ' ') $(echo "${prev_tiers:-}" | tr ',' ' ') |
	awk 'NF && !seen[$0]++' | tr '\n' ',' | sed 's/,$//')
for t in $(echo "$all_tiers" | tr ',' ' '); do
	[ "$t" = tiny ] || [ -f "images/tiers/$t.sh" ] || die "no tier '$t'"
done

# KVM: the daemon probes it (accel: auto); say what to expect
if [ -r /dev/kvm ] && [ -w /dev/kvm ]; then
	say "/dev/kvm is there: the daemon checks that it works and falls back to TCG if not"
else
	warn "no usable /dev/kvm: sandboxes will run under QEMU's TCG (software emulation: boots take seconds, commands are several times slower)"
fi
# reflink: clones of images and snapshots are copies on ext4
fs=$(df --output=fstype "$(dirname "$data_dir")" 2>/dev/null | tail -n 1 || true)
[ -d "$data_dir" ] && fs=$(df --output=fstype "$data_dir" | tail -n 1)
case $fs in
btrfs|xfs) say "data dir on $fs: sandbox disks are reflink clones" ;;
*) say "data dir on ${fs:-?}: every create copies its tier's disk; on xfs or btrfs it is a reflink clone (measured here for 'minimal': 1.7-4 s and 891 MiB per sandbox on ext4, under 0.2 s and no space on xfs). docs/self-hosting.md, \"reflink\", has a loop-image recipe" ;;
esac

say "packages"
sh scripts/deps.sh
say "building bhatti $VERSION"
build all
say "building the images: $(printf 'tiny,%s' "$all_tiers" | tr ',' '\n' | awk '!seen[$0]++' | tr '\n' ' ')"
build images TIERS="$all_tiers"

install_bin "$prefix"
# the hook that lets Debian's uacme answer http-01 through the public
# proxy (docs/publishing.md, "ACME"), its default answer dir this data dir's
mkdir -p "$prefix/lib/bhatti"
sed "s|^dir=\${BHATTI_ACME_DIR:-/var/lib/bhatti/acme/http-01}|dir=\${BHATTI_ACME_DIR:-$data_dir/acme/http-01}|" \
	scripts/uacme-hook.sh >"$prefix/lib/bhatti/uacme-hook.sh"
chmod 755 "$prefix/lib/bhatti/uacme-hook.sh"
say "installed $prefix/lib/bhatti/uacme-hook.sh (ACME with uacme: docs/publishing.md)"

# VM uids: the default range is reserved for bhatti in the subordinate-id
# files (no user namespace may map it); a range given is the admin's own
if [ -z "$vm_uids" ] && [ -f "$config" ]; then
	vm_uids=$(sed -n 's/^vm_uids: *\([0-9-]*\).*/\1/p' "$config")
fi
vm_uids=${vm_uids:-$VM_UIDS_DEFAULT}
if [ "$vm_uids" = "$VM_UIDS_DEFAULT" ] && [ -z "$no_service" ]; then
	first=${vm_uids%-*}
	count=$(( ${vm_uids#*-} - first + 1 ))
	for f in /etc/subuid /etc/subgid; do
		grep -q "^bhatti-vms:$first:$count\$" "$f" 2>/dev/null ||
			echo "bhatti-vms:$first:$count" >>"$f"
	done
fi

# The daemon makes what it needs under the data dir with the modes it
# needs (root's, 0700: QEMU is given its files as descriptors).
mkdir -p "$conf_dir" "$data_dir/images"
chmod 0755 "$data_dir/images"
files="vmlinux initramfs.cpio rootfs-tiny.ext4"
for t in $(echo "$all_tiers" | tr ',' ' '); do files="$files rootfs-$t.ext4"; done
for f in $files; do
	[ -f "build/images/$f" ] || die "build/images/$f was not built"
	if ! cmp -s "build/images/$f" "$data_dir/images/$f"; then
		cp --sparse=always "build/images/$f" "$data_dir/images/$f.new"
		chmod 0644 "$data_dir/images/$f.new"
		mv "$data_dir/images/$f.new" "$data_dir/images/$f"
		say "image $f updated"
	fi
done

if [ ! -f "$config" ]; then
	cat >"$config" <<EOF
# bhatti daemon configuration (docs/architecture.md lists every key)
listen: "$listen"
data_dir: $data_dir
accel: auto          # auto | kvm | tcg
vm_uids: $vm_uids   # each VM's QEMU runs as its own uid from this range
default_image: $tier
limits:
  max_sandboxes: 20
  max_cpus: 4
  max_memory_mb: 4096
  creates_per_min: 10
  execs_per_min: 120
  max_secrets: 100
EOF
	chmod 0644 "$config"
	say "wrote $config"
else
	say "keeping $config"
	if [ -n "$tier_given" ] && ! grep -q "^default_image: *$tier *\$" "$config"; then
		sed -i "s/^default_image:.*/default_image: $tier/" "$config"
		grep -q '^default_image:' "$config" || echo "default_image: $tier" >>"$config"
		say "config: default_image is now $tier"
	fi
	# one user for every VM (vm_user) is gone: a uid of its own per VM
	if grep -q '^vm_user:' "$config"; then
		sed -i "s/^vm_user:.*/vm_uids: $vm_uids   # each VM's QEMU runs as its own uid from this range/" "$config"
		say "config: vm_user replaced by vm_uids: $vm_uids"
	fi
fi
listen=$(sed -n 's/^listen: *"\{0,1\}\([^" ]*\)"\{0,1\}.*/\1/p' "$config")
service=systemd
[ -n "$no_service" ] && service=none
cat >"$record.tmp" <<EOF
# written by install.sh: what \`bhatti update\` and uninstall.sh use
VERSION=$VERSION
PREFIX=$prefix
CONF_DIR=$conf_dir
DATA_DIR=$data_dir
SRC_DIR=${src_dir:-}
TIERS=$all_tiers
SERVICE=$service
RELEASE_URL=${release_url:-}
EOF
mv "$record.tmp" "$record"

# ---- guest networking: forwarding and the modules (the daemon, under
# systemd, may change neither; docs/architecture.md "Networking") ---------
if [ -z "$no_service" ]; then
	echo "net.ipv4.ip_forward = 1" >/etc/sysctl.d/90-bhatti.conf
	printf 'tun\nbridge\n' >/etc/modules-load.d/bhatti.conf
	sysctl -q -w net.ipv4.ip_forward=1 || warn "could not turn on ip_forward (guests get no internet)"
	modprobe -q tun 2>/dev/null || true
	modprobe -q bridge 2>/dev/null || true
	say "guest networking: ip_forward on, modules tun and bridge"
fi

# ---- the service (a restart: running sandboxes are adopted) ----------------
pidfile="$data_dir/serve.pid"
if [ -z "$no_service" ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
	sed -e "s|@PREFIX@|$prefix|g" -e "s|@CONF_DIR@|$conf_dir|g" -e "s|@DATA_DIR@|$data_dir|g" \
		scripts/bhatti.service >/etc/systemd/system/bhatti.service
	systemctl daemon-reload
	systemctl enable bhatti.service >/dev/null 2>&1
	systemctl restart bhatti.service
	say "systemd unit bhatti.service (re)started"
	logs="journalctl -u bhatti"
else
	[ -z "$no_service" ] && warn "no systemd here: the daemon runs in the background, not restarted at boot"
	if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
		pid=$(cat "$pidfile")
		kill "$pid"
		i=0
		while kill -0 "$pid" 2>/dev/null; do
			i=$((i + 1))
			[ $i -gt 300 ] && die "the old daemon (pid $pid) did not stop"
			sleep 0.1
		done
	fi
	logs="$data_dir/serve.log"
	setsid "$prefix/bin/bhatti" serve --config "$config" >>"$logs" 2>&1 </dev/null &
	echo $! >"$pidfile"
	say "daemon started in the background (pid $(cat "$pidfile"), log $logs)"
fi

url="http://$listen"
case $listen in :*) url="http://127.0.0.1$listen" ;; esac
i=0
until health=$(curl -fsS "$url/health" 2>/dev/null); do
	i=$((i + 1))
	[ $i -gt 600 ] && die "the daemon does not answer at $url (see $logs)"
	sleep 0.1
done
accel=$(printf '%s' "$health" | sed -n 's/.*"accel": *"\([a-z]*\)".*/\1/p')
say "daemon answers at $url (accelerator: ${accel:-?})"
[ "$accel" = tcg ] && warn "KVM does not work here: sandboxes run under TCG (slow)"

# ---- the admin user; its key in root's and the sudo user's CLI config ------
homes=$HOME
if [ -n "${SUDO_USER:-}" ] && [ "$SUDO_USER" != root ]; then
	homes=$(printf '%s\n' "$HOME" "$(getent passwd "$SUDO_USER" | cut -d: -f6)" | awk 'NF && !seen[$0]++')
fi
missing=""
for h in $homes; do [ -f "$h/.bhatti/config.yaml" ] || missing=1; done
bh() { "$prefix/bin/bhatti" user "$@" --config "$config"; }
key=""
if bh list --json | grep -q '"name": *"admin"'; then
	if [ -n "$missing" ]; then
		key=$(bh rotate-key --name admin 2>/dev/null | sed -n 's/^API key: //p')
		say "user 'admin' exists; a CLI config was missing: its key is rotated"
	else
		say "user 'admin' exists; keeping its key"
	fi
else
	key=$(bh create --name admin --max-sandboxes 100 --max-cpus 16 --max-memory 65536 2>/dev/null |
		sed -n 's/^API key: //p')
	[ -n "$key" ] || die "could not create the admin user"
	say "created user 'admin'"
fi
if [ -n "$key" ]; then
	for h in $homes; do
		mkdir -p "$h/.bhatti"
		owner=$(stat -c %u:%g "$h")
		chmod 0700 "$h/.bhatti"
		(umask 077; printf 'api_url: %s\nauth_token: %s\n' "$url" "$key" >"$h/.bhatti/config.yaml.tmp")
		mv "$h/.bhatti/config.yaml.tmp" "$h/.bhatti/config.yaml"
		chown -R "$owner" "$h/.bhatti"
		say "saved the admin key in $h/.bhatti/config.yaml"
	done
	say "API key for 'admin' (shown once):"
	printf '\n    %s\n\n' "$key"
fi
say "back up $data_dir/age.key (it decrypts every secret and stopped sandbox) and $data_dir/state.db"
say "done. Try: bhatti create --name test && bhatti exec test -- uname -a && bhatti destroy -y test"
}

main "$@"
