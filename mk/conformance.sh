#!/usr/bin/env bash
# make conformance: cri-tools' critest (v1.29.0, from CRI_TOOLS) against a podvisord built
# with ASan+UBSan, with critest's images served by a local registry of stand-ins
# (CRI_TOOLS/critest-images.sh) through podvisor's image.mirrors, and a bridge CNI config.
# Prints the pass count; fails under CONFORMANCE_MIN, on a sanitizer report from podvisord or
# a shim, or when podvisord does not exit cleanly on SIGTERM. Everything started here is
# stopped here, by pid.
#
#   BUILD           the podvisord build to test (default build/asan)
#   CRI_TOOLS       folder with crictl, critest, critest-images.sh, critest.conflist
#   CONFORMANCE_MIN minimum specs passed (default 76)
#   FOCUS / SKIP    critest --ginkgo.focus / --ginkgo.skip regexes (optional)
#   KEEP=1          keep the work folder (logs) even on success
set -uo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build/asan}
CRI_TOOLS=${CRI_TOOLS:-../shared/cri-tools}
MIN=${CONFORMANCE_MIN:-76}

die() { echo "conformance: $*" >&2; exit 1; }
[[ -x $CRI_TOOLS/critest ]] || die "no critest in $CRI_TOOLS (set CRI_TOOLS)"
[[ -x $BUILD/bin/podvisord ]] || die "no $BUILD/bin/podvisord (make BUILD=$BUILD build)"
CRI_TOOLS=$(cd "$CRI_TOOLS" && pwd)
BUILD=$(cd "$BUILD" && pwd)

# Short paths: unix socket paths under <state>/pods/<64-hex id>/ must stay below 108 bytes.
work=$(mktemp -d /tmp/pvcf.XXXXXX)
reg_pid="" pvd_pid=""
cleanup() {
	[[ -n $pvd_pid ]] && kill -9 "$pvd_pid" 2>/dev/null
	[[ -n $reg_pid ]] && kill "$reg_pid" 2>/dev/null && wait "$reg_pid" 2>/dev/null
	# Shims and VMs of pods critest left behind (they carry the state dir on their command line).
	pkill -9 -f "$work/s/" 2>/dev/null
	ip link del cni0 2>/dev/null
	if [[ ${KEEP:-0} == 1 || ${failed:-1} == 1 ]]; then
		echo "conformance: logs kept in $work" >&2
	else
		rm -rf "$work"
	fi
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# ---- the registry of stand-in images ----------------------------------------------------
port=$(free_port)
mkdir -p "$work/registry"
cat >"$work/registry/config.yml" <<EOF
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $work/registry/data
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
EOF
/usr/bin/docker-registry serve "$work/registry/config.yml" >"$work/registry/log" 2>&1 &
reg_pid=$!
for _ in $(seq 100); do
	(echo >/dev/tcp/127.0.0.1/$port) 2>/dev/null && break
	sleep 0.1
done
echo "conformance: building critest's stand-in images into 127.0.0.1:$port"
bash "$CRI_TOOLS/critest-images.sh" "127.0.0.1:$port" "$work/images" >"$work/images.log" 2>&1 ||
	{ tail -20 "$work/images.log" >&2; die "critest-images.sh failed (log: $work/images.log)"; }

# ---- podvisord ----------------------------------------------------------------------------
mkdir -p "$work/cni" "$work/san"
cp "$CRI_TOOLS/critest.conflist" "$work/cni/"
cat >"$work/config.json" <<EOF
{
  "image": {"mirrors": {"registry.k8s.io": ["http://127.0.0.1:$port"], "gcr.io": ["http://127.0.0.1:$port"]}},
  "network": {"cni_conf_dir": "$work/cni"}
}
EOF
export ASAN_OPTIONS="log_exe_name=1:log_path=$work/san/report${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="print_stacktrace=1:log_exe_name=1:log_path=$work/san/report${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
sock=$work/podvisor.sock
"$BUILD/bin/podvisord" --listen "$sock" --root "$work/root" --state-dir "$work/s" \
	--config "$work/config.json" --log-level debug >"$work/podvisord.log" 2>&1 &
pvd_pid=$!
for _ in $(seq 300); do
	[[ -S $sock ]] && break
	kill -0 "$pvd_pid" 2>/dev/null || { tail -20 "$work/podvisord.log" >&2; die "podvisord did not start"; }
	sleep 0.1
done

# ---- critest ------------------------------------------------------------------------------
args=(--runtime-endpoint "unix://$sock" --image-endpoint "unix://$sock" --ginkgo.no-color)
[[ -n ${FOCUS:-} ]] && args+=(--ginkgo.focus "$FOCUS")
[[ -n ${SKIP:-} ]] && args+=(--ginkgo.skip "$SKIP")
echo "conformance: critest ${args[*]}"
t0=$(date +%s)
"$CRI_TOOLS/critest" "${args[@]}" >"$work/critest.log" 2>&1
crc=$?
echo "conformance: critest exited $crc after $(($(date +%s) - t0)) s (log: $work/critest.log)"
grep -aE '^ *\[FAIL\]' "$work/critest.log" | sed 's/^/  /' | head -60
summary=$(grep -aE 'Ran [0-9]+ of [0-9]+ Specs' "$work/critest.log" | tail -1)
counts=$(grep -aE '[0-9]+ Passed \| [0-9]+ Failed' "$work/critest.log" | tail -1)
echo "conformance: $summary"
echo "conformance: $counts"
passed=$(sed -n 's/.* \([0-9][0-9]*\) Passed.*/\1/p' <<<"$counts")
passed=${passed:-0}

# ---- podvisord must stop cleanly and nothing may have reported -------------------------------
kill -TERM "$pvd_pid"
rc=0
for _ in $(seq 150); do
	kill -0 "$pvd_pid" 2>/dev/null || break
	sleep 0.1
done
if kill -0 "$pvd_pid" 2>/dev/null; then
	echo "conformance: podvisord did not exit within 15 s of SIGTERM" >&2
	rc=1
else
	wait "$pvd_pid"
	prc=$?
	[[ $prc -eq 0 ]] || { echo "conformance: podvisord exited $prc" >&2; rc=1; }
fi
pvd_pid=""
if ls "$work/san/"* >/dev/null 2>&1; then
	echo "conformance: sanitizer reports:" >&2
	head -60 "$work"/san/* >&2
	rc=1
fi
if ((passed < MIN)); then
	echo "conformance: $passed specs passed, fewer than $MIN" >&2
	rc=1
fi
failed=$rc
exit $rc
