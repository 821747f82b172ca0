# tools/: the benchmark and management programs, each linked against the static library.

# raftkit-bench: N-process loopback benchmark (tools/raftkit_bench.c).
$(BUILD)/raftkit-bench: $(BUILD)/obj/tools/raftkit_bench.o $(LIB_A)
	$(CC) $(LDFLAGS_SAN) -o $@ $^ $(LDLIBS)

# raftkit-cli: cluster management through the CLI service (tools/raftkit_cli.c).
$(BUILD)/raftkit-cli: $(BUILD)/obj/tools/raftkit_cli.o $(LIB_A)
	$(CC) $(LDFLAGS_SAN) -o $@ $^ $(LDLIBS)

BINS += $(BUILD)/raftkit-bench $(BUILD)/raftkit-cli
