#!/bin/bash
# check-install.sh — install.sh and uninstall.sh as a new user meets them:
# `make dist`'s output served by a loopback HTTP server, the installer
# piped from curl into bash. The CLI into a throwaway prefix, then
# `bhatti update --cli-only` (the same prefix and source dir); a tampered
# tarball refused by its checksum; a server (as root) into a throwaway
# prefix, config dir, data dir and source dir with no service manager,
# its tier from the environment: /health answers, `bhatti images` lists
# the tier, a sandbox is created; `bhatti update` (a re-run) keeps the
# admin key and the running sandbox; with a terminal (a pseudo-terminal,
# tests/on-tty.py) the piped installer asks CLI or server and `bhatti
# setup` asks the URL and key; uninstall keeps the data, `--purge`
# without `--yes` (no terminal) is refused, `--purge --yes` removes it;
# from the checkout, with a terminal, it asks the tier. Without a
# terminal nothing may wait for input: every run has a time limit.
# Nothing outside its temp dir is touched (no /etc/bhatti,
# /var/lib/bhatti, /usr/local, systemd or /etc/subuid). TAP for
# tests/run.sh.
#
# Usage: tests/check-install.sh (from the tree's top; BUILD: the build dir,
# whose images/ seeds the server install's image cache)
set -u
build=${BUILD:-build}
echo "1..12"
T=$(mktemp -d /tmp/bhatti-install-test.XXXXXX)
httpd=""
# the pids of QEMUs whose command line names our temp dir
our_qemus() {
	for p in /proc/[0-9]*; do
		case $({ tr '\0' ' ' <"$p/cmdline"; } 2>/dev/null) in
		*qemu-system*"$T/"*) echo "${p#/proc/}" ;;
		esac
	done
}
cleanup() {
	for p in "$T/data/serve.pid" "$T/cdata/serve.pid" "$T/ttydata/serve.pid"; do
		[ -f "$p" ] && kill -9 "$(cat "$p")" 2>/dev/null
	done
	for p in $(our_qemus); do kill -9 "$p" 2>/dev/null; done
	[ -n "$httpd" ] && kill "$httpd" 2>/dev/null
	[ -n "${KEEP_TEST_DIRS:-}" ] && { echo "# kept $T"; return; }
	rm -rf "$T"
}
trap cleanup EXIT
n=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
notok() { n=$((n + 1)); echo "not ok $n - $1"; shift; for f in "$@"; do [ -f "$f" ] && tail -n 30 "$f" | sed 's/^/# /'; done; }
skip() { n=$((n + 1)); echo "ok $n # SKIP $1"; }
# run without a controlling terminal, stdin an open pipe nothing writes
# to (as under a CI runner): the installer must never wait for input (a
# read of stdin would block; a run that waits is killed at the limit:
# exit 124)
limit=${INSTALL_TIMEOUT:-900}
mkfifo "$T/no-input"
exec 7<>"$T/no-input"
detached() { setsid -w timeout -k 10 "$limit" "$@" <&7 7<&-; }
# run on a pseudo-terminal, answering PROMPT=ANSWER...: on_tty ARGS -- CMD
on_tty() { python3 tests/on-tty.py "$limit" "$@" </dev/null; }
# the prompts install.sh shows with a terminal
prompts='or only the CLI|default image tier|API URL'
# the value of KEY: in a CLI config (config.yaml)
conf_value() { sed -n "s/^$1: *\"\{0,1\}\([^\"]*\)\"\{0,1\}\$/\1/p" "$2"; }
# wall seconds of what ran since $t0 (the benchmark's install times)
took() { echo "# $1: $(( $(date +%s) - t0 )) s"; }

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
url="http://127.0.0.1:$port"
make --no-print-directory -s dist BUILD="$build" DIST="$T/dist" RELEASE_URL="$url" >"$T/dist.log" 2>&1 ||
	{ echo "Bail out! make dist failed"; cat "$T/dist.log" | sed 's/^/# /'; exit 1; }
