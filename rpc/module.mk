# RPC module: extra binaries and test commands (see tests/module.mk).
#
#   make fuzz     builds $(BUILD)/fuzz/fuzz_rpc_frame with clang + libFuzzer
#   make test     also runs it for ~20 s when clang is present (skips with a
#                 message otherwise; tools/deps.sh --with-optional installs it)
#   $(BUILD)/tools/rpc-echo-bench   loopback echo benchmark (prints figures)

# ---- echo benchmark ----
RPC_BENCH := $(BUILD)/tools/rpc-echo-bench
$(RPC_BENCH): $(BUILD)/obj/tools/rpc_echo_bench.o $(LIB_A)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_SAN) -o $@ $^ $(LDLIBS)
BINS += $(RPC_BENCH)

# ---- libFuzzer target (clang only; gcc has no -fsanitize=fuzzer) ----
FUZZ_CC   ?= $(shell command -v clang-14 2>/dev/null || command -v clang 2>/dev/null)
HAVE_FUZZ := $(if $(FUZZ_CC),$(shell echo 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n){(void)d;(void)n;return 0;}' | \
               $(FUZZ_CC) -x c -fsanitize=fuzzer -o /dev/null - >/dev/null 2>&1 && echo yes))
RPC_FUZZ  := $(BUILD)/fuzz/fuzz_rpc_frame
RPC_FUZZ_SRCS := tests/fuzz/fuzz_rpc_frame.c rpc/rpc_frame.c rpc/rpc_method.c rpc/rpc_raft.c src/base/status.c
RPC_FUZZ_CFLAGS := -std=c11 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
                   -D_GNU_SOURCE -Iinclude -I. -I$(BUILD)/gen $(PKG_CFLAGS)

$(RPC_FUZZ): $(RPC_FUZZ_SRCS) $(PROTO_C) $(PROTO_H)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(RPC_FUZZ_CFLAGS) -o $@ $(RPC_FUZZ_SRCS) $(PROTO_C) $(shell pkg-config --libs libprotobuf-c libuv)

.PHONY: fuzz
ifeq ($(HAVE_FUZZ),yes)
fuzz: $(RPC_FUZZ)
ifneq ($(SANITIZE),1)
BINS += $(RPC_FUZZ)
endif
else
fuzz:
	@echo "make fuzz: needs clang with libFuzzer (Debian: clang libclang-rt-14-dev; tools/deps.sh --with-optional)" >&2; exit 1
endif

# The fuzzer carries its own sanitizers; the ASan pass does not repeat it.
ifneq ($(SANITIZE),1)
TEST_CMDS += tests/fuzz/run-rpc-fuzz.sh
endif
