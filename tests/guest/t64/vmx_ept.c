/* EPT (SDM Vol. 3C 29.3) seen by an L1 hypervisor, with 4- and 5-level EPT under an L2
 * that itself uses 5-level paging (CR4.LA57) when the CPU has it: R/W/X permissions and
 * execute-only pages, EPT violations with their qualification (access, permissions,
 * linear-address valid, final translation vs guest paging-structure access) and the
 * guest-physical and guest-linear addresses, misconfigurations (W without R, reserved
 * memory type, bits beyond MAXPHYADDR, tables outside RAM), the EPT accessed and dirty
 * flags, INVEPT's VMfail cases, and an unrestricted L2 in real mode.
 * guest: cpu=max name=vmx-ept */
#include "vmx.h"

/* vmx_ept_l4.c runs the same with 4-level paging in L1 and L2 */
#ifndef VMX_EPT_LA57
#define VMX_EPT_LA57 1
#endif
u32 rt_want_la57 = VMX_EPT_LA57;

#define EPT_R 1ull
#define EPT_W 2ull
#define EPT_X 4ull
#define EPT_WB (6ull << 3)
#define EPT_A BIT(8)
#define EPT_D BIT(9)

static u64 ept_t5[512] __attribute__((aligned(4096)));
static u64 ept_t4[512] __attribute__((aligned(4096)));
static u64 ept_pdpt[512] __attribute__((aligned(4096)));
static u64 ept_pd[512] __attribute__((aligned(4096)));
static u64 ept_pt[512] __attribute__((aligned(4096)));
static u64 ept_split; /* the 2 MiB region mapped with 4 KiB pages */

/* An identity EPT of 4 GiB: the first GiB in 2 MiB pages, the 2 MiB region holding
 * `split` in 4 KiB pages (whose entries the tests change). */
static u64 build_ept(int levels, u64 split, bool ad)
{
    memset(ept_t5, 0, 4096);
    memset(ept_t4, 0, 4096);
    memset(ept_pdpt, 0, 4096);
    memset(ept_pd, 0, 4096);
    memset(ept_pt, 0, 4096);
    ept_split = split & ~0x1fffffull;
    ept_t5[0] = (u64)(ulong)ept_t4 | 7;
    ept_t4[0] = (u64)(ulong)ept_pdpt | 7;
    ept_pdpt[0] = (u64)(ulong)ept_pd | 7;
    for (u64 g = 1; g < 4; g++)
        ept_pdpt[g] = g << 30 | 7 | EPT_WB | BIT(7);
    for (u64 m = 0; m < 512; m++)
        ept_pd[m] = m << 21 | 7 | EPT_WB | BIT(7);
    ept_pd[ept_split >> 21] = (u64)(ulong)ept_pt | 7;
    for (u64 k = 0; k < 512; k++)
        ept_pt[k] = (ept_split + (k << 12)) | 7 | EPT_WB;
    u64 root = levels == 5 ? (u64)(ulong)ept_t5 : (u64)(ulong)ept_t4;
    return root | 6 | (u64)(levels - 1) << 3 | (ad ? BIT(6) : 0);
}

static u64 *ept_pte(u64 pa)
{
    return &ept_pt[(pa - ept_split) >> 12];
}

static u8 data_page[4096] __attribute__((aligned(4096)));
static u8 code_page[4096] __attribute__((aligned(4096)));

VMX_L2_CODE(l2_read, "mov (%rbx), %rax");
VMX_L2_CODE(l2_write, "movq $0x55, (%rbx)");
VMX_L2_CODE(l2_call, "call *%rbx");

static int levels_now;

static long run_l2(const void *code, u64 eptp, u64 rbx)
{
    vmx_setup_l2(code, 0, PROC2_EPT);
    vmwrite(F_EPT_POINTER, eptp);
    vmx_gregs[3] = rbx;
    long r = vmx_run();
    return r;
}

