# tests/jepsen: linearizability of the kv example under faults. The checker's
# own tests and a short run go into `make test`; `make jepsen` is the long run:
#   make jepsen [TIME=120] [NODES=5] [SHARDS=1] [SEED=N] [SERVER_FLAGS="..."]
#               [CLIENT_FLAGS="..."] [CLI_FLAGS="..."]
# (see tests/jepsen/jepsen.py --help for the rest: workers, keys, faults).

# The powerloss fault runs kv-server-pl: kv-server with the write tracking of
# the storage power-loss test (tests/storage/powerloss.c), switched on per
# node by RAFTKIT_POWERLOSS_DIR; powerloss-cut plays the cut after a kill -9.
KV_SERVER_PL  := $(BUILD)/tests/kv-server-pl
POWERLOSS_CUT := $(BUILD)/tests/powerloss-cut

$(KV_SERVER_PL): $(BUILD)/obj/examples/kv/kv_server.o $(KV_OBJS) $(EX_COMMON_OBJS) \
                 $(BUILD)/obj/tests/jepsen/powerloss_node.o $(BUILD)/obj/tests/storage/powerloss.o \
                 $(LIB_A)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_SAN) -o $@ $^ $(LDLIBS)

$(POWERLOSS_CUT): $(BUILD)/obj/tests/jepsen/powerloss_cut.o $(BUILD)/obj/tests/storage/powerloss.o
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_SAN) -o $@ $^ $(LDLIBS)

BINS += $(KV_SERVER_PL) $(POWERLOSS_CUT)

JEPSEN_BINS := $(BUILD)/kv-server $(BUILD)/kv-client $(BUILD)/raftkit-cli $(KV_SERVER_PL) \
               $(POWERLOSS_CUT)
TIME  ?= 120
NODES ?= 5

TEST_CMDS += tests/jepsen/test_checker.py tests/jepsen/short-run.sh

.PHONY: jepsen
jepsen: $(JEPSEN_BINS)
	/usr/bin/python3 tests/jepsen/jepsen.py --build $(BUILD) --time $(TIME) --nodes $(NODES) \
	    $(if $(SEED),--seed $(SEED)) $(if $(SHARDS),--shards $(SHARDS)) \
	    --server-flags "$(SERVER_FLAGS)" --client-flags "$(CLIENT_FLAGS)" --cli-flags "$(CLI_FLAGS)" $(JEPSEN_FLAGS)
