# cri/image: registry client, content store, layer unpack, ext4 writer (docs/images.md).
IMAGE_LIB_SRCS := cri/image/ref.c cri/image/digest.c cri/image/manifest.c cri/image/platform.c cri/image/options.c \
	cri/image/registry.c cri/image/layer.c cri/image/ext4.c cri/image/store.c
IMAGE_LIB_OBJS := $(IMAGE_LIB_SRCS:%.c=$(BUILD)/obj/%.o)
IMAGE_OBJS := $(IMAGE_LIB_OBJS) $(BUILD)/obj/cri/image_service.o
IMAGE_LIBS := $(call PKG_LIBS,libcurl jansson ext2fs com_err libarchive libcrypto) -lpthread
EXTRA_CFLAGS_cri += $(call PKG_CFLAGS,libcurl jansson ext2fs com_err libarchive libcrypto)

# cri/build.mk is read before this file, so hand podvisord our objects here as well.
$(BUILD)/bin/podvisord: $(IMAGE_OBJS)
$(BUILD)/obj/cri/image_service.o: $(BUILD)/gen/proto/cri.pb-c.h

$(BUILD)/bin/podvisor-image: $(BUILD)/obj/cri/image/tool.o $(IMAGE_LIB_OBJS) $(BUILD)/libpvcommon.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(IMAGE_LIBS)
HOST_BINS += $(BUILD)/bin/podvisor-image

IMAGE_TESTS := test_ref test_manifest test_layer test_store test_platform
$(BUILD)/tests/image_%: $(BUILD)/obj/cri/image/tests/%.o $(IMAGE_LIB_OBJS) $(BUILD)/libpvcommon.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(IMAGE_LIBS) $(call PKG_LIBS,cmocka)
UNIT_TESTS += $(IMAGE_TESTS:%=$(BUILD)/tests/image_%)

# libFuzzer target for the manifest/index/config parsers (clang).
$(BUILD)/fuzz/image_manifest: cri/image/fuzz_manifest.c cri/image/manifest.c cri/image/platform.c cri/image/digest.c \
		common/util.c common/error.c
	@mkdir -p $(dir $@)
	$(CLANG) -g -O1 -D_GNU_SOURCE -Icommon -fsanitize=fuzzer,address,undefined -o $@ $^ \
		$(call PKG_LIBS,jansson libcrypto)
FUZZERS += $(BUILD)/fuzz/image_manifest

$(BUILD)/fuzz/image_layer: cri/image/fuzz_layer.c cri/image/layer.c cri/image/digest.c common/util.c common/error.c
	@mkdir -p $(dir $@)
	$(CLANG) -g -O1 -D_GNU_SOURCE -Icommon -fsanitize=fuzzer,address,undefined -o $@ $^ \
		$(call PKG_LIBS,libarchive libcrypto)
FUZZERS += $(BUILD)/fuzz/image_layer
