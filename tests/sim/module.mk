# Deterministic cluster simulator: tests/sim/*.c -> $(BUILD)/tests/raft_sim.
#   make test            runs SIM_TEST_SEEDS seeds (fewer under SANITIZE=1)
#   make sim SEEDS=N     long campaign over seeds 1..N (optionally SIM_ARGS=...)

SIM_SRCS := $(wildcard tests/sim/*.c)
SIM_OBJS := $(patsubst %.c,$(BUILD)/obj/%.o,$(SIM_SRCS))
SIM_BIN  := $(BUILD)/tests/raft_sim
SIM_RUN  := $(BUILD)/tests/run_raft_sim

ifeq ($(SANITIZE),1)
SIM_TEST_SEEDS ?= 1000
else
SIM_TEST_SEEDS ?= 5000
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

BINS      += $(SIM_BIN) $(SIM_RUN)
TEST_CMDS += $(SIM_RUN)

.PHONY: sim
sim: $(SIM_BIN)
	$(SIM_BIN) --seeds $(SEEDS) $(SIM_ARGS)
