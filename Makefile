# raftkit: top-level build.
#
#   make            build the library, examples, tools and tests into build/
#   make test       build and run every test suite (cmocka summaries, non-zero on failure)
#   make asan       the same with AddressSanitizer + UBSan, into build-asan/
#   make install    PREFIX=/dir [LIBDIR=...]: headers, libraftkit.{a,so}, raftkit.pc
#   make install-programs  PREFIX=/dir: raftkit-cli, raftkit-bench and the examples
#   make deb        Debian packages (dpkg-buildpackage) into build/deb/
#   make deps       install the Debian packages the build needs
#   make format / format-check
#
# Modules add their own binaries and test commands in a module.mk beside their
# sources (see tests/module.mk for the conventions); this file holds the rules
# they share.

PREFIX   ?= /usr/local
LIBDIR   ?= $(PREFIX)/lib
BINDIR   ?= $(PREFIX)/bin
BUILD    ?= build
CC       ?= cc
OBJCOPY  ?= objcopy
SANITIZE ?=
VERSION  := 0.1.0
SOVER    := 0

PKGS     := libuv libprotobuf-c lmdb inih libxxhash libmicrohttpd jansson openssl
TESTPKGS := cmocka

OPT      ?= -O2
CFLAGS_BASE := -std=c11 $(OPT) -g -Wall -Wextra -Werror -D_GNU_SOURCE -fPIC \
               -Iinclude -I. -I$(BUILD)/gen
ifeq ($(SANITIZE),1)
CFLAGS_BASE += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS_SAN := -fsanitize=address,undefined
endif

# Everything below needs the dependencies; the check is cheap (dpkg-query).
DEPS_OK := $(shell ./tools/deps.sh >&2 && echo yes)
ifneq ($(DEPS_OK),yes)
ifeq ($(filter deps format format-check clean,$(MAKECMDGOALS)),)
$(error dependencies missing; see the message above)
endif
endif

PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
TEST_LIBS  := $(shell pkg-config --libs $(TESTPKGS) 2>/dev/null)
CFLAGS   := $(CFLAGS_BASE) $(PKG_CFLAGS) $(EXTRA_CFLAGS)
LDLIBS   := $(PKG_LIBS) -lpthread -lm

