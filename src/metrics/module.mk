# src/metrics: the histogram micro-benchmark (a program that prints figures).
METRICS_BENCH := $(BUILD)/tools/metrics_bench

$(METRICS_BENCH): $(BUILD)/obj/tools/metrics_bench.o $(LIB_A)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_SAN) -o $@ $^ $(LDLIBS)

BINS += $(METRICS_BENCH)
