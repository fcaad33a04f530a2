# Test programs. Every test folder tests/NAME/ may have:
#   NAME.mk  - make rules; it appends what must be built to TEST_PROGRAMS
#   run.sh   - runs its tests, printing one line per test: "PASS name" or "FAIL name: why"
# tests/run.sh runs every folder's run.sh and closes with "N passed, N failed".
TEST_PROGRAMS :=

# Host-side unit tests (Criterion), linked against the engine library.
UNIT_SRCS := $(wildcard tests/unit/*.c)
UNIT_OBJS := $(UNIT_SRCS:%.c=$(BUILD)/%.o)
# the command line is not in the library: the parsers the unit tests check come along
UNIT_CLI_OBJS := $(BUILD)/src/cli/sgx_options.o
$(BUILD)/tests/unit/unit_tests: $(UNIT_OBJS) $(UNIT_CLI_OBJS) $(BUILD)/libnestor.a
	$(CC) $(LDFLAGS) -o $@ $(UNIT_OBJS) $(UNIT_CLI_OBJS) $(BUILD)/libnestor.a -lcriterion $(LDLIBS)
ifneq ($(UNIT_SRCS),)
TEST_PROGRAMS += $(BUILD)/tests/unit/unit_tests
endif
# every test object is rebuilt when a header it includes changes
-include $(wildcard $(BUILD)/tests/*/*.d)

-include $(wildcard tests/*/*.mk)

.PHONY: test-programs
test-programs: $(TEST_PROGRAMS)
