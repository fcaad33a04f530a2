/* The test enclave of the SGX guest tests (sgx_enclave.c, sgx_leaves.c): a flat image,
 * position-independent (only RIP-relative references: the base is known at run time),
 * assembled, turned into a binary with objcopy and measured/signed by tests/sgx/sgx_sign
 * with the page list of sgx_encl.layout. 64 KiB of ELRANGE:
 *
 *   0x0000 TCS0   NSSA 2, SSA at 0x6000, FS page 0xa000, GS page 0xb000
 *   0x1000 TCS1   NSSA 1, SSA at 0x8000, FS page 0xb000, GS page 0xa000
 *   0x2000 code (RX, two pages)
 *   0x4000 data (RW): the table SUM adds up, a result slot at 0x4800
 *   0x5000 read-only data (R): a marker quadword at 0x5000
 *   0x6000 SSA frames of TCS0 (two), 0x8000 the SSA frame of TCS1 (RW, not measured)
 *   0x9000 stacks (RW, not measured): TCS0's top at 0x9800, TCS1's at 0xa000
 *   0xa000 page A (RW): marker at 0, TCS0's register save areas at 0x800
 *   0xb000 page B (RW): marker at 0, TCS1's register save areas at 0x800
 *   0xc000 buffers of EREPORT/EGETKEY (RW, not measured), 0xd000 spare (RW)
 *   0xe000, 0xf000 not added: room for EAUG (sgx_paging.c)
 *
 * The page list (guest.mk extracts the "layout" lines for sgx_sign; the tests read the
 * same file to know what to EADD and EEXTEND): OFFSET TYPE PERMS MEASURE
 * layout 0x0000 tcs - 1
 * layout 0x1000 tcs - 1
 * layout 0x2000 reg rx 1
 * layout 0x3000 reg rx 1
 * layout 0x4000 reg rw 1
 * layout 0x5000 reg r 1
 * layout 0x6000 reg rw 0
 * layout 0x7000 reg rw 0
 * layout 0x8000 reg rw 0
 * layout 0x9000 reg rw 0
 * layout 0xa000 reg rw 1
 * layout 0xb000 reg rw 1
 * layout 0xc000 reg rw 0
 * layout 0xd000 reg rw 0
 *
 * Calling convention (the test's ring-3 stub): EENTER with RDI = command, RSI = a buffer
 * outside the enclave, RDX and R8-R10 = arguments. At entry the enclave stores every
 * register in the save area of the frame it entered at (FS:0x800 + 0x100 * CSSA, in the
 * SSA's register order, RFLAGS at +0x80). Results come back in RDX, R8, R9. Entered with
 * CSSA > 0 (after an AEX), the enclave is its own exception handler: it copies EXINFO and
 * GPRSGX of the frame before (200 bytes) to RSI, and with RDX = 1 makes the interrupted
 * command give up (its RIP goes to cmd_abandoned) or with RDX = 2 skips R8 bytes. */
    .code64
    .text
encl_base:

/* ---- TCS0 ---- */
    .quad 0                     /* STATE */
    .quad 0                     /* FLAGS */
    .quad 0x6000                /* OSSA */
    .long 0                     /* CSSA */
    .long 2                     /* NSSA */
    .quad encl_entry - encl_base /* OENTRY */
    .quad 0                     /* AEP */
    .quad 0xa000                /* OFSBASE */
    .quad 0xb000                /* OGSBASE */
    .long 0xfff                 /* FSLIMIT */
    .long 0xfff                 /* GSLIMIT */
    .org 0x1000

/* ---- TCS1 ---- */
    .quad 0, 0, 0x8000
    .long 0, 1
    .quad encl_entry - encl_base, 0, 0xb000, 0xa000
    .long 0xfff, 0xfff
    .org 0x2000

#define AREA(reg) %fs:0x800 + 8 * (reg)(%r11)
#define SAVED(reg) %fs:0x800 + 8 * (reg)
#define RAX 0
#define RCX 1
#define RDX 2
#define RBX 3
#define RSP 4
#define RBP 5
#define RSI 6
#define RDI 7
#define R8 8
#define R9 9
#define R10 10
#define ENCLU .byte 0x0f, 0x01, 0xd7

