# cri/net/: pod network namespaces and the CNI client, as a library podvisord links.
#   $(BUILD)/libpvcrinet.a   link with $(CRI_NET_LIBS)
CRI_NET_SRCS := cri/net/netns.c cri/net/cni_config.c cri/net/cni_result.c cri/net/cni_exec.c cri/net/podnet.c
CRI_NET_OBJS := $(CRI_NET_SRCS:%.c=$(BUILD)/obj/%.o)
CRI_NET_LIBS := $(call PKG_LIBS,jansson) -lpthread
$(CRI_NET_OBJS): CFLAGS += -Icri $(call PKG_CFLAGS,jansson)

$(BUILD)/libpvcrinet.a: $(CRI_NET_OBJS)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

CRI_NET_COMMON_OBJS := $(addprefix $(BUILD)/obj/common/,error.o util.o)
CRI_NET_TESTS := $(patsubst cri/net/tests/test_%.c,$(BUILD)/tests/test_net_%,$(wildcard cri/net/tests/test_*.c))
UNIT_TESTS += $(CRI_NET_TESTS)
$(CRI_NET_TESTS): $(BUILD)/tests/test_net_%: cri/net/tests/test_%.c $(BUILD)/libpvcrinet.a $(CRI_NET_COMMON_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Icri $< -o $@ $(LDFLAGS) $(BUILD)/libpvcrinet.a $(CRI_NET_COMMON_OBJS) \
		$(CRI_NET_LIBS) $(call PKG_LIBS,cmocka)

# podvisor-netctl: a small CLI over cri/net and sandbox/net for tests and debugging.
NETCTL_OBJ := $(BUILD)/obj/cri/net/tools/netctl.o
$(NETCTL_OBJ): CFLAGS += -Icri -Isandbox $(call PKG_CFLAGS,jansson libnl-route-3.0)
$(BUILD)/bin/podvisor-netctl: $(NETCTL_OBJ) $(BUILD)/libpvcrinet.a $(BUILD)/libpvtapnet.a $(CRI_NET_COMMON_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(CRI_NET_LIBS) $(SANDBOX_NET_LIBS)
HOST_BINS += $(BUILD)/bin/podvisor-netctl

# libFuzzer target for the CNI result / error / config / record parsers (clang).
FUZZERS += $(BUILD)/fuzz/fuzz_cni
$(BUILD)/fuzz/fuzz_cni: cri/net/fuzz/fuzz_cni.c cri/net/cni_config.c cri/net/cni_result.c cri/net/cni_exec.c \
		cri/net/podnet.c cri/net/netns.c common/error.c common/util.c
	@mkdir -p $(dir $@)
	$(CLANG) -std=gnu11 -g -O1 -D_GNU_SOURCE -Icommon -Icri -fsanitize=fuzzer,address,undefined \
		$^ -o $@ $(CRI_NET_LIBS)
