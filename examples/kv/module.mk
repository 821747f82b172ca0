# examples/kv: the replicated key-value store (kv-server, kv-client), its
# protobuf messages (examples/kv/kv.proto, compiled like rpc/*.proto), the
# state-machine unit test and the multi-process end-to-end test.

KV_GEN_C := $(BUILD)/gen/examples/kv/kv.pb-c.c
KV_GEN_H := $(KV_GEN_C:.c=.h)
KV_GEN_O := $(KV_GEN_C:.c=.o)

$(KV_GEN_C) $(KV_GEN_H): examples/kv/kv.proto
	@mkdir -p $(BUILD)/gen
	protoc-c --c_out=$(BUILD)/gen $<

$(KV_GEN_O): $(KV_GEN_C)
	$(CC) $(CFLAGS) -c -o $@ $<

KV_OBJS := $(patsubst %.c,$(BUILD)/obj/%.o,examples/kv/kv_store.c examples/kv/kv_sm.c) $(KV_GEN_O)
EX_COMMON_OBJS := $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard examples/common/*.c))

# Every object of the example includes the generated header.
$(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard examples/kv/*.c)): $(KV_GEN_H)

$(BUILD)/kv-server: $(BUILD)/obj/examples/kv/kv_server.o $(KV_OBJS) $(EX_COMMON_OBJS) $(LIB_A)
	$(CC) $(LDFLAGS_SAN) -o $@ $^ $(LDLIBS)

$(BUILD)/kv-client: $(BUILD)/obj/examples/kv/kv_client.o $(KV_GEN_O) $(EX_COMMON_OBJS) $(LIB_A)
	$(CC) $(LDFLAGS_SAN) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/kv-store-test: $(BUILD)/obj/examples/kv/test_kv_store.o $(KV_OBJS) $(LIB_A)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_SAN) -o $@ $^ $(TEST_LIBS) $(LDLIBS)

BINS      += $(BUILD)/kv-server $(BUILD)/kv-client $(BUILD)/tests/kv-store-test
TEST_CMDS += $(BUILD)/tests/kv-store-test

# Multi-process end-to-end test of kv-server, kv-client and raftkit-cli.
TEST_CMDS += examples/kv/e2e-test.sh examples/kv/e2e-tls-test.sh
