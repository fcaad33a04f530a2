/* AMD SVM basics (APM vol. 2 chapter 15): enumeration (CPUID 8000_0001h ECX.SVM, leaf
 * 8000_000Ah), EFER.SVME, VM_CR and VM_HSAVE_PA, the SVM instructions' #UD (EFER.SVME=0)
 * and #GP (CPL > 0, rAX not page aligned or beyond MAXPHYADDR), VMMCALL outside a guest,
 * VMSAVE/VMLOAD, an L2 on L1's page tables exiting on CPUID, VMMCALL and HLT (the VMCB's
 * save area after #VMEXIT, nRIP, L1's state restored from the host-save area, GIF=0 after
 * #VMEXIT holding an interrupt and an NMI until STGI), the VMCB clean bits, and VMRUN's
 * consistency checks (VMEXIT_INVALID, APM 15.5.1 and 15.20). Without SVM (-svm, or the
 * Intel vendor): no CPUID bit, EFER.SVME reserved, every SVM instruction #UD. The L1
 * side is lib/svm.h.
 * guest: cpu=max,vendor=AuthenticAMD name=svm-basic */
/* guest: cpu=max,vendor=AuthenticAMD,-svm name=svm-off */
/* guest: cpu=max name=svm-intel */
#include "svm.h"

static bool mentions(const char *s, const char *word)
{
    for (size_t n = strlen(word); *s; s++)
        if (strncmp(s, word, n) == 0)
            return true;
    return false;
}

static u64 vmcb_pa_arg;

/* the SVM instructions by number, each once with RAX = vmcb_pa_arg (INVLPGA: ECX = 1) */
enum { INS_VMRUN, INS_VMLOAD, INS_VMSAVE, INS_CLGI, INS_STGI, INS_INVLPGA, INS_SKINIT,
       INS_VMMCALL, INS_COUNT };
static const char *const ins_name[INS_COUNT] = {
    "VMRUN", "VMLOAD", "VMSAVE", "CLGI", "STGI", "INVLPGA", "SKINIT", "VMMCALL",
};

/* Executes one SVM instruction; the vector it raised (NO_EXCEPTION if none). */
static int try_ins(int k)
{
    u64 a = vmcb_pa_arg;
    switch (k) {
    case INS_VMRUN: asm volatile(ASM_TRY("1f") "vmrun\n1:" : "+a"(a) :: "memory"); break;
    case INS_VMLOAD: asm volatile(ASM_TRY("1f") "vmload\n1:" : "+a"(a) :: "memory"); break;
    case INS_VMSAVE: asm volatile(ASM_TRY("1f") "vmsave\n1:" : "+a"(a) :: "memory"); break;
    case INS_CLGI: asm volatile(ASM_TRY("1f") "clgi\n1:" ::: "memory"); break;
    case INS_STGI: asm volatile(ASM_TRY("1f") "stgi\n1:" ::: "memory"); break;
    case INS_INVLPGA: asm volatile(ASM_TRY("1f") "invlpga\n1:" : "+a"(a) : "c"(1) : "memory"); break;
    case INS_SKINIT: asm volatile(ASM_TRY("1f") "skinit\n1:" : "+a"(a) :: "memory"); break;
    case INS_VMMCALL: asm volatile(ASM_TRY("1f") "vmmcall\n1:" : "+a"(a) :: "memory"); break;
    }
    return exc_vector();
}

/* ---- without SVM ---- */
static void no_svm(const char *why)
{
    TEST_ASSERT(!svm_supported(), "%s: CPUID 8000_0001h ECX[2] (SVM) clear", why);
    if (cpuid(0x80000000).a >= 0x8000000a && cpuid(0).b == 0x68747541)
        TEST_EQ(cpuid(0x8000000a).d, 0, "no SVM: no feature bits in 8000_000Ah EDX");
    u64 efer = rdmsr(MSR_EFER);
    int v = wrmsr_safe(MSR_EFER, efer | EFER_SVME);
    if (on_qemu_tcg() && v == NO_EXCEPTION) {
        TEST_EQ(rdmsr(MSR_EFER) & EFER_SVME, 0, "QEMU: EFER.SVME stays clear without SVM");
        wrmsr(MSR_EFER, efer);
        test_skip("QEMU TCG drops reserved EFER bits instead of #GP (APM 3.1.7: EFER.SVME MBZ without SVM)");
    } else {
        TEST_EQ(v, GP_VECTOR, "no SVM: WRMSR EFER with SVME (bit 12) #GP");
    }
    TEST_EQ(rdmsr(MSR_EFER) & EFER_SVME, 0, "EFER.SVME clear");
    vmcb_pa_arg = PA(&svm_vmcb);
    for (int k = 0; k < INS_COUNT; k++)
        TEST_EQF(try_ins(k), UD_VECTOR, "%s #UD", ins_name[k]);
}

