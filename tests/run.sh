#!/bin/sh
# run.sh — runs test binaries (cmocka, TAP output), prints each failure and
# ends with one line "N passed, N failed, N skipped". Exit status 1 on any
# failure; a skip (cmocka's "not ok N # SKIP") is neither.
#
# A binary that crashes or stops early counts its missing tests (from the
# TAP plan "1..N") as failed, so a crash can never look like a pass.
# Usage: tests/run.sh BIN...   (TEST_TIMEOUT seconds per binary, default 900)
set -u
passed=0
failed=0
skipped=0
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
	skip=$(grep -c '^not ok [0-9]* # SKIP' "$log")
	bad=$(( $(grep -c '^not ok ' "$log") - skip ))
	plan=$(sed -n 's/^1\.\.\([0-9][0-9]*\).*/\1/p' "$log" | head -n 1)
	missing=0
	if [ -n "$plan" ] && [ $((ok + bad + skip)) -lt "$plan" ]; then
		missing=$((plan - ok - bad - skip))
	fi
	if [ "$rc" -ne 0 ] && [ "$bad" -eq 0 ] && [ "$missing" -eq 0 ]; then
		missing=1
	fi
	passed=$((passed + ok))
	failed=$((failed + bad + missing))
	skipped=$((skipped + skip))
	skips=""
	[ "$skip" -gt 0 ] && skips=", $skip skipped"
	if [ $((bad + missing)) -gt 0 ]; then
		echo "FAIL $name: $ok passed, $((bad + missing)) failed$skips (exit $rc, ${secs}s); log: $log"
		grep -v '^not ok [0-9]* # SKIP' "$log" |
			grep -B2 -A12 '^not ok \|ERROR\|Assertion\|Sanitizer\|runtime error' |
			head -n 80 | sed 's/^/    /'
	else
		echo "ok   $name: $ok passed$skips (${secs}s)"
		[ "$skip" -gt 0 ] && grep '^not ok [0-9]* # SKIP' "$log" | sed 's/^/    /'
	fi
done

echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
