/* Guest runtime entry: multiboot header, 32-bit entry, optional switch to long mode,
 * interrupt stubs, setjmp/longjmp, ring-3 entry and the AP start-up trampoline.
 * Assembled for both flavours: __x86_64__ selects the 64-bit one. */

#define SEL_KCODE32 0x08
#define SEL_KCODE64 0x10
#define SEL_KDATA 0x18
#define USER_RETURN_VECTOR 0x7f
#define MAX_CPUS_ASM 16 /* MAX_CPUS in rt.h */
#define AP_STACK_SHIFT 13 /* 8 KiB per AP stack (ap_stacks in smp.c) */

#define MB_MAGIC 0x1badb002
#define MB_FLAGS 0x00000002 /* bit 1: memory information wanted */

    .section .multiboot, "a"
    .align 4
    .long MB_MAGIC, MB_FLAGS, -(MB_MAGIC + MB_FLAGS)

/* ---------------------------------------------------------------- data */
    .data
    .align 8
    .globl gdt
gdt:
    .quad 0
    .quad 0x00cf9a000000ffff /* 0x08 ring 0 code, 32-bit */
    .quad 0x00af9a000000ffff /* 0x10 ring 0 code, 64-bit */
    .quad 0x00cf92000000ffff /* 0x18 ring 0 data */
    .quad 0x00cffa000000ffff /* 0x20 ring 3 code, 32-bit */
    .quad 0x00cff2000000ffff /* 0x28 ring 3 data */
    .quad 0x00affa000000ffff /* 0x30 ring 3 code, 64-bit */
    .quad 0x00cff2000000ffff /* 0x38 ring 3 data (64-bit SYSEXIT's SS) */
    .quad 0, 0               /* 0x40 TSS, filled at run time */
    .quad 0x00009a000000ffff /* 0x50 ring 0 code, 16-bit, limit 64K */
    .quad 0x000092000000ffff /* 0x58 ring 0 data, 16-bit, limit 64K */
    .fill 20, 8, 0           /* 12..31: for tests */
gdt_end:

    .globl gdt_desc
gdt_desc:
    .word gdt_end - gdt - 1
#ifdef __x86_64__
    .quad gdt
#else
    .long gdt
#endif

    .globl mb_magic, mb_info, rt_paging_levels, rt_boot_cr3, rt_boot_efer
mb_magic: .long 0
mb_info: .long 0
rt_paging_levels: .long 0
rt_boot_cr3: .long 0
rt_boot_efer: .long 0
ap_next_index: .long 1

/* ---------------------------------------------------------------- 32-bit entry */
    .section .text.entry, "ax"
    .code32
    .globl _start
_start:
    cli
    cld
    movl %eax, mb_magic
    movl %ebx, mb_info
    /* zero .bss: the loader should have, but the runtime relies on it */
    movl $__bss_start, %edi
    movl $__bss_end, %ecx
    subl %edi, %ecx
    xorl %eax, %eax
    rep stosb
    movl $boot_stack + 16384, %esp
    lgdt gdt_desc
    ljmp $SEL_KCODE32, $1f
1:  movw $SEL_KDATA, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    movw %ax, %fs
    movw %ax, %gs
#ifdef __x86_64__
    /* long mode must exist */
    movl $0x80000000, %eax
    cpuid
    cmpl $0x80000001, %eax
    jb no_long_mode
    movl $0x80000001, %eax
    cpuid
    btl $29, %edx
    jnc no_long_mode
    movl %edx, %esi                   /* keep 0x80000001.EDX for NX */

    /* identity map 0-4G with 2M pages: PD[0..2047], PDPT[0..3], PML4[0] */
    movl $boot_pd, %edi
    xorl %ecx, %ecx
2:  movl %ecx, %eax
    shll $21, %eax
    orl $0x87, %eax                   /* P | W | U | PS */
    movl %eax, (%edi, %ecx, 8)
    movl $0, 4(%edi, %ecx, 8)
    incl %ecx
    cmpl $2048, %ecx
    jb 2b
    movl $boot_pdpt, %edi
    xorl %ecx, %ecx
3:  movl %ecx, %eax
    shll $12, %eax
    addl $boot_pd + 7, %eax
    movl %eax, (%edi, %ecx, 8)
    incl %ecx
    cmpl $4, %ecx
    jb 3b
    movl $boot_pdpt + 7, boot_pml4
    movl $boot_pml4, %ebx
    movl $4, rt_paging_levels
    movl $0x20, %edx                  /* CR4.PAE */

    /* five levels if the test asks for them and the CPU has LA57 */
    cmpl $0, rt_want_la57
    je 4f
    xorl %eax, %eax
    pushl %edx
    cpuid
    popl %edx
    cmpl $7, %eax
    jb 4f
    pushl %edx
    movl $7, %eax
    xorl %ecx, %ecx
    cpuid
    popl %edx
    btl $16, %ecx
    jnc 4f
    movl $boot_pml4 + 7, boot_pml5
    movl $boot_pml5, %ebx
    movl $5, rt_paging_levels
    orl $0x1000, %edx                 /* CR4.LA57 */