/* ---- CPL 3 ---- */
static ulong user_ins(ulong k)
{
    u64 a = vmcb_pa_arg;
    switch (k) {
    case INS_VMRUN: asm volatile("vmrun" : "+a"(a) :: "memory"); break;
    case INS_VMLOAD: asm volatile("vmload" : "+a"(a) :: "memory"); break;
    case INS_VMSAVE: asm volatile("vmsave" : "+a"(a) :: "memory"); break;
    case INS_CLGI: asm volatile("clgi" ::: "memory"); break;
    case INS_STGI: asm volatile("stgi" ::: "memory"); break;
    case INS_INVLPGA: asm volatile("invlpga" : "+a"(a) : "c"(1) : "memory"); break;
    case INS_VMMCALL: asm volatile("vmmcall" : "+a"(a) :: "memory"); break;
    }
    return 0;
}
static int user_k;
static void at_cpl3(void *arg)
{
    (void)arg;
    run_user(user_ins, (ulong)user_k, 0);
}

/* ---- L2 code ---- */
SVM_L2_CODE(l2_basic,
            "cpuid\n"
            ".globl l2_basic_vmmcall\nl2_basic_vmmcall:\n"
            "mov $0x5678, %eax\n"
            "vmmcall\n"
            ".globl l2_basic_hlt\nl2_basic_hlt:\n"
            "mov %r12, %r13\n"
            "mov $0x1111, %ebx\n"
            "hlt\n"
            "mov $0xdead, %eax\n");
extern char l2_basic_vmmcall[], l2_basic_hlt[];
SVM_L2_CODE(l2_nothing, "");
SVM_L2_CODE(l2_cpuid_once, "cpuid");
SVM_L2_CODE(l2_rdtsc_once, "rdtsc");

struct dtr { u16 limit; u64 base; } __attribute__((packed));
static volatile struct {
    u64 cr0, cr4, efer, flags, rsp;
    struct dtr gdtr, idtr;
    u16 ds, es, cs, ss;
} l2_seen;
static u64 l2_gdt[GDT_ENTRIES] __attribute__((aligned(16)));

static void l2_state(void)
{
    l2_seen.cr0 = read_cr0();
    l2_seen.cr4 = read_cr4();
    l2_seen.efer = rdmsr(MSR_EFER);
    l2_seen.flags = read_flags();
    asm volatile("sgdt %0; sidt %1" : "=m"(l2_seen.gdtr), "=m"(l2_seen.idtr));
    u16 ds, es;
    asm volatile("mov %%ds, %0; mov %%es, %1" : "=r"(ds), "=r"(es));
    l2_seen.ds = ds;
    l2_seen.es = es;
    l2_seen.cs = read_cs();
    l2_seen.ss = read_ss();
    for (;;)
        asm volatile("mov %%rsp, %0; vmmcall" : "=m"(l2_seen.rsp) : "a"(0x5a5a) : "memory");
}

