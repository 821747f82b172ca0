# Deterministic cluster simulator: tests/sim/*.c -> $(BUILD)/tests/raft_sim.
#   make test            runs SIM_TEST_SEEDS seeds (fewer under SANITIZE=1)
#   make sim SEEDS=N     long campaign over seeds 1..N (optionally SIM_ARGS=...)

SIM_SRCS := $(wildcard tests/sim/*.c)
SIM_OBJS := $(patsubst %.c,$(BUILD)/obj/%.o,$(SIM_SRCS))
SIM_BIN  := $(BUILD)/tests/raft_sim
SIM_RUN  := $(BUILD)/tests/run_raft_sim
SIM_RUN_LEASE := $(BUILD)/tests/run_raft_sim_lease
SIM_RUN_LONG  := $(BUILD)/tests/run_raft_sim_long
SIM_RUN_GROUPS := $(BUILD)/tests/run_raft_sim_groups

# Also a --lease pass, a long-run pass (20000 steps: slow-building
# liveness bugs such as CORE_BUGS 5) and a pass with four groups per
# process, plain and with --lease; each takes a few seconds without ASan.
ifeq ($(SANITIZE),1)
SIM_TEST_SEEDS ?= 1000
SIM_LEASE_SEEDS ?= 200
SIM_LONG_SEEDS ?= 20
SIM_GROUPS_SEEDS ?= 50
else
SIM_TEST_SEEDS ?= 5000
SIM_LEASE_SEEDS ?= 500
SIM_LONG_SEEDS ?= 50
SIM_GROUPS_SEEDS ?= 250
endif
SEEDS    ?= 100000
SIM_ARGS ?=

$(SIM_BIN): $(SIM_OBJS) $(LIB_A)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_SAN) -o $@ $^ $(LDLIBS)

# TEST_CMDS are single words: a generated wrapper carries the arguments.
$(SIM_RUN): tests/sim/module.mk
	@mkdir -p $(dir $@)
	printf '#!/bin/sh\nexec %s --seeds %s\n' '$(SIM_BIN)' '$(SIM_TEST_SEEDS)' > $@
	chmod +x $@

$(SIM_RUN_LEASE): tests/sim/module.mk
	@mkdir -p $(dir $@)
	printf '#!/bin/sh\nexec %s --seeds %s --lease\n' '$(SIM_BIN)' '$(SIM_LEASE_SEEDS)' > $@
	chmod +x $@

$(SIM_RUN_LONG): tests/sim/module.mk
	@mkdir -p $(dir $@)
	printf '#!/bin/sh\nexec %s --seeds %s --steps 20000\n' '$(SIM_BIN)' '$(SIM_LONG_SEEDS)' > $@
	chmod +x $@

$(SIM_RUN_GROUPS): tests/sim/module.mk
	@mkdir -p $(dir $@)
	printf '#!/bin/sh\n%s --seeds %s --groups 4 && exec %s --seeds %s --groups 4 --lease\n' \
		'$(SIM_BIN)' '$(SIM_GROUPS_SEEDS)' '$(SIM_BIN)' '$(SIM_GROUPS_SEEDS)' > $@
	chmod +x $@

BINS      += $(SIM_BIN) $(SIM_RUN) $(SIM_RUN_LEASE) $(SIM_RUN_LONG) $(SIM_RUN_GROUPS)
TEST_CMDS += $(SIM_RUN) $(SIM_RUN_LEASE) $(SIM_RUN_LONG) $(SIM_RUN_GROUPS)

.PHONY: sim
sim: $(SIM_BIN)
	$(SIM_BIN) --seeds $(SEEDS) $(SIM_ARGS)