static void permissions(int levels)
{
    u64 pa = (u64)(ulong)data_page;
    u64 eptp = build_ept(levels, pa, false);
    TEST_ASSERT(run_l2(l2_read, eptp, pa) == R_VMCALL, "EPT %d-level: L2 reads a RWX page", levels);

    *ept_pte(pa) = pa | EPT_R | EPT_WB;
    TEST_EQ(run_l2(l2_write, eptp, pa + 8), R_EPT_VIOLATION, "write to a read-only page: EPT violation");
    TEST_EQ(vmread(F_EXIT_QUAL), 0x18a, "qualification: write, readable, linear valid, final translation");
    TEST_EQ(vmread(F_GUEST_PHYS_ADDR), pa + 8, "guest-physical address");
    TEST_EQ(vmread(F_GUEST_LINEAR), pa + 8, "guest-linear address");
    TEST_EQ(data_page[8], 0, "nothing written");
    TEST_EQ(vmread(F_EXIT_INSN_LEN) != 0, 1, "instruction length reported");

    *ept_pte(pa) = 0;
    TEST_EQ(run_l2(l2_read, eptp, pa + 16), R_EPT_VIOLATION, "read of a not-present page");
    TEST_EQ(vmread(F_EXIT_QUAL), 0x181, "qualification: read, no permissions, linear, final");

    u64 cpa = (u64)(ulong)code_page;
    code_page[0] = 0xc3; /* ret */
    eptp = build_ept(levels, cpa, false);
    *ept_pte(cpa) = cpa | EPT_X | EPT_WB;
    TEST_EQ(run_l2(l2_call, eptp, cpa), R_VMCALL, "execute-only page: a call there runs");
    TEST_EQ(run_l2(l2_read, eptp, cpa), R_EPT_VIOLATION, "execute-only page: a read is a violation");
    TEST_EQ(vmread(F_EXIT_QUAL), 0x1a1, "qualification: read, executable, linear, final");
    *ept_pte(cpa) = cpa | EPT_R | EPT_W | EPT_WB;
    TEST_EQ(run_l2(l2_call, eptp, cpa), R_EPT_VIOLATION, "fetch from a non-executable page");
    TEST_EQ(vmread(F_EXIT_QUAL), 0x19c, "qualification: fetch, readable, writable, linear, final");
    TEST_EQ(vmread(F_GUEST_RIP), cpa, "L2's RIP at the fetched address");
}

static void misconfigurations(int levels)
{
    u64 pa = (u64)(ulong)data_page;
    u64 eptp = build_ept(levels, pa, false);
    *ept_pte(pa) = pa | EPT_W | EPT_WB;
    TEST_EQ(run_l2(l2_read, eptp, pa), R_EPT_MISCONFIG, "write without read: misconfiguration");
    TEST_EQ(vmread(F_GUEST_PHYS_ADDR), pa, "its guest-physical address");
    *ept_pte(pa) = pa | 7 | (2ull << 3);
    TEST_EQ(run_l2(l2_read, eptp, pa), R_EPT_MISCONFIG, "reserved memory type 2: misconfiguration");
    *ept_pte(pa) = pa | 7 | EPT_WB | BIT(51);
    TEST_EQ(run_l2(l2_read, eptp, pa), R_EPT_MISCONFIG, "address bit beyond MAXPHYADDR: misconfiguration");
    ept_pd[4] |= BIT(3) | BIT(4) | BIT(5); /* a 2 MiB leaf with memory type 7 */
    ept_pd[4] = (ept_pd[4] & ~(7ull << 3)) | (7ull << 3);
    TEST_EQ(run_l2(l2_read, eptp, 4ull << 21), R_EPT_MISCONFIG, "2 MiB leaf with memory type 7");
    /* EPT paging structures where there is no RAM (the APIC's page) */
    u64 bad = 0xfee00000ull | 6 | (u64)(levels - 1) << 3;
    TEST_EQ(run_l2(l2_read, bad, pa), R_EPT_MISCONFIG, "EPT tables outside RAM: misconfiguration, no crash");
}

