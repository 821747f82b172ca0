# tests/deb: the Debian packages (make deb) build, hold the right files, and
# a program compiles against them with pkg-config. Adds the time of one
# package build (about a minute on two cores) to `make test`.
ifneq ($(SANITIZE),1)
TEST_CMDS += tests/deb/deb-test.sh
endif