encl_entry:
    shl $8, %rax                /* RAX = CSSA: the save area of this frame */
    mov %rcx, %fs:0x808(%rax)
    mov %rdx, %fs:0x810(%rax)
    mov %rbx, %fs:0x818(%rax)
    mov %rsp, %fs:0x820(%rax)
    mov %rbp, %fs:0x828(%rax)
    mov %rsi, %fs:0x830(%rax)
    mov %rdi, %fs:0x838(%rax)
    mov %r8, %fs:0x840(%rax)
    mov %r9, %fs:0x848(%rax)
    mov %r10, %fs:0x850(%rax)
    mov %r11, %fs:0x858(%rax)
    mov %r12, %fs:0x860(%rax)
    mov %r13, %fs:0x868(%rax)
    mov %r14, %fs:0x870(%rax)
    mov %r15, %fs:0x878(%rax)
    pushfq                      /* on the outside stack: ordinary memory */
    popq %fs:0x880(%rax)
    mov %rax, %r11
    shr $8, %rax
    mov %rax, %fs:0x800(%r11)
    cld
    lea encl_base(%rip), %r10
    test %rax, %rax
    jnz handler
    /* the stack of this thread: TCS0 (offset 0) 0x9800, TCS1 (0x1000) 0xa000 */
    mov %rbx, %rax
    sub %r10, %rax
    shr $1, %rax
    lea 0x9800(%r10, %rax), %rsp
    mov SAVED(RDI), %rax
    cmp $(cmd_table_end - cmd_table) / 4, %rax
    jae cmd_bad
    lea cmd_table(%rip), %rcx
    movslq (%rcx, %rax, 4), %rax
    add %rcx, %rax
    jmp *%rax

cmd_table:
    .long cmd_echo - cmd_table      /* 0 */
    .long cmd_sum - cmd_table       /* 1 */
    .long cmd_fsgs - cmd_table      /* 2 */
    .long cmd_illegal - cmd_table   /* 3 */
    .long cmd_read - cmd_table      /* 4 */
    .long cmd_write - cmd_table     /* 5 */
    .long cmd_outread - cmd_table   /* 6 */
    .long cmd_spin - cmd_table      /* 7 */
    .long cmd_ereport - cmd_table   /* 8 */
    .long cmd_egetkey - cmd_table   /* 9 */
    .long cmd_enclu - cmd_table     /* 10 */
    .long cmd_dumpssa - cmd_table   /* 11 */
    .long cmd_eexit_bad - cmd_table /* 12 */
    .long cmd_outwrite - cmd_table  /* 13 */
    .long cmd_xmm - cmd_table       /* 14 */
    .long cmd_enclu_si - cmd_table  /* 15 */
cmd_table_end:

cmd_bad:
    mov $0xbadc0de, %rdx
    jmp exit0

/* EEXIT of a command (entered at CSSA 0): back to the RCX of the entry, on the outside
 * stack of the entry */
exit0:
    mov SAVED(RSP), %rsp
    mov SAVED(RCX), %rbx
    mov $4, %eax
    ENCLU
    ud2

/* 0: registers. Copies the save area (17 quadwords) to RSI, then leaves with every
 * register but RAX, RBX, RCX and RSP as it came in, and RDX = 0x600df00d. */
cmd_echo:
    mov SAVED(RSI), %rdi
    test %rdi, %rdi
    jz 1f
    xor %ecx, %ecx
2:  mov %fs:0x800(, %rcx, 8), %rax
    mov %rax, (%rdi, %rcx, 8)
    inc %ecx
    cmp $17, %ecx
    jb 2b
1:  mov SAVED(RBP), %rbp
    mov SAVED(RSI), %rsi
    mov SAVED(RDI), %rdi
    mov SAVED(R8), %r8
    mov SAVED(R9), %r9
    mov SAVED(R10), %r10
    mov %fs:0x858, %r11
    mov %fs:0x860, %r12
    mov %fs:0x868, %r13
    mov %fs:0x870, %r14
    mov %fs:0x878, %r15
    mov $0x600df00d, %edx
    mov SAVED(RSP), %rsp
    mov SAVED(RCX), %rbx
    mov $4, %eax
    ENCLU
    ud2

/* 1: RDX = RDX + the sum of the 64 quadwords at 0x4000, through the stack and a call;
 * stored at 0x4800 and read back. R8 = the read-only marker at 0x5000. */
cmd_sum:
    mov SAVED(RDX), %rax
    push %rax
    call sum_table
    pop %rdx
    add %rax, %rdx
    mov %rdx, 0x4800(%r10)
    xor %edx, %edx
    mov 0x4800(%r10), %rdx
    mov 0x5000(%r10), %r8
    jmp exit0
sum_table:
    xor %eax, %eax
    xor %ecx, %ecx
1:  add 0x4000(%r10, %rcx, 8), %rax
    inc %ecx
    cmp $64, %ecx
    jb 1b
    ret

