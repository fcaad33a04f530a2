/* Port I/O: the protection check of IN/OUT/INS/OUTS (SDM Vol. 1 19.5, the I/O permission
 * bitmap of the TSS) and the accesses themselves, which leave the engine as EV_IO. */
#include "cpu/exec.h"

#define TSS_IOMAP_BASE 0x66u  /* offset of the I/O map base in a 32/64-bit TSS */
#define TSS_MIN_LIMIT 0x67u   /* a TSS must hold the map base to have a bitmap */

static _Noreturn void io_denied(struct cpu *c)
{
    cpu_fault(c, EXC_GP, 0);
}

void cpu_check_io(struct cpu *c, u16 port, unsigned size)
{
    if (cpu_is_real(c))
        return;
    unsigned iopl = (unsigned)((c->rflags & FL_IOPL) >> 12);
    if (!cpu_is_v86(c) && c->cpl <= iopl)
        return;
    /* Only a 32-bit or 64-bit TSS has an I/O permission bitmap. */
    const struct seg *tr = &c->tr;
    unsigned type = SEG_ATTR_TYPE(tr->attr);
    if ((tr->attr & SEG_ATTR_UNUSABLE) || (type != 0x9 && type != 0xb) ||
        tr->limit < TSS_MIN_LIMIT)
        io_denied(c);
    u64 wrap = (c->efer & EFER_LMA) ? ~0ull : 0xffffffffull;
    u32 map = (u32)lin_read(c, (tr->base + TSS_IOMAP_BASE) & wrap, 2, ACC_IMPLICIT);
    u32 off = map + port / 8u;
    /* The processor always reads two bytes of the bitmap. */
    if ((u64)off + 1 > tr->limit)
        io_denied(c);
    u32 bits = (u32)lin_read(c, (tr->base + off) & wrap, 2, ACC_IMPLICIT);
    u32 want = ((1u << size) - 1) << (port & 7);
    if (bits & want)
        io_denied(c);
}

u32 cpu_io_in(struct cpu *c, u16 port, unsigned size)
{
    debug_check_io(c, port, size);
    struct cpu_event ev = { .kind = EV_IO, .u.io = { port, (u8)size, false, 0 } };
    enum intercept_result r = cpu_intercept(c, &ev);
    if (r == INTERCEPT_FAULT)
        cpu_fault(c, EXC_GP, 0);
    u32 mask = (u32)size_mask(size);
    /* a port nobody decodes floats high */
    return r == INTERCEPT_DEFAULT ? mask : ev.u.io.value & mask;
}

void cpu_io_out(struct cpu *c, u16 port, unsigned size, u32 value)
{
    debug_check_io(c, port, size);
    struct cpu_event ev = { .kind = EV_IO,
                            .u.io = { port, (u8)size, true, value & (u32)size_mask(size) } };
    if (cpu_intercept(c, &ev) == INTERCEPT_FAULT)
        cpu_fault(c, EXC_GP, 0);
}
