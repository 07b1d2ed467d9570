#!/bin/sh
# run.sh — runs test binaries (cmocka, TAP output), prints each failure and
# ends with one line "N passed, N failed". Exit status 1 on any failure.
#
# A binary that crashes or stops early counts its missing tests (from the
# TAP plan "1..N") as failed, so a crash can never look like a pass.
# Usage: tests/run.sh BIN...   (TEST_TIMEOUT seconds per binary, default 900)
set -u
passed=0
failed=0
timeout_s=${TEST_TIMEOUT:-900}
logdir=${BUILD:-build}/test-logs
mkdir -p "$logdir"

for bin in "$@"; do
	name=$(basename "$bin")
	log="$logdir/$name.log"
	start=$(date +%s)
	CMOCKA_MESSAGE_OUTPUT=TAP timeout -k 10 "$timeout_s" "$bin" >"$log" 2>&1
	rc=$?
	secs=$(( $(date +%s) - start ))
	ok=$(grep -c '^ok ' "$log")
	bad=$(grep -c '^not ok ' "$log")
	plan=$(sed -n 's/^1\.\.\([0-9][0-9]*\).*/\1/p' "$log" | head -n 1)
	missing=0
	if [ -n "$plan" ] && [ $((ok + bad)) -lt "$plan" ]; then
		missing=$((plan - ok - bad))
	fi
	if [ "$rc" -ne 0 ] && [ "$bad" -eq 0 ] && [ "$missing" -eq 0 ]; then
		missing=1
	fi
	passed=$((passed + ok))
	failed=$((failed + bad + missing))
	if [ $((bad + missing)) -gt 0 ]; then
		echo "FAIL $name: $ok passed, $((bad + missing)) failed (exit $rc, ${secs}s); log: $log"
		grep -B2 -A12 '^not ok \|ERROR\|Assertion\|Sanitizer\|runtime error' "$log" | head -n 80 | sed 's/^/    /'
	else
		echo "ok   $name: $ok passed (${secs}s)"
	fi
done

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