static void enumeration(void)
{
    TEST_ASSERT(svm_supported(), "CPUID 8000_0001h ECX[2] (SVM) with cpu=max,vendor=AuthenticAMD");
    TEST_ASSERT(cpuid(0x80000000).a >= 0x8000000a, "max extended leaf >= 8000_000Ah");
    struct cpuid_regs r = cpuid(0x8000000a);
    TEST_EQ(r.a & 0xff, 1, "8000_000Ah EAX: SVM revision 1");
    TEST_ASSERT(r.b >= 2, "8000_000Ah EBX: %u ASIDs (at least 2)", r.b);
    printf("8000_000Ah: eax %#x ebx %#x ecx %#x edx %#x\n", r.a, r.b, r.c, r.d);
    u32 need = BIT(SVMF_NP) | BIT(SVMF_NRIPS) | BIT(SVMF_VMCB_CLEAN) | BIT(SVMF_FLUSH_ASID) |
               BIT(SVMF_DECODE_ASSISTS) | BIT(SVMF_PAUSE_FILTER) | BIT(SVMF_PAUSE_THRESHOLD);
    if (on_qemu_tcg())
        test_skip("QEMU TCG's SVM features (EDX %#x) are not nestor's required set %#x", r.d, need);
    else
        TEST_ASSERT((r.d & need) == need,
                    "nestor cpu=max,vendor=AuthenticAMD: 8000_000Ah EDX has NP, NRIPS, "
                    "VmcbClean, FlushByAsid, DecodeAssists, PauseFilter, PauseFilterThreshold "
                    "(EDX %#x, missing %#x)", r.d, need & ~r.d);

    u64 vmcr = ~0ull;
    TEST_EQ(rdmsr_safe(MSR_VM_CR, &vmcr), NO_EXCEPTION, "VM_CR readable");
    TEST_EQ(vmcr & VM_CR_SVMDIS, 0, "VM_CR.SVMDIS clear");

    if (svm_has(SVMF_TSC_RATE)) {
        u64 ratio;
        TEST_EQ(rdmsr_safe(MSR_TSC_RATIO, &ratio), NO_EXCEPTION, "TSC_RATIO readable (TscRateMsr)");
        TEST_EQ(ratio, 1ull << 32, "TSC_RATIO: 1.0 at reset");
    }
}

static void svme_and_hsave(void)
{
    u64 efer = rdmsr(MSR_EFER);
    TEST_EQ(efer & EFER_SVME, 0, "EFER.SVME clear at reset");
    vmcb_pa_arg = PA(&svm_vmcb);
    bool skinit = cpu_has(0x80000001, 0, 2, 12), svml = svm_has(SVMF_SVML);
    for (int k = 0; k < INS_COUNT; k++) {
        if (k == INS_VMMCALL)
            continue;
        if ((k == INS_STGI && (skinit || svml)) || (k == INS_SKINIT && skinit))
            continue; /* APM STGI/SKINIT: available without SVME with SKINIT or SVM-Lock */
        TEST_EQF(try_ins(k), UD_VECTOR, "EFER.SVME=0: %s #UD", ins_name[k]);
    }
    TEST_EQ(try_ins(INS_VMMCALL), UD_VECTOR, "VMMCALL outside a guest (EFER.SVME=0): #UD");

    TEST_EQ(wrmsr_safe(MSR_EFER, efer | EFER_SVME), NO_EXCEPTION, "WRMSR EFER.SVME=1");
    TEST_EQ(rdmsr(MSR_EFER) & EFER_SVME, EFER_SVME, "EFER.SVME reads back 1");
    if (!skinit)
        TEST_EQ(try_ins(INS_SKINIT), UD_VECTOR, "SKINIT not advertised: #UD even with EFER.SVME");
    TEST_EQ(try_ins(INS_VMMCALL), UD_VECTOR, "VMMCALL outside a guest (EFER.SVME=1): #UD");

    /* VM_HSAVE_PA: page-aligned physical addresses only */
    u64 hs = PA(svm_hsave), v;
    TEST_EQ(wrmsr_safe(MSR_VM_HSAVE_PA, hs), NO_EXCEPTION, "VM_HSAVE_PA page aligned");
    TEST_EQ(rdmsr(MSR_VM_HSAVE_PA), hs, "VM_HSAVE_PA reads back");
    TEST_EQ(wrmsr_safe(MSR_VM_HSAVE_PA, hs + 0x10), GP_VECTOR, "VM_HSAVE_PA not page aligned: #GP");
    int maxphy = svm_maxphyaddr();
    TEST_EQ(wrmsr_safe(MSR_VM_HSAVE_PA, 1ull << maxphy), GP_VECTOR,
            "VM_HSAVE_PA at MAXPHYADDR: #GP");
    TEST_EQ(rdmsr_safe(MSR_VM_HSAVE_PA, &v), NO_EXCEPTION, "VM_HSAVE_PA readable");
    TEST_EQ(v, hs, "VM_HSAVE_PA unchanged by the failed writes");

    /* CPL > 0: #GP(0) (VMMCALL: #UD, it is not a privileged instruction) */
    for (int k = 0; k < INS_COUNT; k++) {
        if (k == INS_SKINIT)
            continue;
        user_k = k;
        int vec = exc_catch(at_cpl3, NULL);
        if (k == INS_VMMCALL) {
            TEST_EQ(vec, UD_VECTOR, "VMMCALL at CPL 3 outside a guest: #UD");
            continue;
        }
        TEST_EQF(vec, GP_VECTOR, "CPL 3: %s #GP", ins_name[k]);
        TEST_EQ(exc_last.error, 0, "the error code is 0");
    }

    /* rAX: page aligned and below MAXPHYADDR, else #GP(0) */
    memset(&svm_vmcb2, 0, sizeof(svm_vmcb2));
    static struct vmcb good;
    vmcb_pa_arg = PA(&good);
    TEST_EQ(try_ins(INS_VMSAVE), NO_EXCEPTION, "VMSAVE");
    static const int ops[] = { INS_VMRUN, INS_VMSAVE, INS_VMLOAD };
    const u64 bad[] = { PA(&svm_vmcb2) + 0x10, 1ull << maxphy, (1ull << 51) | PA(&svm_vmcb2) };
    for (unsigned k = 0; k < ARRAY_SIZE(ops); k++)
        for (unsigned b = 0; b < ARRAY_SIZE(bad); b++) {
            if (b == 2 && maxphy >= 52)
                continue;
            vmcb_pa_arg = bad[b];
            int vec = try_ins(ops[k]);
            TEST_EQF(vec, GP_VECTOR, "%s rAX %s: #GP", ins_name[ops[k]],
                     b == 0 ? "not page aligned" : "beyond MAXPHYADDR");
            if (vec == GP_VECTOR)
                TEST_EQ(exc_last.error, 0, "error code 0");
            if (ops[k] == INS_VMLOAD && vec != GP_VECTOR) {
                vmcb_pa_arg = PA(&good); /* undo whatever it loaded */
                try_ins(INS_VMLOAD);
            }
        }
}

