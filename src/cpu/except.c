/* Delivery of interrupts and exceptions through the IVT (real mode) or the IDT
 * (protected and IA-32e mode), SDM Vol. 3A ch. 6 and the INT n pseudocode of Vol. 2.
 *
 * All checks and every write of the frame happen before CS, SS, RSP, RIP, RFLAGS and the
 * CPL change: a fault during delivery leaves the state as it was, and the loop escalates
 * it (double fault, triple fault). Error codes of faults raised here carry EXT (bit 0)
 * for events the program did not cause and IDT (bit 1) when they name a gate. */
#include "cpu/exec.h"
#include "cpu/nested.h"
#include "cpu/sgx/sgx.h"
#include "cpu/vmx/vmx.h"

int exc_class(int vector)
{
    switch (vector) {
    case EXC_DE: case EXC_TS: case EXC_NP: case EXC_SS: case EXC_GP:
        return 1;
    case EXC_PF: case EXC_VE:
        return 2;
    default:
        return 0;
    }
}

/* Fault-class exceptions: the RFLAGS image they push has RF set, so that the handler's
 * IRET re-executes the instruction without an instruction breakpoint firing again. #DB
 * is not among them: an instruction breakpoint pushes RF as it was (0, or it would not
 * have fired), the debug handler sets it (SDM 17.3.1.1). */
static bool exc_is_fault(int vector)
{
    static const u32 faults = BIT(EXC_DE) | BIT(EXC_BR) | BIT(EXC_UD) | BIT(EXC_NM) |
                              BIT(EXC_TS) | BIT(EXC_NP) | BIT(EXC_SS) | BIT(EXC_GP) |
                              BIT(EXC_PF) | BIT(EXC_MF) | BIT(EXC_AC) | BIT(EXC_XM) |
                              BIT(EXC_VE) | BIT(EXC_CP);
    return vector < 32 && (faults & BIT(vector));
}

/* Flags every protected-mode delivery clears; interrupt gates clear IF as well. */
#define DELIVERY_CLEARS (FL_TF | FL_NT | FL_VM | FL_RF)

static void deliver_real(struct cpu *c, u8 vector, u64 flags_image, u64 return_rip)
{
    u32 off = (u32)vector * 4;
    if (off + 3 > c->idtr.limit)
        cpu_fault(c, EXC_GP, 0);
    u32 entry = (u32)lin_read(c, (c->idtr.base + off) & 0xffffffffull, 4, ACC_IMPLICIT);
    struct stack_ptr st;
    stk_current(c, &st);
    stk_push(c, &st, flags_image & 0xffff, 2);
    stk_push(c, &st, c->seg[SEG_CS].sel, 2);
    stk_push(c, &st, return_rip & 0xffff, 2);

    struct seg *cs = &c->seg[SEG_CS];
    cs->sel = (u16)(entry >> 16);
    cs->base = (u64)cs->sel << 4;
    c->rip = entry & 0xffff;
    c->in->exits |= EXIT_RIP_WRITTEN;
    c->gpr[R_RSP] = st.sp;
    cpu_set_rflags(c, 0, FL_IF | FL_TF | FL_AC);
    cpu_update_mode(c);
}

/* Gate types by descriptor type (S = 0), legacy and IA-32e; 0 = not an interrupt gate. */
static unsigned gate_size(bool lma, unsigned type)
{
    if (lma)
        return (type == 0xe || type == 0xf) ? 8 : 0;
    switch (type) {
    case 0x6: case 0x7: return 2;
    case 0xe: case 0xf: return 4;
    default: return 0;
    }
}

