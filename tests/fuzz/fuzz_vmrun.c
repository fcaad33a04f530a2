/* libFuzzer target: SVM's VMRUN and the L2 that runs after it, with VMCB contents, nested
 * page tables, permission maps, event injection and L2 code from the input. An L1 program
 * in guest RAM (CPL 0, EFER.SVME set; 64-bit on 4- or 5-level paging, or 32-bit on PAE or
 * 2-level paging, which also picks the nested paging format) writes VM_HSAVE_PA and runs
 * VMRUN in a loop; after every #VMEXIT it advances L2's RIP to nRIP and runs an
 * input-chosen sequence of VMLOAD, VMSAVE, STGI, CLGI, STI, CLI, INVLPGA, TLB_CONTROL and
 * ASID changes, intercept toggles, EXITINTINFO re-injection and VMCB stores before the
 * next VMRUN. The VMCB starts from a valid L2 (64-bit, 32-bit PAE, 32-bit unpaged or real
 * mode) on L1's page tables, with the VMRUN intercept, ASID 1 and a few intercepts, and
 * gets input-chosen fields of vmcb_fields[] and the segment registers overwritten with raw,
 * steered (near RAM's end, the page tables, the SVM pages, canonical and MAXPHYADDR
 * boundaries) or bit-flipped values, plus raw bytes anywhere in its 4 KiB. L2's code is
 * the input's, optionally after a store of L2's own (into the host-save area, its VMCB,
 * the page tables) and a list of input-chosen instructions that meet the intercepts. The
 * harness only writes memory and runs the vCPU a bounded number of instructions, with an
 * INIT or an NMI halfway if the input says so. Every outcome must be architectural:
 * #UD/#GP at an SVM instruction, VMEXIT_INVALID, a #VMEXIT, a fault in L2 or L1, a
 * shutdown. Nothing may crash, hang, leak or reach host memory outside guest RAM
 * (ASan/UBSan). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/exec.h"
#include "cpu/svm/svm_internal.h"
#include "machine/mem.h"

#define RAM (8 * MiB)
#define PML4 0x1000u
#define PDPT 0x2000u
#define PD 0x3000u        /* 2 MiB pages: 64-bit and PAE format alike */
#define PML5 0x4000u
#define GDT 0x5000u
#define L1_IDT 0x6000u
#define L2_IDT 0x7000u
#define HANDLERS 0x8000u  /* L2's (VMMCALL, IRET) and L1's (IRET) exception handlers */
#define POINTERS 0x9000u  /* what L1 loads into rAX: VMCB, VMLOAD/VMSAVE, HSAVE, INVLPGA */
#define HSAVE 0xa000u
#define VMCB 0xb000u
#define VMCB2 0xc000u     /* VMLOAD and VMSAVE */
#define PAE_PDPT 0xd000u
#define PD32 0xe000u      /* 4 MiB pages */
#define L1_CODE 0x10000u
#define L1_STACK 0x20000u
#define L2_CODE 0x30000u
#define L2_STACK 0x38000u
#define NPT 0x40000u      /* 6 pages of nested tables */
#define IOPM 0x50000u     /* 12 KiB */
#define MSRPM 0x54000u    /* 8 KiB */
#define HARNESS_END 0x58000u

static struct guest_mem mem;
static struct cpuid_model model;
static struct cpu cpu, *c = &cpu;

/* A fault loop (a real-mode L2 whose #UD handler starts with a #UD) retires nothing;
 * cpu_run's budget bounds the faults it delivers too, so the run ends (this target found
 * the loop, tests/unit/test_run_budget.c keeps it fixed). */
