/* Forced-emulation prefixes (-cpu ...,fep): UD2 followed by "kvm" or "xen" is skipped
 * and the instruction after it executes, as under KVM (force_emulation_prefix) and Xen:
 * faults in it report its own address, a single-step trap follows it (not the prefix),
 * an instruction breakpoint on it fires, a prefix after a prefix or another signature is
 * an ordinary #UD, and so is every such sequence without the option.
 * QEMU has neither (run.sh leaves "fep" out of its -cpu): on QEMU TCG the checks of
 * the prefixes are skipped. */
/* guest: cpu=max,fep name=fep */
/* guest: cpu=max name=fep-off */
#include "rt.h"

#define KVM_FEP "ud2; .ascii \"kvm\"\n\t"
#define XEN_FEP "ud2; .ascii \"xen\"\n\t"
#define DR6_BS BIT(14)
#define DR6_RESET 0xffff0ff0ul

struct db_event { ulong rip, dr6; };
static volatile struct db_event ev[8];
static volatile int nev;

static void db_handler(struct exc_frame *f)
{
    ulong dr6 = read_dr6();
    if (nev < 8) {
        ev[nev].rip = f->ip;
        ev[nev].dr6 = dr6;
    }
    nev++;
    write_dr6(DR6_RESET);
    if (dr6 & 0xf)
        f->flags |= FL_RF;
    f->flags &= ~FL_TF;
}

extern u8 fep_step[], fep_step_after[], fep_bp[], fep_bp_insn[];
asm(".text\n"
    /* single-step over a prefixed NOP: one trap, after the NOP */
    "fep_step:\n"
    "  pushfq\n"
    "  orq $0x100, (%rsp)\n"
    "  popfq\n"
    "  " KVM_FEP
    "  nop\n"
    "fep_step_after: nop\n"
    "  ret\n"
    "fep_bp:\n"
    "  " KVM_FEP
    "fep_bp_insn: nop\n"
    "  ret\n");

static void call_asm(const u8 *fn)
{
    asm volatile("call *%0" ::"r"(fn) : "rax", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11",
                 "memory", "cc");
}

static ulong user_fep(ulong arg)
{
    ulong v = 0;
    asm volatile(KVM_FEP "lea 1(%1), %0" : "=r"(v) : "r"(arg));
    return v;
}