static void deliver_prot(struct cpu *c, u8 vector, int type, bool has_error, u32 error,
                         u64 flags_image, u64 return_rip, u32 ext)
{
    bool lma = c->efer & EFER_LMA;
    bool v86 = cpu_is_v86(c);
    unsigned cpl = c->cpl;
    u32 idt_err = (u32)vector * 8 + 2 + ext;
    bool soft = type == EVT_SW_INT || type == EVT_SW_EXC;

    /* Without CR4.VME, INT n in virtual-8086 mode at IOPL < 3 is sensitive. */
    if (v86 && type == EVT_SW_INT && ((c->rflags & FL_IOPL) >> 12) < 3)
        cpu_fault(c, EXC_GP, 0);

    /* the gate */
    unsigned esize = lma ? 16 : 8;
    if ((u32)vector * esize + esize - 1 > c->idtr.limit)
        cpu_fault(c, EXC_GP, idt_err);
    u64 ga = c->idtr.base + (u64)vector * esize;
    if (!lma)
        ga &= 0xffffffffull;
    u64 g0 = lin_read(c, ga, 8, ACC_IMPLICIT);
    u64 g1 = lma ? lin_read(c, ga + 8, 8, ACC_IMPLICIT) : 0;
    unsigned gtype = (g0 >> 40) & 0x1f; /* type and S */
    unsigned gdpl = (g0 >> 45) & 3;
    bool task_gate = !lma && gtype == 0x5;
    unsigned gsize = gate_size(lma, gtype);
    if (!gsize && !task_gate)
        cpu_fault(c, EXC_GP, idt_err);
    /* INT n, INT3, INTO honour the gate's DPL; INT1 and hardware events do not */
    if (soft && gdpl < cpl)
        cpu_fault(c, EXC_GP, idt_err);
    if (!(g0 & BIT(47)))
        cpu_fault(c, EXC_NP, idt_err);
    if (task_gate)
        cpu_unsupported_stop(c, "hardware task switch (task gate in the IDT)");
    bool trap_gate = gtype & 1;
    u16 tsel = (u16)(g0 >> 16);
    u64 ip = (g0 & 0xffff) | ((g0 >> 32) & 0xffff0000ull) | ((g1 & 0xffffffffull) << 32);
    ip &= size_mask(gsize);
    unsigned ist = lma ? (g0 >> 32) & 7 : 0;

    /* the handler's code segment */
    struct seg cs;
    u64 cs_addr, cs_desc;
    seg_gate_target(c, tsel, ext, &cs, &cs_addr, &cs_desc);
    unsigned dpl = SEG_ATTR_DPL(cs.attr);
    bool conforming = cs.attr & 4;
    bool inner = !conforming && dpl < cpl;
    if (v86 && (!inner || dpl != 0))
        cpu_fault(c, EXC_GP, (tsel & 0xfffc) | ext);
    unsigned new_cpl = inner ? dpl : cpl;
    bool ip_ok = (lma && (cs.attr & SEG_ATTR_L)) ? cpu_canonical(c, ip) : ip <= cs.limit;
    if (!ip_ok)
        cpu_fault(c, EXC_GP, ext);

    /* the stack the frame goes to */
    struct stack_ptr st = { .real = false };
    if (lma) {
        u64 rsp = c->gpr[R_RSP];
        if (ist || inner) {
            rsp = tss64_stack(c, dpl, ist, ext);
            if (!cpu_canonical(c, rsp))
                cpu_fault(c, EXC_SS, ext);
        }
        st.ss = c->seg[SEG_SS];
        if (inner)
            seg_null_ss(&st.ss, new_cpl);
        st.sp = rsp & ~0xfull; /* 64-bit frames start 16-byte aligned */
        st.mask = ~0ull;
        st.flat = true;
        st.access = inner ? ACC_IMPLICIT : 0;
        st.err = ext;
    } else if (inner) {
        seg_inner_stack(c, dpl, ext, &st.ss, &st.sp);
        st.mask = (st.ss.attr & SEG_ATTR_DB) ? 0xffffffffull : 0xffffull;
        st.flat = false;
        st.access = ACC_IMPLICIT;
        st.err = (st.ss.sel & 0xfffc) | ext;
    } else {
        stk_current(c, &st);
        st.err = ext;
    }

    /* the frame */
    if (inner || lma) {
        if (v86) {
            stk_push(c, &st, c->seg[SEG_GS].sel, gsize);
            stk_push(c, &st, c->seg[SEG_FS].sel, gsize);
            stk_push(c, &st, c->seg[SEG_DS].sel, gsize);
            stk_push(c, &st, c->seg[SEG_ES].sel, gsize);
        }
        stk_push(c, &st, c->seg[SEG_SS].sel, gsize);
        stk_push(c, &st, c->gpr[R_RSP] & size_mask(gsize), gsize);
    }
    stk_push(c, &st, flags_image & size_mask(gsize), gsize);
    stk_push(c, &st, c->seg[SEG_CS].sel, gsize);
    stk_push(c, &st, return_rip & size_mask(gsize), gsize);
    if (has_error)
        stk_push(c, &st, error, gsize);

    /* commit */
    seg_mark_accessed(c, cs_addr, &cs_desc);
    cs.attr = (u32)(cs_desc >> 40) & 0xf0ff;
    if (v86) {
        static const int data_segs[] = { SEG_ES, SEG_DS, SEG_FS, SEG_GS };
        for (unsigned k = 0; k < ARRAY_SIZE(data_segs); k++) {
            struct seg *s = &c->seg[data_segs[k]];
            s->sel = 0;
            s->attr = SEG_ATTR_UNUSABLE;
        }
    }
    if (inner || lma)
        c->seg[SEG_SS] = st.ss;
    c->gpr[R_RSP] = st.sp;
    cs.sel = (u16)((tsel & ~3u) | new_cpl);
    c->seg[SEG_CS] = cs;
    c->rip = ip;
    c->in->exits |= EXIT_RIP_WRITTEN;
    cpu_set_cpl(c, (u8)new_cpl);
    cpu_set_rflags(c, 0, DELIVERY_CLEARS | (trap_gate ? 0 : FL_IF));
    cpu_update_mode(c);
}