# ---- protobuf-c: rpc/*.proto -> $(BUILD)/gen/rpc/*.pb-c.{c,h} ----
PROTOS    := $(wildcard rpc/*.proto)
PROTO_C   := $(patsubst rpc/%.proto,$(BUILD)/gen/rpc/%.pb-c.c,$(PROTOS))
PROTO_H   := $(PROTO_C:.c=.h)
PROTO_OBJ := $(PROTO_C:.c=.o)

$(BUILD)/gen/rpc/%.pb-c.c $(BUILD)/gen/rpc/%.pb-c.h: rpc/%.proto
	@mkdir -p $(BUILD)/gen
	protoc-c --c_out=$(BUILD)/gen $<

$(BUILD)/gen/rpc/%.pb-c.o: $(BUILD)/gen/rpc/%.pb-c.c
	$(CC) $(CFLAGS) -c -o $@ $<

# ---- the library: every .c under src/, storage/ and rpc/ ----
# $(LIB_A) is the internal archive: every object, internal symbols global, for
# the project's own tests, tools and examples (tests call internals).
# $(LIB_A_PUB) is the archive `make install` ships: the objects linked into one
# relocatable object whose hidden (internal) symbols are then made local, so
# an application's own buf_new or journal_open cannot clash with ours.
# $(LIB_SO) exports the API only, under the version node of src/raftkit.map.
LIB_SRCS := $(wildcard src/*/*.c storage/*.c rpc/*.c)
LIB_OBJS := $(patsubst %.c,$(BUILD)/obj/%.o,$(LIB_SRCS)) $(PROTO_OBJ)
LIB_A    := $(BUILD)/libraftkit.a
LIB_A_PUB := $(BUILD)/public/libraftkit.a
LIB_SO   := $(BUILD)/libraftkit.so
LIB_MAP  := src/raftkit.map

$(BUILD)/obj/%.o: %.c $(PROTO_H)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c -o $@ $<

# Library objects only: what include/raftkit declares (inside its "visibility
# push(default)" regions) is visible outside the library, the rest hidden.
# Test programs keep default visibility: the storage fault-injection tests
# interpose pwrite, fdatasync... for liblmdb, which needs them exported.
$(LIB_OBJS): CFLAGS += -fvisibility=hidden

$(LIB_A): $(LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(LIB_A_PUB): $(LIB_OBJS)
	@mkdir -p $(dir $@)
	@rm -f $@ $(BUILD)/public/raftkit.o
	$(LD) -r -o $(BUILD)/public/raftkit.o $^
	$(OBJCOPY) --localize-hidden $(BUILD)/public/raftkit.o
	ar rcs $@ $(BUILD)/public/raftkit.o

$(LIB_SO): $(LIB_OBJS) $(LIB_MAP)
	$(CC) -shared -Wl,-soname,libraftkit.so.$(SOVER) -Wl,--version-script=$(LIB_MAP) \
	    $(LDFLAGS_SAN) -o $@.$(VERSION) $(LIB_OBJS) $(LDLIBS)
	ln -sf libraftkit.so.$(VERSION) $@.$(SOVER)
	ln -sf libraftkit.so.$(VERSION) $@

# ---- binaries ----
# Unit test suites: tests/unit/test_NAME.c -> $(BUILD)/tests/test_NAME, linked
# with tests/support/*.c, the helpers tests share with tools (tools/common/*.c),
# the static library and cmocka. Each is run by `make test`.
SUPPORT_OBJS := $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard tests/support/*.c tools/common/*.c))
UNIT_TESTS   := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(wildcard tests/unit/test_*.c))

$(BUILD)/tests/test_%: $(BUILD)/obj/tests/unit/test_%.o $(SUPPORT_OBJS) $(LIB_A)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_SAN) -o $@ $^ $(TEST_LIBS) $(LDLIBS)

# Modules append to BINS (built by `make`) and TEST_CMDS (run by `make test`,
# one shell command per word; use $(space)-free commands or wrapper scripts).
BINS      := $(LIB_A) $(LIB_A_PUB) $(LIB_SO) $(UNIT_TESTS)
# tests/check-exports.sh: the libraries expose include/raftkit and nothing else.
TEST_CMDS := $(UNIT_TESTS) tests/check-exports.sh

include $(sort $(wildcard src/*/module.mk storage/module.mk rpc/module.mk \
                          tools/module.mk examples/*/module.mk tests/module.mk \
                          tests/jepsen/module.mk))

.DEFAULT_GOAL := all
.SECONDARY:
.PHONY: all test asan install install-programs deb deps format format-check clean
all: $(BINS)

test: all
	@BUILD=$(BUILD) ./tests/run-all.sh $(TEST_CMDS)

asan:
	$(MAKE) BUILD=build-asan SANITIZE=1 OPT=-O1 test

deps:
	./tools/deps.sh

# ---- install ----
HEADERS := $(wildcard include/raftkit/*.h)
# raftkit.pc gives programs an rpath to LIBDIR, unless it is a system
# library directory (a packaged install, e.g. LIBDIR=/usr/lib/x86_64-linux-gnu).
comma := ,
PC_RPATH = $(if $(filter /usr/lib /usr/lib/% /lib /lib/%,$(LIBDIR)),, -Wl$(comma)-rpath$(comma)$${libdir})
install: $(LIB_A_PUB) $(LIB_SO)
	install -d $(DESTDIR)$(PREFIX)/include/raftkit $(DESTDIR)$(LIBDIR)/pkgconfig
	install -m 644 $(HEADERS) $(DESTDIR)$(PREFIX)/include/raftkit/
	install -m 644 $(LIB_A_PUB) $(DESTDIR)$(LIBDIR)/
	install -m 755 $(LIB_SO).$(VERSION) $(DESTDIR)$(LIBDIR)/
	ln -sf libraftkit.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libraftkit.so.$(SOVER)
	ln -sf libraftkit.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libraftkit.so
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' -e 's|@RPATH@|$(PC_RPATH)|' \
	    -e 's|@VERSION@|$(VERSION)|' -e 's|@REQUIRES@|$(PKGS)|' \
	    raftkit.pc.in > $(DESTDIR)$(LIBDIR)/pkgconfig/raftkit.pc

# The programs, under the names they have on a system: the examples get a
# raftkit- prefix there (raftkit-kv-server), as "kv-server" is too generic.
TOOL_PROGRAMS    := raftkit-cli raftkit-bench
EXAMPLE_PROGRAMS := kv-server kv-client counter-server counter-client
install-programs: $(addprefix $(BUILD)/,$(TOOL_PROGRAMS) $(EXAMPLE_PROGRAMS))
	install -d $(DESTDIR)$(BINDIR)
	install -m 755 $(addprefix $(BUILD)/,$(TOOL_PROGRAMS)) $(DESTDIR)$(BINDIR)/
	for p in $(EXAMPLE_PROGRAMS); do install -m 755 $(BUILD)/$$p $(DESTDIR)$(BINDIR)/raftkit-$$p; done

# Debian packages, the status page and the monitoring files: their tests.
include tests/deb/module.mk tests/status-page/module.mk tests/monitoring/module.mk

# Debian packages (debian/): dpkg-buildpackage writes them next to the source
# tree; they are moved to build/deb/.
deb:
	rm -rf $(BUILD)/deb && mkdir -p $(BUILD)/deb
	dpkg-buildpackage -us -uc -b -j2
	changes=../raftkit_$(VERSION)_$$(dpkg-architecture -qDEB_HOST_ARCH).changes; \
	for f in $$(sed -n '/^Files:/,/^[^ ]/s/^ [^ ]* [^ ]* [^ ]* [^ ]* //p' $$changes); do \
	    mv ../$$f $(BUILD)/deb/; done; \
	mv $$changes $(BUILD)/deb/
	debian/rules clean >/dev/null

# ---- formatting ----
FMT_SRCS = $(shell git ls-files '*.c' '*.h' 2>/dev/null)
format:
	clang-format -i $(FMT_SRCS)
format-check:
	clang-format --dry-run --Werror $(FMT_SRCS)

clean:
	rm -rf build build-asan

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)

# `make run` is the README's first command: a scripted session on a local
# 3-node kv cluster (examples/kv/demo.sh). `make cluster` starts the same
# cluster in the foreground until Ctrl-C; `make cluster TLS=1` the mutual-TLS
# one of conf/kv-tls/; `make cluster SHARDS=16` a sharded one (groups kv-0 ..
# kv-15 on every node). `make certs` writes a throwaway CA and certificates
# into data/certs/ (tools/make-certs.sh; the TLS cluster makes them if absent).
.PHONY: run cluster certs
certs:
	./tools/make-certs.sh data/certs
run: $(BUILD)/kv-server $(BUILD)/kv-client $(BUILD)/raftkit-cli
	@BUILD=$(BUILD) ./examples/kv/demo.sh
cluster: $(BUILD)/kv-server $(BUILD)/kv-client $(BUILD)/raftkit-cli
	@BUILD=$(BUILD) TLS=$(TLS) SHARDS=$(SHARDS) ./examples/kv/cluster.sh
