#!/usr/bin/env bash
# Run every libFuzzer target for a bounded time each (FUZZ_SECONDS, default 20).
# A crash, leak or sanitizer report fails the run; the reproducer is kept under build/.
# Each fuzzer starts from its seed corpus, if it has one next to its source (<name>.corpus/).
set -uo pipefail
secs=${FUZZ_SECONDS:-20}
failed=0
for f in "$@"; do
	f=$(realpath "$f")
	name=$(basename "$f")
	work=$(mktemp -d)
	mkdir -p "$work/corpus"
	for seeds in $(find . -path ./build -prune -o -type d -name "$name.corpus" -print 2>/dev/null); do
		cp "$seeds"/* "$work/corpus/" 2>/dev/null || true
	done
	echo "== fuzz $name for ${secs}s"
	if (cd "$work" && "$f" -max_total_time="$secs" -max_len=65536 -print_final_stats=1 \
		-artifact_prefix="$work/" corpus >"$work/log" 2>&1); then
		grep -E '^stat::number_of_executed_units' "$work/log" || true
	else
		echo "FAILED: fuzzer $name" >&2
		tail -60 "$work/log" >&2
		mkdir -p build/fuzz-artifacts
		cp "$work"/crash-* "$work"/leak-* "$work"/timeout-* build/fuzz-artifacts/ 2>/dev/null || true
		failed=$((failed + 1))
	fi
	rm -rf "$work"
done
echo "fuzzers: $# run, $failed failed"
exit $((failed > 0))