static void accessed_dirty(int levels)
{
    if (!(rdmsr(MSR_VMX_EPT_VPID_CAP) & BIT(21))) {
        test_skip("no EPT A/D");
        return;
    }
    u64 pa = (u64)(ulong)data_page;
    u64 eptp = build_ept(levels, pa, true);
    TEST_EQ(run_l2(l2_read, eptp, pa), R_VMCALL, "EPT A/D: L2 reads");
    TEST_EQ(*ept_pte(pa) & (EPT_A | EPT_D), EPT_A, "a read sets A, not D");
    TEST_EQ(ept_pd[ept_split >> 21] & EPT_A, EPT_A, "and A in the entries above");
    TEST_EQ(run_l2(l2_write, eptp, pa), R_VMCALL, "L2 writes");
    TEST_EQ(*ept_pte(pa) & (EPT_A | EPT_D), EPT_A | EPT_D, "a write sets D");
    u64 other = (u64)(ulong)code_page;
    if ((other & ~0x1fffffull) == ept_split)
        TEST_EQ(*ept_pte(other) & EPT_D, 0, "an untouched page stays clean");
}

/* A guest paging-structure entry EPT does not map: bit 8 of the qualification is 0 and the
 * guest-physical address is the entry's. */
static void guest_table_access(int levels)
{
    struct page_table pt;
    pt_init(&pt, rt_paging_levels == 5 ? PT_5LEVEL : PT_4LEVEL);
    pt_map_identity(&pt, PTE_W);
    u64 va = 0x40000000000ull;
    pt_map(&pt, va, (u64)(ulong)data_page, 4096, 4096, PTE_W);
    int lvl;
    u64 *leaf = pt_leaf(&pt, va, &lvl);
    u64 table = (u64)(ulong)leaf & ~0xfffull;
    u64 eptp = build_ept(levels, table, false);
    vmx_setup_l2(l2_read, 0, PROC2_EPT);
    vmwrite(F_EPT_POINTER, eptp);
    vmwrite(F_GUEST_CR3, pt.root);
    vmx_gregs[3] = va;
    TEST_EQ(vmx_run(), R_VMCALL, "L2 on its own page tables reads through a new mapping");
    *ept_pte(table) = 0;
    vmx_setup_l2(l2_read, 0, PROC2_EPT);
    vmwrite(F_EPT_POINTER, eptp);
    vmwrite(F_GUEST_CR3, pt.root);
    vmx_gregs[3] = va + 0x10;
    TEST_EQ(vmx_run(), R_EPT_VIOLATION, "its page table not in EPT: violation");
    TEST_EQ(vmread(F_EXIT_QUAL), 0x81, "qualification: read, linear valid, paging-structure access");
    TEST_EQ(vmread(F_GUEST_PHYS_ADDR), (u64)(ulong)leaf, "guest-physical address of the entry");
    TEST_EQ(vmread(F_GUEST_LINEAR), va + 0x10, "guest-linear address");
}

static void invept_cases(int levels)
{
    u64 eptp = build_ept(levels, (u64)(ulong)data_page, false);
    TEST_EQ(invept(1, eptp), 0, "INVEPT single-context");
    TEST_EQ(invept(2, 0), 0, "INVEPT global");
    TEST_EQ(invept(1, (eptp & ~7ull) | 3), 2, "INVEPT single-context of an invalid EPTP: VMfailValid");
    TEST_EQ(vmread(F_INSN_ERROR), 28, "VM-instruction error 28");
    TEST_EQ(invept(3, eptp), 2, "INVEPT type 3: VMfailValid");
    TEST_EQ(vmread(F_INSN_ERROR), 28, "VM-instruction error 28");
}