/* VMSAVE stores, and VMLOAD loads, FS/GS/TR/LDTR (with hidden state), KernelGsBase,
 * STAR/LSTAR/CSTAR/SFMASK and the SYSENTER MSRs (APM 15.5.2) */
static void vmsave_vmload(void)
{
    static struct vmcb area;
    memset(&area, 0xcc, sizeof(area));
    wrmsr(MSR_KERNEL_GS_BASE, 0x123456789000ull);
    wrmsr(MSR_LSTAR, 0xffff800012345678ull);
    wrmsr(MSR_SYSENTER_ESP, 0x4321);
    vmcb_pa_arg = PA(&area);
    TEST_EQ(try_ins(INS_VMSAVE), NO_EXCEPTION, "VMSAVE");
    TEST_EQ(area.s.kernel_gs_base, 0x123456789000ull, "VMSAVE: KernelGsBase at 0x620");
    TEST_EQ(area.s.lstar, 0xffff800012345678ull, "VMSAVE: LSTAR at 0x608");
    TEST_EQ(area.s.star, rdmsr(MSR_STAR), "VMSAVE: STAR at 0x600");
    TEST_EQ(area.s.sfmask, rdmsr(MSR_FMASK), "VMSAVE: SFMASK at 0x618");
    TEST_EQ(area.s.sysenter_esp, 0x4321, "VMSAVE: SYSENTER_ESP at 0x630");
    TEST_EQ(area.s.tr.sel, read_tr(), "VMSAVE: TR selector at 0x490");
    u64 trd = gdt[read_tr() >> 3];
    TEST_EQ(area.s.tr.base & 0xffffffff,
            ((trd >> 16) & 0xffffff) | ((trd >> 32) & 0xff000000ull), "VMSAVE: TR base");
    if (on_qemu_tcg() && (area.s.tr.attrib & 0xff) == 0x89)
        test_skip("QEMU TCG keeps TR's hidden type available (9) after LTR, not busy (APM 4.8.3: LTR marks it busy)");
    else
        TEST_EQ(area.s.tr.attrib & 0xff, 0x8b, "VMSAVE: TR attributes (busy TSS, P)");
    TEST_EQ(area.s.ldtr.sel, 0, "VMSAVE: LDTR selector");
    TEST_EQ(area.s.fs.sel, 0, "VMSAVE: FS selector");
    TEST_EQ(area.s.fs.base, rdmsr(MSR_FS_BASE), "VMSAVE: FS base");
    TEST_EQ(area.s.es.sel, 0xcccc, "VMSAVE does not store ES");
    TEST_EQ(area.s.rip, 0xccccccccccccccccull, "VMSAVE does not store RIP");

    area.s.kernel_gs_base = 0xabcdef000ull;
    area.s.lstar = 0xffff800087654321ull;
    area.s.gs.base = 0x7000;
    TEST_EQ(try_ins(INS_VMLOAD), NO_EXCEPTION, "VMLOAD");
    TEST_EQ(rdmsr(MSR_KERNEL_GS_BASE), 0xabcdef000ull, "VMLOAD: KernelGsBase");
    TEST_EQ(rdmsr(MSR_LSTAR), 0xffff800087654321ull, "VMLOAD: LSTAR");
    TEST_EQ(rdmsr(MSR_GS_BASE), 0x7000, "VMLOAD: GS base");
    wrmsr(MSR_GS_BASE, 0);
    wrmsr(MSR_KERNEL_GS_BASE, 0);
}