/* 2: RDX = FS:0, R8 = GS:0; with R8 != 0 on entry (CR4.FSGSBASE on) R9 = RDFSBASE and
 * R10 = RDGSBASE */
cmd_fsgs:
    mov %fs:0, %rdx
    mov SAVED(R8), %rax
    mov %gs:0, %r8
    xor %r9d, %r9d
    xor %r10d, %r10d
    test %rax, %rax
    jz 1f
    rdfsbase %r9
    rdgsbase %r10
1:  jmp exit0

/* 3: the instruction RDX names (illegal_table), with R12-R15 = known values and R13 =
 * the instruction's address. It comes back with RDX = 0x600d if it completed; the
 * exception handler sends it to cmd_abandoned (RDX = 0xabad). */
cmd_illegal:
    mov SAVED(RDX), %rax
    cmp $(illegal_table_end - illegal_table) / 4, %rax
    jae cmd_bad
    lea illegal_table(%rip), %rcx
    movslq (%rcx, %rax, 4), %r13
    add %rcx, %r13
    mov $0x1212121212121212, %r12
    mov $0x1414141414141414, %r14
    mov $0x1515151515151515, %r15
    xor %eax, %eax
    xor %ecx, %ecx
    xor %edx, %edx
    jmp *%r13
illegal_table:
    .long ill_cpuid - illegal_table     /* 0 */
    .long ill_in - illegal_table        /* 1 */
    .long ill_out - illegal_table       /* 2 */
    .long ill_syscall - illegal_table   /* 3 */
    .long ill_movds - illegal_table     /* 4 */
    .long ill_int80 - illegal_table     /* 5 */
    .long ill_sgdt - illegal_table      /* 6 */
    .long ill_rdpmc - illegal_table     /* 7 */
    .long ill_vmcall - illegal_table    /* 8 */
    .long ill_iretq - illegal_table     /* 9 */
    .long ill_lret - illegal_table      /* 10 */
    .long ill_popfs - illegal_table     /* 11 */
    .long ill_int3 - illegal_table      /* 12 */
    .long ill_str - illegal_table       /* 13 */
    .long ill_sidt - illegal_table      /* 14 */
    .long ill_sldt - illegal_table      /* 15 */
    .long ill_sysenter - illegal_table  /* 16 */
    .long ill_ljmp - illegal_table      /* 17 */
    .long ill_insb - illegal_table      /* 18 */
    .long ill_outsb - illegal_table     /* 19 */
    .long ill_rdtsc - illegal_table     /* 20: legal with SGX2 */
    .long ill_getsec - illegal_table    /* 21 */
    .long ill_lcall - illegal_table     /* 22 */
    .long ill_movss - illegal_table     /* 23 */
    .long ill_popgs - illegal_table     /* 24 */
    .long ill_ud2 - illegal_table       /* 25: an ordinary #UD */
    .long ill_div0 - illegal_table      /* 26: #DE */
    .long ill_movfs - illegal_table     /* 27 */
illegal_table_end:
ill_cpuid:      cpuid;                      jmp ill_done
ill_in:         in $0x80, %al;              jmp ill_done
ill_out:        out %al, $0x80;             jmp ill_done
ill_syscall:    syscall;                    jmp ill_done
ill_movds:      mov %ax, %ds;               jmp ill_done
ill_int80:      int $0x80;                  jmp ill_done
ill_sgdt:       sgdt -16(%rsp);             jmp ill_done
ill_rdpmc:      rdpmc;                      jmp ill_done
ill_vmcall:     vmcall;                     jmp ill_done
ill_iretq:      iretq;                      jmp ill_done
ill_lret:       lretq;                      jmp ill_done
ill_popfs:      push $0; pop %fs;           jmp ill_done
ill_int3:       int3;                       jmp ill_done
ill_str:        str %eax;                   jmp ill_done
ill_sidt:       sidt -16(%rsp);             jmp ill_done
ill_sldt:       sldt %eax;                  jmp ill_done
ill_sysenter:   sysenter;                   jmp ill_done
ill_ljmp:       ljmp *-16(%rsp);            jmp ill_done
ill_insb:       lea -16(%rsp), %rdi; mov $0x80, %edx; insb; jmp ill_done
ill_outsb:      lea -16(%rsp), %rsi; mov $0x80, %edx; outsb; jmp ill_done
ill_rdtsc:      rdtsc;                      jmp ill_done
ill_getsec:     getsec;                     jmp ill_done
ill_lcall:      lcall *-16(%rsp);           jmp ill_done
ill_movss:      mov %ss, %ax; mov %ax, %ss; jmp ill_done
ill_popgs:      push $0; pop %gs;           jmp ill_done
ill_ud2:        ud2;                        jmp ill_done
ill_div0:       xor %ecx, %ecx; div %ecx;   jmp ill_done
ill_movfs:      xor %eax, %eax; mov %ax, %fs; jmp ill_done
ill_done:
    mov $0x600d, %edx
    jmp exit0
