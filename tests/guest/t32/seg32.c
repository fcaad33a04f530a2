/* Segmentation and privilege in 32-bit protected mode: descriptor-load checks with their
 * selector error codes, limits (expand-up and expand-down), read-only and execute-only
 * segments, call gates with parameter copying and the TSS stack switch, far RET to an
 * outer ring nulling data segments, conforming code, interrupts from ring 3, IRET,
 * LTR of a busy TSS, and LAR/LSL/VERR/VERW. */
#include "rt.h"

#define TRY(insn, ...)                                                              \
    asm volatile(ASM_TRY("2f") "1: " insn "\n2:" ::__VA_ARGS__ : "memory", "cc")
#define TRY_A(insn, ...)                                                            \
    asm volatile(ASM_TRY("2f") "1: " insn "\n2:" ::__VA_ARGS__ : "memory", "cc", "eax")

enum { G_NP = GDT_FIRST_FREE, G_RO, G_XO, G_SMALL, G_EXPDOWN, G_GATE3, G_GATE0, G_CONF,
       G_SMALLSS, G_NPGATE };
#define SEL(i) ((u16)((i) * 8))

static void expect(int vector, ulong error, const char *what)
{
    int v = exc_vector();
    TEST_ASSERT(v == vector && (vector == NO_EXCEPTION || exc_last.error == error),
                "%s: vector %d error %#lx (want %d %#lx)", what, v, (ulong)exc_last.error,
                vector, error);
}

static void restore_segs(void)
{
    asm volatile("mov %0, %%ds; mov %0, %%es; mov %0, %%fs; mov %0, %%gs" ::"r"(SEL_KDATA));
}

static ulong user_push_beyond_limit(ulong unused)
{
    (void)unused;
    asm volatile("mov %0, %%ss\n\tmov $0x200004, %%esp\n\tpushl $0\n\tud2"
                 ::"r"(SEL(G_SMALLSS) | 3) : "memory");
    return 0;
}
static void push_in_user(void *unused)
{
    (void)unused;
    run_user(user_push_beyond_limit, 0, 0);
}