4:  movl %edx, %eax
    movl %eax, %cr4
    movl %ebx, %cr3
    movl %ebx, rt_boot_cr3
    movl $0xc0000080, %ecx
    rdmsr
    orl $0x100, %eax                  /* LME */
    btl $20, %esi
    jnc 5f
    orl $0x800, %eax                  /* NXE when NX exists */
5:  wrmsr
    movl %eax, rt_boot_efer
    movl %cr0, %eax
    orl $0x80000001, %eax
    movl %eax, %cr0
    ljmp $SEL_KCODE64, $long_entry

no_long_mode:
    movw $0xf4, %dx
    movb $0x7d, %al
    outb %al, %dx
6:  hlt
    jmp 6b

    .code64
long_entry:
    movw $SEL_KDATA, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    movw %ax, %fs
    movw %ax, %gs
    movq $boot_stack + 16384, %rsp
    lgdt gdt_desc
    call rt_start
7:  hlt
    jmp 7b
#else
    call rt_start
7:  hlt
    jmp 7b
#endif

/* ---------------------------------------------------------------- AP start-up
 * The trampoline is copied to AP_TRAMPOLINE (0x8000, SIPI vector 8) and runs in real
 * mode with CS = 0x800, IP = 0: it loads the GDT, enters protected mode and jumps to
 * ap_entry32 in the image. */
    .code16
    .globl ap_trampoline_start, ap_trampoline_end
ap_trampoline_start:
    cli
    movw %cs, %ax
    movw %ax, %ds
    lgdtl ap_gdtr - ap_trampoline_start
    movl %cr0, %eax
    orl $1, %eax
    movl %eax, %cr0
    ljmpl $SEL_KCODE32, $ap_entry32
    .align 4
ap_gdtr:
    .word gdt_end - gdt - 1
    .long gdt
ap_trampoline_end:

    .code32
ap_entry32:
    movw $SEL_KDATA, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    movw %ax, %fs
    movw %ax, %gs
    movl $1, %edi
    lock xaddl %edi, ap_next_index    /* edi = this AP's index, 1.. */
    cmpl $MAX_CPUS_ASM, %edi
    jae 9f
    movl %edi, %esp
    incl %esp
    shll $AP_STACK_SHIFT, %esp
    addl $ap_stacks, %esp
#ifdef __x86_64__
    movl $0x20, %eax
    cmpl $5, rt_paging_levels
    jne 8f
    orl $0x1000, %eax
8:  movl %eax, %cr4
    movl rt_boot_cr3, %eax
    movl %eax, %cr3
    movl $0xc0000080, %ecx
    rdmsr
    movl rt_boot_efer, %eax
    wrmsr
    movl %cr0, %eax
    orl $0x80000001, %eax
    movl %eax, %cr0
    ljmp $SEL_KCODE64, $ap_entry64
9:  hlt
    jmp 9b
    .code64
ap_entry64:
    movl %edi, %edi
    movq %rdi, %rsp
    incq %rsp
    shlq $AP_STACK_SHIFT, %rsp
    addq $ap_stacks, %rsp
    lgdt gdt_desc
    call ap_start_c
10: hlt
    jmp 10b
#else
    pushl %edi
    call ap_start_c
9:  hlt
    jmp 9b
#endif

/* ---------------------------------------------------------------- interrupt stubs */
    .text
    .altmacro
.macro STUB vec
    .align 16
stub_\vec:
    .if (\vec == 8) || (\vec == 10) || (\vec == 11) || (\vec == 12) || (\vec == 13) || (\vec == 14) || (\vec == 17) || (\vec == 21) || (\vec == 29) || (\vec == 30)
    .else
    push $0
    .endif
    push $\vec
    jmp isr_common
.endm
.set vec, 0
.rept 256
    STUB %vec
    .set vec, vec + 1
.endr

.macro STUBREF vec
#ifdef __x86_64__
    .quad stub_\vec
#else
    .long stub_\vec
#endif
.endm
    .section .rodata
    .align 8
    .globl idt_stub_table
idt_stub_table:
.set vec, 0
.rept 256
    STUBREF %vec
    .set vec, vec + 1
.endr
    .noaltmacro

    .text
