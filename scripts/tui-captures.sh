#!/bin/sh
# tui-captures.sh — the text pictures of `bhatti tui` in docs/tui-captures/,
# made by the tmux test (tests/integration/test-tui.c) as it runs, so they
# show what the test saw: the dashboard, the help, the exec log, a shell
# pane, busybox vi in a pane, the quit question.
#
#   sh scripts/tui-captures.sh      (from the tree's top, after make and make images)
#
# It boots a VM: on a shared machine run it under the VM lock
# (flock /tmp/bhatti-vm.lock sh scripts/tui-captures.sh).
set -eu
out=docs/tui-captures
mkdir -p "$out"
make --no-print-directory -s all build/tests/test-tui
TUI_CAPTURES="$out" BUILD=${BUILD:-build} BHATTI_IMAGES=${BHATTI_IMAGES:-build/images} \
	sh tests/run.sh build/tests/test-tui
# the daemon's port and the key differ each run: keep the pictures stable
for f in "$out"/*.txt; do
	sed -i -E 's#http://127\.0\.0\.1:[0-9]+#http://127.0.0.1:8080#; s/session s[0-9a-f]+/session s1a2b3c4d/' "$f"
done
ls -l "$out"