void cpu_deliver(struct cpu *c, u8 vector, int type, bool has_error, u32 error, u64 return_rip)
{
    /* an event inside an enclave leaves it first (SGX's asynchronous exit) and is then
     * delivered as if it happened at the AEP */
    if (unlikely(c->enclave_mode))
        return_rip = sgx_aex(c, vector, type, has_error, error, return_rip);
    if (unlikely(c->vmx_non_root | c->svm_guest)) {
        /* INT3/INTO/INT1 meet the exception bitmap (intercepts) here; every event's
         * delivery is noted for the exit information of an exit that cuts it short */
        u32 len = (u32)((return_rip - c->rip) & cpu_rip_mask(c));
        if (type == EVT_SW_EXC || type == EVT_PRIV_SW_EXC) {
            struct cpu_event ev = { .kind = EV_SOFT_EXCEPTION,
                                    .u.soft = { vector, type == EVT_PRIV_SW_EXC, len } };
            cpu_intercept(c, &ev);
        }
        nested_note_delivery(c, vector, type, has_error, error,
                             type == EVT_SW_INT || type == EVT_SW_EXC || type == EVT_PRIV_SW_EXC ? len : 0);
    }
    /* INT n, INT3 and INTO are the program's own; everything else is external to it */
    u32 ext = (type == EVT_SW_INT || type == EVT_SW_EXC) ? 0 : 1;
    u64 flags_image = cpu_flags(c);
    if (type == EVT_HW_EXC && exc_is_fault(vector))
        flags_image |= FL_RF;
    if (cpu_is_real(c))
        deliver_real(c, vector, flags_image, return_rip);
    else
        deliver_prot(c, vector, type, has_error, error, flags_image, return_rip, ext);
    if (type == EVT_NMI)
        c->nmi_blocked = true;
    /* a #DB exception takes the debug traps a MOV SS held back (INT 1 is not one) */
    if (vector == EXC_DB && (type == EVT_HW_EXC || type == EVT_PRIV_SW_EXC))
        debug_db_delivered(c);
    /* Delivery ends an interrupt shadow (SDM Vol. 3A 6.8.3) and the halt state: HLT
     * resumes on an interrupt, an NMI or a debug exception (its single-step trap). */
    c->intr_shadow = SHADOW_NONE;
    if (c->state == CPU_HALTED)
        c->state = CPU_RUNNING;
    c->in->exits |= EXIT_EVENT_DELIVERED;
    if (unlikely(c->vmx_non_root | c->svm_guest))
        nested_delivery_done(c);
}
