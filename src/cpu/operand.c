/* Operands, registers, flags and the stack: the vocabulary every instruction handler
 * speaks. Register operands of every class (GPR, segment, control, debug, MMX, XMM, x87)
 * are resolved here from Zydis' register enumeration through one table. */
#include <string.h>

#include "cpu/exec.h"

/* ---- Zydis register -> (class, index) ---- */
enum rclass { RC_NONE, RC_GPR, RC_GPR8H, RC_SEG, RC_CR, RC_DR, RC_MMX, RC_XMM, RC_X87, RC_IP };
struct reg_info {
    u8 cls;
    u8 idx;
    u8 bytes;
};
static struct reg_info reg_table[ZYDIS_REGISTER_MAX_VALUE + 1];

static void reg_table_init(void)
{
    static bool done;
    if (done)
        return;
    for (int r = 0; r <= ZYDIS_REGISTER_MAX_VALUE; r++) {
        ZydisRegisterClass cls = ZydisRegisterGetClass((ZydisRegister)r);
        s8 id = ZydisRegisterGetId((ZydisRegister)r);
        struct reg_info ri = { RC_NONE, 0, 0 };
        switch (cls) {
        case ZYDIS_REGCLASS_GPR8:
            /* AL CL DL BL AH CH DH BH SPL BPL SIL DIL R8B..R15B */
            if (id >= 4 && id < 8)
                ri = (struct reg_info){ RC_GPR8H, (u8)(id - 4), 1 };
            else
                ri = (struct reg_info){ RC_GPR, (u8)(id < 4 ? id : id - 4), 1 };
            break;
        case ZYDIS_REGCLASS_GPR16: ri = (struct reg_info){ RC_GPR, (u8)id, 2 }; break;
        case ZYDIS_REGCLASS_GPR32: ri = (struct reg_info){ RC_GPR, (u8)id, 4 }; break;
        case ZYDIS_REGCLASS_GPR64: ri = (struct reg_info){ RC_GPR, (u8)id, 8 }; break;
        case ZYDIS_REGCLASS_SEGMENT: ri = (struct reg_info){ RC_SEG, (u8)id, 2 }; break;
        case ZYDIS_REGCLASS_CONTROL: ri = (struct reg_info){ RC_CR, (u8)id, 8 }; break;
        case ZYDIS_REGCLASS_DEBUG: ri = (struct reg_info){ RC_DR, (u8)id, 8 }; break;
        case ZYDIS_REGCLASS_MMX: ri = (struct reg_info){ RC_MMX, (u8)id, 8 }; break;
        case ZYDIS_REGCLASS_XMM: ri = (struct reg_info){ RC_XMM, (u8)id, 16 }; break;
        case ZYDIS_REGCLASS_X87: ri = (struct reg_info){ RC_X87, (u8)id, 10 }; break;
        case ZYDIS_REGCLASS_IP: ri = (struct reg_info){ RC_IP, 0, 8 }; break;
        default: break;
        }
        reg_table[r] = ri;
    }
    done = true;
}

void operand_init(void)
{
    reg_table_init();
    for (unsigned b = 0; b < 256; b++) {
        opd_mask[b] = size_mask(b);
        opd_keep[b] = b >= 4 ? 0 : ~size_mask(b); /* 32-bit writes zero-extend */
    }
}

int zreg_index(ZydisRegister r) { return reg_table[r].idx; }

int opr_gpr(const struct insn *i, int n, bool *hi8)
{
    const struct reg_info *ri = &reg_table[i->op[n].reg.value];
    if (hi8)
        *hi8 = ri->cls == RC_GPR8H;
    if (ri->cls == RC_GPR || ri->cls == RC_GPR8H)
        return ri->idx;
    return -1;
}

/* ---- GPRs ---- */
u64 gpr_read(const struct cpu *c, int reg, unsigned bytes) { return c->gpr[reg] & size_mask(bytes); }
u64 gpr_read8h(const struct cpu *c, int reg) { return (c->gpr[reg] >> 8) & 0xff; }

