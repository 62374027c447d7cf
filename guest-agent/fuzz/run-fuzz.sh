#!/usr/bin/env bash
# Run the agent frame/message fuzzer for a bounded time (FUZZ_SECONDS, default 30).
# Used as a unit test: fails if libFuzzer finds a crash, leak or sanitizer error.
set -euo pipefail
fuzzer=$1
secs=${FUZZ_SECONDS:-30}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/corpus"
# Seeds: a ping request frame and a DATA frame, so the fuzzer starts from valid input.
printf '\x03\x00\x00\x00\x02\x00\x00\x00\x01\x01\x00\x00\x52\x00' >"$work/corpus/ping"
printf '\x05\x00\x00\x00\x03\x00\x00\x00\x05\x03\x00\x00\x00hello' >"$work/corpus/data"
cd "$work"
"$fuzzer" -max_total_time="$secs" -max_len=8192 -print_final_stats=1 -artifact_prefix="$work/" corpus \
	2>"$work/log" || { tail -60 "$work/log" >&2; exit 1; }
grep -E '^stat::number_of_executed_units|^Done' "$work/log" || true