static u64 run_basic(u64 want, const char *what)
{
    u64 r = svm_run(&svm_vmcb);
    TEST_EQ(r, want, what);
    return r;
}

static void minimal_l2(void)
{
    struct vmcb *v = &svm_vmcb;
    svm_vmcb_init(v, l2_basic);
    svm_intercept(v, I_CPUID);
    svm_intercept(v, I_HLT);
    u64 rsp0 = v->s.rsp;
    svm_gregs[12] = 0x1212121212121212ull;
    svm_gregs[3] = 0x3333;
    ulong cr3 = read_cr3(), cr0 = read_cr0(), cr4 = read_cr4(), fl = read_flags();
    u64 efer = rdmsr(MSR_EFER);

    run_basic(VMEXIT_CPUID, "CPUID: exit 0x72");
    TEST_EQ(v->s.rip, PA(l2_basic), "CPUID exit: VMCB RIP is the CPUID");
    TEST_EQ(v->s.rsp, rsp0, "CPUID exit: VMCB RSP is L2's");
    TEST_EQ(v->s.rax, 0, "CPUID exit: VMCB RAX is L2's");
    svm_check_nrip(v, 2, "CPUID exit");
    TEST_EQ(v->s.cpl, 0, "VMCB CPL 0");
    TEST_EQ(v->c.exit_int_info, 0, "EXITINTINFO not valid");
    TEST_EQ(svm_gregs[3], 0x3333, "L2's RBX untouched by the intercepted CPUID");
    TEST_EQ(read_cr3(), cr3, "L1 CR3 back");
    TEST_EQ(read_cr0(), cr0, "L1 CR0 back");
    TEST_EQ(read_cr4(), cr4, "L1 CR4 back");
    TEST_EQ(rdmsr(MSR_EFER), efer, "L1 EFER back");
    TEST_EQ(read_flags() & ~0xd5ul, fl & ~0xd5ul, "L1 RFLAGS (but the arithmetic flags) back");
    svm_skip(v, 2);

    run_basic(VMEXIT_VMMCALL, "VMMCALL: exit 0x81");
    TEST_EQ(v->s.rip, PA(l2_basic_vmmcall) + 5, "VMMCALL exit: RIP");
    TEST_EQ(v->s.rax, 0x5678, "VMMCALL exit: VMCB RAX 0x5678");
    svm_check_nrip(v, 3, "VMMCALL exit");
    svm_skip(v, 3);

    run_basic(VMEXIT_HLT, "HLT: exit 0x78");
    TEST_EQ(v->s.rip, PA(l2_basic_hlt) + 8, "HLT exit: RIP");
    svm_check_nrip(v, 1, "HLT exit");
    TEST_EQ(svm_gregs[13], 0x1212121212121212ull, "L2 got R12 from L1 (copied to R13)");
    TEST_EQ(svm_gregs[3], 0x1111, "L2's RBX after the exit");
    svm_skip(v, 1);
    run_basic(VMEXIT_VMMCALL, "L2 continues after the HLT");
    TEST_EQ(v->s.rax, 0xdead, "at its last VMMCALL");

    svm_vmcb_init(v, l2_cpuid_once);
    run_basic(VMEXIT_VMMCALL, "CPUID without its intercept: no exit");
}

