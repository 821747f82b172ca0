# Raft core extras: the core's own benchmark (tools/core_bench.c), built by
# `make`, run by hand (it prints figures; `make test` does not run it):
#   build/tools/core_bench [batches [batch_size [payload_bytes]]]
# It shares the in-memory log of the scenario-test harness (tools/common/mem_log.c).

CORE_BENCH := $(BUILD)/tools/core_bench

$(CORE_BENCH): $(BUILD)/obj/tools/core_bench.o $(BUILD)/obj/tools/common/mem_log.o $(LIB_A)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_SAN) -o $@ $^ $(LDLIBS)

BINS += $(CORE_BENCH)
