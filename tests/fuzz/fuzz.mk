# libFuzzer targets (clang, -fsanitize=fuzzer with ASan and UBSan). The library is built
# once more with clang and the sanitizers in $(FUZZ_BUILD); `make fuzz` runs each target
# for FUZZ_SECONDS, `make check` runs a bounded, seeded run (tests/fuzz/run.sh).
FUZZ_BUILD := build-fuzz
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_SRCS := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BINS := $(FUZZ_SRCS:tests/fuzz/%.c=$(FUZZ_BUILD)/fuzz/%)
FUZZ_SECONDS ?= 60

ifneq ($(BUILD),$(FUZZ_BUILD))
.PHONY: fuzz fuzz-lib-force
fuzz-lib-force:
# the library's own rules (in a make of its own) decide what to rebuild; the targets are
# linked again only when the library changed
$(FUZZ_BUILD)/libnestor.a: fuzz-lib-force
	@$(MAKE) --no-print-directory BUILD=$(FUZZ_BUILD) CC=clang OPT=-O1 \
	    SAN="$(FUZZ_SAN) -fsanitize=fuzzer-no-link" $(FUZZ_BUILD)/libnestor.a

$(FUZZ_BUILD)/fuzz/%: tests/fuzz/%.c $(FUZZ_BUILD)/libnestor.a
	@mkdir -p $(dir $@)
	clang -std=c11 -D_GNU_SOURCE -O1 -g -Wall -Wextra -Werror -Isrc $(FUZZ_SAN) -fsanitize=fuzzer \
	    $< $(FUZZ_BUILD)/libnestor.a -o $@ $(LDLIBS)

TEST_PROGRAMS += $(FUZZ_BINS)

fuzz: $(FUZZ_BINS)
	@for f in $(FUZZ_BINS); do \
	    mkdir -p $(FUZZ_BUILD)/corpus/$$(basename $$f); \
	    $$f -max_total_time=$(FUZZ_SECONDS) -max_len=4096 $(FUZZ_BUILD)/corpus/$$(basename $$f) || exit 1; \
	done
endif
