#!/bin/sh
# install.sh — sets up a bhatti server on this machine from this checkout.
#
#   sudo ./install.sh            server: packages, build, images, config,
#                                data dir, service, an `admin` user whose
#                                key goes to the invoking user's
#                                ~/.bhatti/config.yaml
#   ./install.sh --cli           just build and install the `bhatti` CLI
#
# Safe to run again: existing config, data, users and sandboxes are kept;
# binaries and images are updated and the daemon restarted (sandboxes keep
# running and are adopted). Debian packages only; nothing is downloaded
# from elsewhere.
set -eu
cd "$(dirname "$0")"
SRC=$(pwd)

PREFIX=${PREFIX:-/usr/local}
CONF_DIR=${BHATTI_CONF_DIR:-/etc/bhatti}
DATA_DIR=${BHATTI_DATA_DIR:-/var/lib/bhatti}
LISTEN=${BHATTI_LISTEN:-127.0.0.1:8080}
# Each VM's QEMU runs as a uid of its own from this range (no user, group
# or subordinate id may use it: it is reserved in /etc/subuid and
# /etc/subgid, above where useradd hands out subordinate ids).
VM_UID_FIRST=1000000000
VM_UID_COUNT=100000
VM_UIDS=$VM_UID_FIRST-$((VM_UID_FIRST + VM_UID_COUNT - 1))
LOG=/var/log/bhatti.log
PIDFILE=/run/bhatti.pid

say() { printf 'install: %s\n' "$*"; }
die() { printf 'install: %s\n' "$*" >&2; exit 1; }

mode=server
[ "${1:-}" = "--cli" ] && mode=cli

if [ "$(id -u)" != 0 ]; then
	if [ "$mode" = cli ]; then
		sh scripts/deps.sh
		make
		say "built build/bhatti; copy it onto your PATH (e.g. sudo install -m 755 build/bhatti $PREFIX/bin/)"
		exit 0
	fi
	die "run as root (sudo ./install.sh), or ./install.sh --cli for the CLI only"
fi

say "packages"
sh scripts/deps.sh

# Build as the user who owns the checkout, so build/ stays theirs.
owner=$(stat -c %U "$SRC")
say "building (as $owner)"
if [ "$owner" != root ] && command -v runuser >/dev/null 2>&1; then
	runuser -u "$owner" -- make -C "$SRC" all
	[ "$mode" = server ] && runuser -u "$owner" -- make -C "$SRC" images
else
	make all
	[ "$mode" = server ] && make images
fi
install -m 755 build/bhatti "$PREFIX/bin/bhatti"
install -d "$PREFIX/share/bhatti/themes"
install -m 644 themes/*.yaml "$PREFIX/share/bhatti/themes/"
say "installed $PREFIX/bin/bhatti (themes of bhatti tui in $PREFIX/share/bhatti/themes)"
[ "$mode" = cli ] && exit 0

# --- server --------------------------------------------------------------
for f in /etc/subuid /etc/subgid; do
	grep -q "^bhatti-vms:$VM_UID_FIRST:$VM_UID_COUNT\$" "$f" 2>/dev/null ||
		echo "bhatti-vms:$VM_UID_FIRST:$VM_UID_COUNT" >>"$f"
done

# The daemon makes what it needs under the data dir with the modes it
# needs (root's, 0700: QEMU is given its files as descriptors).
mkdir -p "$CONF_DIR" "$DATA_DIR/images"
chmod 0755 "$DATA_DIR/images"
for f in vmlinux initramfs.cpio rootfs-tiny.ext4 rootfs-minimal.ext4; do
	[ -f "build/images/$f" ] || continue
	if ! cmp -s "build/images/$f" "$DATA_DIR/images/$f"; then
		cp --sparse=always "build/images/$f" "$DATA_DIR/images/$f.new"
		chmod 0644 "$DATA_DIR/images/$f.new"
		mv "$DATA_DIR/images/$f.new" "$DATA_DIR/images/$f"
		say "image $f updated"
	fi
done

if [ ! -f "$CONF_DIR/config.yaml" ]; then
	cat >"$CONF_DIR/config.yaml" <<EOF
# bhatti daemon configuration (docs/architecture.md lists every key)
listen: "$LISTEN"
data_dir: $DATA_DIR
accel: auto          # auto | kvm | tcg
vm_uids: $VM_UIDS   # each VM's QEMU runs as its own uid from this range
default_image: tiny
limits:
  max_sandboxes: 20
  max_cpus: 4
  max_memory_mb: 4096
  creates_per_min: 10
  execs_per_min: 120
  max_secrets: 100
EOF
	chmod 0644 "$CONF_DIR/config.yaml"
	say "wrote $CONF_DIR/config.yaml"
else
	say "keeping $CONF_DIR/config.yaml"
	# one user for every VM (vm_user) is gone: a uid of its own per VM
	if grep -q '^vm_user:' "$CONF_DIR/config.yaml"; then
		sed -i "s/^vm_user:.*/vm_uids: $VM_UIDS   # each VM's QEMU runs as its own uid from this range/" \
			"$CONF_DIR/config.yaml"
		say "config: vm_user replaced by vm_uids: $VM_UIDS"
	fi
