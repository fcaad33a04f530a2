# Differential tests: instructions run natively and in the engine (see tests/diff/harness.h).
DIFF_SRCS := $(wildcard tests/diff/*.c)
DIFF_OBJS := $(DIFF_SRCS:%.c=$(BUILD)/%.o)

$(BUILD)/tests/diff/gp_cases.o: tests/diff/gp_forms.inc

$(BUILD)/tests/diff/diff_test: $(DIFF_OBJS) $(BUILD)/libnestor.a
	$(CC) $(LDFLAGS) -o $@ $(DIFF_OBJS) $(BUILD)/libnestor.a $(LDLIBS)

TEST_PROGRAMS += $(BUILD)/tests/diff/diff_test
