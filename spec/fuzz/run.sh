#!/usr/bin/env bash
# spec/fuzz/run.sh BUILD SECONDS JOBS TARGET… — what `make fuzz` runs: each
# libFuzzer target for SECONDS from its seeds (spec/fuzz/corpus/TARGET/, read
# only) and what earlier runs found (BUILD/corpus/TARGET/), JOBS at a time;
# each one's log is BUILD/TARGET.log.  Prints one line per target with its
# execution count; exits 1 when any target crashed (the input is in
# BUILD/crashes/: fix the bug, then add the input to the seeds).  Reproduce
# one input: BUILD/TARGET FILE.
set -u
build=$1 seconds=$2 jobs=$3
shift 3
mkdir -p "$build/crashes"
one() {
  t=$1
  mkdir -p "$build/corpus/$t" "spec/fuzz/corpus/$t"
  # The Lua targets keep one lua_State across inputs (its garbage outlives an
  # input), so libFuzzer's per-input leak check would only scan it: off for them.
  leaks=1
  grep -q 'fuzz_lua.h' "spec/fuzz/$t.c" && leaks=0
  "$build/$t" -detect_leaks=$leaks -max_total_time="$seconds" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 \
    -max_len=8192 -artifact_prefix="$build/crashes/$t-" "$build/corpus/$t" "spec/fuzz/corpus/$t" \
    >"$build/$t.log" 2>&1
  rc=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$build/$t.log" | tail -1)
  if [ $rc -eq 0 ]; then
    echo "fuzz: $t: ${runs:-?} runs in ${seconds} s, no crash"
  else
    echo "fuzz: $t: CRASHED (exit $rc) after ${runs:-?} runs; see $build/$t.log and $build/crashes/"
    tail -40 "$build/$t.log" | sed "s/^/  $t| /"
  fi
  return $rc
}
export -f one
export build seconds
printf '%s\n' "$@" | xargs -P "$jobs" -I{} bash -c 'one {}'
status=$?
[ $status -eq 0 ] && echo "fuzz: $# targets, no crash" || echo "fuzz: a target crashed" >&2
exit $([ $status -eq 0 ] && echo 0 || echo 1)
