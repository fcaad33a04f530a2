/* The enclave of the SGX benchmark (sgxbench.c): a TCS, one code page whose entry point
 * leaves at once with EEXIT to the instruction after the EENTER (RCX at entry), and the
 * thread's SSA frame. A flat image, turned into a binary with objcopy and measured and
 * signed at build time by tests/sgx/sgx_sign with the page list below (sgxbench.mk):
 * 16 KiB of ELRANGE, one-page SSA frames, 64-bit, no debug.
 * layout 0x0000 tcs - 1
 * layout 0x1000 reg rx 1
 * layout 0x2000 reg rw 0
 */
    .code64
    .text
encl_base:
    .quad 0                     /* STATE */
    .quad 0                     /* FLAGS */
    .quad 0x2000                /* OSSA */
    .long 0                     /* CSSA */
    .long 1                     /* NSSA */
    .quad encl_entry - encl_base /* OENTRY */
    .quad 0                     /* AEP */
    .quad 0                     /* OFSBASE */
    .quad 0                     /* OGSBASE */
    .long 0xfff                 /* FSLIMIT */
    .long 0xfff                 /* GSLIMIT */
    .org 0x1000
encl_entry:
    mov %rcx, %rbx              /* EEXIT's target: where EENTER's ENCLU returns */
    mov $4, %eax                /* EEXIT */
    .byte 0x0f, 0x01, 0xd7      /* enclu */
    ud2
    .org 0x2000