python3 -m http.server --bind 127.0.0.1 --directory "$T/dist" "$port" >"$T/httpd.log" 2>&1 &
httpd=$!
for _ in $(seq 100); do curl -fs "$url/SHA256SUMS" >/dev/null && break; sleep 0.1; done

# 1. make dist: tarball, SHA256SUMS, install.sh (with this URL), uninstall.sh
if (cd "$T/dist" && sha256sum -c --quiet SHA256SUMS) && grep -q "RELEASE_URL_DEFAULT=\"$url\"" "$T/dist/install.sh" &&
   [ -x "$T/dist/uninstall.sh" ] && tar -tzf "$T/dist"/bhatti-*.tar.gz | grep -q '^bhatti-[0-9.]*/daemon/serve.c$'; then
	ok "make dist: tarball, SHA256SUMS, install.sh, uninstall.sh"
else
	notok "make dist" "$T/dist.log"
fi

# 2. the CLI, piped, into a prefix (HOME is the temp dir's: its record)
mkdir -p "$T/home"
t0=$(date +%s)
if detached env HOME="$T/home" bash -c "curl -fsSL $url/install.sh | bash -s -- --cli --prefix $T/cli --src-dir $T/cli-src" \
	>"$T/cli.log" 2>&1 && "$T/cli/bin/bhatti" help >/dev/null && "$T/cli/bin/bhatti" images --help >/dev/null &&
   grep -q "checksum ok" "$T/cli.log" && grep -q "RELEASE_URL=$url" "$T/home/.bhatti/install.conf"; then
	ok "piped --cli install into a prefix"
	took "piped --cli install (download, build of bhatti)"
else
	notok "piped --cli install into a prefix" "$T/cli.log"
fi

# 3. the CLI updates itself from the release it came from
if detached env HOME="$T/home" "$T/cli/bin/bhatti" update --cli-only >"$T/cli-update.log" 2>&1 &&
   grep -q "installed $T/cli/bin/bhatti" "$T/cli-update.log" && grep -q "unpacked into $T/cli-src" "$T/cli-update.log"; then
	ok "bhatti update --cli-only: the same prefix and source dir"
else
	notok "bhatti update --cli-only" "$T/cli-update.log"
fi

# 4. a tampered tarball is refused, nothing installed
mkdir -p "$T/dist/bad"
cp "$T/dist/SHA256SUMS" "$T/dist"/bhatti-*.tar.gz "$T/dist/bad/"
printf 'x' >>"$T/dist/bad/$(cd "$T/dist" && ls bhatti-*.tar.gz)"
if ! detached env HOME="$T/home" BHATTI_RELEASE_URL="$url/bad" bash -c \
	"curl -fsSL $url/install.sh | bash -s -- --cli --prefix $T/bad --src-dir $T/bad-src" >"$T/bad.log" 2>&1 &&
   grep -q "does not match its SHA256SUMS" "$T/bad.log" && [ ! -e "$T/bad/bin/bhatti" ] && [ ! -e "$T/bad-src" ]; then
	ok "a tampered tarball is refused"
else
	notok "a tampered tarball is refused" "$T/bad.log"
fi

if [ "$(id -u)" != 0 ]; then
	for t in "server install" "images and a sandbox" "update keeps key and sandbox" "the prompts on a terminal" \
		 "uninstall keeps data" "purge needs --yes" "purge --yes removes" "checkout install"; do
		skip "$t (needs root)"
	done
	exit 0
fi

# 5. the server, piped, into throwaway dirs, no service manager. Built in
# the CLI's source dir (build/ is kept across installs: only lohar and the
# images are new), its image cache seeded from this tree's, so the kernel
# package is not downloaded again. No terminal: the mode is root's
# default (server) and the tier comes from BHATTI_TIER, nothing asked.
mkdir -p "$T/cli-src/build/images" "$T/root"
images=${BHATTI_IMAGES:-build/images}
for f in cache kernel kernel-version kernel.stamp vmlinux; do
	cp -a "$images/$f" "$T/cli-src/build/images/"
