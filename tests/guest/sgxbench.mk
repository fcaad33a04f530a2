# The SGX benchmark's enclave (t64/sgxbench_encl.S): a flat image measured and signed at
# build time by tests/sgx/sgx_sign with the page list in the source's "layout" lines (a
# key of its own, made on the first build); sgxbench.c embeds the image, the SIGSTRUCT
# and the MRSIGNER the tool printed. bench/run.sh runs the kernel.
SGXBENCH_OUT := $(GUEST_OUT)/sgxbench
SGXBENCH_BLOBS := $(addprefix $(SGXBENCH_OUT)/,encl.bin encl.sig)
$(SGXBENCH_OUT)/encl.o: $(GUEST_DIR)/t64/sgxbench_encl.S
	@mkdir -p $(dir $@)
	$(GUEST_CC) -m64 -c $< -o $@
$(SGXBENCH_OUT)/encl.bin: $(SGXBENCH_OUT)/encl.o
	objcopy -O binary -j .text $< $@
$(SGXBENCH_OUT)/encl.layout: $(GUEST_DIR)/t64/sgxbench_encl.S
	@mkdir -p $(dir $@)
	sed -n 's/^ \* layout //p' $< > $@
# encl.meas: MRENCLAVE and MRSIGNER in hex, a line each
$(SGXBENCH_OUT)/encl.sig: $(SGXBENCH_OUT)/encl.bin $(SGXBENCH_OUT)/encl.layout $(BUILD)/tests/sgx/sgx_sign
	$(BUILD)/tests/sgx/sgx_sign -key $(SGXBENCH_OUT)/key.pem -image $(SGXBENCH_OUT)/encl.bin \
	    -layout $(SGXBENCH_OUT)/encl.layout -size 0x4000 -date 20240301 -print-mrenclave \
	    -print-mrsigner -out $@ > $(SGXBENCH_OUT)/encl.meas
$(GUEST_OUT)/t64/sgxbench.o: $(SGXBENCH_BLOBS)
$(GUEST_OUT)/t64/sgxbench.o: GUEST_CFLAGS += -DSGXBENCH_BLOBS='"$(SGXBENCH_OUT)"'
