/* libFuzzer target: VM entry and the L2 that runs after it, with VMCS contents, EPT
 * tables, bitmaps, MSR areas and L2 code from the input. A 64-bit L1 program in guest RAM
 * runs VMXON, VMPTRLD and VMLAUNCH, and resumes L2 after every exit (VMRESUME, or
 * VMCLEAR + VMPTRLD + VMLAUNCH when that fails); the harness only writes memory and
 * runs the vCPU a bounded number of instructions. The VMCS region starts from a valid
 * 64-bit L2 on L1's page tables and gets input-chosen fields overwritten with raw,
 * steered (near RAM, near the page tables, canonical boundaries) or bit-flipped values;
 * its in-memory layout is nestor's own, so the raw region bytes are fuzzed too. Every
 * outcome must be architectural: VMfail, an entry-failure exit, an exit, a fault in L2 or
 * L1, a VMX abort, a triple fault. Nothing may crash, hang, leak or read host memory
 * outside guest RAM (ASan/UBSan). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/exec.h"
#include "cpu/vmx/vmx_internal.h"
#include "machine/mem.h"

#define RAM (8 * MiB)
#define PML4 0x1000u
#define PDPT 0x2000u
#define PD 0x3000u
#define GDT 0x5000u
#define POINTERS 0x9000u
#define VMXON_REGION 0xa000u
#define VMCS_REGION 0xb000u
#define L1_CODE 0x10000u
#define L1_STACK 0x20000u
#define L2_CODE 0x30000u
#define L2_STACK 0x38000u
#define EPT 0x40000u        /* 5 pages of EPT tables */
#define IO_BITMAP_A 0x50000u
#define IO_BITMAP_B 0x51000u
#define MSR_BITMAP 0x52000u
#define MSR_AREA 0x53000u
#define VAPIC 0x54000u
#define SHADOW 0x55000u
#define EPTP_LIST 0x56000u
#define PI_DESC 0x57000u

static struct guest_mem mem;
static struct cpuid_model model;
static struct cpu cpu, *c = &cpu;

static enum intercept_result intercept(struct cpu *cp, struct cpu_event *ev, void *opaque)
{
    (void)cp, (void)ev, (void)opaque;
    return INTERCEPT_DEFAULT;
}
static u64 now_ns(struct cpu *cp, void *opaque)
{
    (void)opaque;
    return cp->icount * 10; /* time moves with the instructions: timers expire */
}
static int intr_pending(struct cpu *cp, void *opaque)
{
    (void)opaque;
    return (cp->icount & 0x3ff) == 0x200 ? 0x30 : -1; /* an interrupt now and then */
}
static int intr_ack(struct cpu *cp, void *opaque)
{
    (void)cp, (void)opaque;
    return 0x30;
}
static const struct cpu_ops ops = { .intercept = intercept, .intr_pending = intr_pending,
                                    .intr_ack = intr_ack, .now_ns = now_ns };

/* L1: VMXON [0x9000], VMPTRLD [0x9008], VMLAUNCH; the host RIP (offset 0x14) resumes. */
static const u8 l1_code[] = {
    0xb8, 0x00, 0x90, 0x00, 0x00, 0xf3, 0x0f, 0xc7, 0x30, 0xb8, 0x08, 0x90, 0x00, 0x00,
    0x0f, 0xc7, 0x30, 0x0f, 0x01, 0xc2, 0x0f, 0x01, 0xc3, 0x0f, 0x01, 0xc2, 0xb8, 0x10,
    0x90, 0x00, 0x00, 0x66, 0x0f, 0xc7, 0x30, 0x0f, 0xc7, 0x30, 0xeb, 0xec,
};
#define L1_HOST_RIP (L1_CODE + 0x14)

static u64 take(const u8 **data, size_t *size, unsigned n)
{
    u64 v = 0;
    for (unsigned k = 0; k < n && *size; k++, (*data)++, (*size)--)
        v |= (u64)**data << (8 * k);
    return v;
}

static void wr64(u64 pa, u64 v) { mem_write(&mem, pa, &v, 8); }
static void wr32(u64 pa, u32 v) { mem_write(&mem, pa, &v, 4); }

