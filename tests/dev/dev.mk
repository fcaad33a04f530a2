# Device tests run by tests/dev/run.sh: a tool that writes nestor's ACPI tables to files
# for iasl (acpica-tools) to disassemble and compile back.
$(BUILD)/tests/dev/acpi_dump: $(BUILD)/tests/dev/acpi_dump.o $(BUILD)/libnestor.a
	$(CC) $(LDFLAGS) -o $@ $< $(BUILD)/libnestor.a $(LDLIBS)
TEST_PROGRAMS += $(BUILD)/tests/dev/acpi_dump
