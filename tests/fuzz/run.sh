#!/bin/sh
# run.sh — runs the libFuzzer targets (tests/fuzz/fuzz-*.c) one after the
# other, each over its own corpus and the seeds gen-seeds makes for it, and
# prints one line per target: seconds, runs, coverage, corpus, result.
#
# Usage: tests/fuzz/run.sh BUILD SECONDS TARGET...   (`make fuzz`)
#        tests/fuzz/run.sh BUILD smoke TARGET...     (`make fuzz-smoke`:
#        each seed once, no fuzzing; part of `make test`)
#
# Per target: the corpus $BUILD/fuzz/corpus/T (kept between runs), the
# seeds $BUILD/fuzz/seeds/T (made afresh, plus the inputs of bugs found
# before, tests/fuzz/regress/T/), the log $BUILD/fuzz/logs/T.log
# (T.smoke.log for a smoke run),
# crashes and their inputs in $BUILD/fuzz/crashes/T/. A dictionary
# tests/fuzz/T.dict is used when there is one. Exit status 1 when a target
# crashed, leaked or failed an oracle.
set -u
export LC_ALL=C   # the stats lines may carry an input's raw bytes
build=$1
secs=$2
shift 2
dir=$build/fuzz
here=$(dirname "$0")
status=0
mkdir -p "$dir/logs"

for t in "$@"; do
	seeds=$dir/seeds/$t
	corpus=$dir/corpus/$t
	crashes=$dir/crashes/$t
	log=$dir/logs/$t.log
	[ "$secs" = smoke ] && log=$dir/logs/$t.smoke.log   # (a smoke run beside a long one)
	rm -rf "$seeds"
	mkdir -p "$seeds" "$corpus" "$crashes"
	if ! "$dir/gen-seeds" "$t" "$seeds"; then
		echo "$t: gen-seeds failed"
		status=1
		continue
	fi
	[ "$t" = fuzz-config ] && cp "$here"/../data/config/*.yaml "$here"/../data/settings/*.yaml "$seeds"/
	[ -d "$here/regress/$t" ] && cp "$here/regress/$t"/* "$seeds"/
	case $t in
	fuzz-config) max=4096 ;;
	fuzz-http | fuzz-agent) max=16384 ;;
	*) max=8192 ;;
	esac
	dict=
	[ -f "$here/$t.dict" ] && dict=-dict=$here/$t.dict
	start=$(date +%s)
	if [ "$secs" = smoke ]; then
		"$dir/$t" -runs=0 -max_len=$max $dict -artifact_prefix="$crashes/" "$seeds" >"$log" 2>&1
	else
		"$dir/$t" -max_total_time="$secs" -max_len=$max -timeout=10 -print_final_stats=1 \
			$dict -artifact_prefix="$crashes/" "$corpus" "$seeds" >"$log" 2>&1
	fi
	rc=$?
	took=$(( $(date +%s) - start ))
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
	last=$(grep -aE '^#[0-9]+' "$log" | tail -n 1)
	cov=$(echo "$last" | sed -n 's/.* cov: \([0-9]*\).*/\1/p')
	ft=$(echo "$last" | sed -n 's/.* ft: \([0-9]*\).*/\1/p')
	corp=$(echo "$last" | sed -n 's/.* corp: \([0-9]*\).*/\1/p')
	nseeds=$(ls "$seeds" | wc -l)
	if [ "$rc" -eq 0 ]; then
		result="no crash"
	else
		result="FAILED (exit $rc; see $log and $crashes/)"
		status=1
	fi
	if [ "$secs" = smoke ]; then
		echo "$t: $nseeds seeds in ${took} s, cov ${cov:-?}: $result"
	else
		echo "$t: ${took} s, ${runs:-?} runs, cov ${cov:-?}, ft ${ft:-?}, corpus ${corp:-?}: $result"
	fi
done
exit $status