static void init_once(void)
{
    char err[128];
    if (mem_init(&mem, RAM) < 0 || cpuid_model_parse(&model, "max", err, sizeof(err)) < 0)
        abort();
    if (cpu_init(c, 0, &mem, &model, &ops, NULL) < 0 || !c->vmx)
        abort();
}

/* L1 in 64-bit mode at CPL 0 on an identity map of the first 1 GiB (2 MiB pages). */
static void l1_state(void)
{
    cpu_reset(c);
    /* the pages the harness uses start zeroed */
    static const u8 zero[4096];
    static const u32 pages[] = { PML4, PDPT, PD, GDT, POINTERS, VMXON_REGION, VMCS_REGION,
                                 L1_CODE, L2_CODE, EPT, EPT + 0x1000, EPT + 0x2000,
                                 EPT + 0x3000, EPT + 0x4000, IO_BITMAP_A, IO_BITMAP_B,
                                 MSR_BITMAP, MSR_AREA, VAPIC, SHADOW, EPTP_LIST, PI_DESC };
    for (unsigned k = 0; k < sizeof(pages) / sizeof(pages[0]); k++)
        mem_write(&mem, pages[k], zero, sizeof(zero));
    wr64(PML4, PDPT | 3);
    wr64(PDPT, PD | 3);
    for (u64 k = 0; k < 512; k++)
        wr64(PD + 8 * k, k << 21 | 0x83);
    /* GDT: null, code64 (0x08), data (0x10), TSS (0x18) */
    wr64(GDT + 8, 0x00af9b000000ffffull);
    wr64(GDT + 16, 0x00cf93000000ffffull);
    wr64(GDT + 24, 0x00008b0000000067ull);
    c->gdtr = (struct dtr){ GDT, 0x27 };
    c->idtr = (struct dtr){ 0, 0xfff };
    c->cr3 = PML4;
    c->cr4 = CR4_PAE | CR4_VMXE;
    c->efer = EFER_LME | EFER_LMA | EFER_NXE | EFER_SCE;
    c->cr0 = CR0_PE | CR0_PG | CR0_ET | CR0_NE | CR0_WP;
    c->msr_feature_control = FEATURE_CONTROL_LOCK | FEATURE_CONTROL_VMX_OUTSIDE_SMX;
    cpu_set_seg(c, SEG_CS, 0x08, 0, 0xffffffff, 0xa09b);
    for (int s = 0; s < 6; s++)
        if (s != SEG_CS)
            cpu_set_seg(c, s, 0x10, 0, 0xffffffff, 0xc093);
    c->tr = (struct seg){ 0x18, 0, 0x67, 0x8b };
    c->ldtr = (struct seg){ 0, 0, 0, SEG_ATTR_UNUSABLE };
    c->rip = L1_CODE;
    c->gpr[R_RSP] = L1_STACK;
    c->rflags = FL_FIXED1;
    cpu_update_mode(c);
    mmu_update(c);
    mem_write(&mem, L1_CODE, l1_code, sizeof(l1_code));
    wr64(POINTERS, VMXON_REGION);
    wr64(POINTERS + 8, VMCS_REGION);
    wr64(POINTERS + 16, VMCS_REGION);
    wr32(VMXON_REGION, VMX_REVISION);
}

