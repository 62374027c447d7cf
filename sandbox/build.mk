# sandbox/: the VMM layer (QEMU backend, QMP client) as a static library the shim links.
SANDBOX_SRCS := $(wildcard sandbox/*.c)
SANDBOX_OBJS := $(SANDBOX_SRCS:%.c=$(BUILD)/obj/%.o)
EXTRA_CFLAGS_sandbox := $(call PKG_CFLAGS,jansson) -Isandbox
SANDBOX_LIBS := $(call PKG_LIBS,jansson)

$(BUILD)/libpvsandbox.a: $(SANDBOX_OBJS)
	ar rcs $@ $^

SANDBOX_TESTS := $(patsubst sandbox/tests/test_%.c,$(BUILD)/tests/test_sandbox_%,$(wildcard sandbox/tests/test_*.c))
UNIT_TESTS += $(SANDBOX_TESTS)

$(BUILD)/tests/test_sandbox_%: sandbox/tests/test_%.c $(BUILD)/libpvsandbox.a $(BUILD)/libpvcommon.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(EXTRA_CFLAGS_sandbox) $< -o $@ $(LDFLAGS) $(BUILD)/libpvsandbox.a \
		$(BUILD)/libpvcommon.a $(SANDBOX_LIBS) -lcmocka -lpthread

# libFuzzer target for the QMP reply parser (clang).
FUZZERS += $(BUILD)/fuzz/fuzz_qmp
$(BUILD)/fuzz/fuzz_qmp: sandbox/fuzz/fuzz_qmp.c sandbox/qmp.c $(COMMON_SRCS)
	@mkdir -p $(dir $@)
	$(CLANG) -std=gnu11 -g -O1 -D_GNU_SOURCE -Icommon -Isandbox -fsanitize=fuzzer,address,undefined \
		$^ -o $@ $(SANDBOX_LIBS)
