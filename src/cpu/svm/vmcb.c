/* The VMCB (APM appendix B, tables B-1 and B-2): the one table of fields, their access in
 * guest memory, the segment attribute conversion, and the control area VMRUN caches. */
#include <string.h>

#include "cpu/svm/svm_internal.h"
#include "machine/mem.h"

#define C(f, off, w) [f] = { #f, off, w }
const struct vmcb_field_desc vmcb_fields[VMCB_FIELD_COUNT] = {
    C(VMCB_INTERCEPT_CR, 0x000, 4),   C(VMCB_INTERCEPT_DR, 0x004, 4),
    C(VMCB_INTERCEPT_EXC, 0x008, 4),  C(VMCB_INTERCEPT_MISC1, 0x00c, 4),
    C(VMCB_INTERCEPT_MISC2, 0x010, 4), C(VMCB_INTERCEPT_MISC3, 0x014, 4),
    C(VMCB_PAUSE_THRESHOLD, 0x03c, 2), C(VMCB_PAUSE_COUNT, 0x03e, 2),
    C(VMCB_IOPM_BASE, 0x040, 8),      C(VMCB_MSRPM_BASE, 0x048, 8),
    C(VMCB_TSC_OFFSET, 0x050, 8),     C(VMCB_ASID, 0x058, 4),
    C(VMCB_TLB_CONTROL, 0x05c, 1),    C(VMCB_VINTR, 0x060, 8),
    C(VMCB_INTR_SHADOW, 0x068, 8),    C(VMCB_EXITCODE, 0x070, 8),
    C(VMCB_EXITINFO1, 0x078, 8),      C(VMCB_EXITINFO2, 0x080, 8),
    C(VMCB_EXITINTINFO, 0x088, 8),    C(VMCB_NP_CONTROL, 0x090, 8),
    C(VMCB_EVENTINJ, 0x0a8, 8),       C(VMCB_NCR3, 0x0b0, 8),
    C(VMCB_VIRT_EXT, 0x0b8, 8),       C(VMCB_CLEAN, 0x0c0, 4),
    C(VMCB_NRIP, 0x0c8, 8),           C(VMCB_INSN_LEN, 0x0d0, 1),
    C(VMCB_CPL, 0x4cb, 1),            C(VMCB_EFER, 0x4d0, 8),
    C(VMCB_CR4, 0x548, 8),            C(VMCB_CR3, 0x550, 8),
    C(VMCB_CR0, 0x558, 8),            C(VMCB_DR7, 0x560, 8),
    C(VMCB_DR6, 0x568, 8),            C(VMCB_RFLAGS, 0x570, 8),
    C(VMCB_RIP, 0x578, 8),            C(VMCB_RSP, 0x5d8, 8),
    C(VMCB_RAX, 0x5f8, 8),            C(VMCB_STAR, 0x600, 8),
    C(VMCB_LSTAR, 0x608, 8),          C(VMCB_CSTAR, 0x610, 8),
    C(VMCB_SFMASK, 0x618, 8),         C(VMCB_KERNEL_GS_BASE, 0x620, 8),
    C(VMCB_SYSENTER_CS, 0x628, 8),    C(VMCB_SYSENTER_ESP, 0x630, 8),
    C(VMCB_SYSENTER_EIP, 0x638, 8),   C(VMCB_CR2, 0x640, 8),
    C(VMCB_G_PAT, 0x668, 8),          C(VMCB_DBGCTL, 0x670, 8),
};
#undef C

bool svm_pa_ok(const struct cpu *c, u64 pa)
{
    return !(pa & 0xfff) && (pa >> c->model->phys_bits) == 0;
}

/* A VMCB outside RAM reads as zeros and ignores writes: VMRUN, VMLOAD and VMSAVE
 * checked their operand's alignment and width; where it points is L1's business. */
u64 vmcb_get(struct cpu *c, u64 vmcb, enum vmcb_field f)
{
    const struct vmcb_field_desc *d = &vmcb_fields[f];
    u8 b[8] = { 0 };
    nested_phys_read(c, vmcb + d->offset, b, d->width);
    u64 v = 0;
    for (int k = d->width - 1; k >= 0; k--)
        v = v << 8 | b[k];
    return v;
}

void vmcb_put(struct cpu *c, u64 vmcb, enum vmcb_field f, u64 value)
{
    const struct vmcb_field_desc *d = &vmcb_fields[f];
    u8 b[8];
    for (unsigned k = 0; k < d->width; k++)
        b[k] = (u8)(value >> (8 * k));
    nested_phys_write(c, vmcb + d->offset, b, d->width);
}

