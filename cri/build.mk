# podvisord: the CRI gRPC server.
CRI_SRCS := cri/main.c cri/server.c cri/bounds.c cri/wire.c cri/arena.c cri/config.c cri/methods.c cri/runtime_info.c \
	cri/store.c cri/spec.c cri/passwd.c cri/shims.c cri/events.c cri/pods.c cri/containers.c cri/monitor.c cri/stats.c \
	cri/network.c cri/volumes.c cri/check.c cri/stats_host.c cri/handlers.c cri/streaming.c cri/backend.c \
	cri/templates.c cri/security.c cri/seccomp.c cri/seccomp_default.c
CRI_LIB_OBJS := $(filter-out $(BUILD)/obj/cri/main.o,$(CRI_SRCS:%.c=$(BUILD)/obj/%.o)) $(STREAM_OBJS) \
	$(BUILD)/obj/gen/proto/cri.pb-c.o $(BUILD)/obj/gen/proto/agent.pb-c.o
CRI_LIBS := $(call PKG_LIBS,grpc libprotobuf-c jansson ext2fs com_err libsystemd) $(STREAM_LIBS) -lpthread
EXTRA_CFLAGS_cri := -Icri -Isandbox $(call PKG_CFLAGS,grpc libprotobuf-c jansson libsystemd)

# Everything under cri/ needs the generated CRI header first.
$(CRI_SRCS:%.c=$(BUILD)/obj/%.o) $(IMAGE_OBJS): $(BUILD)/gen/proto/cri.pb-c.h $(BUILD)/gen/proto/agent.pb-c.h \
	$(BUILD)/gen/proto/shim.pb-c.h $(BUILD)/gen/version.h

$(BUILD)/bin/podvisord: $(BUILD)/obj/cri/main.o $(CRI_LIB_OBJS) $(IMAGE_OBJS) $(BUILD)/libpvshimclient.a \
		$(BUILD)/libpvcrinet.a $(BUILD)/libpvsandbox.a $(BUILD)/libpvcommon.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(CRI_LIBS) $(IMAGE_LIBS) $(CRI_NET_LIBS)

HOST_BINS += $(BUILD)/bin/podvisord
PY_GEN += $(BUILD)/py/cri_pb2.py

CRI_TESTS := test_config test_methods test_store test_spec test_passwd test_volumes test_stats_host test_handlers \
	test_bounds test_backend test_security
$(BUILD)/tests/cri_%: $(BUILD)/obj/cri/tests/%.o $(CRI_LIB_OBJS) $(IMAGE_OBJS) $(BUILD)/libpvshimclient.a \
		$(BUILD)/libpvcrinet.a $(BUILD)/libpvsandbox.a $(BUILD)/libpvcommon.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(CRI_LIBS) $(IMAGE_LIBS) $(CRI_NET_LIBS) $(call PKG_LIBS,cmocka)
$(CRI_TESTS:%=$(BUILD)/obj/cri/tests/%.o): $(BUILD)/gen/proto/cri.pb-c.h $(BUILD)/gen/proto/agent.pb-c.h
UNIT_TESTS += $(CRI_TESTS:%=$(BUILD)/tests/cri_%)

# libFuzzer target for what every request meets before its handler (cri/wire.c, cri/bounds.c).
$(BUILD)/fuzz/cri_request: cri/fuzz_request.c cri/wire.c cri/bounds.c common/util.c common/error.c \
		$(BUILD)/gen/proto/cri.pb-c.c $(BUILD)/gen/proto/cri.pb-c.h
	@mkdir -p $(dir $@)
	$(CLANG) -std=gnu11 -Ulinux -g -O1 -D_GNU_SOURCE -Icommon -Icri -I$(BUILD)/gen -fsanitize=fuzzer,address,undefined \
		$(filter %.c,$^) -o $@ $(call PKG_LIBS,libprotobuf-c)
FUZZERS += $(BUILD)/fuzz/cri_request
# libFuzzer target for Localhost seccomp profiles (JSON), checked again by the agent's validation.
FUZZERS += $(BUILD)/fuzz/fuzz_seccomp_profile
$(BUILD)/fuzz/fuzz_seccomp_profile: cri/fuzz/fuzz_seccomp_profile.c cri/seccomp.c cri/seccomp_default.c cri/arena.c \
		guest-agent/validate.c guest-agent/sysctl.c common/seccomp_names.c common/error.c common/util.c common/frame.c \
		$(BUILD)/gen/proto/agent.pb-c.c $(BUILD)/gen/proto/cri.pb-c.c $(BUILD)/gen/proto/agent.pb-c.h \
		$(BUILD)/gen/proto/cri.pb-c.h
	@mkdir -p $(dir $@)
	$(CLANG) -std=gnu11 -Ulinux -g -O1 -D_GNU_SOURCE -Icommon -Icri -Iguest-agent -I$(BUILD)/gen \
		-fsanitize=fuzzer,address,undefined $(filter %.c,$^) -o $@ $(call PKG_LIBS,libprotobuf-c jansson)
