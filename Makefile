# podvisor top-level build. Each component adds its rules in <dir>/build.mk.
#
#   make run    install packages, build, start podvisord in the foreground
#   make test   install packages, build (with ASan/UBSan), run unit + e2e tests
#   make install / make uninstall   (PREFIX, DESTDIR, SYSCONFDIR, CNI_CONF_DIR; mk/install.sh)
#
# Host programs go to $(BUILD)/bin, guest files to $(BUILD)/guest,
# unit test binaries to $(BUILD)/tests. `make test` builds into build/asan.

BUILD ?= build
SAN ?= 0
PREFIX ?= /usr/local
DESTDIR ?=
SYSCONFDIR ?= /etc
CNI_CONF_DIR ?= /etc/cni/net.d
SYSTEMD_UNIT_DIR ?= $(PREFIX)/lib/systemd/system
CC := gcc
CLANG := clang
# Debian's python3 (python3-grpcio, python3-protobuf), not one a version manager put first on PATH.
PYTHON := /usr/bin/python3

VERSION := $(shell cat VERSION)$(shell git rev-parse --short HEAD >/dev/null 2>&1 && echo +g$$(git rev-parse --short HEAD))

WARNINGS := -Wall -Wextra -Werror -Wmissing-prototypes -Wstrict-prototypes \
	-Wshadow -Wformat=2 -Wpointer-arith -Wvla -Wno-unused-parameter
BASE_CFLAGS := -std=gnu11 -Ulinux -g -O2 -D_GNU_SOURCE -fno-strict-aliasing $(WARNINGS) \
	-Icommon -I$(BUILD)/gen
ifeq ($(SAN),1)
SAN_FLAGS := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
endif
ifeq ($(SAN),thread)
SAN_FLAGS := -fsanitize=thread -fno-omit-frame-pointer
endif
CFLAGS := $(BASE_CFLAGS) $(SAN_FLAGS)
LDFLAGS := $(SAN_FLAGS)

PKG_LIBS = $(shell pkg-config --libs $(1))
PKG_CFLAGS = $(shell pkg-config --cflags $(1))

# Filled in by the build.mk fragments.
HOST_BINS :=
GUEST_FILES :=
UNIT_TESTS :=
FUZZERS :=
PY_GEN :=

.PHONY: all build deps run test test-unit test-fuzz test-e2e test-tsan conformance clean install uninstall
all: build

deps:
	@bash mk/deps.sh

# ---- version header: rewritten only when the version changes ---------------
$(BUILD)/gen/version.h: FORCE
	@mkdir -p $(dir $@)
	@echo '#define PODVISOR_VERSION "$(VERSION)"' > $@.tmp
	@cmp -s $@.tmp $@ && rm -f $@.tmp || mv $@.tmp $@
.PHONY: FORCE
FORCE:

# ---- generated protobuf code -------------------------------------------
$(BUILD)/gen/proto/%.pb-c.c $(BUILD)/gen/proto/%.pb-c.h: proto/%.proto
	@mkdir -p $(BUILD)/gen/proto
	protoc-c --c_out=$(BUILD)/gen proto/$*.proto

$(BUILD)/py/%_pb2.py: proto/%.proto
	@mkdir -p $(BUILD)/py
	protoc -Iproto --python_out=$(BUILD)/py proto/$*.proto

# ---- host objects ------------------------------------------------------
$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(EXTRA_CFLAGS_$(firstword $(subst /, ,$*))) -MMD -MP -c $< -o $@

# Generated sources are compiled with relaxed warnings: they are not ours.
$(BUILD)/obj/gen/%.o: $(BUILD)/gen/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Wno-missing-prototypes -MMD -MP -c $< -o $@

COMMON_SRCS := $(wildcard common/*.c)
COMMON_OBJS := $(COMMON_SRCS:%.c=$(BUILD)/obj/%.o)
$(BUILD)/libpvcommon.a: $(COMMON_OBJS)
	rm -f $@ && ar rcs $@ $^

# Sub-folder fragments first, so their object lists exist when the parent links.
include $(wildcard */*/build.mk) $(wildcard */build.mk)

# The guest kernel is part of every build (cached outside the clone: kernel/build.sh).
GUEST_FILES += $(BUILD)/kernel/vmlinux

build: $(HOST_BINS) $(GUEST_FILES) $(PY_GEN)

INSTALL_ENV = BUILD=$(BUILD) PREFIX=$(PREFIX) DESTDIR=$(DESTDIR) SYSCONFDIR=$(SYSCONFDIR) \
	CNI_CONF_DIR=$(CNI_CONF_DIR) SYSTEMD_UNIT_DIR=$(SYSTEMD_UNIT_DIR)

run: deps
	$(MAKE) -j$(shell nproc) build
	mkdir -p /run/podvisor /var/lib/podvisor
	@bash mk/install.sh cni $(CNI_CONF_DIR)
	$(BUILD)/bin/podvisord $(RUN_ARGS)

install: build
	@$(INSTALL_ENV) bash mk/install.sh install

uninstall:
	@$(INSTALL_ENV) bash mk/install.sh uninstall

test: deps
	$(MAKE) -j$(shell nproc) BUILD=build/asan SAN=1 build $(UNIT_TESTS:$(BUILD)/%=build/asan/%) \
		$(FUZZERS:$(BUILD)/%=build/asan/%)
	$(MAKE) BUILD=build/asan SAN=1 test-unit test-fuzz test-e2e
	@echo "== the pod and network suites again with runtime.templates=false (every pod VM boots)"
	PODVISOR_TEMPLATES=0 $(MAKE) BUILD=build/asan SAN=1 test-e2e E2E_ARGS='e2e/test_pods.py e2e/test_pod_network.py'

# The concurrency stress (e2e/test_stress.py, fake VMM) against a ThreadSanitizer build of
# podvisord and the shim; any TSan report fails it (e2e/conftest.py).
TSAN_STRESS_SECONDS ?= 60
test-tsan: deps
	$(MAKE) -j$(shell nproc) BUILD=build/tsan SAN=thread build
	PV_STRESS_SECONDS=$(TSAN_STRESS_SECONDS) TSAN_OPTIONS="halt_on_error=0 second_deadlock_stack=1 \
		suppressions=$(abspath mk/tsan.supp)" \
		$(MAKE) BUILD=build/tsan SAN=thread test-e2e E2E_ARGS='e2e/test_stress.py -q'

# cri-tools' critest against an ASan+UBSan podvisord (mk/conformance.sh; CRI_TOOLS, CONFORMANCE_MIN).
CRI_TOOLS ?= ../shared/cri-tools
conformance: deps
	$(MAKE) -j$(shell nproc) BUILD=build/asan SAN=1 build
	BUILD=build/asan CRI_TOOLS=$(CRI_TOOLS) bash mk/conformance.sh

test-unit: $(UNIT_TESTS)
	@bash mk/run-unit.sh $(UNIT_TESTS)

FUZZ_SECONDS ?= 20
test-fuzz: $(FUZZERS)
	@FUZZ_SECONDS=$(FUZZ_SECONDS) bash mk/run-fuzzers.sh $(FUZZERS)

E2E_ARGS ?= e2e
test-e2e: build
	PODVISOR_BUILD=$(abspath $(BUILD)) PODVISOR_SAN=$(SAN) PYTHONPATH=$(abspath $(BUILD))/py:$(abspath e2e) \
		$(PYTHON) -m pytest -p no:cacheprovider -ra $(E2E_ARGS)

clean:
	rm -rf build

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
