# Node runtime: the library sources are picked up by the top-level Makefile.
# Node integration suites (tests/unit/test_node_*.c) also link the loopback
# cluster helpers in tests/node/ (a more specific pattern than the generic
# test rule, so it wins).
NODE_TEST_SUPPORT := $(BUILD)/obj/tests/node/cluster.o
$(BUILD)/tests/test_node_%: $(BUILD)/obj/tests/unit/test_node_%.o $(NODE_TEST_SUPPORT) $(SUPPORT_OBJS) $(LIB_A)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_SAN) -o $@ $^ $(TEST_LIBS) $(LDLIBS)

# Multi-process test: a small server binary and the driver that spawns,
# SIGKILLs and SIGSTOPs it.
NODE_MP_BINS := $(BUILD)/tests/rk-test-server $(BUILD)/tests/node_multiproc
$(BUILD)/tests/rk-test-server: $(BUILD)/obj/tests/node/server.o $(NODE_TEST_SUPPORT) $(LIB_A)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_SAN) -o $@ $^ $(LDLIBS)
$(BUILD)/tests/node_multiproc: $(BUILD)/obj/tests/node/multiproc.o $(NODE_TEST_SUPPORT) $(LIB_A) | $(BUILD)/tests/rk-test-server
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_SAN) -o $@ $^ $(TEST_LIBS) $(LDLIBS)
BINS += $(NODE_MP_BINS)
TEST_CMDS += $(BUILD)/tests/node_multiproc

# Startup benchmark (prints figures; not part of `make test`).
$(BUILD)/tests/node-startup-bench: $(BUILD)/obj/tests/node/startup_bench.o $(NODE_TEST_SUPPORT) $(LIB_A)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_SAN) -o $@ $^ $(LDLIBS)
BINS += $(BUILD)/tests/node-startup-bench

# Throughput benchmark (prints figures; not part of `make test`).
$(BUILD)/tests/node-throughput-bench: $(BUILD)/obj/tests/node/throughput_bench.o $(NODE_TEST_SUPPORT) $(LIB_A)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_SAN) -o $@ $^ $(LDLIBS)
BINS += $(BUILD)/tests/node-throughput-bench

# Idle benchmark: CPU of one process hosting many idle groups (prints
# figures; not part of `make test`).
$(BUILD)/tests/node-idle-bench: $(BUILD)/obj/tests/node/idle_bench.o $(NODE_TEST_SUPPORT) $(LIB_A)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_SAN) -o $@ $^ $(LDLIBS)
BINS += $(BUILD)/tests/node-idle-bench

# Many-groups startup benchmark (prints figures; not part of `make test`).
$(BUILD)/tests/node-groups-startup-bench: $(BUILD)/obj/tests/node/groups_startup_bench.o $(NODE_TEST_SUPPORT) $(LIB_A)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_SAN) -o $@ $^ $(LDLIBS)
BINS += $(BUILD)/tests/node-groups-startup-bench