void gpr_write(struct cpu *c, int reg, unsigned bytes, u64 v)
{
    switch (bytes) {
    case 1: c->gpr[reg] = (c->gpr[reg] & ~0xffull) | (v & 0xff); break;
    case 2: c->gpr[reg] = (c->gpr[reg] & ~0xffffull) | (v & 0xffff); break;
    case 4: c->gpr[reg] = v & 0xffffffffull; break; /* 32-bit writes zero-extend */
    default: c->gpr[reg] = v; break;
    }
}

/* x87 physical register holding ST(i) */
static inline int st_phys(const struct cpu *c, int i) { return (((c->fpu.fsw >> 11) & 7) + i) & 7; }

static u64 reg_read(struct cpu *c, ZydisRegister r)
{
    const struct reg_info *ri = &reg_table[r];
    switch (ri->cls) {
    case RC_GPR: return c->gpr[ri->idx] & size_mask(ri->bytes);
    case RC_GPR8H: return gpr_read8h(c, ri->idx);
    case RC_SEG: return c->seg[ri->idx].sel;
    case RC_CR: return cpu_read_cr(c, ri->idx);
    case RC_DR: return cpu_read_dr(c, ri->idx);
    case RC_MMX: { u64 v; memcpy(&v, c->fpu.st[ri->idx], 8); return v; }
    case RC_XMM: { u64 v; memcpy(&v, c->fpu.xmm[ri->idx], 8); return v; }
    case RC_X87: { u64 v; memcpy(&v, c->fpu.st[st_phys(c, ri->idx)], 8); return v; }
    case RC_IP: return c->rip;
    default: cpu_unimplemented(c, "an instruction form reading an unsupported register class");
    }
}

/* MMX writes: the register's exponent/sign bits become all ones, TOP = 0, all tags valid. */
static void mmx_write(struct cpu *c, int idx, u64 v)
{
    memcpy(c->fpu.st[idx], &v, 8);
    c->fpu.st[idx][8] = 0xff;
    c->fpu.st[idx][9] = 0xff;
    c->fpu.fsw &= ~(7u << 11);
    c->fpu.ftw = 0xff;
}

static void reg_write(struct cpu *c, const struct insn *i, ZydisRegister r, u64 v)
{
    const struct reg_info *ri = &reg_table[r];
    switch (ri->cls) {
    case RC_GPR: gpr_write(c, ri->idx, ri->bytes, v); break;
    case RC_GPR8H: c->gpr[ri->idx] = (c->gpr[ri->idx] & ~0xff00ull) | ((v & 0xff) << 8); break;
    case RC_SEG:
        if (ri->idx == SEG_CS)
            cpu_fault_noerr(c, EXC_UD);
        seg_load(c, ri->idx, (u16)v);
        /* MOV SS / POP SS inhibit interrupts and debug traps for one instruction */
        if (ri->idx == SEG_SS)
            c->intr_shadow = SHADOW_MOV_SS;
        break;
    case RC_CR: cpu_write_cr(c, ri->idx, v); break;
    case RC_DR: cpu_write_dr(c, ri->idx, v); break;
    case RC_MMX: mmx_write(c, ri->idx, v); break;
    case RC_XMM:
        /* scalar writes to an XMM register (MOVD/MOVQ) zero the rest of it */
        memset(c->fpu.xmm[ri->idx], 0, 16);
        memcpy(c->fpu.xmm[ri->idx], &v, 8);
        break;
    default:
        (void)i;
        cpu_unimplemented(c, "an instruction form writing an unsupported register class");
    }
}

/* ---- operands ---- */
u64 opd_mask[256], opd_keep[256];
int zseg(ZydisRegister s)
{
    switch (s) {
    case ZYDIS_REGISTER_ES: return SEG_ES;
    case ZYDIS_REGISTER_CS: return SEG_CS;
    case ZYDIS_REGISTER_SS: return SEG_SS;
    case ZYDIS_REGISTER_FS: return SEG_FS;
    case ZYDIS_REGISTER_GS: return SEG_GS;
    default: return SEG_DS;
    }
}

/* Operand n's descriptor: the common kinds (GPR of its natural size, immediate, memory)
 * get everything their inline access needs; the rest stay OPD_OTHER (operand.c's slow
 * path reads them from i->op[n]). */