cmd_abandoned:
    mov $0xabad, %edx
    movq %xmm0, %r9             /* what ERESUME gave back of XMM0 */
    jmp exit0

/* 14: XMM0 = RDX, then UD2: the AEX saves XMM0 in the SSA's XSAVE area */
cmd_xmm:
    mov SAVED(RDX), %rax
    movq %rax, %xmm0
    ud2
    jmp exit0

/* 4: RDX = the quadword at enclave offset RDX */
cmd_read:
    mov SAVED(RDX), %rax
    mov (%r10, %rax), %rdx
    jmp exit0

/* 5: the quadword at enclave offset RDX = R8; RDX = 0x600d after it */
cmd_write:
    mov SAVED(RDX), %rax
    mov SAVED(R8), %rcx
    mov %rcx, (%r10, %rax)
    mov $0x600d, %edx
    jmp exit0

/* 6: RDX = the quadword at the linear address RDX (outside the enclave) */
cmd_outread:
    mov SAVED(RDX), %rax
    mov (%rax), %rdx
    jmp exit0

/* 13: the quadword at the linear address RDX (outside the enclave) = R8 */
cmd_outwrite:
    mov SAVED(RDX), %rax
    mov SAVED(R8), %rcx
    mov %rcx, (%rax)
    mov $0x600d, %edx
    jmp exit0

/* 7: RDX iterations of x = x * 6364136223846793005 + 1442695040888963407 from x = R8 */
cmd_spin:
    mov SAVED(RDX), %rcx
    mov SAVED(R8), %rax
    mov $6364136223846793005, %rsi
    mov $1442695040888963407, %rdi
1:  test %rcx, %rcx
    jz 2f
    imul %rsi, %rax
    add %rdi, %rax
    dec %rcx
    jmp 1b
2:  mov %rax, %rdx
    jmp exit0

/* copies RCX bytes from RSI to RDI (both may be outside or inside) */
copy:
    rep movsb
    ret

/* 8: EREPORT. TARGETINFO (512 bytes) from RSI, REPORTDATA (64) from RSI + 512, into the
 * enclave at 0xc000 and 0xc200; the REPORT from 0xc400 goes to RSI + 1024. RDX flags:
 * bit 0 TARGETINFO misaligned (0xc040), bit 1 TARGETINFO outside the enclave (RSI itself),
 * bit 2 REPORTDATA misaligned (0xc240), bit 3 the REPORT misaligned (0xc440). */
cmd_ereport:
    mov SAVED(RSI), %rsi
    lea 0xc000(%r10), %rdi
    mov $576, %ecx
    call copy
    lea 0xc000(%r10), %rbx
    lea 0xc200(%r10), %rcx
    lea 0xc400(%r10), %rdx
    mov SAVED(RDX), %rax
    test $1, %al
    jz 1f
    add $0x40, %rbx
1:  test $2, %al
    jz 1f
    mov SAVED(RSI), %rbx
1:  test $4, %al
    jz 1f
    add $0x40, %rcx
1:  test $8, %al
    jz 1f
    add $0x40, %rdx
1:  mov $0, %eax                /* EREPORT */
    ENCLU
    lea 0xc400(%r10), %rsi
    mov SAVED(RSI), %rdi
    add $1024, %rdi
    mov $432, %ecx
    call copy
    mov $0x600d, %edx
    jmp exit0

/* 9: EGETKEY. KEYREQUEST (512 bytes) from RSI to 0xc600, the key from 0xc800 to RSI + 512;
 * RDX = RAX, R8 = RFLAGS after it. RDX on entry: bit 0 KEYREQUEST misaligned (0xc640),
 * bit 1 the key's buffer misaligned (0xc808), bit 2 the KEYREQUEST outside (RSI) */
cmd_egetkey:
    mov SAVED(RSI), %rsi
    lea 0xc600(%r10), %rdi
    mov $512, %ecx
    call copy
    movq $0, 0xc800(%r10)
    movq $0, 0xc808(%r10)
    lea 0xc600(%r10), %rbx
    lea 0xc800(%r10), %rcx
    mov SAVED(RDX), %rax
    test $1, %al
    jz 1f
    add $0x40, %rbx
