# tools/: the benchmark and management programs, each linked against the static library.

$(BUILD)/raftkit-bench: $(BUILD)/obj/tools/raftkit_bench.o $(LIB_A)
	$(CC) $(LDFLAGS_SAN) -o $@ $^ $(LDLIBS)

BINS += $(BUILD)/raftkit-bench