done
sport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
t0=$(date +%s)
server_args="--prefix $T/p --conf-dir $T/etc --data-dir $T/data --src-dir $T/cli-src
--listen 127.0.0.1:$sport --vm-uids 200000-299999 --no-service"
if detached env HOME="$T/root" SUDO_USER= BHATTI_TIER=tiny bash -c "curl -fsSL $url/install.sh | bash -s -- $(echo $server_args)" \
	>"$T/server.log" 2>&1 && curl -fsS "http://127.0.0.1:$sport/health" | grep -q '"status"' &&
   grep -q '^default_image: tiny' "$T/etc/config.yaml" && [ -s "$T/root/.bhatti/config.yaml" ] &&
   ! grep -Eq "$prompts" "$T/server.log" && [ -x "$T/p/lib/bhatti/uacme-hook.sh" ]; then
	ok "piped server install into throwaway dirs, no terminal (mode and tier by default and env): /health answers, the uacme hook installed"
	took "piped --server --tier tiny install (download, build of lohar, tiny and initramfs images, daemon, admin)"
else
	notok "piped server install" "$T/server.log" "$T/data/serve.log"
fi
cli() { HOME="$T/root" "$T/p/bin/bhatti" "$@"; }

# 6. the admin's CLI config works: the tier listed, a sandbox made
key1=$(conf_value auth_token "$T/root/.bhatti/config.yaml")
if cli images >"$T/images.out" 2>&1 && grep -Eq '^tiny +[0-9.]+M +[0-9.]+[KM] +yes' "$T/images.out" &&
   cli create --name keep >"$T/create.out" 2>&1 && cli exec keep -- sh -c 'echo hi >/tmp/mark' >/dev/null 2>&1; then
	ok "bhatti images lists tiny (default); a sandbox is created"
else
	notok "bhatti images and create" "$T/images.out" "$T/create.out" "$T/data/serve.log"
fi

# 7. `bhatti update` re-runs the installer: same key, same running sandbox
pid1=$(cat "$T/data/serve.pid" 2>/dev/null)
t0=$(date +%s)
if detached env HOME="$T/root" SUDO_USER= BHATTI_CONF_DIR="$T/etc" "$T/p/bin/bhatti" update >"$T/update.log" 2>&1 &&
   [ -n "$key1" ] && [ "$(conf_value auth_token "$T/root/.bhatti/config.yaml")" = "$key1" ] &&
   [ "$(cat "$T/data/serve.pid")" != "$pid1" ] && grep -q "keeping its key" "$T/update.log" &&
   [ "$(cli exec keep -- cat /tmp/mark 2>&1)" = hi ]; then
	ok "bhatti update: new daemon, same admin key, the sandbox re-adopted with its /tmp"
	took "bhatti update with nothing changed"
else
	notok "bhatti update keeps key and sandbox" "$T/update.log" "$T/data/serve.log"
fi

# 8. piped, with a terminal and no mode given: it asks (on /dev/tty: its
# stdin is the script) CLI or server, answered cli; the CLI then runs
# `bhatti setup`, which asks the URL and the key (the admin's). (Were the
# answer lost, root's default, a server, would be installed: into temp
# dirs too, by the flags and environment given here.)
surl="http://127.0.0.1:$sport"
tport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
if on_tty "or only the CLI=cli" "API URL=$surl" "API key=$key1" -- env HOME="$T/ttyhome" \
	BHATTI_CONF_DIR="$T/ttyetc" BHATTI_DATA_DIR="$T/ttydata" BHATTI_TIER=tiny bash -c \
	"curl -fsSL $url/install.sh | bash -s -- --prefix $T/tty --src-dir $T/cli-src --no-service \
	 --listen 127.0.0.1:$tport --vm-uids 200000-299999" >"$T/tty.log" 2>&1 &&
   [ -x "$T/tty/bin/bhatti" ] && [ ! -e "$T/ttyetc" ] &&
   [ "$(conf_value api_url "$T/ttyhome/.bhatti/config.yaml")" = "$surl" ] &&
   HOME="$T/ttyhome" "$T/tty/bin/bhatti" list 2>&1 | grep -q keep; then
	ok "piped, with a terminal: asks CLI or server (cli), then bhatti setup asks URL and key"