/* L2 with a state of its own: VMRUN loads it, #VMEXIT saves it and reloads L1's */
static void state_switch(void)
{
    struct vmcb *v = &svm_vmcb;
    svm_vmcb_init(v, l2_state);
    memcpy(l2_gdt, gdt, sizeof(l2_gdt));
    v->s.gdtr.base = PA(l2_gdt);
    v->s.idtr.limit = 0x7ff;
    v->s.cr0 ^= CR0_WP;
    v->s.cr4 |= BIT(2); /* TSD */
    v->s.efer ^= EFER_SCE;
    v->s.ds.sel = 0;
    v->s.ds.attrib = 0;
    v->s.es.sel = 0;
    v->s.es.attrib = 0;
    v->s.rflags = 0x2 | FL_DF | FL_IF;
    struct dtr gdtr, idtr;
    asm volatile("sgdt %0; sidt %1" : "=m"(gdtr), "=m"(idtr));
    ulong cr0 = read_cr0(), cr4 = read_cr4(), fl = read_flags();
    u64 efer = rdmsr(MSR_EFER);
    u16 ds = read_ds(), cs = read_cs(), ss = read_ss();

    TEST_EQ(svm_run(v), VMEXIT_VMMCALL, "L2 with its own state: VMMCALL");
    TEST_EQ(v->s.rax, 0x5a5a, "VMCB RAX");
    TEST_EQ(l2_seen.cr0, cr0 ^ CR0_WP, "L2 ran with its CR0 (WP flipped)");
    TEST_EQ(l2_seen.cr4, cr4 | BIT(2), "L2 ran with its CR4");
    TEST_EQ(l2_seen.efer, efer ^ EFER_SCE, "L2 ran with its EFER");
    TEST_EQ(l2_seen.gdtr.base, PA(l2_gdt), "L2 ran with its GDTR");
    TEST_EQ(l2_seen.idtr.limit, 0x7ff, "L2 ran with its IDTR limit");
    TEST_EQ(l2_seen.ds, 0, "L2 ran with DS 0");
    TEST_EQ(l2_seen.cs, cs, "L2 CS");
    TEST_EQ(l2_seen.ss, ss, "L2 SS");
    TEST_EQ(l2_seen.flags & (FL_DF | FL_IF), FL_DF | FL_IF, "L2 ran with DF and IF");
    /* the save area holds L2's state */
    TEST_EQ(v->s.cr4, cr4 | BIT(2), "VMCB CR4 after #VMEXIT");
    TEST_EQ(v->s.cr0, cr0 ^ CR0_WP, "VMCB CR0 after #VMEXIT");
    TEST_EQ(v->s.efer, efer ^ EFER_SCE, "VMCB EFER after #VMEXIT");
    TEST_EQ(v->s.gdtr.base, PA(l2_gdt), "VMCB GDTR base after #VMEXIT");
    TEST_EQ(v->s.idtr.limit, 0x7ff, "VMCB IDTR limit after #VMEXIT");
    TEST_EQ(v->s.ds.sel, 0, "VMCB DS after #VMEXIT");
    TEST_EQ(v->s.cs.sel, cs, "VMCB CS selector after #VMEXIT");
    TEST_EQ(v->s.cs.attrib & 0x6f8, 0x298, "VMCB CS attributes: P S DPL0 code, L, not D");
    TEST_EQ(v->s.rflags & (FL_DF | FL_IF), FL_DF | FL_IF, "VMCB RFLAGS after #VMEXIT");
    TEST_EQ(v->s.rsp, l2_seen.rsp, "VMCB RSP is L2's at the VMMCALL");
    /* L1's own state is back */
    struct dtr g2, i2;
    asm volatile("sgdt %0; sidt %1" : "=m"(g2), "=m"(i2));
    TEST_EQ(g2.base, gdtr.base, "L1 GDTR base back");
    TEST_EQ(g2.limit, gdtr.limit, "L1 GDTR limit back");
    TEST_EQ(i2.base, idtr.base, "L1 IDTR base back");
    TEST_EQ(i2.limit, idtr.limit, "L1 IDTR limit back");
    TEST_EQ(read_cr0(), cr0, "L1 CR0 back (WP)");
    TEST_EQ(read_cr4(), cr4, "L1 CR4 back (TSD)");
    TEST_EQ(rdmsr(MSR_EFER), efer, "L1 EFER back (SCE)");
    TEST_EQ(read_ds(), ds, "L1 DS back");
    u16 es;
    asm volatile("mov %%es, %0" : "=r"(es));
    TEST_EQ(es, ds, "L1 ES back");
    TEST_EQ(read_flags() & (FL_DF | FL_IF), fl & (FL_DF | FL_IF), "L1 RFLAGS.DF/IF back");
    (void)ds;
}