fi
"$PREFIX/bin/bhatti" serve --help >/dev/null 2>&1 || true

# --- the service ---------------------------------------------------------
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
	sed -e "s|@PREFIX@|$PREFIX|g" -e "s|@CONF_DIR@|$CONF_DIR|g" -e "s|@DATA_DIR@|$DATA_DIR|g" \
		scripts/bhatti.service >/etc/systemd/system/bhatti.service
	systemctl daemon-reload
	systemctl enable bhatti.service >/dev/null 2>&1
	systemctl restart bhatti.service
	say "systemd unit bhatti.service (re)started"
else
	if [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
		kill "$(cat "$PIDFILE")"
		i=0
		while kill -0 "$(cat "$PIDFILE")" 2>/dev/null && [ $i -lt 50 ]; do
			sleep 0.1; i=$((i + 1))
		done
	fi
	nohup "$PREFIX/bin/bhatti" serve --config "$CONF_DIR/config.yaml" >>"$LOG" 2>&1 &
	echo $! >"$PIDFILE"
	say "no systemd: daemon started in the background (pid $(cat "$PIDFILE"), log $LOG)"
fi

url="http://$LISTEN"
case "$LISTEN" in :*) url="http://127.0.0.1$LISTEN" ;; esac
i=0
until curl -fsS "$url/health" >/dev/null 2>&1; do
	i=$((i + 1))
	[ $i -gt 100 ] && die "the daemon does not answer at $url (see $LOG or journalctl -u bhatti)"
	sleep 0.1
done
say "daemon answers at $url"

# --- the admin user and the invoking user's CLI config ---------------------
who=${SUDO_USER:-root}
home=$(getent passwd "$who" | cut -d: -f6)
cfg="$home/.bhatti/config.yaml"
if "$PREFIX/bin/bhatti" user list --config "$CONF_DIR/config.yaml" --json | grep -q '"name": *"admin"'; then
	if [ -f "$cfg" ]; then
		say "user 'admin' exists; keeping $cfg"
		key=""
	else
		key=$("$PREFIX/bin/bhatti" user rotate-key --config "$CONF_DIR/config.yaml" --name admin 2>/dev/null | sed -n 's/^API key: //p')
		say "user 'admin' exists but $cfg does not: rotated its key"
	fi
else
	key=$("$PREFIX/bin/bhatti" user create --config "$CONF_DIR/config.yaml" --name admin 2>/dev/null | sed -n 's/^API key: //p')
	[ -n "$key" ] || die "could not create the admin user"
	say "created user 'admin'"
fi
if [ -n "$key" ]; then
	mkdir -p "$home/.bhatti"
	chmod 0700 "$home/.bhatti"
	umask 077
	printf 'url: %s\ntoken: %s\n' "$url" "$key" >"$cfg.tmp"
	mv "$cfg.tmp" "$cfg"
	chown -R "$who" "$home/.bhatti" 2>/dev/null || true
	say "API key for 'admin' (shown once, saved in $cfg):"
	printf '\n    %s\n\n' "$key"
fi
say "done. Try: bhatti create --name test && bhatti exec test -- uname -a && bhatti destroy -y test"
