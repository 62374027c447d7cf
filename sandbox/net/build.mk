# sandbox/net/: tap + tc mirred between the CNI veth and QEMU (libnl), as a library the shim links.
#   $(BUILD)/libpvtapnet.a   link with $(SANDBOX_NET_LIBS)
SANDBOX_NET_SRCS := sandbox/net/tap.c
SANDBOX_NET_OBJS := $(SANDBOX_NET_SRCS:%.c=$(BUILD)/obj/%.o)
SANDBOX_NET_CFLAGS := -Isandbox $(call PKG_CFLAGS,libnl-route-3.0)
SANDBOX_NET_LIBS := $(call PKG_LIBS,libnl-route-3.0) -lpthread
$(SANDBOX_NET_OBJS): CFLAGS += $(SANDBOX_NET_CFLAGS)

$(BUILD)/libpvtapnet.a: $(SANDBOX_NET_OBJS)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

SANDBOX_NET_TESTS := $(patsubst sandbox/net/tests/test_%.c,$(BUILD)/tests/test_tapnet_%,$(wildcard sandbox/net/tests/test_*.c))
UNIT_TESTS += $(SANDBOX_NET_TESTS)
$(SANDBOX_NET_TESTS): $(BUILD)/tests/test_tapnet_%: sandbox/net/tests/test_%.c $(BUILD)/libpvtapnet.a \
		$(addprefix $(BUILD)/obj/common/,error.o util.o)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(SANDBOX_NET_CFLAGS) $< -o $@ $(LDFLAGS) $(BUILD)/libpvtapnet.a \
		$(addprefix $(BUILD)/obj/common/,error.o util.o) $(SANDBOX_NET_LIBS) $(call PKG_LIBS,cmocka)