static struct opd opd_from_zydis(const ZydisDecodedOperand *o)
{
    struct opd d = { .kind = OPD_OTHER, .base = OPD_BASE_NONE, .index = OPD_BASE_NONE };
    d.bytes = (u8)(o->size / 8);
    switch (o->type) {
    case ZYDIS_OPERAND_TYPE_REGISTER: {
        const struct reg_info *ri = &reg_table[o->reg.value];
        if (ri->cls == RC_GPR && d.bytes == ri->bytes) {
            d.kind = OPD_GPR;
            d.reg = ri->idx;
            /* 32-bit writes zero-extend; 8/16-bit writes merge */
        }
        break;
    }
    case ZYDIS_OPERAND_TYPE_IMMEDIATE:
        d.kind = OPD_IMM;
        d.val = o->imm.value.u & size_mask(d.bytes);
        break;
    case ZYDIS_OPERAND_TYPE_MEMORY:
        if (o->mem.type != ZYDIS_MEMOP_TYPE_MEM && o->mem.type != ZYDIS_MEMOP_TYPE_AGEN &&
            o->mem.type != ZYDIS_MEMOP_TYPE_MIB)
            break;
        d.kind = OPD_MEM;
        d.seg = (u8)zseg(o->mem.segment);
        if (o->mem.base != ZYDIS_REGISTER_NONE) {
            const struct reg_info *ri = &reg_table[o->mem.base];
            d.base = ri->cls == RC_IP ? OPD_BASE_RIP : (s8)ri->idx;
        }
        if (o->mem.index != ZYDIS_REGISTER_NONE) {
            d.index = (s8)reg_table[o->mem.index].idx;
            d.shift = (u8)__builtin_ctz(o->mem.scale ? o->mem.scale : 1);
        }
        d.val = o->mem.disp.has_displacement ? (u64)o->mem.disp.value : 0;
        break;
    default:
        break;
    }
    return d;
}

int insn_ds_segment(const struct insn *i)
{
    static const struct { ZydisInstructionAttributes attr; int seg; } overrides[] = {
        { ZYDIS_ATTRIB_HAS_SEGMENT_ES, SEG_ES }, { ZYDIS_ATTRIB_HAS_SEGMENT_CS, SEG_CS },
        { ZYDIS_ATTRIB_HAS_SEGMENT_SS, SEG_SS }, { ZYDIS_ATTRIB_HAS_SEGMENT_FS, SEG_FS },
        { ZYDIS_ATTRIB_HAS_SEGMENT_GS, SEG_GS },
    };
    if (likely(!(i->d.attributes & ZYDIS_ATTRIB_HAS_SEGMENT)))
        return SEG_DS;
    for (size_t k = 0; k < ARRAY_SIZE(overrides); k++)
        if (i->d.attributes & overrides[k].attr)
            return overrides[k].seg;
    return SEG_DS;
}

void insn_from_zydis(struct insn *i, const ZydisDecodedInstruction *d, const ZydisDecodedOperand *op)
{
    i->d = (struct insn_info){
        .attributes = d->attributes,
        .mnemonic = (u16)d->mnemonic,
        .length = d->length,
        .operand_count_visible = d->operand_count_visible,
        .opcode = d->opcode,
        .opcode_map = (u8)d->opcode_map,
        .operand_width = d->operand_width,
        .address_width = d->address_width,
        .meta.branch_type = (u8)d->meta.branch_type,
        .raw.modrm = { d->raw.modrm.mod, d->raw.modrm.reg, d->raw.modrm.rm },
    };
    i->cc = d->opcode & 0xf;
    i->osize = (u8)(d->operand_width / 8);
    i->asize = (u8)(d->address_width / 8);
    i->amask = size_mask(i->asize);
    i->rep = d->attributes & (ZYDIS_ATTRIB_HAS_REP | ZYDIS_ATTRIB_HAS_REPE);
    i->repne = d->attributes & ZYDIS_ATTRIB_HAS_REPNE;
    i->lock = d->attributes & ZYDIS_ATTRIB_HAS_LOCK;
    for (int n = 0; n < INSN_MAX_OPERANDS; n++) {
        if (n >= d->operand_count_visible) {
            i->op[n] = (struct insn_operand){ .type = ZYDIS_OPERAND_TYPE_UNUSED };
            i->opd[n] = (struct opd){ .kind = OPD_OTHER, .base = OPD_BASE_NONE, .index = OPD_BASE_NONE };
            continue;
        }
        const ZydisDecodedOperand *o = &op[n];
        i->op[n] = (struct insn_operand){
            .type = (u8)o->type,
            .size = o->size,
            .reg.value = (u16)o->reg.value,
            .mem.segment = (u16)o->mem.segment,
            .ptr = { o->ptr.segment, o->ptr.offset },
            .imm.value.u = o->imm.value.u,
        };
        i->opd[n] = opd_from_zydis(o);
    }
}

