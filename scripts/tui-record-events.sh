#!/bin/sh
# tui-record-events.sh — records what tests/unit/test-tui-model.c is fed:
# a real GET /sandboxes answer and a real GET /events stream (ndjson) of a
# private daemon while one sandbox lives its life (created, an exec, a
# shell opened, detached, reattached and exited, renamed, idle → warm, woken
# by an exec, stopped, started, destroyed).
#
#   sh scripts/tui-record-events.sh DIR
#
# writes DIR/list.json and DIR/events.ndjson. Boots a VM (tiny): on a
# shared machine run it under `flock -o /tmp/bhatti-vm.lock`. The test's
# expectations are written against one recording (tests/data/tui/): a new
# recording has other ids and times, so copying it there means going over
# the test's assertions again.
set -eu
out=${1:?usage: tui-record-events.sh DIR}
build=${BUILD:-build}
images=$(cd "${BHATTI_IMAGES:-$build/images}" && pwd)
bin=$(cd "$build" && pwd)/bhatti
mkdir -p "$out"
out=$(cd "$out" && pwd)
tmp=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$tmp/config.yaml" <<EOF
listen: "127.0.0.1:$port"
data_dir: $tmp/data
images_dir: $images
accel: tcg
network:
  enabled: false
thermal:
  warm_after: 3s
  cold_after: never
  check_every: 250ms
EOF
# as root, each VM's QEMU runs as a uid of its own (the tests' range)
[ "$(id -u)" = 0 ] && echo "vm_uids: 200000-299999" >>"$tmp/config.yaml"
serve_pid=""
curl_pid=""
cleanup() {
	[ -n "$curl_pid" ] && kill "$curl_pid" 2>/dev/null || true
	[ -n "$serve_pid" ] && kill "$serve_pid" 2>/dev/null && wait "$serve_pid" 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT INT TERM
"$bin" serve --config "$tmp/config.yaml" >"$tmp/serve.log" 2>&1 &
serve_pid=$!
export BHATTI_URL="http://127.0.0.1:$port" HOME="$tmp"
for _ in $(seq 100); do
	curl -fsS -o /dev/null "$BHATTI_URL/health" 2>/dev/null && break
	sleep 0.1
done
curl -fsS -o /dev/null "$BHATTI_URL/health" || { cat "$tmp/serve.log" >&2; exit 1; }
BHATTI_TOKEN=$("$bin" user create --config "$tmp/config.yaml" --name rec | sed -n 's/^API key: //p')
export BHATTI_TOKEN
curl -sN -H "Authorization: Bearer $BHATTI_TOKEN" "$BHATTI_URL/events" >"$out/events.ndjson" &
curl_pid=$!
b() { "$bin" "$@" </dev/null; }
b create --name dev --image tiny >/dev/null
curl -fsS -H "Authorization: Bearer $BHATTI_TOKEN" "$BHATTI_URL/sandboxes" >"$out/list.json"
b exec dev -- sh -c 'echo out; echo err >&2; exit 3' >/dev/null 2>&1 || true
# a shell under a terminal (script): opened, then detached with Ctrl+\ ...
(sleep 2; printf 'echo hi\n'; sleep 1; printf '\034') | script -qfec "$bin shell dev" /dev/null >/dev/null 2>&1 || true
# ... reattached and ended
(sleep 2; printf 'exit 0\n'; sleep 1) | script -qfec "$bin shell dev" /dev/null >/dev/null 2>&1 || true
b edit dev --name dev2 >/dev/null
sleep 5   # idle: the thermal manager pauses it (warm)
b exec dev2 -- true >/dev/null
b stop dev2 >/dev/null
b start dev2 >/dev/null
b destroy -y dev2 >/dev/null
sleep 1
echo "recorded $(wc -l <"$out/events.ndjson") events in $out/events.ndjson"
