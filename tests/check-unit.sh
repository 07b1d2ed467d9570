#!/bin/sh
# check-unit.sh — the systemd unit install.sh writes (scripts/bhatti.service),
# filled in as install.sh does, checked by systemd-analyze: `verify` (it
# parses, every directive is known) and `security --offline` (its exposure
# is at most 4.0: the hardening stays). TAP output for tests/run.sh;
# skipped, with the reason, where systemd-analyze is missing.
#
# Usage: tests/check-unit.sh (from the tree's top; BUILD: the build dir)
set -u
build=${BUILD:-build}
echo "1..2"
if ! command -v systemd-analyze >/dev/null 2>&1; then
	echo "not ok 1 # SKIP systemd-analyze not found (Debian: apt-get install systemd)"
	echo "not ok 2 # SKIP systemd-analyze not found"
	exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# the unit's ExecStart must name an executable: this tree's build
mkdir -p "$tmp/bin"
ln -s "$(pwd)/$build/bhatti" "$tmp/bin/bhatti"
sed -e "s|@PREFIX@|$tmp|g" -e "s|@CONF_DIR@|/etc/bhatti|g" -e "s|@DATA_DIR@|/var/lib/bhatti|g" \
	scripts/bhatti.service >"$tmp/bhatti.service"
if out=$(cd "$tmp" && systemd-analyze verify ./bhatti.service 2>&1) && [ -z "$out" ]; then
	echo "ok 1 - systemd-analyze verify"
else
	echo "not ok 1 - systemd-analyze verify"
	printf '%s\n' "$out" | sed 's/^/# /'
fi
if out=$(cd "$tmp" && systemd-analyze security --offline=yes --threshold=40 ./bhatti.service 2>&1); then
	echo "ok 2 - systemd-analyze security: $(printf '%s\n' "$out" | sed -n 's/^→ Overall exposure level for bhatti.service: //p')"
else
	echo "not ok 2 - systemd-analyze security (exposure over 4.0, or it failed)"
	printf '%s\n' "$out" | grep -E '✗|Overall|rror' | sed 's/^/# /'
fi
