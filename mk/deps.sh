#!/usr/bin/env bash
# Install the Debian packages podvisor needs to build, run and test.
# Idempotent and quick when everything is present: apt runs only for what is missing.
set -euo pipefail

PKGS=(
	build-essential pkg-config git
	# podvisord / shim / agent libraries
	libgrpc-dev protobuf-c-compiler libprotobuf-c-dev protobuf-compiler
	libcurl4-openssl-dev libjansson-dev libext2fs-dev libarchive-dev libzstd-dev
	libnl-3-dev libnl-route-3-dev libssl-dev libcmocka-dev libsystemd-dev libseccomp-dev
	# the streaming server (HTTP upgrade, TLS) and SPDY header compression
	libmicrohttpd-dev zlib1g-dev
	# guest kernel build
	linux-source-6.1 flex bison bc libelf-dev cpio lz4 xz-utils
	# the arm64 guest: cross compiler, the agent's static libraries for arm64 (multiarch),
	# QEMU virt, and qemu-x86_64 for x86_64 images inside arm64 pods (binfmt_misc)
	gcc-aarch64-linux-gnu libc6-dev-arm64-cross
	libprotobuf-c-dev:arm64 libnl-3-dev:arm64 libnl-route-3-dev:arm64 libseccomp-dev:arm64
	qemu-system-arm qemu-user-static
	# VMs, images, networking
	qemu-system-x86 qemu-utils e2fsprogs busybox-static iproute2 runc
	docker-registry skopeo umoci apache2-utils zstd containernetworking-plugins iperf3 iputils-ping
	# e2e tests and fuzzing
	python3 python3-grpcio python3-protobuf python3-pytest clang libclang-rt-14-dev
	# streaming e2e: a SPDY client on Debian's spdystream (Go), WebSocket, terminals, curl, TLS certs
	golang-go golang-github-docker-spdystream-dev python3-websocket bsdutils curl openssl
)

# The arm64 -dev packages come from Debian's arm64 archive through multiarch.
need_update=0
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
	if [[ $(id -u) -ne 0 ]]; then
		echo "deps: run as root to enable the arm64 architecture (dpkg --add-architecture arm64)" >&2
		exit 1
	fi
	dpkg --add-architecture arm64
	need_update=1
fi

missing=()
for p in "${PKGS[@]}"; do
	[[ $p == \#* ]] && continue
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing+=("$p")
	fi
done

if ((${#missing[@]} || need_update)); then
	if [[ $(id -u) -ne 0 ]]; then
		echo "deps: missing Debian packages (run as root to install): ${missing[*]}" >&2
		exit 1
	fi
	echo "deps: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	if ((${#missing[@]})); then
		apt-get install -y -qq --no-install-recommends "${missing[@]}"
	fi
fi
# docker-registry's package starts a system service on 0.0.0.0:5000; tests run their own.
if systemctl is-active --quiet docker-registry 2>/dev/null; then
	systemctl disable --now docker-registry >/dev/null 2>&1 || true
fi
exit 0