1:  test $2, %al
    jz 1f
    add $8, %rcx
1:  test $4, %al
    jz 1f
    mov SAVED(RSI), %rbx
1:  mov $1, %eax                /* EGETKEY */
    ENCLU
    pushfq
    pop %r8
    mov %rax, %r9
    lea 0xc800(%r10), %rsi
    mov SAVED(RSI), %rdi
    add $512, %rdi
    mov $16, %ecx
    call copy
    mov %r9, %rdx
    jmp exit0

/* 10: ENCLU with EAX = RDX inside the enclave (EENTER, ERESUME, a leaf that does not
 * exist: #GP), RBX = RCX = 0 */
cmd_enclu:
    mov SAVED(RDX), %rax
    xor %ebx, %ebx
    xor %ecx, %ecx
    ENCLU
    mov $0x600d, %edx
    jmp exit0

/* 11: copies EXINFO and GPRSGX (200 bytes) of SSA frame RDX of this thread to RSI */
cmd_dumpssa:
    mov SAVED(RBX), %rax
    sub %r10, %rax
    lea 0x6000(%r10, %rax, 2), %rsi
    mov SAVED(RDX), %rax
    shl $12, %rax
    lea 0x1000 - 200(%rsi, %rax), %rsi
    mov SAVED(RSI), %rdi
    mov $200, %ecx
    call copy
    mov $0x600d, %edx
    jmp exit0

/* 12: EEXIT to the non-canonical address RDX (#GP inside the enclave) */
cmd_eexit_bad:
    mov SAVED(RDX), %rbx
    mov $4, %eax
    ENCLU
    mov $0x600d, %edx
    jmp exit0

/* 15: ENCLU with a SECINFO (SGX2: EACCEPT, EMODPE, EACCEPTCOPY): the 64 bytes at RSI
 * are copied to 0x9000 (the bottom of TCS0's stack page), then EAX = RDX, RBX = that
 * copy, RCX = the enclave page at offset R8, RDX = the enclave page at offset R9. Comes
 * back with RDX = RAX and R8 = RFLAGS after the ENCLU. */
cmd_enclu_si:
    mov SAVED(RSI), %rsi
    lea 0x9000(%r10), %rdi
    mov $64, %ecx
    call copy
    lea 0x9000(%r10), %rbx
    mov SAVED(R8), %rcx
    add %r10, %rcx
    mov SAVED(R9), %rdx
    add %r10, %rdx
    mov SAVED(RDX), %rax
    ENCLU
    pushfq
    pop %r8
    mov %rax, %rdx
    jmp exit0

/* ---- entered at CSSA > 0: the exception handler of the frame before ---- */
handler:
    /* frame CSSA - 1 of this TCS: SSA of TCS0 at 0x6000, of TCS1 at 0x8000 */
    mov %rbx, %rcx
    sub %r10, %rcx
    lea 0x6000(%r10, %rcx, 2), %r9
    lea -1(%rax), %rcx
    shl $12, %rcx
    lea 0x1000 - 200(%r9, %rcx), %r9    /* EXINFO, then GPRSGX at +16 */
    mov AREA(RSI), %rdi
    test %rdi, %rdi
    jz 1f
    mov %r9, %rsi
    mov $200, %ecx
    rep movsb
1:  mov AREA(RDX), %rax
    cmp $1, %rax
    jne 2f
    lea cmd_abandoned(%rip), %rcx
    mov %rcx, 16 + 136(%r9)             /* GPRSGX.RIP */
2:  cmp $2, %rax
    jne 3f
    mov AREA(R8), %rcx
    add %rcx, 16 + 136(%r9)
3:  mov AREA(RAX), %rdx                 /* RDX = the CSSA it was entered with */
    mov AREA(RSP), %rsp
    mov AREA(RCX), %rbx
    mov $4, %eax
    ENCLU
    ud2

    .org 0x4000
/* ---- data (RW, measured) ---- */
table:
    .irp i, 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,32
    .quad \i * 0x0101010101 + 7
    .endr
    .irp i, 33,34,35,36,37,38,39,40,41,42,43,44,45,46,47,48,49,50,51,52,53,54,55,56,57,58,59,60,61,62,63,64
    .quad \i * 0x0101010101 + 7
    .endr
    .org 0x5000
/* ---- read-only data ---- */
    .quad 0x0123456789abcdef
    .org 0xa000
    .quad 0xaaaa0000aaaa0001
    .org 0xb000
    .quad 0xbbbb0000bbbb0002
    .org 0xc000
