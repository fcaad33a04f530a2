/* The Linux SGX test's enclave, the parts that are not C (tests/linux/sgx_encl.c is the
 * rest): the two TCS pages, the two threads' blocks, the entry and exit, and the loop that
 * an AEX must not disturb. Linked at 0 by tests/linux/sgx_encl.lds: every address in the
 * image is an offset from the enclave's base, and the code reaches its data
 * RIP-relatively, wherever the loader puts the enclave. */
#include "sgx_encl.h"

/* ---- TCS 0 and 1 (SDM Vol. 3D 35.8): each thread's SSA, entry, FS/GS ---- */
    .section .tcs, "aw"
    .globl __encl_base
__encl_base:
    .macro tcs ssa, tls
    .quad 0                 /* STATE */
    .quad 0                 /* FLAGS */
    .quad \ssa              /* OSSA */
    .long 0                 /* CSSA */
    .long ENCL_NSSA         /* NSSA */
    .quad encl_entry        /* OENTRY (an offset: the image is linked at 0) */
    .quad 0                 /* AEP */
    .quad \tls              /* OFSBASE */
    .quad \tls              /* OGSBASE */
    .long 0xfff             /* FSLIMIT */
    .long 0xfff             /* GSLIMIT */
    .fill 4096 - 72, 1, 0
    .endm
    tcs ENCL_SSA0, ENCL_TLS0
    tcs ENCL_SSA1, ENCL_TLS1

/* ---- the threads' blocks: FS points at the entering thread's ---- */
    .section .tls, "aw"
    .macro tls stack, self, ssa
    .quad \stack + ENCL_STACK_SIZE  /* TLS_STACK_TOP */
    .quad \self + 4096              /* TLS_HANDLER_TOP: the rest of this page */
    .quad \ssa                      /* TLS_SSA */
    .fill 4096 - 24, 1, 0
    .endm
    tls ENCL_STACK0, ENCL_TLS0, ENCL_SSA0
    tls ENCL_STACK1, ENCL_TLS1, ENCL_SSA1

    .text
/* EENTER lands here: RAX = CSSA, RBX = the TCS, RCX = the address after the loader's
 * ENCLU; RDI and RSI carry the command. CSSA 0 is a call (encl_main on the thread's
 * stack), CSSA 1 is the exception handler (encl_handler on its own stack, frame 0 still
 * holding the interrupted state). The way out takes the outside RSP and RBP from the
 * URSP/URBP of the entry's SSA frame, which EENTER and ERESUME keep up to date (after an
 * exception, the ERESUME may come from another call than the EENTER did). */
    .globl encl_entry
encl_entry:
    cld
    lea __encl_base(%rip), %r10
    test %rax, %rax
    jnz 1f
    mov %fs:TLS_STACK_TOP, %r11
    jmp 2f
1:  mov %fs:TLS_HANDLER_TOP, %r11
2:  add %r10, %r11
    mov %r11, %rsp
    push %rcx                       /* where EEXIT goes */
    push %rax                       /* the entry's frame */
    test %rax, %rax
    jnz 3f
    call encl_main                  /* (command, argument) */
    jmp encl_exit
3:  mov %rsi, %rdx
    mov %rdi, %rsi
    mov %rax, %rdi
    call encl_handler               /* (CSSA, command, argument) */
    .globl encl_exit
encl_exit:                          /* (the handler's way out of an abandoned command) */
    pop %rax
    pop %rbx
    lea __encl_base(%rip), %r10
    mov %fs:TLS_SSA, %r11
    add %r10, %r11
    imul $ENCL_SSA_FRAME, %rax, %rax
    add %rax, %r11
    mov ENCL_SSA_FRAME - GPRSGX_SIZE + GPRSGX_URSP(%r11), %rsp
    mov ENCL_SSA_FRAME - GPRSGX_SIZE + GPRSGX_URBP(%r11), %rbp
    /* nothing of the enclave's leaves in the scratch registers (the C code kept the
     * callee-saved ones) */
    xor %ecx, %ecx
    xor %edx, %edx
    xor %esi, %esi
    xor %edi, %edi
    xor %r8d, %r8d
    xor %r9d, %r9d
    xor %r10d, %r10d
    xor %r11d, %r11d
    mov $4, %eax                    /* EEXIT */
    enclu
    ud2

/* void encl_spin(struct cmd_spin *s, volatile uint64_t *ssa_rip): the loop of
 * CMD_SPIN, on a copy of the command inside the enclave. Per iteration: x = x * A + C
 * (Knuth's MMIX LCG) in RAX, XMM1 += (x, 0) then its halves swapped; then a look at SSA
 * frame 0's RIP, which only an AEX writes (the loop clears it): each AEX is counted and
 * its RIP checked to lie inside the loop. */
    .globl encl_spin
encl_spin:
    push %rbx
    push %r12
    push %r13
    push %r14
    push %r15
    mov 8(%rdi), %rax               /* x = seed */
    pxor %xmm1, %xmm1
    movabs $6364136223846793005, %r8
    movabs $1442695040888963407, %r9
    xor %r10d, %r10d                /* iterations */
    xor %r11d, %r11d                /* AEXs seen */
    mov $1, %r12d                   /* all of them inside the loop */
    mov 24(%rdi), %r13              /* max */
    mov 16(%rdi), %r14              /* want */
    movq $0, (%rsi)
.Lrange:                            /* an AEX before here left no trace */
    test %r13, %r13
    jz .Ldone
.Lloop:
    imul %r8, %rax
    add %r9, %rax
    movq %rax, %xmm0
    paddq %xmm0, %xmm1
    pshufd $0x4e, %xmm1, %xmm1
    inc %r10
    mov (%rsi), %rbx
    test %rbx, %rbx
    jnz .Lseen
.Lnext:
    cmp %r13, %r10
    jb .Lloop
    jmp .Ldone
.Lseen:
    movq $0, (%rsi)
    inc %r11
    lea .Lrange(%rip), %rcx
    cmp %rcx, %rbx
    jb 5f
    lea .Lrange_end(%rip), %rcx
    cmp %rcx, %rbx
    jb 6f
5:  xor %r12d, %r12d
6:  cmp %r14, %r11
    jb .Lnext
.Lrange_end:
.Ldone:
    mov %r10, 32(%rdi)
    mov %rax, 40(%rdi)
    movq %xmm1, 48(%rdi)
    pshufd $0x4e, %xmm1, %xmm1
    movq %xmm1, 56(%rdi)
    mov %r11, 64(%rdi)
    mov %r12, 72(%rdi)
    pxor %xmm0, %xmm0
    pxor %xmm1, %xmm1
    pop %r15
    pop %r14
    pop %r13
    pop %r12
    pop %rbx
    ret

    .section .note.GNU-stack, "", @progbits
