/* Control transfers: near and far JMP/CALL/RET, Jcc, JCXZ/JECXZ/JRCXZ, LOOP/LOOPcc,
 * IRET, INT n/INT3/INTO/INT1, ENTER/LEAVE, and the far pointer loads LDS/LES/LFS/LGS/LSS.
 * The far forms and event delivery live in seg.c and except.c; the handlers here decode
 * operands and apply the operand-size rules of near branches (a 16-bit operand size
 * truncates the new IP; in 64-bit mode near branches are always 64-bit). */
#include "cpu/exec.h"
#include "cpu/sgx/sgx.h"

/* Target of a relative branch: next instruction + displacement, in the operand size. */
static u64 rel_target(const struct insn *i)
{
    return (i->next_rip + (u64)i->op[0].imm.value.s) & size_mask(i->osize);
}

static bool is_far(const struct insn *i) { return i->d.meta.branch_type == ZYDIS_BRANCH_TYPE_FAR; }

/* sel:offset of a far JMP/CALL operand: ptr16:16/32 immediate or m16:16/32/64. */
static void far_operand(struct cpu *c, const struct insn *i, u16 *sel, u64 *off)
{
    const struct insn_operand *o = &i->op[0];
    if (o->type == ZYDIS_OPERAND_TYPE_POINTER) {
        *sel = o->ptr.segment;
        *off = o->ptr.offset;
        return;
    }
    int seg = opr_seg(i, 0);
    u64 ea = opr_ea(c, i, 0);
    *off = vmem_read(c, seg, ea, i->osize);
    *sel = (u16)vmem_read(c, seg, (ea + i->osize) & size_mask(i->asize), 2);
}

static void insn_jmp(struct cpu *c, const struct insn *i)
{
    if (is_far(i)) {
        u16 sel;
        u64 off;
        far_operand(c, i, &sel, &off);
        far_jmp_call(c, false, sel, off, i->osize, 0);
        return;
    }
    if (opr_is_imm(i, 0))
        cpu_branch(c, rel_target(i));
    else
        cpu_branch(c, opr_read(c, i, 0) & size_mask(i->osize));
}

static void insn_call(struct cpu *c, const struct insn *i)
{
    if (is_far(i)) {
        u16 sel;
        u64 off;
        far_operand(c, i, &sel, &off);
        far_jmp_call(c, true, sel, off, i->osize, i->next_rip);
        return;
    }
    /* the target is read (CALL [rsp]) and checked before anything is pushed */
    u64 target = opr_is_imm(i, 0) ? rel_target(i) : opr_read(c, i, 0) & size_mask(i->osize);
    cpu_branch(c, target);
    cpu_push(c, i->next_rip & size_mask(i->osize), i->osize);
}

static void insn_ret(struct cpu *c, const struct insn *i)
{
    u16 release = i->d.operand_count_visible ? (u16)i->op[0].imm.value.u : 0;
    if (is_far(i)) {
        far_ret(c, i->osize, release);
        return;
    }
    u64 target = cpu_pop(c, i->osize);
    u64 sm = stack_mask(c);
    c->gpr[R_RSP] = (c->gpr[R_RSP] & ~sm) | ((c->gpr[R_RSP] + release) & sm);
    cpu_branch(c, target & size_mask(i->osize));
}

/* Jcc: the condition is the low nibble of the opcode (70+cc, 0F 80+cc). */
static void insn_jcc(struct cpu *c, const struct insn *i)
{
    if (cond_eval(c, i->cc))
        cpu_branch(c, rel_target(i));
}

/* JCXZ/JECXZ/JRCXZ: the count register has the address size. */
static void insn_jrcxz(struct cpu *c, const struct insn *i)
{
    if (gpr_read(c, R_RCX, i->asize) == 0)
        cpu_branch(c, rel_target(i));
}

static void insn_loop(struct cpu *c, const struct insn *i)
{
    u64 count = (gpr_read(c, R_RCX, i->asize) - 1) & size_mask(i->asize);
    gpr_write(c, R_RCX, i->asize, count);
    bool zf = cpu_flags(c) & FL_ZF;
    bool taken = count != 0;
    if (i->d.mnemonic == ZYDIS_MNEMONIC_LOOPE)
        taken = taken && zf;
    else if (i->d.mnemonic == ZYDIS_MNEMONIC_LOOPNE)
        taken = taken && !zf;
    if (taken)
        cpu_branch(c, rel_target(i));
}

