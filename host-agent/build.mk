# host-agent/: podvisor-hostagent, the agent of host pods (containers through an OCI
# runtime). It links the agent core of guest-agent/ (channel frames, stdio streams, request
# dispatch, processes, validation, port-forward) and provides its own transport and
# container code.
HOSTAGENT_CORE := guest-agent/channel.c guest-agent/stdio.c guest-agent/dispatch.c guest-agent/proc.c \
	guest-agent/validate.c guest-agent/sysctl.c guest-agent/portfwd.c
HOSTAGENT_SRCS := $(wildcard host-agent/*.c)
HOSTAGENT_OBJS := $(HOSTAGENT_SRCS:%.c=$(BUILD)/obj/%.o) $(HOSTAGENT_CORE:%.c=$(BUILD)/obj/%.o)
EXTRA_CFLAGS_host-agent := $(call PKG_CFLAGS,jansson libprotobuf-c) -Ihost-agent -Iguest-agent
$(HOSTAGENT_OBJS): $(BUILD)/gen/proto/agent.pb-c.h $(BUILD)/gen/version.h

$(BUILD)/bin/podvisor-hostagent: $(HOSTAGENT_OBJS) $(BUILD)/libpvcommon.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(call PKG_LIBS,jansson libprotobuf-c)
HOST_BINS += $(BUILD)/bin/podvisor-hostagent

# The OCI spec builder is pure: unit-tested with the pieces it needs.
$(BUILD)/tests/test_hostagent_oci: host-agent/tests/test_oci.c $(BUILD)/obj/host-agent/oci.o \
		$(BUILD)/obj/guest-agent/validate.o $(BUILD)/obj/guest-agent/sysctl.o $(BUILD)/libpvcommon.a $(BUILD)/gen/proto/agent.pb-c.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(EXTRA_CFLAGS_host-agent) $(filter-out %.h,$^) -o $@ $(LDFLAGS) \
		$(call PKG_LIBS,jansson libprotobuf-c cmocka)
UNIT_TESTS += $(BUILD)/tests/test_hostagent_oci
