# Node runtime: the library sources are picked up by the top-level Makefile.
# Node integration suites (tests/unit/test_node_*.c) also link the loopback
# cluster helpers in tests/node/ (a more specific pattern than the generic
# test rule, so it wins).
NODE_TEST_SUPPORT := $(BUILD)/obj/tests/node/cluster.o
$(BUILD)/tests/test_node_%: $(BUILD)/obj/tests/unit/test_node_%.o $(NODE_TEST_SUPPORT) $(SUPPORT_OBJS) $(LIB_A)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_SAN) -o $@ $^ $(TEST_LIBS) $(LDLIBS)