u64 opr_read_slow(struct cpu *c, const struct insn *i, int n)
{
    const struct insn_operand *o = &i->op[n];
    switch (o->type) {
    case ZYDIS_OPERAND_TYPE_REGISTER:
        return reg_read(c, o->reg.value) & size_mask(o->size / 8);
    case ZYDIS_OPERAND_TYPE_MEMORY:
        return vmem_read(c, opr_seg(i, n), opr_ea(c, i, n), o->size / 8);
    case ZYDIS_OPERAND_TYPE_IMMEDIATE:
        return o->imm.value.u & size_mask(o->size / 8);
    case ZYDIS_OPERAND_TYPE_POINTER:
        return o->ptr.offset;
    default:
        cpu_unimplemented(c, "an instruction form with an operand of unsupported kind");
    }
}

void opr_write_slow(struct cpu *c, const struct insn *i, int n, u64 v)
{
    const struct insn_operand *o = &i->op[n];
    if (o->type == ZYDIS_OPERAND_TYPE_REGISTER)
        reg_write(c, i, o->reg.value, v);
    else if (o->type == ZYDIS_OPERAND_TYPE_MEMORY)
        vmem_write(c, opr_seg(i, n), opr_ea(c, i, n), o->size / 8, v);
    else
        cpu_unimplemented(c, "an instruction form writing a non-writable operand");
}

void opr_read_bytes(struct cpu *c, const struct insn *i, int n, void *buf, unsigned bytes)
{
    const struct insn_operand *o = &i->op[n];
    if (o->type == ZYDIS_OPERAND_TYPE_MEMORY) {
        vmem_read_bytes(c, opr_seg(i, n), opr_ea(c, i, n), buf, bytes);
        return;
    }
    if (o->type != ZYDIS_OPERAND_TYPE_REGISTER)
        cpu_unimplemented(c, "an instruction form reading bytes of an unsupported operand");
    const struct reg_info *ri = &reg_table[o->reg.value];
    switch (ri->cls) {
    case RC_XMM: memcpy(buf, c->fpu.xmm[ri->idx], bytes > 16 ? 16 : bytes); break;
    case RC_MMX: memcpy(buf, c->fpu.st[ri->idx], bytes > 8 ? 8 : bytes); break;
    case RC_X87: memcpy(buf, c->fpu.st[st_phys(c, ri->idx)], bytes > 10 ? 10 : bytes); break;
    default: { u64 v = reg_read(c, o->reg.value); memcpy(buf, &v, bytes > 8 ? 8 : bytes); break; }
    }
}

void opr_write_bytes(struct cpu *c, const struct insn *i, int n, const void *buf, unsigned bytes)
{
    const struct insn_operand *o = &i->op[n];
    if (o->type == ZYDIS_OPERAND_TYPE_MEMORY) {
        vmem_write_bytes(c, opr_seg(i, n), opr_ea(c, i, n), buf, bytes);
        return;
    }
    if (o->type != ZYDIS_OPERAND_TYPE_REGISTER)
        cpu_unimplemented(c, "an instruction form writing bytes of an unsupported operand");
    const struct reg_info *ri = &reg_table[o->reg.value];
    switch (ri->cls) {
    case RC_XMM: memcpy(c->fpu.xmm[ri->idx], buf, bytes > 16 ? 16 : bytes); break;
    case RC_MMX: { u64 v = 0; memcpy(&v, buf, bytes > 8 ? 8 : bytes); mmx_write(c, ri->idx, v); break; }
    case RC_X87: memcpy(c->fpu.st[st_phys(c, ri->idx)], buf, bytes > 10 ? 10 : bytes); break;
    default: { u64 v = 0; memcpy(&v, buf, bytes > 8 ? 8 : bytes); reg_write(c, i, o->reg.value, v); break; }
    }
}

/* ---- control flow and stack ---- */
