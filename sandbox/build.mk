# sandbox/: the VMM layer (vmm.h; the QEMU backend and its QMP client in sandbox/qemu/, host pods
# in sandbox/host/) as a
# static library the shim links.
SANDBOX_SRCS := $(wildcard sandbox/*.c sandbox/qemu/*.c sandbox/host/*.c)
SANDBOX_OBJS := $(SANDBOX_SRCS:%.c=$(BUILD)/obj/%.o)
EXTRA_CFLAGS_sandbox := $(call PKG_CFLAGS,jansson) -Isandbox -Isandbox/qemu
SANDBOX_LIBS := $(call PKG_LIBS,jansson)

$(BUILD)/libpvsandbox.a: $(SANDBOX_OBJS)
	rm -f $@ && ar rcs $@ $^

SANDBOX_TESTS := $(patsubst sandbox/tests/test_%.c,$(BUILD)/tests/test_sandbox_%,$(wildcard sandbox/tests/test_*.c))
UNIT_TESTS += $(SANDBOX_TESTS)

# Only the parts of common/ the sandbox uses, so its tests don't wait on the protocol code.
SANDBOX_COMMON_OBJS := $(addprefix $(BUILD)/obj/common/,error.o util.o log.o)
$(BUILD)/tests/test_sandbox_%: sandbox/tests/test_%.c $(BUILD)/libpvsandbox.a $(SANDBOX_COMMON_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(EXTRA_CFLAGS_sandbox) $< -o $@ $(LDFLAGS) $(BUILD)/libpvsandbox.a \
		$(SANDBOX_COMMON_OBJS) $(SANDBOX_LIBS) -lcmocka -lpthread

# libFuzzer target for the QMP reply parser (clang).
FUZZERS += $(BUILD)/fuzz/fuzz_qmp
$(BUILD)/fuzz/fuzz_qmp: sandbox/fuzz/fuzz_qmp.c sandbox/qemu/qmp.c common/error.c common/util.c
	@mkdir -p $(dir $@)
	$(CLANG) -std=gnu11 -g -O1 -D_GNU_SOURCE -Icommon -Isandbox -Isandbox/qemu -fsanitize=fuzzer,address,undefined \
		$^ -o $@ $(SANDBOX_LIBS)
