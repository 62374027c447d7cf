# common/: shared code (built into libpvcommon.a by the top-level Makefile); its unit tests.
COMMON_TESTS := $(patsubst common/tests/test_%.c,$(BUILD)/tests/test_common_%,$(wildcard common/tests/test_*.c))
UNIT_TESTS += $(COMMON_TESTS)
$(BUILD)/tests/test_common_%: common/tests/test_%.c $(BUILD)/libpvcommon.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $^ -o $@ $(LDFLAGS) -lcmocka -lpthread