/* An unrestricted L2 in real mode under EPT: OUT to port 0x80 exits. */
static void real_mode_l2(void)
{
    static const u8 code[] = { 0xb8, 0x34, 0x12, /* mov ax, 0x1234 */
                               0xe7, 0x80,       /* out 0x80, ax */
                               0xf4 };           /* hlt */
    memcpy((void *)0x7000, code, sizeof(code));
    vmx_setup_l2(l2_read, PROC_UNCOND_IO, PROC2_EPT | PROC2_UNRESTRICTED);
    vmwrite(F_EPT_POINTER, build_ept(4, 0, false));
    vmwrite(F_ENTRY_CTLS, vmread(F_ENTRY_CTLS) & ~(u64)ENTRY_IA32E);
    vmwrite(F_GUEST_EFER, 0);
    vmwrite(F_GUEST_CR0, 0x30);
    vmwrite(F_GUEST_CR4, 1u << 13);
    static const u32 segs[] = { F_GUEST_ES_SEL, F_GUEST_SS_SEL, F_GUEST_DS_SEL, F_GUEST_FS_SEL,
                                F_GUEST_GS_SEL };
    for (unsigned k = 0; k < 5; k++) {
        vmwrite(segs[k], 0);
        vmwrite(segs[k] - 0x0800 + 0x6806, 0);
        vmwrite(segs[k] - 0x0800 + 0x4800, 0xffff);
        vmwrite(segs[k] - 0x0800 + 0x4814, 0x93);
    }
    vmwrite(F_GUEST_CS_SEL, 0x700);
    vmwrite(F_GUEST_CS_BASE, 0x7000);
    vmwrite(F_GUEST_CS_LIMIT, 0xffff);
    vmwrite(F_GUEST_CS_AR, 0x9b);
    vmwrite(F_GUEST_TR_BASE, 0);
    vmwrite(F_GUEST_GDTR_BASE, 0);
    vmwrite(F_GUEST_IDTR_BASE, 0);
    vmwrite(F_GUEST_IDTR_LIMIT, 0x3ff);
    vmwrite(F_GUEST_RIP, 0);
    vmwrite(F_GUEST_RSP, 0x6000);
    vmwrite(F_GUEST_RFLAGS, 2);
    TEST_EQ(vmx_run(), R_IO, "real-mode L2: OUT exits");
    TEST_EQ(vmread(F_EXIT_QUAL), 0x800041, "qualification: port 0x80, 2 bytes, OUT, immediate");
    TEST_EQ(vmx_gregs[0] & 0xffff, 0x1234, "AX as L2 left it");
    TEST_EQ(vmread(F_GUEST_CS_SEL), 0x700, "CS saved");
    TEST_EQ(vmread(F_GUEST_RIP), 3, "RIP at the OUT");
    TEST_EQ(vmread(F_GUEST_CR0) & 1, 0, "CR0.PE is 0 in L2");
}

void test_main(void)
{
    u64 cap = rdmsr(MSR_VMX_EPT_VPID_CAP);
    TEST_ASSERT(cap & BIT(6), "EPT page-walk length 4");
    TEST_ASSERT(cap & BIT(0), "execute-only EPT pages");
    bool la57 = cpu_has(7, 0, 2, 16);
    TEST_EQ(!!(cap & BIT(7)), la57, "5-level EPT exactly when the CPU has 5-level paging");
    TEST_ASSERT(vmx_on(), "VMXON");
    printf("L2 paging levels %u\n", rt_paging_levels);
    int lv[2] = { 4, 5 };
    for (int k = 0; k < (la57 ? 2 : 1); k++) {
        levels_now = lv[k];
        permissions(lv[k]);
        misconfigurations(lv[k]);
        accessed_dirty(lv[k]);
        guest_table_access(lv[k]);
        invept_cases(lv[k]);
    }
    real_mode_l2();
    vmxoff();
}
