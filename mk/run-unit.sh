#!/usr/bin/env bash
# Run every unit test binary; fail if any fails. Sanitizer reports fail the run.
set -uo pipefail
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
failed=0
for t in "$@"; do
	echo "== $t"
	if ! "$t"; then
		echo "FAILED: $t" >&2
		failed=$((failed + 1))
	fi
done
echo "unit test binaries: $# run, $failed failed"
exit $((failed > 0))