static void check_loads(void)
{
    asm volatile("lldt %w0" ::"r"(0)); /* the LDTR from reset (base 0, limit 0xffff) is usable */
    gdt_set(G_NP, 0, 0xfffff, 0x12, DESC_G | DESC_DB);       /* data, P = 0 */
    gdt_set(G_RO, 0, 0xfffff, 0x90, DESC_G | DESC_DB);       /* read-only data */
    gdt_set(G_XO, 0, 0xfffff, 0x98, DESC_G | DESC_DB);       /* execute-only code */
    gdt_set(G_SMALL, 0, 0xfff, 0x92, DESC_DB);               /* 4 KiB data */
    gdt_set(G_EXPDOWN, 0, 0xfff, 0x96, DESC_DB);             /* expand-down, limit 0xfff */
    gdt_set(G_SMALLSS, 0, 0x1fffff >> 12, 0xf2, DESC_G | DESC_DB); /* ring-3 stack, 2 MiB */

    /* QEMU TCG does not check segment limits, types or null selectors on data accesses */
    bool qemu = on_qemu_tcg();
    if (qemu)
        test_skip("data-access checks (null DS, limits, expand-down, read-only, code "
                  "writes): QEMU TCG does not implement them");
    /* null selectors load into ES (not DS: the runtime's own stores go through DS) */
    TRY("mov %0, %%es", "r"(0));
    expect(NO_EXCEPTION, 0, "mov es, null: allowed");
    if (!qemu) {
        TRY_A("mov %%es:0x100000, %%eax", "r"(0));
        expect(GP_VECTOR, 0, "#GP(0): access through a null ES");
    }
    restore_segs();
    TRY("mov %0, %%ds", "r"(0x1000));
    expect(GP_VECTOR, 0x1000, "#GP(sel): selector beyond the GDT limit");
    TRY("mov %0, %%ds", "r"(SEL(G_NP)));
    expect(NP_VECTOR, SEL(G_NP), "#NP(sel): not-present data segment");
    TRY("mov %0, %%ds", "r"(SEL(G_XO)));
    expect(GP_VECTOR, SEL(G_XO), "#GP(sel): execute-only code into DS");
    TRY("mov %0, %%es", "r"(SEL_KCODE32));
    expect(NO_EXCEPTION, 0, "readable code into ES: allowed");
    if (!qemu) {
        TRY("movl $1, %%es:0x6000", "r"(0));
        expect(GP_VECTOR, 0, "#GP(0): write through a code segment");
    }
    restore_segs();
    TRY("mov %0, %%ds", "r"(SEL_TSS));
    expect(GP_VECTOR, SEL_TSS, "#GP(sel): TSS descriptor into DS");
    TRY("mov %0, %%ds", "r"(SEL_KDATA | 4));
    expect(GP_VECTOR, SEL_KDATA | 4, "#GP(sel): TI=1 with a null LDT");
    TRY("mov %0, %%ss", "r"(SEL_KDATA | 3));
    expect(GP_VECTOR, SEL_KDATA, "#GP(sel): SS with RPL != CPL");
    TRY("mov %0, %%ss", "r"(SEL_UDATA));
    expect(GP_VECTOR, SEL_UDATA & ~3, "#GP(sel): SS with DPL != CPL");
    TRY("mov %0, %%ss", "r"(SEL(G_RO)));
    expect(GP_VECTOR, SEL(G_RO), "#GP(sel): read-only data into SS");
    TRY("mov %0, %%ss", "r"(SEL(G_NP)));
    expect(SS_VECTOR, SEL(G_NP), "#SS(sel): not-present segment into SS");
    TRY("mov %0, %%ss", "r"(0));
    expect(GP_VECTOR, 0, "#GP(0): null SS in protected mode");

    /* limits */
    if (qemu)
        return;
    TRY_A("mov %0, %%es\n\tmov %%es:0xffc, %%eax", "r"(SEL(G_SMALL)));
    expect(NO_EXCEPTION, 0, "dword at the last 4 bytes below the limit");
    TRY_A("mov %0, %%es\n1: mov %%es:0xffd, %%eax", "r"(SEL(G_SMALL)));
    expect(GP_VECTOR, 0, "#GP(0): dword crossing the limit");
    TRY_A("mov %0, %%es\n1: mov %%es:0x1000, %%al", "r"(SEL(G_EXPDOWN)));
    expect(NO_EXCEPTION, 0, "expand-down: offset above the limit is valid");
    TRY_A("mov %0, %%es\n1: mov %%es:0xfff, %%al", "r"(SEL(G_EXPDOWN)));
    expect(GP_VECTOR, 0, "#GP(0): expand-down: offset at the limit");
    TRY("mov %0, %%es\n1: movb $1, %%es:0x6000", "r"(SEL(G_RO)));
    expect(GP_VECTOR, 0, "#GP(0): write to read-only data");
    restore_segs();
    /* SS limit: needs ring 3, so that the #SS is delivered on the TSS stack */
    int v = exc_catch(push_in_user, NULL);
    TEST_ASSERT(v == SS_VECTOR && exc_last.error == 0,
                "#SS(0): push beyond the SS limit (vector %d error %#lx)", v, (ulong)exc_last.error);
}

/* ---- call gate with parameters: ring 3 -> ring 0 -> ring 3 ---- */
extern u8 gate_target[], conf_target[];
volatile u32 gate_seen[8];
asm(".text\n"
    "gate_target:\n"
    "  mov %cs, %eax\n"
    "  mov %eax, gate_seen\n"
    "  mov %esp, gate_seen + 4\n"
    "  mov 8(%esp), %eax\n"
    "  mov %eax, gate_seen + 8\n"
    "  mov 12(%esp), %eax\n"
    "  mov %eax, gate_seen + 12\n"
    "  mov 4(%esp), %eax\n"
    "  mov %eax, gate_seen + 16\n"  /* caller's CS */
    "  mov 20(%esp), %eax\n"
    "  mov %eax, gate_seen + 20\n"  /* caller's SS */
    "  mov $0x18, %eax\n"
    "  mov %eax, %ds\n"             /* DPL-0 DS: the return to ring 3 must null it */
    "  lret $8\n"
    "conf_target:\n"
    "  mov %cs, %eax\n"
    "  lret\n");

static ulong user_gate_call(ulong sel)
{
    ulong ds_after, esp_before, esp_after;
    struct { u32 off; u16 sel; } __attribute__((packed)) far = {0, (u16)(sel | 3)};
    asm volatile("mov %%esp, %1\n\t"
                 "pushl $0x22\n\tpushl $0x11\n\t"
                 "lcall *(%3)\n\t"
                 "mov %%esp, %2\n\t"
                 "mov %%ds, %0\n\t"
                 "mov %4, %%ds"
                 : "=&r"(ds_after), "=&r"(esp_before), "=&r"(esp_after)
                 : "r"(&far), "r"(SEL_UDATA) : "eax", "memory");
    gate_seen[6] = ds_after;
    gate_seen[7] = esp_before - esp_after;
    return 0;
}
static void gate_call_in_user(void *sel) { run_user(user_gate_call, (ulong)sel, 0); }

