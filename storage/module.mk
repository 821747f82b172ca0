# storage: programs beyond the cmocka suites.
#  - storage-crash: SIGKILLs a writing child hundreds of times and checks that
#    every acknowledged entry survives (run by `make test`); with -p each
#    kill is a simulated power loss (unsynced pages survive or not at random);
#    with -g many groups share the environment (tests/storage/multigroup.sh).
#  - storage-bench: append throughput and batch latency with sync on, plus the
#    raw fdatasync latency of the same disk (a program that prints figures).

STORAGE_CRASH := $(BUILD)/tests/storage-crash
STORAGE_BENCH := $(BUILD)/tools/storage-bench

$(STORAGE_CRASH): $(BUILD)/obj/tests/storage/crash.o $(BUILD)/obj/tests/storage/powerloss.o $(LIB_A)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_SAN) -o $@ $^ $(LDLIBS)

$(STORAGE_BENCH): $(BUILD)/obj/tools/storage_bench.o $(LIB_A)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_SAN) -o $@ $^ $(LDLIBS)

BINS      += $(STORAGE_CRASH) $(STORAGE_BENCH)
TEST_CMDS += $(STORAGE_CRASH) tests/storage/powerloss.sh tests/storage/multigroup.sh
