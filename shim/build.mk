# shim/: podvisor-shim (one per pod), its client library (linked by podvisord) and
# podvisor-shimctl (debug CLI speaking the shim socket through the client library).
SHIM_PROTO_H := $(BUILD)/gen/proto/shim.pb-c.h $(BUILD)/gen/proto/agent.pb-c.h
SHIM_PROTO_O := $(BUILD)/obj/gen/proto/shim.pb-c.o
EXTRA_CFLAGS_shim := $(call PKG_CFLAGS,jansson libprotobuf-c libnl-route-3.0) -Ishim -Isandbox
SHIM_LIBS := $(call PKG_LIBS,jansson libprotobuf-c) -lpthread
SHIM_NET_LIBS := $(call PKG_LIBS,libnl-route-3.0)

SHIM_SRCS := $(filter-out shim/client.c shim/shimctl.c,$(wildcard shim/*.c))
SHIM_OBJS := $(SHIM_SRCS:%.c=$(BUILD)/obj/%.o)
$(BUILD)/obj/shim/main.o: $(BUILD)/gen/version.h
$(SHIM_OBJS) $(BUILD)/obj/shim/client.o $(BUILD)/obj/shim/shimctl.o $(SHIM_PROTO_O): $(SHIM_PROTO_H)

$(BUILD)/bin/podvisor-shim: $(SHIM_OBJS) $(SHIM_PROTO_O) $(BUILD)/libpvsandbox.a $(BUILD)/libpvtapnet.a \
		$(BUILD)/libpvcommon.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(SHIM_LIBS) $(SHIM_NET_LIBS)

# What podvisord links to talk to shims (with libpvcommon.a).
$(BUILD)/libpvshimclient.a: $(BUILD)/obj/shim/client.o $(SHIM_PROTO_O)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/bin/podvisor-shimctl: $(BUILD)/obj/shim/shimctl.o $(BUILD)/libpvshimclient.a $(BUILD)/libpvcommon.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(SHIM_LIBS)

HOST_BINS += $(BUILD)/bin/podvisor-shim $(BUILD)/bin/podvisor-shimctl

SHIM_TESTS := $(patsubst shim/tests/test_%.c,$(BUILD)/tests/test_shim_%,$(wildcard shim/tests/test_*.c))
UNIT_TESTS += $(SHIM_TESTS)
$(BUILD)/tests/test_shim_%: shim/tests/test_%.c $(BUILD)/obj/shim/%.o $(addprefix $(BUILD)/obj/common/,error.o util.o log.o)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(EXTRA_CFLAGS_shim) $^ -o $@ $(LDFLAGS) -lcmocka

# e2e/fake_qemu.py (a QEMU + agent stand-in for fast shim tests) speaks the agent protocol.
PY_GEN += $(BUILD)/py/agent_pb2.py