static ulong user_conf_call(ulong unused)
{
    (void)unused;
    ulong cs;
    struct { u32 off; u16 sel; } __attribute__((packed)) far = {(u32)(ulong)conf_target, SEL(G_CONF)};
    asm volatile("lcall *%1" : "=a"(cs) : "m"(far) : "memory");
    return cs;
}
static ulong user_far_jmp(ulong sel)
{
    struct { u32 off; u16 sel; } __attribute__((packed)) far = {0, (u16)sel};
    asm volatile("ljmp *%0" ::"m"(far) : "memory");
    return 0;
}
static void far_jmp_in_user(void *sel) { run_user(user_far_jmp, (ulong)sel, 0); }
static void conf_in_user(void *out) { *(ulong *)out = run_user(user_conf_call, 0, 0); }

static void check_gates(void)
{
    gdt_set_gate(G_GATE3, SEL_KCODE32, (ulong)gate_target, 0xc, 3, 2);
    gdt_set_gate(G_GATE0, SEL_KCODE32, (ulong)gate_target, 0xc, 0, 2);
    gdt_set(G_CONF, 0, 0xfffff, 0x9e, DESC_G | DESC_DB); /* conforming, DPL 0 */
    gdt_set_gate(G_NPGATE, SEL_KCODE32, (ulong)gate_target, 0xc, 3, 2);
    gdt[G_NPGATE] &= ~BIT(47);

    memset((void *)gate_seen, 0, sizeof(gate_seen));
    int v = exc_catch(gate_call_in_user, (void *)(ulong)SEL(G_GATE3));
    TEST_EQ(v, NO_EXCEPTION, "call gate DPL 3 from ring 3");
    TEST_EQ(gate_seen[0], SEL_KCODE32, "call gate: target runs with CS = ring-0 code");
    ulong ks = (ulong)kernel_stack;
    TEST_ASSERT(gate_seen[1] >= ks && gate_seen[1] < ks + sizeof(kernel_stack),
                "call gate: stack switched to TSS.ESP0 (%#x)", gate_seen[1]);
    TEST_EQ(gate_seen[1], ks + sizeof(kernel_stack) - 24, "call gate: SS, ESP, 2 params, CS, EIP pushed");
    TEST_EQ(gate_seen[2], 0x11, "call gate: parameter 1 copied");
    TEST_EQ(gate_seen[3], 0x22, "call gate: parameter 2 copied");
    TEST_EQ(gate_seen[4], SEL_UCODE32, "call gate: caller CS pushed");
    TEST_EQ(gate_seen[5], SEL_UDATA, "call gate: caller SS pushed");
    TEST_EQ(gate_seen[6], 0, "far RET to ring 3 nulls a DPL-0 DS");
    TEST_EQ(gate_seen[7], 0, "RET imm16 released the parameters on the outer stack");

    v = exc_catch(gate_call_in_user, (void *)(ulong)SEL(G_GATE0));
    TEST_ASSERT(v == GP_VECTOR && exc_last.error == SEL(G_GATE0),
                "#GP(sel): call gate with DPL 0 from ring 3 (vector %d error %#lx)", v, (ulong)exc_last.error);
    v = exc_catch(gate_call_in_user, (void *)(ulong)SEL(G_NPGATE));
    TEST_ASSERT(v == NP_VECTOR && exc_last.error == SEL(G_NPGATE),
                "#NP(sel): not-present call gate (vector %d error %#lx)", v, (ulong)exc_last.error);
    v = exc_catch(far_jmp_in_user, (void *)(ulong)SEL_KCODE32);
    TEST_ASSERT(v == GP_VECTOR && exc_last.error == SEL_KCODE32,
                "#GP(sel): far JMP from ring 3 to ring-0 code (vector %d error %#lx)", v, (ulong)exc_last.error);
    ulong cs = 0;
    v = exc_catch(conf_in_user, &cs);
    TEST_ASSERT(v == NO_EXCEPTION && cs == (SEL(G_CONF) | 3),
                "conforming DPL-0 code called from ring 3 runs at CPL 3 (cs %#lx)", cs);
}

