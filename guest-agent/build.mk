# guest-agent/: podvisor-agent (static guest /init), the initramfs, the host debug CLI
# podvisor-agentctl, unit tests and the frame/message fuzzer.

AGENT_PROTO_H := $(BUILD)/gen/proto/agent.pb-c.h
AGENT_PROTO_C := $(BUILD)/gen/proto/agent.pb-c.c
EXTRA_CFLAGS_guest-agent := $(call PKG_CFLAGS,libprotobuf-c libnl-route-3.0) -Iguest-agent

# common/ framing and client code include the generated header.
$(BUILD)/obj/common/frame.o $(BUILD)/obj/common/agent_client.o: $(AGENT_PROTO_H)
# Programs that link libpvcommon.a get the agent messages with it.
$(BUILD)/libpvcommon.a: $(BUILD)/obj/gen/proto/agent.pb-c.o

# ---- the agent: static, never sanitized (it is PID 1 of the guest) -------------------
AGENT_SRCS := $(filter-out guest-agent/agentctl.c,$(wildcard guest-agent/*.c))
AGENT_COMMON := common/frame.c common/error.c common/util.c common/log.c common/seccomp_names.c
AGENT_CFLAGS := $(BASE_CFLAGS) -Os -Iguest-agent $(call PKG_CFLAGS,libnl-route-3.0)
AGENT_GOBJS := $(AGENT_SRCS:%.c=$(BUILD)/guest-obj/%.o) $(AGENT_COMMON:%.c=$(BUILD)/guest-obj/%.o) \
	$(BUILD)/guest-obj/gen/proto/agent.pb-c.o

$(BUILD)/guest-obj/gen/proto/agent.pb-c.o: $(AGENT_PROTO_C) $(AGENT_PROTO_H)
	@mkdir -p $(dir $@)
	$(CC) $(AGENT_CFLAGS) -Wno-missing-prototypes -c $< -o $@
$(BUILD)/guest-obj/%.o: %.c $(AGENT_PROTO_H) $(BUILD)/gen/version.h
	@mkdir -p $(dir $@)
	$(CC) $(AGENT_CFLAGS) -MMD -MP -c $< -o $@

# One library list for every guest architecture (the arm64 agent links the same, below).
AGENT_LDLIBS := -lprotobuf-c -lnl-route-3 -lnl-3 -lseccomp -lpthread -lm

$(BUILD)/guest/podvisor-agent: $(AGENT_GOBJS)
	@mkdir -p $(dir $@)
	$(CC) -static -o $@ $^ $(AGENT_LDLIBS)

$(BUILD)/guest/initramfs.cpio: $(BUILD)/guest/podvisor-agent guest-agent/mkinitramfs.sh
	bash guest-agent/mkinitramfs.sh $< $@

GUEST_FILES += $(BUILD)/guest/podvisor-agent $(BUILD)/guest/initramfs.cpio

# ---- the arm64 agent and initramfs (cross-compiled; for arm64 pod VMs on QEMU virt) ----------
# Debian's cross gcc links against the arm64 multiarch -dev packages (libprotobuf-c-dev:arm64,
# libnl-route-3-dev:arm64, ... in /usr/lib/aarch64-linux-gnu, installed by mk/deps.sh); their
# headers are the architecture-independent ones in /usr/include. The generated protobuf C is
# the same source for both architectures. Same sources, same flags, same AGENT_LDLIBS.
ARM64_CC := aarch64-linux-gnu-gcc
ARM64_PKG_CFLAGS = $(shell PKG_CONFIG_LIBDIR=/usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig \
	pkg-config --cflags $(1))
AGENT_ARM64_CFLAGS := $(BASE_CFLAGS) -Os -Iguest-agent $(call ARM64_PKG_CFLAGS,libnl-route-3.0)
AGENT_ARM64_OBJS := $(AGENT_GOBJS:$(BUILD)/guest-obj/%=$(BUILD)/guest-obj-arm64/%)

$(BUILD)/guest-obj-arm64/gen/proto/agent.pb-c.o: $(AGENT_PROTO_C) $(AGENT_PROTO_H)
	@mkdir -p $(dir $@)
	$(ARM64_CC) $(AGENT_ARM64_CFLAGS) -Wno-missing-prototypes -c $< -o $@
$(BUILD)/guest-obj-arm64/%.o: %.c $(AGENT_PROTO_H) $(BUILD)/gen/version.h
	@mkdir -p $(dir $@)
	$(ARM64_CC) $(AGENT_ARM64_CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/guest/arm64/podvisor-agent: $(AGENT_ARM64_OBJS)
	@mkdir -p $(dir $@)
	$(ARM64_CC) -static -o $@ $^ $(AGENT_LDLIBS)

$(BUILD)/guest/arm64/initramfs.cpio: $(BUILD)/guest/arm64/podvisor-agent guest-agent/mkinitramfs.sh
	bash guest-agent/mkinitramfs.sh $< $@

# The arm64-x86 handler's initramfs adds Debian's static qemu-x86_64 built for arm64 (from
# qemu-user-static:arm64, fetched and cached by mk/deb-file.sh); the agent registers it with
# binfmt_misc at boot (guest-agent/binfmt.c). The path must match AGENT_BINFMT_X86_64.
$(BUILD)/guest/arm64/qemu-x86_64::
	bash mk/deb-file.sh qemu-user-static:arm64 /usr/bin/qemu-x86_64-static $@

$(BUILD)/guest/arm64/initramfs-x86.cpio: $(BUILD)/guest/arm64/podvisor-agent $(BUILD)/guest/arm64/qemu-x86_64 \
		guest-agent/mkinitramfs.sh
	bash guest-agent/mkinitramfs.sh $< $@ $(BUILD)/guest/arm64/qemu-x86_64:/usr/libexec/qemu-binfmt/x86_64-binfmt-P

GUEST_FILES += $(BUILD)/guest/arm64/podvisor-agent $(BUILD)/guest/arm64/initramfs.cpio \
	$(BUILD)/guest/arm64/initramfs-x86.cpio

# ---- host debug client --------------------------------------------------------------
$(BUILD)/obj/guest-agent/agentctl.o: $(AGENT_PROTO_H) $(BUILD)/gen/version.h
$(BUILD)/bin/podvisor-agentctl: $(BUILD)/obj/guest-agent/agentctl.o $(BUILD)/libpvcommon.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(call PKG_LIBS,libprotobuf-c)
HOST_BINS += $(BUILD)/bin/podvisor-agentctl

# ---- unit tests (host, with the sanitizers of the build) -----------------------------
# Agent logic that is pure (validation, path checks) is compiled for the host as well.
AGENT_HOST_LIB_SRCS := guest-agent/validate.c guest-agent/sysctl.c
AGENT_TESTS := $(patsubst guest-agent/tests/test_%.c,$(BUILD)/tests/test_agent_%,$(wildcard guest-agent/tests/test_*.c))
$(AGENT_TESTS:$(BUILD)/tests/%=$(BUILD)/obj/guest-agent/tests/%.o): $(AGENT_PROTO_H)
$(BUILD)/tests/test_agent_%: $(BUILD)/obj/guest-agent/tests/test_%.o \
		$(AGENT_HOST_LIB_SRCS:%.c=$(BUILD)/obj/%.o) $(BUILD)/libpvcommon.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(call PKG_LIBS,libprotobuf-c cmocka) $(AGENT_TEST_LIBS)
$(BUILD)/obj/guest-agent/tests/%.o: $(AGENT_PROTO_H)
UNIT_TESTS += $(AGENT_TESTS)
# The filter compiler runs on the host too (libseccomp), with podvisord's default profile.
$(BUILD)/obj/guest-agent/tests/test_seccomp.o: EXTRA_CFLAGS_guest-agent += -Icri $(call PKG_CFLAGS,libprotobuf-c)
$(BUILD)/obj/guest-agent/tests/test_seccomp.o: $(BUILD)/gen/proto/cri.pb-c.h
$(BUILD)/tests/test_agent_seccomp: $(BUILD)/obj/guest-agent/seccomp.o $(BUILD)/obj/cri/seccomp_default.o \
	$(BUILD)/obj/cri/arena.o $(BUILD)/obj/gen/proto/cri.pb-c.o
$(BUILD)/tests/test_agent_seccomp: AGENT_TEST_LIBS := $(BUILD)/libpvcommon.a -lseccomp
$(BUILD)/tests/test_agent_sigresend: $(BUILD)/obj/guest-agent/sigresend.o
$(BUILD)/tests/test_agent_sigresend: AGENT_TEST_LIBS := $(BUILD)/libpvcommon.a

# ---- fuzzer: frame reader + request decoder + agent validation (libFuzzer) ---------------
FUZZERS += $(BUILD)/fuzz/fuzz_agent_frame
$(BUILD)/fuzz/fuzz_agent_frame: guest-agent/fuzz/fuzz_frame.c common/frame.c common/error.c \
		common/util.c common/seccomp_names.c guest-agent/validate.c guest-agent/sysctl.c \
		$(AGENT_PROTO_C) $(AGENT_PROTO_H)
	@mkdir -p $(dir $@)
	$(CLANG) -std=gnu11 -g -O1 -D_GNU_SOURCE -Icommon -I$(BUILD)/gen -Iguest-agent \
		-fsanitize=fuzzer,address,undefined $(filter %.c,$^) -o $@ $(call PKG_LIBS,libprotobuf-c)

# `make test` runs it for a bounded time with every other fuzzer (mk/run-fuzzers.sh).
-include $(shell find $(BUILD)/guest-obj $(BUILD)/guest-obj-arm64 -name '*.d' 2>/dev/null)
