# sgx_sign: the host tool that measures an enclave and writes its SIGSTRUCT, for the SGX
# guest tests and the Linux test. It links with libcrypto only, not with the engine, so
# that the engine's measurement and EINIT check are tested against an independent one.
$(BUILD)/tests/sgx/sgx_sign: $(BUILD)/tests/sgx/sgx_sign.o
	$(CC) $(LDFLAGS) -o $@ $< -lcrypto
TEST_PROGRAMS += $(BUILD)/tests/sgx/sgx_sign

# tests/unit/test_sgx_crypto.c runs the tool (found next to the unit test runner)
$(BUILD)/tests/unit/unit_tests: | $(BUILD)/tests/sgx/sgx_sign