static void insn_iret(struct cpu *c, const struct insn *i)
{
    cpu_insn_event(c, INSN_EV_IRET, 0); /* SVM's IRET intercept */
    far_iret(c, i->osize);
}

/* Software exceptions are exceptions: an intercept (debugger, nested hypervisor) may
 * take them before the guest's IDT does. */
static void software_exception(struct cpu *c, const struct insn *i, u8 vector, int type)
{
    /* (in VMX non-root operation the exception bitmap sees it as the software exception
     * it is, when cpu_deliver raises EV_SOFT_EXCEPTION) */
    struct cpu_event ev = { .kind = EV_EXCEPTION, .u.exc = { vector, false, 0, 0 } };
    if (likely(!(c->vmx_non_root | c->svm_guest)) && cpu_intercept(c, &ev) != INTERCEPT_DEFAULT)
        return;
    cpu_deliver(c, vector, type, false, 0, i->next_rip);
}

static void insn_int(struct cpu *c, const struct insn *i)
{
    cpu_insn_event(c, INSN_EV_INTN, i->op[0].imm.value.u); /* SVM's INTn intercept */
    cpu_deliver(c, (u8)i->op[0].imm.value.u, EVT_SW_INT, false, 0, i->next_rip);
}

static void insn_int3(struct cpu *c, const struct insn *i)
{
    /* Inside an enclave INT3 is #UD after an opt-out entry, and fault-like after an
     * opt-in one: the event's frame points at the INT3 (SDM 43.4.1) */
    if (unlikely(c->enclave_mode)) {
        if (sgx_breakpoints_suppressed(c, c->rip, false))
            cpu_fault_noerr(c, EXC_UD);
        cpu_deliver(c, EXC_BP, EVT_SW_EXC, false, 0, c->rip);
        return;
    }
    software_exception(c, i, EXC_BP, EVT_SW_EXC);
}

static void insn_into(struct cpu *c, const struct insn *i)
{
    if (cpu_is_long64(c))
        cpu_fault_noerr(c, EXC_UD);
    if (cpu_flags(c) & FL_OF)
        software_exception(c, i, EXC_OF, EVT_SW_EXC);
}

static void insn_int1(struct cpu *c, const struct insn *i)
{
    software_exception(c, i, EXC_DB, EVT_PRIV_SW_EXC);
}

/* ENTER imm16, imm8 (SDM ENTER): the frame pointer walk uses the stack address size,
 * the pushed values the operand size. */
static void insn_enter(struct cpu *c, const struct insn *i)
{
    unsigned os = i->osize;
    u64 sm = stack_mask(c);
    u64 alloc = i->op[0].imm.value.u & 0xffff;
    unsigned level = i->op[1].imm.value.u & 31;
    cpu_push(c, gpr_read(c, R_RBP, os), os);
    u64 frame = c->gpr[R_RSP] & size_mask(os);
    if (level > 0) {
        u64 bp = c->gpr[R_RBP];
        for (unsigned k = 1; k < level; k++) {
            bp = (bp & ~sm) | ((bp - os) & sm);
            cpu_push(c, vmem_read(c, SEG_SS, bp & sm, os), os);
        }
        cpu_push(c, frame, os);
    }
    u64 rsp = c->gpr[R_RSP];
    u64 new_sp = (rsp - alloc) & sm;
    /* the final stack pointer must lie inside the stack segment (#SS(0)) */
    seg_linear(c, SEG_SS, new_sp, 1, true);
    gpr_write(c, R_RBP, os, frame);
    c->gpr[R_RSP] = (rsp & ~sm) | new_sp;
}

static void insn_leave(struct cpu *c, const struct insn *i)
{
    u64 sm = stack_mask(c);
    c->gpr[R_RSP] = (c->gpr[R_RSP] & ~sm) | (c->gpr[R_RBP] & sm);
    gpr_write(c, R_RBP, i->osize, cpu_pop(c, i->osize));
}