#ifdef __x86_64__
isr_common:
    push %rax
    push %rcx
    push %rdx
    push %rbx
    push %rbp
    push %rsi
    push %rdi
    push %r8
    push %r9
    push %r10
    push %r11
    push %r12
    push %r13
    push %r14
    push %r15
    cld
    movq %rsp, %rdi
    movq %rsp, %rbp
    andq $-16, %rsp
    call exc_dispatch
    movq %rbp, %rsp
    pop %r15
    pop %r14
    pop %r13
    pop %r12
    pop %r11
    pop %r10
    pop %r9
    pop %r8
    pop %rdi
    pop %rsi
    pop %rbp
    pop %rbx
    pop %rdx
    pop %rcx
    pop %rax
    addq $16, %rsp
    iretq

/* setjmp buffer: rbx rbp r12 r13 r14 r15 rsp rip rflags */
    .globl rt_setjmp, rt_longjmp
rt_setjmp:
    movq %rbx, 0(%rdi)
    movq %rbp, 8(%rdi)
    movq %r12, 16(%rdi)
    movq %r13, 24(%rdi)
    movq %r14, 32(%rdi)
    movq %r15, 40(%rdi)
    leaq 8(%rsp), %rax
    movq %rax, 48(%rdi)
    movq (%rsp), %rax
    movq %rax, 56(%rdi)
    pushfq
    popq %rax
    movq %rax, 64(%rdi)
    xorl %eax, %eax
    ret
rt_longjmp:
    movw $SEL_KDATA, %ax
    movw %ax, %ss
    movw %ax, %ds
    movw %ax, %es
    movq 0(%rdi), %rbx
    movq 8(%rdi), %rbp
    movq 16(%rdi), %r12
    movq 24(%rdi), %r13
    movq 32(%rdi), %r14
    movq 40(%rdi), %r15
    movq 48(%rdi), %rsp
    pushq 64(%rdi)
    popfq
    movl %esi, %eax
    testl %eax, %eax
    jnz 1f
    incl %eax
1:  jmp *56(%rdi)

/* rt_enter_user(ip, arg, flags, cs, ss, sp): IRET to (cs:ip, ss:sp) with rax = ip's
 * target function for the trampoline and rdi = arg. */
    .globl rt_enter_user, user_trampoline
rt_enter_user:
    pushq %r8
    pushq %r9
    pushq %rdx
    pushq %rcx
    pushq %rdi
    movq %rsi, %rdi
    movq user_fn(%rip), %rax
    iretq
user_trampoline:
    call *%rax
    movq %rax, %rdi
    int $USER_RETURN_VECTOR
    ud2
#else
isr_common:
    pushal
    push %ds
    push %es
    movw $SEL_KDATA, %ax
    movw %ax, %ds
    movw %ax, %es
    cld
    movl %esp, %eax
    pushl %eax
    call exc_dispatch
    addl $4, %esp
    pop %es
    pop %ds
    popal
    addl $8, %esp
    iret

/* setjmp buffer: ebx esi edi ebp esp eip eflags */
    .globl rt_setjmp, rt_longjmp
rt_setjmp:
    movl 4(%esp), %edx
    movl %ebx, 0(%edx)
    movl %esi, 4(%edx)
    movl %edi, 8(%edx)
    movl %ebp, 12(%edx)
    leal 4(%esp), %eax
    movl %eax, 16(%edx)
    movl (%esp), %eax
    movl %eax, 20(%edx)
    pushfl
    popl %eax
    movl %eax, 24(%edx)
    xorl %eax, %eax
    ret
rt_longjmp:
    movw $SEL_KDATA, %ax
    movw %ax, %ss
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %fs
    movw %ax, %gs
    movl 4(%esp), %edx
    movl 8(%esp), %eax
    testl %eax, %eax
    jnz 1f
    incl %eax
1:  movl 0(%edx), %ebx
    movl 4(%edx), %esi
    movl 8(%edx), %edi
    movl 12(%edx), %ebp
    movl 16(%edx), %esp
    pushl 24(%edx)
    popfl
    jmp *20(%edx)

/* rt_enter_user(ip, arg, flags, cs, ss, sp) */
    .globl rt_enter_user, user_trampoline
rt_enter_user:
    movl 20(%esp), %eax   /* ss: data segments too */
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %fs
    movw %ax, %gs
    pushl %eax            /* ss */
    pushl 28(%esp)        /* sp (offset grew by 4) */
    pushl 20(%esp)        /* flags */
    pushl 28(%esp)        /* cs */
    pushl 20(%esp)        /* ip */
    movl 28(%esp), %edi   /* arg */
    movl user_fn, %eax
    iret
user_trampoline:
    pushl %edi
    call *%eax
    int $USER_RETURN_VECTOR
    ud2
#endif