else
	notok "piped, with a terminal: the prompts" "$T/tty.log"
fi

# 9. uninstall (piped): daemon and binary gone, data kept, the sandbox
# left running (a new install would re-adopt it)
dpid=$(cat "$T/data/serve.pid" 2>/dev/null)
if detached bash -c "curl -fsSL $url/uninstall.sh | bash -s -- --conf-dir $T/etc" >"$T/uninstall.log" 2>&1 &&
   [ ! -e "$T/p/bin/bhatti" ] && [ ! -e "$T/p/lib/bhatti" ] && ! kill -0 "$dpid" 2>/dev/null && [ -f "$T/data/state.db" ] &&
   [ -f "$T/data/age.key" ] && [ -f "$T/etc/config.yaml" ] && grep -q "kept $T/data" "$T/uninstall.log" &&
   [ -n "$(our_qemus)" ] && grep -q "1 sandbox VM(s) keep running" "$T/uninstall.log"; then
	ok "uninstall: daemon and binary gone; data, config and the running sandbox kept"
else
	notok "uninstall keeps data" "$T/uninstall.log"
fi

# 10. --purge without a terminal and without --yes is refused
if ! detached bash "$T/dist/uninstall.sh" --conf-dir "$T/etc" --purge >"$T/purge1.log" 2>&1 &&
   grep -q -- "--yes" "$T/purge1.log" && [ -f "$T/data/age.key" ]; then
	ok "--purge without --yes (no terminal): refused, nothing removed"
else
	notok "--purge without --yes" "$T/purge1.log"
fi

# 11. --purge --yes stops the sandbox, removes the data dir (age.key too)
# and the config
if detached bash "$T/dist/uninstall.sh" --conf-dir "$T/etc" --purge --yes >"$T/purge2.log" 2>&1 &&
   [ ! -e "$T/data" ] && [ ! -e "$T/etc" ] && [ -z "$(our_qemus)" ]; then
	ok "--purge --yes stops the sandbox, removes the data dir and the config"
else
	notok "--purge --yes" "$T/purge2.log"
fi

# 12. from this checkout (`sudo ./install.sh`), on a terminal, no tier
# given: it asks the tier (answered tiny); it builds here (nothing to do
# after make test's build) and answers; then `uninstall.sh --purge` on a
# terminal asks to confirm (answered y) and purges
cport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
if on_tty "default image tier=tiny" -- env HOME="$T/root2" SUDO_USER= bash ./install.sh --server --prefix "$T/cp" \
	--conf-dir "$T/cetc" --data-dir "$T/cdata" --listen "127.0.0.1:$cport" --vm-uids 200000-299999 \
	--no-service >"$T/checkout.log" 2>&1 && grep -q "installing from the source tree $(pwd)" "$T/checkout.log" &&
   grep -q '^default_image: tiny' "$T/cetc/config.yaml" &&
   curl -fsS "http://127.0.0.1:$cport/health" | grep -q '"status"' &&
   ! grep -q '^SRC_DIR=.' "$T/cetc/install.conf" &&
   on_tty "for good? [y/N]=y" -- bash ./uninstall.sh --conf-dir "$T/cetc" --purge >>"$T/checkout.log" 2>&1 &&
   [ ! -e "$T/cdata" ] && [ -f Makefile ] && [ -f daemon/serve.c ]; then
	ok "install.sh from the checkout, with a terminal: asks the tier (tiny), builds here, answers; uninstall --purge asks, purges, leaves the checkout alone"
else
	notok "install.sh from the checkout" "$T/checkout.log" "$T/cdata/serve.log"
fi
