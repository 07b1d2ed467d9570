#!/bin/sh
# tui-captures.sh — the text pictures of `bhatti tui` in docs/tui-captures/,
# made by the tmux test (tests/integration/test-tui.c) as it runs, so they
# show what the test saw: the dashboard, the help, the exec log, the exec
# streams, a shell pane, busybox vi in a pane, the quit question.
#
#   sh scripts/tui-captures.sh        the last test-tui run's ($BUILD/tui-captures)
#   sh scripts/tui-captures.sh --run  run test-tui first (boots a VM: on a shared
#                                     machine under flock /tmp/bhatti-vm.lock)
set -eu
build=${BUILD:-build}
out=docs/tui-captures
if [ "${1:-}" = "--run" ]; then
	make --no-print-directory -s all build/tests/test-tui
	BUILD=$build BHATTI_IMAGES=${BHATTI_IMAGES:-build/images} sh tests/run.sh build/tests/test-tui
fi
[ -d "$build/tui-captures" ] || { echo "no $build/tui-captures: run with --run" >&2; exit 1; }
mkdir -p "$out"
cp "$build"/tui-captures/*.txt "$out"/
cp "$build"/tui-captures/*.ansi "$out"/ 2>/dev/null || true
# the daemon's and the public proxy's ports and the session id differ each
# run: keep the pictures stable (the API's five-digit port becomes 8080 and
# a space, so what follows it stays in its column; a published URL's 8081)
for f in "$out"/*.txt "$out"/*.ansi; do
	[ -f "$f" ] || continue
	sed -i -E 's#http://127\.0\.0\.1:[0-9]+/([a-z])#http://127.0.0.1:8081/\1#g;
		s#http://127\.0\.0\.1:[0-9]{5}#http://127.0.0.1:8080 #g;
		s/session s[0-9a-f]+/session s1a2b3c4d/' "$f"
done
# PNG pictures from the coloured captures: HTML (scripts/ansi2html.py),
# then headless chromium (Debian's chromium) takes the screenshot
if command -v chromium >/dev/null 2>&1; then
	for f in "$out"/*.ansi; do
		[ -f "$f" ] || continue
		base=${f%.ansi}
		cols=$(sed 's/\x1b\[[0-9;]*m//g' "$f" | awk '{ if (length($0) > m) m = length($0) } END { print m }')
		rows=$(wc -l < "$f")
		python3 scripts/ansi2html.py "$f" > "$base.html"
		chromium --headless --no-sandbox --disable-gpu --hide-scrollbars \
			--window-size=$(( cols * 9 + 24 )),$(( rows * 18 + 16 )) \
			--screenshot="$PWD/$base.png" "file://$PWD/$base.html" >/dev/null 2>&1 ||
			echo "tui-captures: no picture for $f" >&2
		rm -f "$base.html" "$f"
	done
else
	echo "tui-captures: no chromium: text captures only" >&2
	rm -f "$out"/*.ansi
fi
ls -l "$out"
