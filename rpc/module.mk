# RPC module: extra binaries and test commands (see tests/module.mk).
#
#   make fuzz     builds $(BUILD)/fuzz/fuzz_rpc_frame and fuzz_rpc_tls (the TLS
#                 port before the handshake) with clang + libFuzzer
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

# The TLS port before the handshake completes (rpc_tls.c on OpenSSL).
RPC_TLS_FUZZ := $(BUILD)/fuzz/fuzz_rpc_tls
RPC_TLS_FUZZ_SRCS := tests/fuzz/fuzz_rpc_tls.c rpc/rpc_tls.c src/base/status.c
$(RPC_TLS_FUZZ): $(RPC_TLS_FUZZ_SRCS) rpc/rpc_tls.h
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(RPC_FUZZ_CFLAGS) -o $@ $(RPC_TLS_FUZZ_SRCS) $(shell pkg-config --libs openssl)

.PHONY: fuzz
ifeq ($(HAVE_FUZZ),yes)
fuzz: $(RPC_FUZZ) $(RPC_TLS_FUZZ)
ifneq ($(SANITIZE),1)
BINS += $(RPC_FUZZ) $(RPC_TLS_FUZZ)
endif
else
fuzz:
	@echo "make fuzz: needs clang with libFuzzer (Debian: clang libclang-rt-14-dev; tools/deps.sh --with-optional)" >&2; exit 1
endif

# The multi-process kill/restart test over mutual TLS (binaries of src/node).
TEST_CMDS += tests/node/multiproc-tls.sh

# The fuzzer carries its own sanitizers; the ASan pass does not repeat it.
ifneq ($(SANITIZE),1)
TEST_CMDS += tests/fuzz/run-rpc-fuzz.sh
endif