/* ---- GIF ---- */
#define GIF_VECTOR 0x44
static volatile int gif_irqs, gif_nmis;
static void gif_irq(struct exc_frame *f)
{
    (void)f;
    gif_irqs++;
    apic_eoi();
}
static void gif_nmi(struct exc_frame *f)
{
    (void)f;
    gif_nmis++;
}

static void gif(void)
{
    apic_enable();
    exc_set_handler(GIF_VECTOR, gif_irq);
    exc_set_handler(NMI_VECTOR, gif_nmi);
    svm_vmcb_init(&svm_vmcb, l2_nothing);
    svm_vmrun_asm(PA(&svm_vmcb));
    TEST_EQ(svm_vmcb.c.exit_code, VMEXIT_VMMCALL, "VMMCALL");
    /* GIF = 0 now: IF=1 does not let the interrupt in, nor is an NMI taken */
    sti();
    apic_icr(0, APIC_DEST_SELF | GIF_VECTOR);
    apic_icr(apic_id(), APIC_ICR_NMI);
    for (int i = 0; i < 20000; i++)
        pause();
    TEST_EQ(gif_irqs, 0, "GIF=0 after #VMEXIT: the self-IPI waits (IF=1)");
    TEST_EQ(gif_nmis, 0, "GIF=0 after #VMEXIT: the NMI waits");
    stgi();
    asm volatile("nop; nop");
    cli();
    TEST_EQ(gif_irqs, 1, "STGI: the interrupt is taken");
    TEST_EQ(gif_nmis, 1, "STGI: the NMI is taken");
    /* CLGI holds them too */
    clgi();
    sti();
    apic_icr(0, APIC_DEST_SELF | GIF_VECTOR);
    for (int i = 0; i < 20000; i++)
        pause();
    TEST_EQ(gif_irqs, 1, "CLGI: the self-IPI waits");
    stgi();
    asm volatile("nop; nop");
    cli();
    TEST_EQ(gif_irqs, 2, "STGI after CLGI: taken");
    exc_set_handler(GIF_VECTOR, NULL);
    exc_set_handler(NMI_VECTOR, NULL);
}

/* ---- VMCB clean bits: a clear bit makes VMRUN reload the field (APM 15.15) ---- */
static void clean_bits(void)
{
    struct vmcb *v = &svm_vmcb;
    svm_vmcb_init(v, l2_cpuid_once);
    svm_intercept(v, I_CPUID);
    TEST_EQ(svm_run(v), VMEXIT_CPUID, "CPUID intercepted");
    svm_no_intercept(v, I_CPUID);
    TEST_EQ(svm_run(v), VMEXIT_VMMCALL, "clean bits 0: the cleared CPUID intercept is reloaded");
    svm_skip(v, 3);
    v->c.tsc_offset = 1ull << 62;
    svm_intercept(v, I_RDTSC);
    v->s.rip = PA(l2_rdtsc_once);
    TEST_EQ(svm_run(v), VMEXIT_RDTSC, "clean bits 0: a new RDTSC intercept is loaded");
}

/* ---- VMRUN consistency checks: VMEXIT_INVALID (APM 15.5.1, 15.20) ---- */
enum {
    BAD_SVME, BAD_CD_NW, BAD_CR0_HI, BAD_CR3_MBZ, BAD_CR4_MBZ, BAD_DR6_HI, BAD_DR7_HI,
    BAD_EFER_MBZ, BAD_LME_NOPAE, BAD_LME_NOPE, BAD_CS_LD, BAD_NO_VMRUN_INTERCEPT, BAD_ASID0,
    BAD_EVT_TYPE1, BAD_EVT_EXC_NMI, BAD_EVT_TYPE5, BAD_IOPM, BAD_MSRPM, BAD_COUNT,
};
static const char *const bad_name[BAD_COUNT] = {
    "EFER.SVME=0", "CR0.CD=0 with NW=1", "CR0[63:32] not zero", "CR3 MBZ bit (MAXPHYADDR)",
    "CR4 MBZ bit 32", "DR6[63:32] not zero", "DR7[63:32] not zero", "EFER MBZ bit 2",
    "EFER.LME+CR0.PG with CR4.PAE=0", "EFER.LME+CR0.PG with CR0.PE=0",
    "EFER.LME+CR0.PG+CR4.PAE with CS.L and CS.D", "the VMRUN intercept clear", "ASID 0",
    "EVENTINJ type 1 (reserved)", "EVENTINJ exception with vector 2 (NMI)",
    "EVENTINJ type 5 (reserved)", "IOPM extending to MAXPHYADDR", "MSRPM extending to MAXPHYADDR",
};

