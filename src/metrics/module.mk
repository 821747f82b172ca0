# src/metrics: the metrics benchmark (a program that prints figures: histogram
# costs, and with --groups G the admin endpoint serving G groups)
# and the exposition sample checked by the reference Prometheus parser.
METRICS_BENCH  := $(BUILD)/tools/metrics_bench
METRICS_SAMPLE := $(BUILD)/tools/metrics_expo_sample

$(METRICS_BENCH): $(BUILD)/obj/tools/metrics_bench.o $(BUILD)/obj/tests/support/http_client.o $(LIB_A)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_SAN) -o $@ $^ $(LDLIBS)

$(METRICS_SAMPLE): $(BUILD)/obj/tests/metrics/expo_sample.o $(LIB_A)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_SAN) -o $@ $^ $(LDLIBS)

BINS      += $(METRICS_BENCH) $(METRICS_SAMPLE)
TEST_CMDS += tests/metrics/prom_client_check.sh