/* The VMCB's attribute word packs descriptor bits 47:40 (type, S, DPL, P) in 7:0 and
 * 55:52 (AVL, L, D/B, G) in 11:8; the engine keeps the latter at 15:12. SVM has no
 * "unusable" bit: a segment that is not present is unusable (its selector was null). */
void vmcb_get_seg(struct cpu *c, u64 vmcb, int k, struct seg *s)
{
    u8 b[16] = { 0 };
    nested_phys_read(c, vmcb + vmcb_seg_offset(k), b, sizeof(b));
    u16 attr = (u16)(b[2] | b[3] << 8);
    s->sel = (u16)(b[0] | b[1] << 8);
    s->attr = (attr & 0xffu) | (u32)(attr & 0xf00u) << 4;
    if (!(s->attr & SEG_ATTR_P))
        s->attr |= SEG_ATTR_UNUSABLE;
    s->limit = (u32)b[4] | (u32)b[5] << 8 | (u32)b[6] << 16 | (u32)b[7] << 24;
    u64 base = 0;
    for (int n = 15; n >= 8; n--)
        base = base << 8 | b[n];
    s->base = base;
}

void vmcb_put_seg(struct cpu *c, u64 vmcb, int k, const struct seg *s)
{
    u16 attr = (u16)((s->attr & 0xffu) | (s->attr >> 4 & 0xf00u));
    if (s->attr & SEG_ATTR_UNUSABLE)
        attr &= (u16)~SEG_ATTR_P;
    u8 b[16];
    b[0] = (u8)s->sel;
    b[1] = (u8)(s->sel >> 8);
    b[2] = (u8)attr;
    b[3] = (u8)(attr >> 8);
    for (int n = 0; n < 4; n++)
        b[4 + n] = (u8)(s->limit >> (8 * n));
    for (int n = 0; n < 8; n++)
        b[8 + n] = (u8)(s->base >> (8 * n));
    nested_phys_write(c, vmcb + vmcb_seg_offset(k), b, sizeof(b));
}

void vmcb_put_world(struct cpu *c, u64 vmcb, u64 rip)
{
    for (int k = 0; k < 4; k++) /* ES CS SS DS: the engine's order is the VMCB's */
        vmcb_put_seg(c, vmcb, k, &c->seg[k]);
    struct seg g = { 0, c->gdtr.base, c->gdtr.limit, 0 }, i = { 0, c->idtr.base, c->idtr.limit, 0 };
    vmcb_put_seg(c, vmcb, VMCB_SEG_GDTR, &g);
    vmcb_put_seg(c, vmcb, VMCB_SEG_IDTR, &i);
    vmcb_put(c, vmcb, VMCB_EFER, c->efer);
    vmcb_put(c, vmcb, VMCB_CR0, c->cr0);
    vmcb_put(c, vmcb, VMCB_CR3, c->cr3);
    vmcb_put(c, vmcb, VMCB_CR4, c->cr4);
    vmcb_put(c, vmcb, VMCB_RFLAGS, cpu_flags(c));
    vmcb_put(c, vmcb, VMCB_RIP, rip);
    vmcb_put(c, vmcb, VMCB_RSP, c->gpr[R_RSP]);
    vmcb_put(c, vmcb, VMCB_RAX, c->gpr[R_RAX]);
}

void vmcb_get_world(struct cpu *c, u64 vmcb)
{
    for (int k = 0; k < 4; k++)
        vmcb_get_seg(c, vmcb, k, &c->seg[k]);
    struct seg gd, id;
    vmcb_get_seg(c, vmcb, VMCB_SEG_GDTR, &gd);
    vmcb_get_seg(c, vmcb, VMCB_SEG_IDTR, &id);
    c->gdtr = (struct dtr){ gd.base, (u16)gd.limit };
    c->idtr = (struct dtr){ id.base, (u16)id.limit };
    c->in->lz.op = LZ_NONE;
    /* bit 1 set; 3, 5, 15 and 22-63 clear */
    c->rflags = (vmcb_get(c, vmcb, VMCB_RFLAGS) & 0x3f7fd5ull) | FL_FIXED1;
    c->rip = vmcb_get(c, vmcb, VMCB_RIP);
    c->gpr[R_RSP] = vmcb_get(c, vmcb, VMCB_RSP);
    c->gpr[R_RAX] = vmcb_get(c, vmcb, VMCB_RAX);
}

void vmcb_load_controls(struct cpu *c, u64 vmcb)
{
    for (int f = 0; f < VMCB_CTL_COUNT; f++)
        c->svm->ctl[f] = vmcb_get(c, vmcb, (enum vmcb_field)f);
}
