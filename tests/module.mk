# Test conventions:
#  - tests/unit/test_NAME.c becomes $(BUILD)/tests/test_NAME and runs in `make test`.
#  - tests/support/*.c is helper code linked into every test binary.
#  - a module with other test programs adds them to BINS and the command that
#    runs them to TEST_CMDS in its own module.mk.

ifneq ($(SANITIZE),1)
# The installed library is an ordinary (unsanitized) build.
TEST_CMDS += tests/install-check.sh
endif

include tests/sim/module.mk
include tests/names/module.mk
include tests/shard/module.mk