static enum intercept_result intercept(struct cpu *cp, struct cpu_event *ev, void *opaque)
{
    (void)cp, (void)ev, (void)opaque;
    return INTERCEPT_DEFAULT;
}
static u64 now_ns(struct cpu *cp, void *opaque)
{
    (void)opaque;
    return cp->icount * 10; /* time moves with the instructions: the pause filter's too */
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

/* L1 (runs as 64-bit or 32-bit code: a REX.W prefix is a DEC EAX in 32-bit mode, before a
 * load that overwrites EAX anyway):
 *   mov ecx, VM_HSAVE_PA; mov eax, [POINTERS+16]; mov edx, [POINTERS+20]; wrmsr
 *   loop: mov rax, [POINTERS]; vmrun
 * followed (offset 0x20, where #VMEXIT and VMEXIT_INVALID return) by the input's
 * post-exit snippets and a jmp loop. */
static const u8 l1_head[] = {
    0xb9, 0x17, 0x01, 0x01, 0xc0, 0x8b, 0x04, 0x25, 0x10, 0x90, 0x00, 0x00, 0x8b, 0x14,
    0x25, 0x14, 0x90, 0x00, 0x00, 0x0f, 0x30, 0x48, 0x8b, 0x04, 0x25, 0x00, 0x90, 0x00,
    0x00, 0x0f, 0x01, 0xd8,
};
#define L1_LOOP (L1_CODE + 0x15)
#define L1_HOST_RIP (L1_CODE + 0x20)

/* the post-exit snippets */
enum { OP_VMLOAD, OP_VMSAVE, OP_STGI, OP_CLGI, OP_STI, OP_CLI, OP_TLB_CONTROL, OP_ASID,
       OP_XOR_INTERCEPT, OP_INVLPGA, OP_REINJECT, OP_CR3, OP_NRIP, OP_STORE, OP_HSAVE,
       OP_COUNT };
/* mov rdx, [VMCB+NRIP]; test rdx, rdx; jz +8; mov [VMCB+RIP], rdx */
static const u8 op_nrip[] = { 0x48, 0x8b, 0x14, 0x25, 0xc8, 0xb0, 0x00, 0x00, 0x48, 0x85,
                              0xd2, 0x74, 0x08, 0x48, 0x89, 0x14, 0x25, 0x78, 0xb5, 0x00, 0x00 };

static u64 take(const u8 **data, size_t *size, unsigned n)
{
    u64 v = 0;
    for (unsigned k = 0; k < n && *size; k++, (*data)++, (*size)--)
        v |= (u64)**data << (8 * k);
    return v;
}

static void wr64(u64 pa, u64 v) { mem_write(&mem, pa, &v, 8); }
static void wr32(u64 pa, u32 v) { mem_write(&mem, pa, &v, 4); }
static u64 rd(u64 pa, unsigned width)
{
    u64 v = 0;
    mem_read(&mem, pa, &v, width);
    return v;
}
static void wr(u64 pa, unsigned width, u64 v) { mem_write(&mem, pa, &v, width); }

static void vmcb_set(u64 vmcb, enum vmcb_field f, u64 v)
{
    wr(vmcb + vmcb_fields[f].offset, vmcb_fields[f].width, v);
}
/* a segment in the VMCB's form: 12-bit attributes (descriptor bits 47:40 and 55:52) */
static void vmcb_seg(u64 vmcb, int k, u16 sel, u16 attr, u32 limit, u64 base)
{
    u64 at = vmcb + vmcb_seg_offset(k);
    wr(at, 2, sel);
    wr(at + 2, 2, attr);
    wr(at + 4, 4, limit);
    wr(at + 8, 8, base);
}

static void init_once(void)
{
    char err[128];
    if (mem_init(&mem, RAM) < 0 ||
        cpuid_model_parse(&model, "max,vendor=AuthenticAMD", err, sizeof(err)) < 0)
        abort();
    if (cpu_init(c, 0, &mem, &model, &ops, NULL) < 0 || !c->svm)
        abort();
}

static void idt_gate(u64 idt, bool long_gates, unsigned vec, u16 sel, u64 off)
{
    u64 lo = (off & 0xffff) | (u64)sel << 16 | 0x8eull << 40 | ((off >> 16) & 0xffff) << 48;
    if (long_gates) {
        wr64(idt + 16 * vec, lo);
        wr64(idt + 16 * vec + 8, off >> 32);
    } else {
        wr64(idt + 8 * vec, lo);
    }
}

static bool has_error_code(unsigned vec)
{
    return vec == 8 || (vec >= 10 && vec <= 14) || vec == 17 || vec == 21 || vec == 29 ||
           vec == 30;
}

/* L1's modes: 64-bit on 4- or 5-level paging, 32-bit on PAE or 2-level paging (with PSE):
 * the nested tables take the same format. */
enum { L1_LONG4, L1_LONG5, L1_PAE, L1_32 };

/* L1 at CPL 0 with EFER.SVME, identity-mapped (the first 1 GiB, or 4 GiB with 4 MiB
 * pages), its exception handlers IRET. */
static void l1_state(int mode, bool intr)
{
    cpu_reset(c);
    mem_fill(&mem, 0, 0, HARNESS_END); /* everything the harness uses (and page 0) */
    wr64(PML5, PML4 | 3);
    wr64(PML4, PDPT | 3);
    wr64(PDPT, PD | 3);
    for (u64 k = 0; k < 512; k++)
        wr64(PD + 8 * k, k << 21 | 0x83);
    wr64(PAE_PDPT, PD | 1);
    for (u64 k = 0; k < 1024; k++)
        wr32(PD32 + 4 * k, (u32)(k << 22 | 0x83));
    /* GDT: null, code64 (0x08), data (0x10), TSS (0x18, 16 bytes), code32 (0x28) */
    wr64(GDT + 8, 0x00af9b000000ffffull);
    wr64(GDT + 16, 0x00cf93000000ffffull);
    wr64(GDT + 24, 0x00008b0000000067ull);
    wr64(GDT + 40, 0x00cf9b000000ffffull);
    /* handlers: L2 VMMCALL; IRETQ (and ADD RSP, 8 for an error code); L1 IRETQ */
    static const u8 h2[] = { 0x0f, 0x01, 0xd9, 0x48, 0xcf };
    static const u8 h2e[] = { 0x0f, 0x01, 0xd9, 0x48, 0x83, 0xc4, 0x08, 0x48, 0xcf };
    static const u8 h1[] = { 0x48, 0xcf };
    static const u8 h1e[] = { 0x48, 0x83, 0xc4, 0x08, 0x48, 0xcf };
    mem_write(&mem, HANDLERS, h2, sizeof(h2));
    mem_write(&mem, HANDLERS + 0x10, h2e, sizeof(h2e));
    mem_write(&mem, HANDLERS + 0x20, h1, sizeof(h1));
    mem_write(&mem, HANDLERS + 0x30, h1e, sizeof(h1e));
    if (mode == L1_LONG5 && !cpu_has(c, CF_LA57))
        mode = L1_LONG4;
    bool long_mode = mode == L1_LONG4 || mode == L1_LONG5;
    for (unsigned v = 0; v < 256; v++)
        idt_gate(L1_IDT, long_mode, v, long_mode ? 0x08 : 0x28,
                 HANDLERS + (has_error_code(v) ? 0x30 : 0x20));
    c->gdtr = (struct dtr){ GDT, 0x2f };
    c->idtr = (struct dtr){ L1_IDT, long_mode ? 0xfff : 0x7ff };
    switch (mode) {
    case L1_LONG4: c->cr3 = PML4; c->cr4 = CR4_PAE; break;
    case L1_LONG5: c->cr3 = PML5; c->cr4 = CR4_PAE | CR4_LA57; break;
    case L1_PAE: c->cr3 = PAE_PDPT; c->cr4 = CR4_PAE; break;
    default: c->cr3 = PD32; c->cr4 = CR4_PSE; break;
    }
    c->efer = EFER_SVME | (long_mode ? EFER_LME | EFER_LMA | EFER_NXE | EFER_SCE : 0) |
              (mode == L1_PAE ? EFER_NXE : 0);
    c->cr0 = CR0_PE | CR0_PG | CR0_ET | CR0_NE | CR0_WP;
    if (long_mode)
        cpu_set_seg(c, SEG_CS, 0x08, 0, 0xffffffff, 0xa09b);
    else
        cpu_set_seg(c, SEG_CS, 0x28, 0, 0xffffffff, 0xc09b);
    for (int s = 0; s < 6; s++)
        if (s != SEG_CS)
            cpu_set_seg(c, s, 0x10, 0, 0xffffffff, 0xc093);
    c->tr = (struct seg){ 0x18, 0, 0x67, 0x8b };
    c->ldtr = (struct seg){ 0, 0, 0, SEG_ATTR_UNUSABLE };
    c->rip = L1_CODE;
    c->gpr[R_RSP] = L1_STACK;
    c->rflags = FL_FIXED1 | (intr ? FL_IF : 0);
    cpu_update_mode(c);
    mmu_update(c);
    if (mode == L1_PAE)
        paging_load_pdptes(&c->in->pg, c->cr3, c->in->pg.pdpte);
    mem_write(&mem, L1_CODE, l1_head, sizeof(l1_head));
    wr64(POINTERS, VMCB);
    wr64(POINTERS + 8, VMCB2);
    wr64(POINTERS + 16, HSAVE);
    wr64(POINTERS + 24, L2_CODE);
    wr64(POINTERS + 32, HSAVE);
}

/* nested tables, identity: nCR3 for each of L1's modes (4-level, 5-level, PAE, 2-level) */
static u64 npt_build(int mode)
{
    wr64(NPT, (NPT + 0x1000) | 7);
    wr64(NPT + 0x1000, (NPT + 0x2000) | 7);
    for (u64 g = 1; g < 4; g++)
        wr64(NPT + 0x1000 + 8 * g, g << 30 | 0x87);
    wr64(NPT + 0x2000, (NPT + 0x3000) | 7);
    for (u64 k = 1; k < 512; k++)
        wr64(NPT + 0x2000 + 8 * k, k << 21 | 0x87);
    for (u64 k = 0; k < 512; k++)
        wr64(NPT + 0x3000 + 8 * k, k << 12 | 7);
    switch (mode) {
    case L1_LONG4:
        return NPT;
    case L1_LONG5:
        wr64(NPT + 0x4000, NPT | 7);
        return NPT + 0x4000;
    case L1_PAE:
        wr64(NPT + 0x4000, (NPT + 0x2000) | 1);
        return NPT + 0x4000;
    default:
        wr32(NPT + 0x4000, (NPT + 0x5000) | 7);
        for (u32 k = 1; k < 1024; k++)
            wr32(NPT + 0x4000 + 4 * k, k << 22 | 0x87);
        for (u32 k = 0; k < 1024; k++)
            wr32(NPT + 0x5000 + 4 * k, k << 12 | 7);
        return NPT + 0x4000;
    }
}

/* L2's modes */
enum { L2_LONG, L2_PAE, L2_PROT, L2_REAL };

/* A valid VMCB for L2 on L1's page tables (at vmcb), with the VMRUN intercept, ASID 1 and
 * a few intercepts; L2's IDT sends every vector to VMMCALL; IRET. */
static void vmcb_template(u64 vmcb, int l2mode, bool np, u64 ncr3)
{
    vmcb_set(vmcb, VMCB_INTERCEPT_MISC1, BIT(I1_INTR) | BIT(I1_NMI) | BIT(I1_SMI) |
             BIT(I1_INIT) | BIT(I1_CPUID) | BIT(I1_HLT) | BIT(I1_IOIO) | BIT(I1_MSR) |
             BIT(I1_SHUTDOWN));
    vmcb_set(vmcb, VMCB_INTERCEPT_MISC2, BIT(I2_VMRUN) | BIT(I2_VMMCALL));
    vmcb_set(vmcb, VMCB_INTERCEPT_EXC, BIT(EXC_DF) | BIT(EXC_MC));
    vmcb_set(vmcb, VMCB_INTERCEPT_CR, BIT(16 + 0) | BIT(16 + 3) | BIT(16 + 4) | BIT(8));
    vmcb_set(vmcb, VMCB_INTERCEPT_DR, BIT(16 + 7));
    vmcb_set(vmcb, VMCB_IOPM_BASE, IOPM);
    vmcb_set(vmcb, VMCB_MSRPM_BASE, MSRPM);
    vmcb_set(vmcb, VMCB_ASID, 1);
    vmcb_set(vmcb, VMCB_NP_CONTROL, np);
    vmcb_set(vmcb, VMCB_NCR3, ncr3);
    vmcb_set(vmcb, VMCB_G_PAT, 0x0007040600070406ull);
    vmcb_set(vmcb, VMCB_DR7, 0x400);
    vmcb_set(vmcb, VMCB_DR6, 0xffff0ff0);
    vmcb_set(vmcb, VMCB_RFLAGS, FL_FIXED1);
    vmcb_seg(vmcb, VMCB_SEG_GDTR, 0, 0, 0x2f, GDT);
    vmcb_seg(vmcb, VMCB_SEG_TR, 0x18, 0x08b, 0x67, 0);
    vmcb_seg(vmcb, VMCB_SEG_LDTR, 0, 0, 0, 0);
    bool long_gates = l2mode == L2_LONG;
    if (l2mode == L2_REAL) {
        for (unsigned v = 0; v < 256; v++) /* IVT: 0800:0000 */
            wr32(L2_IDT + 4 * v, 0x08000000u);
    } else {
        for (unsigned v = 0; v < 256; v++)
            idt_gate(L2_IDT, long_gates, v, long_gates ? 0x08 : 0x28,
                     HANDLERS + (has_error_code(v) ? 0x10 : 0));
    }
    switch (l2mode) {
    case L2_LONG:
        vmcb_set(vmcb, VMCB_EFER, EFER_SVME | EFER_LME | EFER_LMA | EFER_NXE | EFER_SCE);
        vmcb_set(vmcb, VMCB_CR0, CR0_PE | CR0_PG | CR0_ET | CR0_NE | CR0_WP);
        vmcb_set(vmcb, VMCB_CR4, CR4_PAE);
        vmcb_set(vmcb, VMCB_CR3, PML4);
        vmcb_seg(vmcb, VMCB_SEG_CS, 0x08, 0xa9b, 0xffffffff, 0);
        vmcb_seg(vmcb, VMCB_SEG_IDTR, 0, 0, 0xfff, L2_IDT);
        break;
    case L2_PAE:
        vmcb_set(vmcb, VMCB_EFER, EFER_SVME | EFER_NXE);
        vmcb_set(vmcb, VMCB_CR0, CR0_PE | CR0_PG | CR0_ET | CR0_NE | CR0_WP);
        vmcb_set(vmcb, VMCB_CR4, CR4_PAE);
        vmcb_set(vmcb, VMCB_CR3, PAE_PDPT);
        vmcb_seg(vmcb, VMCB_SEG_CS, 0x28, 0xc9b, 0xffffffff, 0);
        vmcb_seg(vmcb, VMCB_SEG_IDTR, 0, 0, 0x7ff, L2_IDT);
        break;
    case L2_PROT:
        vmcb_set(vmcb, VMCB_EFER, EFER_SVME);
        vmcb_set(vmcb, VMCB_CR0, CR0_PE | CR0_ET | CR0_NE);
        vmcb_seg(vmcb, VMCB_SEG_CS, 0x28, 0xc9b, 0xffffffff, 0);
        vmcb_seg(vmcb, VMCB_SEG_IDTR, 0, 0, 0x7ff, L2_IDT);
        break;
    default:
        vmcb_set(vmcb, VMCB_EFER, EFER_SVME);
        vmcb_set(vmcb, VMCB_CR0, CR0_ET | CR0_NE);
        vmcb_seg(vmcb, VMCB_SEG_CS, L2_CODE >> 4, 0x09b, 0xffff, L2_CODE);
        vmcb_seg(vmcb, VMCB_SEG_IDTR, 0, 0, 0x3ff, L2_IDT);
        break;
    }
    static const int data_segs[] = { VMCB_SEG_ES, VMCB_SEG_SS, VMCB_SEG_DS, VMCB_SEG_FS,
                                      VMCB_SEG_GS };
    for (unsigned k = 0; k < 5; k++) {
        if (l2mode == L2_REAL)
            vmcb_seg(vmcb, data_segs[k], data_segs[k] == VMCB_SEG_SS ? L2_CODE >> 4 : 0,
                     0x093, 0xffff, data_segs[k] == VMCB_SEG_SS ? L2_CODE : 0);
        else
            vmcb_seg(vmcb, data_segs[k], 0x10, 0xc93, 0xffffffff, 0);
    }
    vmcb_set(vmcb, VMCB_RIP, l2mode == L2_REAL ? 0 : L2_CODE);
    vmcb_set(vmcb, VMCB_RSP, l2mode == L2_REAL ? L2_STACK - L2_CODE : L2_STACK);
}

/* The value a mutation writes: raw, near an interesting address (inside the page or a
 * few pages either side), a bit flip or reserved bits of the current value. */
static u64 steer(u64 raw, u64 current)
{
    const u64 maxpa = 1ull << c->model->phys_bits;
    const u64 near[] = { 0, RAM - 4096, RAM, 0xfee00000u, PML4, PD, NPT, NPT + 0x3000,
                         VMCB, HSAVE, VMCB2, IOPM, MSRPM, L2_CODE, ~0ull,
                         0x00007ffffffff000ull, 0xffff800000000000ull,
                         0x00fffffffffff000ull, 0xff00000000000000ull, maxpa - 4096, maxpa,
                         1ull << 52, 1ull << 32 };
    const unsigned nnear = sizeof(near) / sizeof(near[0]);
    switch (raw & 7) {
    case 0: case 1: return raw >> 3;
    case 2: return near[(raw >> 3) % nnear] + ((raw >> 8) & 0xfff);
    case 3: return near[(raw >> 3) % nnear] + (u64)((s64)((raw >> 8) & 0xf) - 8) * 4096;
    case 4: return current ^ (1ull << ((raw >> 3) & 63));
    case 5: return current ^ (1ull << ((raw >> 3) & 63)) ^ (1ull << ((raw >> 9) & 63));
    case 6: return current | (raw >> 3 & 0xffffffffu);
    default: return current | (raw & ~0ull << (c->model->phys_bits)); /* reserved bits */
    }
}

/* One input-chosen field of the VMCB: one of vmcb_fields[], or part of a segment
 * register (selector, attributes, limit, base). */
static void mutate_field(u64 vmcb, unsigned slot, u64 raw)
{
    u64 at;
    unsigned width;
    if (slot < VMCB_FIELD_COUNT) {
        at = vmcb + vmcb_fields[slot].offset;
        width = vmcb_fields[slot].width;
    } else {
        slot -= VMCB_FIELD_COUNT;
        static const u8 part_off[] = { 0, 2, 4, 8 }, part_width[] = { 2, 2, 4, 8 };
        at = vmcb + vmcb_seg_offset((int)(slot / 4)) + part_off[slot % 4];
        width = part_width[slot % 4];
    }
    wr(at, width, steer(raw, rd(at, width)));
}

/* code emitters: bytes and a 32-bit little-endian word into code[n] */
#define EMIT(...)                                                                          \
    do {                                                                                   \
        const u8 b_[] = { __VA_ARGS__ };                                                   \
        memcpy(code + n, b_, sizeof(b_));                                                  \
        n += sizeof(b_);                                                                   \
    } while (0)
#define EMIT32(v)                                                                          \
    do {                                                                                   \
        u32 v_ = (u32)(v);                                                                 \
        memcpy(code + n, &v_, 4);                                                          \
        n += 4;                                                                            \
    } while (0)

/* L1's post-exit code at L1_HOST_RIP: the snippets the input picks, then jmp loop. */
static void l1_tail(const u8 **data, size_t *size, unsigned nops, bool nrip)
{
    u8 code[512];
    size_t n = 0;
    if (nrip) {
        memcpy(code + n, op_nrip, sizeof(op_nrip));
        n += sizeof(op_nrip);
    }
    for (unsigned k = 0; k < nops && *size; k++) {
        switch ((unsigned)take(data, size, 1) % OP_COUNT) {
        case OP_VMLOAD: /* mov rax, [POINTERS+8]; vmload */
            EMIT(0x48, 0x8b, 0x04, 0x25, 0x08, 0x90, 0x00, 0x00, 0x0f, 0x01, 0xda);
            break;
        case OP_VMSAVE: /* mov rax, [POINTERS+8]; vmsave */
            EMIT(0x48, 0x8b, 0x04, 0x25, 0x08, 0x90, 0x00, 0x00, 0x0f, 0x01, 0xdb);
            break;
        case OP_STGI: EMIT(0x0f, 0x01, 0xdc); break;
        case OP_CLGI: EMIT(0x0f, 0x01, 0xdd); break;
        case OP_STI: EMIT(0xfb, 0x90); break;
        case OP_CLI: EMIT(0xfa); break;
        case OP_TLB_CONTROL: /* mov byte [VMCB+TLB_CONTROL], imm8 */
            EMIT(0xc6, 0x04, 0x25);
            EMIT32(VMCB + 0x5c);
            EMIT((u8)take(data, size, 1));
            break;
        case OP_ASID: /* inc dword [VMCB+ASID] */
            EMIT(0xff, 0x04, 0x25);
            EMIT32(VMCB + 0x58);
            break;
        case OP_XOR_INTERCEPT: /* xor dword [VMCB+intercept vector], imm32 */
            EMIT(0x81, 0x34, 0x25);
            EMIT32(VMCB + 4 * (take(data, size, 1) % 5));
            EMIT32(take(data, size, 4));
            break;
        case OP_INVLPGA: /* mov rax, [POINTERS+24]; mov ecx, 1; invlpga */
            EMIT(0x48, 0x8b, 0x04, 0x25, 0x18, 0x90, 0x00, 0x00, 0xb9, 0x01, 0x00, 0x00, 0x00,
                 0x0f, 0x01, 0xdf);
            break;
        case OP_REINJECT: /* EVENTINJ = EXITINTINFO, in two dwords */
            EMIT(0x8b, 0x14, 0x25, 0x88, 0xb0, 0x00, 0x00, 0x89, 0x14, 0x25, 0xa8, 0xb0, 0x00,
                 0x00, 0x8b, 0x14, 0x25, 0x8c, 0xb0, 0x00, 0x00, 0x89, 0x14, 0x25, 0xac, 0xb0,
                 0x00, 0x00);
            break;
        case OP_CR3: EMIT(0x0f, 0x20, 0xda, 0x0f, 0x22, 0xda); break;
        case OP_NRIP:
            memcpy(code + n, op_nrip, sizeof(op_nrip));
            n += sizeof(op_nrip);
            break;
        case OP_STORE: /* mov dword [VMCB+off], imm32 */
            EMIT(0xc7, 0x04, 0x25);
            EMIT32(VMCB + (take(data, size, 2) & 0xffc));
            EMIT32(take(data, size, 4));
            break;
        default: /* mov ecx, VM_HSAVE_PA; mov eax, [POINTERS+32]; mov edx, [POINTERS+36]; wrmsr */
            EMIT(0xb9, 0x17, 0x01, 0x01, 0xc0, 0x8b, 0x04, 0x25, 0x20, 0x90, 0x00, 0x00, 0x8b,
                 0x14, 0x25, 0x24, 0x90, 0x00, 0x00, 0x0f, 0x30);
            break;
        }
    }
    EMIT(0xe9);
    EMIT32(L1_LOOP - (L1_HOST_RIP + n + 4));
    mem_write(&mem, L1_HOST_RIP, code, n);
}

/* L2's code as a list of input-chosen instructions that meet intercepts (64-bit
 * encodings; other modes decode them their own way), with MSR indices, ports, CR masks
 * and vectors from the input. Returns the bytes written at `at`. */
static size_t l2_snippets(const u8 **data, size_t *size, u64 at, unsigned count)
{
    static const u32 msrs[] = { 0x10, 0x1b, 0x174, 0x277, 0x1fff, 0x2000, 0xc0000080u,
                                0xc0000081u, 0xc0000100u, 0xc0001fffu, 0xc0002000u,
                                0xc0010114u, 0xc0010117u, 0xc0011fffu, 0xc0012000u,
                                0x48u };
    u8 code[4096];
    size_t n = 0;
    for (unsigned k = 0; k < count && *size && n < sizeof(code) - 64; k++) {
        unsigned op = (unsigned)take(data, size, 1);
        unsigned arg = (unsigned)take(data, size, 1);
        switch (op % 40) {
        case 0: EMIT(0x0f, 0xa2); break;                        /* cpuid */
        case 1: EMIT(0xf4); break;                              /* hlt */
        case 2: EMIT(0xf3, 0x90); break;                        /* pause */
        case 3: EMIT(0x0f, 0x31); break;                        /* rdtsc */
        case 4: EMIT(0x0f, 0x01, 0xf9); break;                  /* rdtscp */
        case 5: EMIT(0x31, 0xc9, 0x0f, 0x33); break;            /* xor ecx, ecx; rdpmc */
        case 6: EMIT(0xb9); EMIT32(msrs[arg % 16]); EMIT(0x0f, 0x32); break; /* rdmsr */
        case 7: /* mov eax, imm32; mov edx, imm32; mov ecx, msr; wrmsr */
            EMIT(0xb8);
            EMIT32(take(data, size, 4));
            EMIT(0xba);
            EMIT32(take(data, size, 4));
            EMIT(0xb9);
            EMIT32(msrs[arg % 16]);
            EMIT(0x0f, 0x30);
            break;
        case 8: EMIT(0xe4, (u8)arg); break;                     /* in al, imm8 */
        case 9: EMIT(0xe6, (u8)arg); break;                     /* out imm8, al */
        case 10: EMIT(0x66, 0xba, (u8)arg, (u8)(arg * 37), 0xed); break; /* in eax, dx */
        case 11: /* mov edi, L2_STACK - 0x1000; mov ecx, 3; mov dx, port; rep insw */
            EMIT(0xbf); EMIT32(L2_STACK - 0x1000);
            EMIT(0xb9, 0x03, 0x00, 0x00, 0x00, 0x66, 0xba, (u8)arg, 0xff, 0x66, 0xf3, 0x6d);
            break;
        case 12: /* mov esi, ...; mov ecx, 2; mov dx, port; rep outsd */
            EMIT(0xbe); EMIT32(L2_STACK - 0x1000);
            EMIT(0xb9, 0x02, 0x00, 0x00, 0x00, 0x66, 0xba, 0xfe, (u8)arg, 0xf3, 0x6f);
            break;
        case 13: { /* mov rax, crN; xor eax, mask; mov crN, rax */
            static const u8 cr[] = { 0xc0, 0xd0, 0xd8, 0xe0 };
            u8 r = cr[arg & 3];
            EMIT(0x0f, 0x20, r, 0x35);
            EMIT32(1u << (arg >> 3 & 31));
            EMIT(0x0f, 0x22, r);
            break;
        }
        case 14: EMIT(0x0f, 0x20, (u8)(0xc0 | (arg & 7) << 3)); break; /* mov rax, crN */
        case 15: EMIT(0x44, 0x0f, 0x20, 0xc0, 0x44, 0x0f, 0x22, 0xc0); break; /* cr8 */
        case 16: EMIT(0xb8); EMIT32(arg & 15); EMIT(0x44, 0x0f, 0x22, 0xc0); break; /* mov cr8 */
        case 17: /* smsw eax; xor eax, imm8; lmsw ax */
            EMIT(0x0f, 0x01, 0xe0, 0x83, 0xf0, (u8)(arg & 0xf), 0x0f, 0x01, 0xf0);
            break;
        case 18: EMIT(0x0f, 0x06); break;                       /* clts */
        case 19: EMIT(0x0f, 0x21, (u8)(0xc0 | (arg & 7) << 3)); break; /* mov rax, drN */
        case 20: /* mov eax, imm32; mov drN, rax */
            EMIT(0xb8);
            EMIT32(arg << 8 | 0x400);
            EMIT(0x0f, 0x23, (u8)(0xc0 | (arg & 7) << 3));
            break;
        case 21: /* mov rax, imm64; invlpg [rax] */
            EMIT(0x48, 0xb8);
            EMIT32(L2_CODE + arg * 64);
            EMIT32(0);
            EMIT(0x0f, 0x01, 0x38);
            break;
        case 22: EMIT(0xcc); break;                             /* int3 */
        case 23: EMIT(0xcd, (u8)arg); break;                    /* int n */
        case 24: EMIT(0xf1); break;                             /* icebp */
        case 25: EMIT(0x9c, 0x9d); break;                       /* pushf; popf */
        case 26: /* sgdt/sidt then lgdt/lidt [L2_STACK - 0x800] */
            EMIT(0x0f, 0x01, (u8)(arg & 1 ? 0x0c : 0x04), 0x25); EMIT32(L2_STACK - 0x800);
            EMIT(0x0f, 0x01, (u8)(arg & 1 ? 0x1c : 0x14), 0x25); EMIT32(L2_STACK - 0x800);
            break;
        case 27: EMIT(0x0f, 0x00, (u8)(arg & 1 ? 0xc8 : 0xc0)); break; /* str/sldt eax */
        case 28: /* mov eax, sel; ltr ax / lldt ax */
            EMIT(0xb8);
            EMIT32(arg & 1 ? 0x18 : 0);
            EMIT(0x0f, 0x00, (u8)(arg & 1 ? 0xd8 : 0xd0));
            break;
        case 29: EMIT(0x0f, (u8)(arg & 1 ? 0x09 : 0x08)); break; /* wbinvd/invd */
        case 30: /* xor ecx, ecx; mov eax, 3; xor edx, edx; xsetbv */
            EMIT(0x31, 0xc9, 0xb8, 0x03, 0x00, 0x00, 0x00, 0x31, 0xd2, 0x0f, 0x01, 0xd1);
            break;
        case 31: /* monitor [L2_STACK - 0x400]; mwait */
            EMIT(0xb8); EMIT32(L2_STACK - 0x400);
            EMIT(0x31, 0xc9, 0x31, 0xd2, 0x0f, 0x01, 0xc8, 0x31, 0xc0, 0xb9, (u8)(arg & 1), 0x00,
                 0x00, 0x00, 0x0f, 0x01, 0xc9);
            break;
        case 32: { /* the SVM instructions, rAX = VMCB2 or VMCB */
            static const u8 svm[] = { 0xd8, 0xd9, 0xda, 0xdb, 0xdc, 0xdd, 0xde, 0xdf };
            EMIT(0xb8); EMIT32(arg & 8 ? VMCB : VMCB2);
            EMIT(0x0f, 0x01, svm[arg & 7]);
            break;
        }
        case 33: EMIT(0xfb, 0x90); break;                       /* sti */
        case 34: EMIT(0xfa); break;                             /* cli */
        case 35: EMIT(0xfb, 0xf4); break;                       /* sti; hlt */
        case 36: EMIT(0x8c, 0xd0, 0x8e, 0xd0); break;           /* mov eax, ss; mov ss, eax */
        case 37: /* mov rax, [moffs64]: a #PF, or a non-canonical #GP */
            EMIT(0x48, 0xa1);
            EMIT32(arg << 24);
            EMIT32(arg & 1 ? 0x7fff : 0x8000);
            break;
        case 38: EMIT(0x0f, 0x0b); break;                       /* ud2 */
        default: EMIT(0x0f, 0x01, 0xd9); break;                 /* vmmcall */
        }
    }
    mem_write(&mem, at, code, n);
    return n;
}
#undef EMIT
#undef EMIT32

int LLVMFuzzerTestOneInput(const u8 *data, size_t size)
{
    static bool ready;
    if (!ready) {
        init_once();
        ready = true;
    }
    u64 ctl = take(&data, &size, 4);
    int l1mode = (int)(ctl & 3), l2mode = (int)(ctl >> 2 & 3);
    bool np = ctl & BIT(4);
    l1_state(l1mode, ctl & BIT(20));
    if (l1mode == L1_LONG5 && !(c->cr4 & CR4_LA57))
        l1mode = L1_LONG4;
    u64 ncr3 = npt_build(l1mode);
    vmcb_template(VMCB, l2mode, np, ncr3);
    vmcb_template(VMCB2, l2mode, np, ncr3);
    /* the MSR map intercepts writes to VM_CR and VM_HSAVE_PA (reads go through) unless the
     * input's maps say otherwise */
    wr(MSRPM + 0x1045, 1, 0x82);
    /* a virtual interrupt (V_IRQ with the input's priority, TPR and vector; V_GIF, masking),
     * and HLT left to L2 so that it waits for it */
    if (ctl & BIT(25)) {
        u64 v = take(&data, &size, 8);
        vmcb_set(VMCB, VMCB_VINTR, (v & 0xff0000ff031f02ffull) | VINTR_IRQ);
        if (v & BIT(10))
            wr32(VMCB + 0xc, (u32)(rd(VMCB + 0xc, 4) & ~BIT(I1_HLT)));
    }
    /* intercept vectors toggled */
    if (ctl & BIT(12))
        for (unsigned k = 0; k < 5; k++)
            wr32(VMCB + 4 * k, (u32)(rd(VMCB + 4 * k, 4) ^ take(&data, &size, 4)));
    /* fields of vmcb_fields[] and the segment registers */
    unsigned nmut = (unsigned)(ctl >> 5 & 7);
    for (unsigned k = 0; k < nmut && size >= 9; k++) {
        unsigned slot = (unsigned)take(&data, &size, 1) % (VMCB_FIELD_COUNT + 40);
        mutate_field(VMCB, slot, take(&data, &size, 8));
    }
    /* raw bytes anywhere in the 4 KiB */
    unsigned nraw = (unsigned)(ctl >> 8 & 7) * 2;
    for (unsigned k = 0; k < nraw && size >= 3; k++) {
        u64 off = take(&data, &size, 2) & 0xfff;
        wr(VMCB + off, 1, take(&data, &size, 1));
    }
    /* event injection: mostly valid, TYPE, vector, EV and error code from the input */
    if (ctl & BIT(11)) {
        u64 inj = take(&data, &size, 8);
        if (!(inj & BIT(30)))
            inj |= EVTINJ_VALID;
        vmcb_set(VMCB, VMCB_EVENTINJ, inj);
    }
    /* nested page-table entries */
    if (ctl & BIT(13)) {
        unsigned nnpt = (unsigned)take(&data, &size, 1) & 15;
        for (unsigned k = 0; k < nnpt && size >= 10; k++) {
            u64 at = NPT + (take(&data, &size, 2) % 0x6000 & ~7ull);
            wr64(at, steer(take(&data, &size, 8), rd(at, 8)));
        }
    }
    /* the permission maps: filled, and a slice of each from the input */
    if (ctl & BIT(14)) {
        u8 fill = (u8)take(&data, &size, 1);
        mem_fill(&mem, IOPM, fill & 1 ? 0xff : 0, 3 * 4096);
        mem_fill(&mem, MSRPM, fill & 2 ? 0xff : 0, 2 * 4096);
        u64 at = IOPM + take(&data, &size, 2) % (3 * 4096 - 32);
        size_t len = size < 32 ? size : 32;
        mem_write(&mem, at, data, len);
        data += len, size -= len;
        at = MSRPM + take(&data, &size, 2) % (2 * 4096 - 32);
        len = size < 32 ? size : 32;
        mem_write(&mem, at, data, len);
        data += len, size -= len;
    }
    /* L1's pointers: VMRUN's VMCB, VMLOAD/VMSAVE's, VM_HSAVE_PA, INVLPGA's, a later HSAVE */
    if (ctl & BIT(19)) {
        u8 which = (u8)take(&data, &size, 1);
        for (unsigned k = 0; k < 5; k++)
            if (which >> k & 1)
                wr64(POINTERS + 8 * k, steer(take(&data, &size, 8), rd(POINTERS + 8 * k, 8)));
    }
    l1_tail(&data, &size, (unsigned)(ctl >> 15 & 7), !(ctl & BIT(18)));
    /* L2's code: a store of L2's own (into the host-save area, its VMCB, the page tables,
     * ...: L2 runs on L1's tables) at its start if the input says so, then the input */
    u64 code_at = L2_CODE;
    if (ctl & BIT(21)) {
        static const u32 targets[] = { HSAVE, VMCB, PML4, PD, NPT, NPT + 0x3000, IOPM, L1_CODE };
        u8 insn[11] = { 0xc7, 0x04, 0x25 };
        u32 disp = targets[take(&data, &size, 1) & 7] + (u32)(take(&data, &size, 2) & 0xffc);
        u32 imm = (u32)take(&data, &size, 4);
        memcpy(insn + 3, &disp, 4);
        memcpy(insn + 7, &imm, 4);
        mem_write(&mem, code_at, insn, sizeof(insn));
        code_at += sizeof(insn);
    }
    if (ctl & BIT(22))
        code_at += l2_snippets(&data, &size, code_at, (unsigned)take(&data, &size, 1) & 31);
    size_t code = size < 4096 ? size : 4096;
    mem_write(&mem, code_at, data, code);
    if (!(ctl & BIT(23))) {
        cpu_run(c, 2000);
        return 0;
    }
    /* an INIT or an NMI halfway: held by GIF, intercepted, or taken */
    cpu_run(c, 1000);
    if (c->state == CPU_SHUTDOWN)
        return 0;
    if (ctl & BIT(24))
        cpu_init_signal(c, true);
    else
        cpu_nmi(c);
    cpu_run(c, 1000);
    return 0;
}
