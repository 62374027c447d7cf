# bench/: tools the benchmarks need. tcpbench is static: it also runs inside pod images.
$(BUILD)/guest/tcpbench: bench/tools/tcpbench.c
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) -static -o $@ $<
GUEST_FILES += $(BUILD)/guest/tcpbench