/* ---- interrupts from ring 3 ---- */
static volatile ulong int_cs, int_ss, int_sp, int_frame;
static void int_handler(struct exc_frame *f)
{
    int_cs = f->cs;
    int_ss = f->ss;
    int_sp = f->sp;
    int_frame = (ulong)f;
}
static ulong user_int43(ulong unused)
{
    (void)unused;
    ulong sp;
    asm volatile("mov %%esp, %0; int $0x43" : "=r"(sp) :: "memory");
    return sp;
}

static void check_interrupts(void)
{
    exc_set_handler(0x43, int_handler);
    idt_set_gate(0x43, SEL_KCODE32, (ulong)idt_stub_table[0x43], 0xe, 3, 0);
    ulong user_sp = run_user(user_int43, 0, 0);
    TEST_EQ(int_cs, SEL_UCODE32, "int from ring 3: CS pushed");
    TEST_EQ(int_ss, SEL_UDATA, "int from ring 3: SS pushed");
    TEST_EQ(int_sp, user_sp, "int from ring 3: ESP pushed");
    ulong ks = (ulong)kernel_stack;
    TEST_ASSERT(int_frame >= ks && int_frame < ks + sizeof(kernel_stack),
                "int from ring 3: handler on the TSS.ESP0 stack");
    idt_reset_gate(0x43);
    exc_set_handler(0x43, NULL);

    /* IRET to the same ring pops EIP, CS, EFLAGS only */
    ulong sp1, sp2;
    asm volatile("mov %%esp, %0\n\tpushf\n\tpush %%cs\n\tpush $1f\n\tiret\n1:\tmov %%esp, %1"
                 : "=&r"(sp1), "=&r"(sp2) :: "memory");
    TEST_EQ(sp1, sp2, "IRET to CPL 0: three dwords popped");
    /* IRET restoring flags: DF set through the image */
    ulong fl;
    asm volatile("pushf\n\torl $0x400, (%%esp)\n\tpush %%cs\n\tpush $1f\n\tiret\n1:\tpushf\n\tpop %0\n\tcld"
                 : "=r"(fl) :: "memory");
    TEST_ASSERT(fl & FL_DF, "IRET loads EFLAGS from the stack (DF)");
}

static void check_system_insns(void)
{
    TRY("ltr %w0", "r"(SEL_TSS));
    expect(GP_VECTOR, SEL_TSS, "#GP(sel): LTR of a busy TSS");
    TEST_ASSERT(gdt[SEL_TSS >> 3] & BIT(41), "TSS descriptor marked busy");
    u32 lim, ar;
    u8 zf;
    asm("lsl %2, %0; setz %1" : "=r"(lim), "=q"(zf) : "r"((u32)SEL_KDATA));
    TEST_ASSERT(zf && lim == 0xffffffff, "LSL: flat data limit 0xffffffff");
    asm("lsl %2, %0; setz %1" : "=r"(lim), "=q"(zf) : "r"((u32)SEL(G_SMALL)));
    TEST_ASSERT(zf && lim == 0xfff, "LSL: byte-granular limit 0xfff");
    asm("lar %2, %0; setz %1" : "=r"(ar), "=q"(zf) : "r"((u32)SEL_KCODE32));
    TEST_ASSERT(zf && (ar & 0x00f0ff00) == 0x00c09b00, "LAR: code access rights (%#x)", ar);
    asm("lar %2, %0; setz %1" : "=r"(ar), "=q"(zf) : "r"((u32)0x1000));
    TEST_ASSERT(!zf, "LAR: ZF clear beyond the GDT limit");
    asm("verr %1; setz %0" : "=q"(zf) : "r"((u16)SEL_KCODE32));
    TEST_ASSERT(zf, "VERR: readable code");
    asm("verw %1; setz %0" : "=q"(zf) : "r"((u16)SEL_KCODE32));
    TEST_ASSERT(!zf, "VERW: code is not writable");
    asm("verw %1; setz %0" : "=q"(zf) : "r"((u16)SEL_KDATA));
    TEST_ASSERT(zf, "VERW: data is writable");
    asm("verw %1; setz %0" : "=q"(zf) : "r"((u16)SEL(G_RO)));
    TEST_ASSERT(!zf, "VERW: read-only data is not writable");
}

void test_main(void)
{
    check_loads();
    check_gates();
    check_interrupts();
    check_system_insns();
}