/* LDS/LES/LFS/LGS/LSS r, m16:16/32/64: the segment load (with all its checks) first. */
static void insn_load_far_pointer(struct cpu *c, const struct insn *i)
{
    static const struct { ZydisMnemonic m; int seg; } segs[] = {
        { ZYDIS_MNEMONIC_LDS, SEG_DS }, { ZYDIS_MNEMONIC_LES, SEG_ES },
        { ZYDIS_MNEMONIC_LFS, SEG_FS }, { ZYDIS_MNEMONIC_LGS, SEG_GS },
        { ZYDIS_MNEMONIC_LSS, SEG_SS },
    };
    int seg = SEG_NONE;
    for (unsigned k = 0; k < ARRAY_SIZE(segs); k++)
        if (segs[k].m == i->d.mnemonic)
            seg = segs[k].seg;
    unsigned os = i->osize;
    int mseg = opr_seg(i, 1);
    u64 ea = opr_ea(c, i, 1);
    u64 off = vmem_read(c, mseg, ea, os);
    u16 sel = (u16)vmem_read(c, mseg, (ea + os) & size_mask(i->asize), 2);
    seg_load(c, seg, sel);
    opr_write(c, i, 0, off);
}

void insn_register_control(insn_fn *t)
{
    static const struct { ZydisMnemonic m; insn_fn fn; } table[] = {
        { ZYDIS_MNEMONIC_JMP, insn_jmp },     { ZYDIS_MNEMONIC_CALL, insn_call },
        { ZYDIS_MNEMONIC_RET, insn_ret },
        { ZYDIS_MNEMONIC_JO, insn_jcc },      { ZYDIS_MNEMONIC_JNO, insn_jcc },
        { ZYDIS_MNEMONIC_JB, insn_jcc },      { ZYDIS_MNEMONIC_JNB, insn_jcc },
        { ZYDIS_MNEMONIC_JZ, insn_jcc },      { ZYDIS_MNEMONIC_JNZ, insn_jcc },
        { ZYDIS_MNEMONIC_JBE, insn_jcc },     { ZYDIS_MNEMONIC_JNBE, insn_jcc },
        { ZYDIS_MNEMONIC_JS, insn_jcc },      { ZYDIS_MNEMONIC_JNS, insn_jcc },
        { ZYDIS_MNEMONIC_JP, insn_jcc },      { ZYDIS_MNEMONIC_JNP, insn_jcc },
        { ZYDIS_MNEMONIC_JL, insn_jcc },      { ZYDIS_MNEMONIC_JNL, insn_jcc },
        { ZYDIS_MNEMONIC_JLE, insn_jcc },     { ZYDIS_MNEMONIC_JNLE, insn_jcc },
        { ZYDIS_MNEMONIC_JCXZ, insn_jrcxz },  { ZYDIS_MNEMONIC_JECXZ, insn_jrcxz },
        { ZYDIS_MNEMONIC_JRCXZ, insn_jrcxz },
        { ZYDIS_MNEMONIC_LOOP, insn_loop },   { ZYDIS_MNEMONIC_LOOPE, insn_loop },
        { ZYDIS_MNEMONIC_LOOPNE, insn_loop },
        { ZYDIS_MNEMONIC_IRET, insn_iret },   { ZYDIS_MNEMONIC_IRETD, insn_iret },
        { ZYDIS_MNEMONIC_IRETQ, insn_iret },
        { ZYDIS_MNEMONIC_INT, insn_int },     { ZYDIS_MNEMONIC_INT3, insn_int3 },
        { ZYDIS_MNEMONIC_INTO, insn_into },   { ZYDIS_MNEMONIC_INT1, insn_int1 },
        { ZYDIS_MNEMONIC_ENTER, insn_enter }, { ZYDIS_MNEMONIC_LEAVE, insn_leave },
        { ZYDIS_MNEMONIC_LDS, insn_load_far_pointer },
        { ZYDIS_MNEMONIC_LES, insn_load_far_pointer },
        { ZYDIS_MNEMONIC_LFS, insn_load_far_pointer },
        { ZYDIS_MNEMONIC_LGS, insn_load_far_pointer },
        { ZYDIS_MNEMONIC_LSS, insn_load_far_pointer },
    };
    for (unsigned k = 0; k < ARRAY_SIZE(table); k++)
        t[table[k].m] = table[k].fn;
}
