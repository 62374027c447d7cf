# cri/stream/: the CRI streaming server (Exec/Attach/PortForward over SPDY/3.1 and WebSocket),
# linked into podvisord (cri/build.mk adds $(STREAM_OBJS) and $(STREAM_LIBS)). docs/streaming.md.
STREAM_SRCS := cri/stream/buf.c cri/stream/spdy.c cri/stream/spdy_dict.c cri/stream/ws.c cri/stream/token.c \
	cri/stream/k8s.c cri/stream/shimlink.c cri/stream/spdy_conn.c cri/stream/ws_conn.c cri/stream/session.c \
	cri/stream/http.c
STREAM_OBJS := $(STREAM_SRCS:%.c=$(BUILD)/obj/%.o)
STREAM_LIBS := $(call PKG_LIBS,libmicrohttpd zlib libcrypto jansson libprotobuf-c) -lpthread
$(STREAM_OBJS): $(BUILD)/gen/proto/shim.pb-c.h $(BUILD)/gen/proto/agent.pb-c.h
$(STREAM_OBJS): CFLAGS += $(call PKG_CFLAGS,libmicrohttpd zlib)

# Unit tests: the codecs, tokens and the channel protocol helpers (no sockets, no threads).
STREAM_CODEC_OBJS := $(addprefix $(BUILD)/obj/cri/stream/,buf.o spdy.o spdy_dict.o ws.o token.o) \
	$(addprefix $(BUILD)/obj/common/,error.o util.o)
STREAM_TESTS := $(patsubst cri/stream/tests/test_%.c,$(BUILD)/tests/test_stream_%,$(wildcard cri/stream/tests/test_*.c))
UNIT_TESTS += $(STREAM_TESTS)
$(BUILD)/tests/test_stream_%: cri/stream/tests/test_%.c $(STREAM_CODEC_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Icri/stream $^ -o $@ $(LDFLAGS) $(call PKG_LIBS,zlib libcrypto cmocka) -lpthread

# libFuzzer target for the SPDY frame + header block decoder and the WebSocket frame decoder.
FUZZERS += $(BUILD)/fuzz/fuzz_spdy
$(BUILD)/fuzz/fuzz_spdy: cri/stream/fuzz/fuzz_spdy.c cri/stream/spdy.c cri/stream/spdy_dict.c cri/stream/ws.c \
		cri/stream/buf.c common/error.c common/util.c
	@mkdir -p $(dir $@)
	$(CLANG) -std=gnu11 -g -O1 -D_GNU_SOURCE -Icommon -Icri/stream -fsanitize=fuzzer,address,undefined \
		$^ -o $@ $(call PKG_LIBS,zlib libcrypto)