/* A valid VMCS for a 64-bit L2 at L2_CODE, L1's state as the host state. */
static void vmcs_template(struct vmcs *v)
{
    const struct vmx_caps *caps = &c->vmx->caps;
    memset(v, 0, sizeof(*v));
    u64 *f = v->f;
    f[VMCS_PIN_CONTROLS] = (u32)caps->msr[VMX_TRUE_PINBASED];
    f[VMCS_PROC_CONTROLS] = (u32)caps->msr[VMX_TRUE_PROCBASED] | PROC_HLT_EXITING;
    f[VMCS_EXIT_CONTROLS] = (u32)caps->msr[VMX_TRUE_EXIT] | EXIT_HOST_ADDR_SPACE | EXIT_ACK_INTR;
    f[VMCS_ENTRY_CONTROLS] = (u32)caps->msr[VMX_TRUE_ENTRY] | ENTRY_IA32E_GUEST;
    f[VMCS_LINK_POINTER] = ~0ull;
    f[VMCS_HOST_CR0] = f[VMCS_GUEST_CR0] = c->cr0;
    f[VMCS_HOST_CR3] = f[VMCS_GUEST_CR3] = c->cr3;
    f[VMCS_HOST_CR4] = f[VMCS_GUEST_CR4] = c->cr4;
    f[VMCS_GUEST_EFER] = f[VMCS_HOST_EFER] = c->efer;
    f[VMCS_HOST_CS_SEL] = 0x08;
    f[VMCS_HOST_SS_SEL] = f[VMCS_HOST_DS_SEL] = f[VMCS_HOST_ES_SEL] = 0x10;
    f[VMCS_HOST_TR_SEL] = 0x18;
    f[VMCS_HOST_GDTR_BASE] = GDT;
    f[VMCS_HOST_RIP] = L1_HOST_RIP;
    f[VMCS_HOST_RSP] = L1_STACK;
    f[VMCS_HOST_PAT] = f[VMCS_GUEST_PAT] = 0x0007040600070406ull;
    static const int sel[] = { VMCS_GUEST_ES_SEL, VMCS_GUEST_SS_SEL, VMCS_GUEST_DS_SEL,
                               VMCS_GUEST_FS_SEL, VMCS_GUEST_GS_SEL };
    static const int lim[] = { VMCS_GUEST_ES_LIMIT, VMCS_GUEST_SS_LIMIT, VMCS_GUEST_DS_LIMIT,
                               VMCS_GUEST_FS_LIMIT, VMCS_GUEST_GS_LIMIT };
    static const int ar[] = { VMCS_GUEST_ES_AR, VMCS_GUEST_SS_AR, VMCS_GUEST_DS_AR,
                              VMCS_GUEST_FS_AR, VMCS_GUEST_GS_AR };
    for (unsigned k = 0; k < 5; k++) {
        f[sel[k]] = 0x10;
        f[lim[k]] = 0xffffffff;
        f[ar[k]] = 0xc093;
    }
    f[VMCS_GUEST_CS_SEL] = 0x08;
    f[VMCS_GUEST_CS_LIMIT] = 0xffffffff;
    f[VMCS_GUEST_CS_AR] = 0xa09b;
    f[VMCS_GUEST_TR_SEL] = 0x18;
    f[VMCS_GUEST_TR_LIMIT] = 0x67;
    f[VMCS_GUEST_TR_AR] = 0x8b;
    f[VMCS_GUEST_LDTR_AR] = SEG_ATTR_UNUSABLE;
    f[VMCS_GUEST_GDTR_BASE] = GDT;
    f[VMCS_GUEST_GDTR_LIMIT] = 0x27;
    f[VMCS_GUEST_IDTR_LIMIT] = 0xfff;
    f[VMCS_GUEST_DR7] = 0x400;
    f[VMCS_GUEST_RFLAGS] = FL_FIXED1;
    f[VMCS_GUEST_RIP] = L2_CODE;
    f[VMCS_GUEST_RSP] = L2_STACK;
    /* addresses of every structure, for mutations that turn their controls on */
    f[VMCS_IO_BITMAP_A] = IO_BITMAP_A;
    f[VMCS_IO_BITMAP_B] = IO_BITMAP_B;
    f[VMCS_MSR_BITMAP] = MSR_BITMAP;
    f[VMCS_EXIT_MSR_STORE_ADDR] = f[VMCS_EXIT_MSR_LOAD_ADDR] = MSR_AREA;
    f[VMCS_ENTRY_MSR_LOAD_ADDR] = MSR_AREA + 0x800;
    f[VMCS_VIRTUAL_APIC_ADDR] = VAPIC;
    f[VMCS_APIC_ACCESS_ADDR] = 0xfee00000u;
    f[VMCS_POSTED_INTR_DESC_ADDR] = PI_DESC;
    f[VMCS_EPT_POINTER] = EPT | 6 | 3 << 3;
    f[VMCS_EPTP_LIST_ADDR] = EPTP_LIST;
    f[VMCS_VMREAD_BITMAP] = MSR_BITMAP;
    f[VMCS_VMWRITE_BITMAP] = MSR_BITMAP;
    f[VMCS_VPID] = 1;
}