static void consistency(void)
{
    struct vmcb *v = &svm_vmcb;
    int maxphy = svm_maxphyaddr(), qemu_said = 0;
    svm_vmcb_init(v, l2_nothing);
    TEST_EQ(svm_run(v), VMEXIT_VMMCALL, "the valid VMCB runs");
    for (int k = 0; k < BAD_COUNT; k++) {
        svm_vmcb_init(v, l2_nothing);
        switch (k) {
        case BAD_SVME: v->s.efer &= ~EFER_SVME; break;
        case BAD_CD_NW: v->s.cr0 = (v->s.cr0 & ~BIT(30)) | BIT(29); break;
        case BAD_CR0_HI: v->s.cr0 |= BIT(32); break;
        case BAD_CR3_MBZ: v->s.cr3 |= 1ull << maxphy; break;
        case BAD_CR4_MBZ: v->s.cr4 |= BIT(32); break;
        case BAD_DR6_HI: v->s.dr6 |= BIT(32); break;
        case BAD_DR7_HI: v->s.dr7 |= BIT(32); break;
        case BAD_EFER_MBZ: v->s.efer |= BIT(2); break;
        case BAD_LME_NOPAE: v->s.cr4 &= ~CR4_PAE; break;
        case BAD_LME_NOPE: v->s.cr0 &= ~CR0_PE; break;
        case BAD_CS_LD: v->s.cs.attrib |= 0x400; break;
        case BAD_NO_VMRUN_INTERCEPT: svm_no_intercept(v, I_VMRUN); break;
        case BAD_ASID0: v->c.asid = 0; break;
        case BAD_EVT_TYPE1: v->c.event_inj = EVT(0x30, 1u << 8); break;
        case BAD_EVT_EXC_NMI: v->c.event_inj = EVT(2, EVT_TYPE_EXC); break;
        case BAD_EVT_TYPE5: v->c.event_inj = EVT(0x30, 5u << 8); break;
        case BAD_IOPM: v->c.iopm_base = (1ull << maxphy) - 0x2000; break;
        case BAD_MSRPM: v->c.msrpm_base = (1ull << maxphy) - 0x1000; break;
        }
        u64 r = svm_run(v);
        if (on_qemu_tcg() && r == 0xffffffffull) {
            /* APM appendix C: VMEXIT_INVALID is -1 in the 64-bit EXITCODE */
            if (!qemu_said++)
                test_skip("QEMU TCG stores VMEXIT_INVALID as 0xffffffff in EXITCODE, not the 64-bit -1");
            r = VMEXIT_INVALID;
        }
        TEST_EQF(r, VMEXIT_INVALID, "VMEXIT_INVALID: %s", bad_name[k]);
    }
    /* the same VMCB made valid again runs */
    svm_vmcb_init(v, l2_nothing);
    TEST_EQ(svm_run(v), VMEXIT_VMMCALL, "a valid VMCB runs after the failures");
}

void test_main(void)
{
    char spec[96] = "max";
    rt_cmdline_value("cpu", spec, sizeof(spec));
    bool intel = cpuid(0).b == 0x756e6547; /* "Genu" */
    if (mentions(spec, "-svm")) {
        no_svm("-svm");
        return;
    }
    if (!mentions(spec, "AuthenticAMD")) {
        if (!intel && on_qemu_tcg()) {
            test_skip("QEMU TCG's -cpu max is not an Intel CPU");
            return;
        }
        TEST_ASSERT(intel, "cpu=max without vendor=AuthenticAMD: GenuineIntel");
        no_svm("Intel vendor");
        return;
    }
    enumeration();
    if (!svm_supported())
        return;
    svme_and_hsave();
    svm_enable();
    vmsave_vmload();
    minimal_l2();
    state_switch();
    gif();
    clean_bits();
    consistency();
}
