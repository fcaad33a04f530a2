/* The engine's questions about a running L2, sent to VMX or SVM (nested.h). */
#include <string.h>

#include "cpu/nested.h"
#include "cpu/svm/svm.h"
#include "cpu/vmx/vmx.h"
#include "machine/mem.h"

bool nested_intercept(struct cpu *c, struct cpu_event *ev)
{
    return c->vmx_non_root ? vmx_intercept(c, ev) : svm_intercept(c, ev);
}

void nested_boundary(struct cpu *c)
{
    if (c->vmx_non_root)
        vmx_boundary(c);
    else
        svm_boundary(c);
}

bool nested_intr_masked_by_if(const struct cpu *c)
{
    if (c->svm_guest)
        return svm_intr_masked_by_if(c);
    return vmx_intr_masked_by_if(c);
}

bool nested_wakeup(const struct cpu *c)
{
    if (c->vmx_non_root)
        return vmx_wake_due(c) || vmx_apicv_wakeup(c);
    return c->svm_guest && svm_virq_wakeup(c);
}

u64 nested_translate(struct cpu *c, u64 gpa, unsigned access, u64 linear, bool table)
{
    if (c->vmx_non_root)
        return vmx_ept_translate(c, gpa, access, linear, true, table);
    if (c->svm_guest)
        return svm_npt_translate(c, gpa, access, linear, table);
    return gpa;
}

bool nested_peek(struct cpu *c, u64 gpa, unsigned access, u64 *hpa)
{
    if (c->svm_guest)
        return svm_npt_peek(c, gpa, access, hpa);
    return vmx_ept_peek(c, gpa, access, hpa);
}

void nested_note_delivery(struct cpu *c, u8 vector, int type, bool has_error, u32 error,
                          u32 len)
{
    if (c->vmx_non_root)
        vmx_note_delivery(c, vector, type, has_error, error, len);
    else
        svm_note_delivery(c, vector, type, has_error, error);
}

void nested_delivery_done(struct cpu *c)
{
    if (c->vmx_non_root)
        vmx_delivery_done(c);
    else
        svm_delivery_done(c);
}

bool nested_phys_read(struct cpu *c, u64 pa, void *buf, size_t len)
{
    return mem_read(c->mem, pa, buf, len) == 0;
}

bool nested_phys_write(struct cpu *c, u64 pa, const void *buf, size_t len)
{
    if (!mem_ptr_write(c->mem, pa, len) || mem_write(c->mem, pa, buf, len) < 0)
        return false;
    c->in->exits |= EXIT_BLOCK_END; /* may have hit decoded code */
    return true;
}

void nested_decode_at_rip(struct cpu *c, struct nested_decoded *out)
{
    memset(out, 0, sizeof(*out));
    u64 lin = cpu_is_long64(c) ? c->rip : (c->seg[SEG_CS].base + c->rip) & 0xffffffffull;
    u8 buf[15];
    unsigned n = 0;
    /* as many bytes as are readable, up to 15 */
    u64 wrap = cpu_is_long64(c) ? ~0ull : 0xffffffffull; /* legacy linear addresses wrap */
    while (n < 15 && lin_peek(c, (lin + n) & wrap, buf + n, 1))
        n++;
    unsigned sw = c->mode == MODE_LONG64 ? 2 : (c->seg[SEG_SS].attr & SEG_ATTR_DB) ? 1 : 0;
    ZydisDecoder *dec = &c->in->dec[c->mode][sw];
    out->ok = n && ZYAN_SUCCESS(ZydisDecoderDecodeFull(dec, buf, n, &out->d, out->op));
}

void nested_io_insn(struct cpu *c, bool out, struct nested_io_insn *io)
{
    struct nested_decoded dd;
    nested_decode_at_rip(c, &dd);
    ZydisMnemonic mn = dd.ok ? dd.d.mnemonic : ZYDIS_MNEMONIC_INVALID;
    io->string = mn == ZYDIS_MNEMONIC_INSB || mn == ZYDIS_MNEMONIC_INSW ||
                 mn == ZYDIS_MNEMONIC_INSD || mn == ZYDIS_MNEMONIC_OUTSB ||
                 mn == ZYDIS_MNEMONIC_OUTSW || mn == ZYDIS_MNEMONIC_OUTSD;
    io->rep = io->string && (dd.d.attributes & (ZYDIS_ATTRIB_HAS_REP | ZYDIS_ATTRIB_HAS_REPNE));
    io->imm = dd.ok && !io->string &&
              (dd.op[0].type == ZYDIS_OPERAND_TYPE_IMMEDIATE ||
               dd.op[1].type == ZYDIS_OPERAND_TYPE_IMMEDIATE);
    io->length = dd.ok ? dd.d.length : 1;
    io->address_width = dd.ok ? dd.d.address_width : 32;
    io->seg = !io->string ? SEG_DS : out ? zseg(dd.op[1].mem.segment) : SEG_ES;
}

int nested_gpr_number(ZydisRegister r)
{
    if (r == ZYDIS_REGISTER_NONE)
        return -1;
    ZydisRegister l = ZydisRegisterGetLargestEnclosing(ZYDIS_MACHINE_MODE_LONG_64, r);
    if (l >= ZYDIS_REGISTER_RAX && l <= ZYDIS_REGISTER_R15)
        return l - ZYDIS_REGISTER_RAX;
    return -1;
}