/* The value a mutation writes: raw, near an interesting address, or a bit flip of the
 * template's value. */
static u64 steer(u64 raw, u64 current)
{
    static const u64 near[] = { 0, RAM - 4096, RAM, 0xfee00000u, EPT, MSR_AREA, ~0ull,
                                0x00007ffffffff000ull, 0xffff800000000000ull, 1ull << 40 };
    switch (raw & 3) {
    case 0: return raw >> 2;
    case 1: return near[(raw >> 2) % (sizeof(near) / sizeof(near[0]))] + ((raw >> 8) & 0xfff);
    case 2: return current ^ (1ull << ((raw >> 2) & 63));
    default: return current | (raw >> 2 & 0xffffffffu);
    }
}

int LLVMFuzzerTestOneInput(const u8 *data, size_t size)
{
    static bool ready;
    if (!ready) {
        init_once();
        ready = true;
    }
    l1_state();
    u64 ctl = take(&data, &size, 2);
    struct vmcs v;
    vmcs_template(&v);
    /* control words often get the features on (EPT, unrestricted, VPID, APICv ...) */
    if (ctl & 1) {
        v.f[VMCS_PROC_CONTROLS] |= PROC_SECONDARY;
        v.f[VMCS_PROC_CONTROLS2] = (take(&data, &size, 4) & (c->vmx->caps.msr[VMX_PROCBASED2] >> 32));
    }
    if (ctl & 2)
        v.f[VMCS_PROC_CONTROLS] |= take(&data, &size, 4) & (c->vmx->caps.msr[VMX_TRUE_PROCBASED] >> 32);
    if (ctl & 4)
        v.f[VMCS_PIN_CONTROLS] |= take(&data, &size, 1) & (c->vmx->caps.msr[VMX_TRUE_PINBASED] >> 32);
    unsigned nmut = (unsigned)(ctl >> 3 & 7);
    for (unsigned k = 0; k < nmut && size >= 9; k++) {
        unsigned slot = (unsigned)take(&data, &size, 1) % VMCS_NFIELDS;
        v.f[slot] = steer(take(&data, &size, 8), v.f[slot]);
    }
    int n;
    const struct vmcs_field_desc *t = vmcs_field_table(&n);
    for (int k = 0; k < n; k++) /* the template as VMWRITE would leave it */
        vmcs_write(&v, &t[k], false, v.f[t[k].field]);
    wr32(VMCS_REGION, VMX_REVISION | ((ctl & 0x100) ? BIT(31) : 0));
    mem_write(&mem, VMCS_REGION + VMCS_REGION_FIELDS, v.f, sizeof(v.f));
    /* an identity EPT (4-level, 1 GiB pages), parts overwritten from the input */
    wr64(EPT, (EPT + 0x1000) | 7);
    for (u64 g = 0; g < 4; g++)
        wr64(EPT + 0x1000 + 8 * g, g << 30 | 7 | 6 << 3 | BIT(7));
    wr64(EPTP_LIST, EPT | 6 | 3 << 3);
    if (ctl & 0x200) {
        unsigned nept = (unsigned)take(&data, &size, 1) & 15;
        for (unsigned k = 0; k < nept && size >= 10; k++) {
            u64 at = EPT + (take(&data, &size, 2) % 0x5000 & ~7ull);
            wr64(at, steer(take(&data, &size, 8), 7 | 6 << 3));
        }
    }
    /* bitmaps, MSR areas, the virtual-APIC page, the shadow VMCS: a slice of the input */
    if (ctl & 0x400) {
        static const u32 areas[] = { IO_BITMAP_A, MSR_BITMAP, MSR_AREA, VAPIC, SHADOW, PI_DESC };
        for (unsigned k = 0; k < 6 && size; k++) {
            size_t len = size < 64 ? size : 64;
            mem_write(&mem, areas[k], data, len);
            data += len;
            size -= len;
        }
    }
    /* L2's code: the rest of the input */
    size_t code = size < 4096 ? size : 4096;
    mem_write(&mem, L2_CODE, data, code);
    cpu_run(c, 2000);
    return 0;
}
