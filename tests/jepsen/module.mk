# tests/jepsen: linearizability of the kv example under faults. The checker's
# own tests and a short run go into `make test`; `make jepsen` is the long run:
#   make jepsen [TIME=120] [NODES=5] [SEED=N] [SERVER_FLAGS="..."] [CLIENT_FLAGS="..."]
# (see tests/jepsen/jepsen.py --help for the rest: workers, keys, faults).

JEPSEN_BINS := $(BUILD)/kv-server $(BUILD)/kv-client $(BUILD)/raftkit-cli
TIME  ?= 120
NODES ?= 5

TEST_CMDS += tests/jepsen/test_checker.py tests/jepsen/short-run.sh

.PHONY: jepsen
jepsen: $(JEPSEN_BINS)
	/usr/bin/python3 tests/jepsen/jepsen.py --build $(BUILD) --time $(TIME) --nodes $(NODES) \
	    $(if $(SEED),--seed $(SEED)) --server-flags "$(SERVER_FLAGS)" \
	    --client-flags "$(CLIENT_FLAGS)" $(JEPSEN_FLAGS)