static void check_fep_on(void)
{
    ulong v = 0;
    asm volatile(ASM_TRY("1f") KVM_FEP "mov $0x1234, %0\n1:" : "+r"(v) :: "memory");
    TEST_EQ(exc_vector(), NO_EXCEPTION, "ud2; \"kvm\": no #UD");
    TEST_EQ(v, 0x1234, "the instruction after the KVM prefix ran");
    v = 0;
    asm volatile(ASM_TRY("1f") XEN_FEP "mov $0x5678, %0\n1:" : "+r"(v) :: "memory");
    TEST_EQ(exc_vector(), NO_EXCEPTION, "ud2; \"xen\": no #UD");
    TEST_EQ(v, 0x5678, "the instruction after the Xen prefix ran");

    /* a fault in the prefixed instruction reports the instruction, not the prefix */
    ulong at;
    asm volatile(ASM_TRY("2f") ASM_LABEL_ADDR("1f", "%0") KVM_FEP "1: mov (%1), %%eax\n2:"
                 : "=&r"(at) : "r"(0x8000000000000000ul) : "rax", "memory");
    TEST_EQ(exc_vector(), GP_VECTOR, "non-canonical load after the prefix: #GP");
    TEST_EQ(exc_last.ip, at, "#GP reports the address after the prefix");

    /* a prefix right after a prefix, and another signature: #UD */
    asm volatile(ASM_TRY("2f") ASM_LABEL_ADDR("1f", "%0") KVM_FEP "1:" KVM_FEP "nop\n2:"
                 : "=&r"(at) :: "memory");
    TEST_EQ(exc_vector(), UD_VECTOR, "prefix after a prefix: #UD");
    TEST_EQ(exc_last.ip, at, "... at the second prefix");
    asm volatile(ASM_TRY("2f") ASM_LABEL_ADDR("1f", "%0") "1: ud2; .ascii \"kvn\"\n2:"
                 : "=&r"(at) :: "memory");
    TEST_EQ(exc_vector(), UD_VECTOR, "ud2 with another signature: #UD");
    TEST_EQ(exc_last.ip, at, "... at the ud2");

    /* single-step: one trap, after the prefixed instruction */
    exc_set_handler(DB_VECTOR, db_handler);
    nev = 0;
    write_dr6(DR6_RESET);
    call_asm(fep_step);
    TEST_ASSERT(nev == 1 && ev[0].rip == (ulong)fep_step_after && (ev[0].dr6 & DR6_BS),
                "TF: one single-step trap, after the prefixed instruction (%d events, at %#lx)",
                nev, (ulong)ev[0].rip);

    /* an instruction breakpoint on the prefixed instruction fires there, as a fault */
    nev = 0;
    write_dr0((ulong)fep_bp_insn);
    write_dr7(BIT(0));
    call_asm(fep_bp);
    write_dr7(0);
    TEST_ASSERT(nev == 1 && ev[0].rip == (ulong)fep_bp_insn && (ev[0].dr6 & 1),
                "instruction breakpoint on the prefixed instruction (%d events, at %#lx)", nev,
                (ulong)ev[0].rip);
    /* ... and one on the prefix fires before it (RF then covers the instruction too) */
    nev = 0;
    write_dr0((ulong)fep_bp);
    write_dr7(BIT(0));
    call_asm(fep_bp);
    write_dr7(0);
    TEST_ASSERT(nev == 1 && ev[0].rip == (ulong)fep_bp,
                "instruction breakpoint on the prefix (%d events, at %#lx)", nev, (ulong)ev[0].rip);
    exc_set_handler(DB_VECTOR, NULL);

    TEST_EQ(run_user(user_fep, 41, 0), 42, "the prefix works at CPL 3");

    /* at the end of a page whose next page is not mapped: a signature running into it
     * is no prefix (#UD, not #PF); a whole one makes the fetch of the next instruction
     * fault there */
    static struct page_table pt;
    pt_init(&pt, rt_paging_levels == 5 ? PT_5LEVEL : PT_4LEVEL);
    pt_map_identity(&pt, PTE_W | PTE_U);
    u8 *frame = page_alloc();
    ulong va = 0x140000000ul; /* above the identity map; va + 4096 stays unmapped */
    pt_map(&pt, va, (ulong)frame, 4096, 4096, PTE_W);
    pt_activate(&pt, 0);
    memcpy(frame + 4094, "\x0f\x0b", 2);
    TEST_EQ(try_exec(va + 4094), UD_VECTOR, "signature on an unmapped page: #UD");
    TEST_EQ(exc_last.ip, va + 4094, "... at the ud2");
    memcpy(frame + 4091, "\x0f\x0bkvm", 5);
    TEST_EQ(try_exec(va + 4091), PF_VECTOR, "prefix at a page end, next page unmapped: #PF");
    TEST_ASSERT(exc_last.ip == va + 4096 && exc_last.cr2 == va + 4096,
                "... fetching the instruction after the prefix (ip %#lx cr2 %#lx)",
                (ulong)exc_last.ip, (ulong)exc_last.cr2);
    pt_activate(&rt_boot_pt, 0);
}

/* Is "fep" one of the comma-separated items of the -cpu string? */
static bool spec_has_fep(const char *spec)
{
    for (const char *p = spec; *p;) {
        size_t n = 0;
        while (p[n] && p[n] != ',')
            n++;
        if (n == 3 && !memcmp(p, "fep", 3))
            return true;
        p += n + (p[n] == ',');
    }
    return false;
}

void test_main(void)
{
    char spec[128] = "";
    rt_cmdline_value("cpu", spec, sizeof(spec));
    if (spec_has_fep(spec)) {
        if (on_qemu_tcg())
            test_skip("forced-emulation prefixes: QEMU has none");
        else
            check_fep_on();
        return;
    }
    ulong at;
    asm volatile(ASM_TRY("2f") ASM_LABEL_ADDR("1f", "%0") "1:" KVM_FEP "nop\n2:"
                 : "=&r"(at) :: "memory");
    TEST_EQ(exc_vector(), UD_VECTOR, "without fep: ud2; \"kvm\" is #UD");
    TEST_EQ(exc_last.ip, at, "... at the ud2");
}
