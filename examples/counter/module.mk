# examples/counter: JRaft's counter (counter-server, counter-client).

COUNTER_COMMON := $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard examples/common/*.c))

$(BUILD)/counter-server: $(BUILD)/obj/examples/counter/counter_server.o $(COUNTER_COMMON) $(LIB_A)
	$(CC) $(LDFLAGS_SAN) -o $@ $^ $(LDLIBS)

$(BUILD)/counter-client: $(BUILD)/obj/examples/counter/counter_client.o $(LIB_A)
	$(CC) $(LDFLAGS_SAN) -o $@ $^ $(LDLIBS)

BINS += $(BUILD)/counter-server $(BUILD)/counter-client

# Multi-process end-to-end test of counter-server and counter-client.
TEST_CMDS += examples/counter/e2e-test.sh
