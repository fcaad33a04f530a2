/* Which events of L2 exit to L1 (APM 15.7-15.14), decided at the one interception point
 * from the intercept vectors VMRUN cached, with the exit information each carries:
 * EXITINFO1/2, nRIP (NRIP save, 15.7.1) and the decode assists (15.33). Instruction
 * details (length, operands) come from decoding the instruction at RIP again. */
#include <string.h>

#include "cpu/nested.h"
#include "cpu/svm/svm_internal.h"

/* ---- permission maps ---- */
static bool map_bit(struct cpu *c, u64 base, u64 bit)
{
    u8 byte = 0xff; /* a map outside RAM reads as all-ones: everything exits */
    nested_phys_read(c, (base & ~0xfffull) + bit / 8, &byte, 1);
    return (byte >> (bit & 7)) & 1;
}

/* IOIO (APM 15.10.1): one bit per port; an access exits if the bit of any port it
 * touches is set (the map's third page covers accesses that run past port FFFFh). */
static bool io_exits(struct cpu *c, u16 port, unsigned size)
{
    struct svm *s = c->svm;
    if (!svm_intercepted1(s, I1_IOIO))
        return false;
    for (unsigned k = 0; k < size; k++)
        if (map_bit(c, s->ctl[VMCB_IOPM_BASE], (u64)port + k))
            return true;
    return false;
}

/* EXITINFO1 of an IOIO exit (APM 15.10.2): IN (bit 0), string (2), REP (3), operand
 * size (SZ8/16/32: bits 4-6), address size (A16/32/64: bits 7-9), the effective
 * segment (12:10, decode assists) and the port (31:16); EXITINFO2 is nRIP. */
static void io_event(struct cpu *c, u16 port, unsigned size, bool write)
{
    if (!io_exits(c, port, size))
        return;
    struct nested_io_insn io;
    nested_io_insn(c, write, &io);
    unsigned aw = io.address_width;
    u64 info = (write ? 0 : 1) | (io.string ? BIT(2) : 0) | (io.rep ? BIT(3) : 0) |
               (size == 1 ? BIT(4) : size == 2 ? BIT(5) : BIT(6)) |
               (aw == 16 ? BIT(7) : aw == 32 ? BIT(8) : BIT(9)) |
               (io.string ? (u64)io.seg << 10 : 0) | (u64)port << 16;
    u64 nrip = (c->rip + io.length) & cpu_rip_mask(c);
    struct svm_exit_info x = { .code = SVM_EXIT_IOIO, .info1 = info, .info2 = nrip, .nrip = nrip };
    svm_vmexit(c, &x);
}

/* MSR (APM 15.11): two bits per MSR (read, write) in three 2 KiB ranges; MSRs outside
 * them always exit. */
static bool msr_exits(struct cpu *c, u32 index, bool write)
{
    struct svm *s = c->svm;
    if (!svm_intercepted1(s, I1_MSR))
        return false;
    u64 base;
    if (index <= 0x1fff)
        base = 0;
    else if (index >= 0xc0000000u && index <= 0xc0001fffu)
        base = 0x800 * 8;
    else if (index >= 0xc0010000u && index <= 0xc0011fffu)
        base = 0x1000 * 8;
    else
        return true;
    return map_bit(c, s->ctl[VMCB_MSRPM_BASE], base + (u64)(index & 0x1fff) * 2 + (write ? 1 : 0));
}

/* ---- control and debug registers (APM 15.9, 15.12; decode assists 15.33.1: bit 63 of
 * EXITINFO1 says a MOV CRx/DRx, whose GPR is in bits 3:0) ---- */
static u64 mov_info(struct cpu *c, bool write)
{
    struct nested_decoded dd;
    nested_decode_at_rip(c, &dd);
    if (!dd.ok || dd.d.mnemonic != ZYDIS_MNEMONIC_MOV)
        return 0;
    int gpr = nested_gpr_number(dd.op[write ? 1 : 0].reg.value);
    return gpr < 0 ? 0 : BIT(63) | (u64)gpr;
}

static bool cr_access(struct cpu *c, struct cpu_event *ev)
{
    struct svm *s = c->svm;
    u32 crs = (u32)s->ctl[VMCB_INTERCEPT_CR];
    int cr = ev->u.cr.cr;
    bool write = ev->u.cr.write;
    if ((crs >> (cr + (write ? 16 : 0))) & 1)
        svm_exit_insn(c, (write ? SVM_EXIT_CR0_WRITE : SVM_EXIT_CR0_READ) + (u64)cr,
                      mov_info(c, write), 0);
    /* the selective CR0 write intercept: a write that changes a bit other than TS and
     * MP (LMSW included; CLTS never does) */
    if (cr == 0 && write && svm_intercepted1(s, I1_CR0_SEL_WRITE) &&
        ((ev->u.cr.value ^ c->cr0) & ~(u64)(CR0_TS | CR0_MP)))
        svm_exit_insn(c, SVM_EXIT_CR0_SEL_WRITE, mov_info(c, true), 0);
    /* V_INTR_MASKING: CR8 is the virtual TPR (APM 15.21.4) */
    if (cr == 8 && (s->ctl[VMCB_VINTR] & VINTR_MASKING)) {
        if (write) {
            if (ev->u.cr.value & ~0xfull)
                return false; /* reserved bits: the #GP comes first */
            s->ctl[VMCB_VINTR] = (s->ctl[VMCB_VINTR] & ~VINTR_TPR_MASK) | (ev->u.cr.value & 0xf);
            c->in->exits |= EXIT_CHECK_EVENTS;
        } else {
            ev->u.cr.value = s->ctl[VMCB_VINTR] & 0xf;
        }
        return true;
    }
    return false;
}

/* ---- exceptions ---- */
static void exception(struct cpu *c, struct cpu_event *ev)
{
    u8 vec = ev->u.exc.vector;
    if (vec >= 32 || !((c->svm->ctl[VMCB_INTERCEPT_EXC] >> vec) & 1))
        return;
    /* EXITINFO1: the error code the exception would push; EXITINFO2: for #PF the
     * faulting address (CR2 is not written) (APM 15.12) */
    bool has_error = ev->u.exc.has_error && exc_has_error_code(vec) && cpu_is_prot(c);
    struct svm_exit_info x = {
        .code = SVM_EXIT_EXCP_BASE + vec, .info1 = has_error ? ev->u.exc.error : 0,
        .info2 = vec == EXC_PF ? ev->u.exc.cr2 : 0, .insn_bytes = vec == EXC_PF,
    };
    svm_vmexit(c, &x);
}

/* ---- PAUSE (APM 15.14.4): with a filter count, only the count-th PAUSE exits; with a
 * threshold, a PAUSE more than threshold cycles after the last one starts the count
 * again ---- */
static void pause_event(struct cpu *c)
{
    struct svm *s = c->svm;
    if (!svm_intercepted1(s, I1_PAUSE))
        return;
    u16 count = (u16)s->ctl[VMCB_PAUSE_COUNT], threshold = (u16)s->ctl[VMCB_PAUSE_THRESHOLD];
    if (count) {
        u64 now = svm_l1_tsc(c);
        if (threshold && now - s->pause_last > threshold)
            s->pause_left = count;
        s->pause_last = now;
        if (s->pause_left > 1) {
            s->pause_left--;
            return;
        }
        s->pause_left = count;
    }
    svm_exit_insn(c, SVM_EXIT_PAUSE, 0, 0);
}

/* ---- instructions offered as EV_INSN ---- */
static void desc_table(struct cpu *c)
{
    static const struct { ZydisMnemonic mn; int bit; u64 code; } ids[] = {
        { ZYDIS_MNEMONIC_SIDT, I1_IDTR_READ, SVM_EXIT_IDTR_READ },
        { ZYDIS_MNEMONIC_SGDT, I1_GDTR_READ, SVM_EXIT_GDTR_READ },
        { ZYDIS_MNEMONIC_SLDT, I1_LDTR_READ, SVM_EXIT_LDTR_READ },
        { ZYDIS_MNEMONIC_STR, I1_TR_READ, SVM_EXIT_TR_READ },
        { ZYDIS_MNEMONIC_LIDT, I1_IDTR_WRITE, SVM_EXIT_IDTR_WRITE },
        { ZYDIS_MNEMONIC_LGDT, I1_GDTR_WRITE, SVM_EXIT_GDTR_WRITE },
        { ZYDIS_MNEMONIC_LLDT, I1_LDTR_WRITE, SVM_EXIT_LDTR_WRITE },
        { ZYDIS_MNEMONIC_LTR, I1_TR_WRITE, SVM_EXIT_TR_WRITE },
    };
    struct nested_decoded dd;
    nested_decode_at_rip(c, &dd);
    for (size_t k = 0; dd.ok && k < ARRAY_SIZE(ids); k++)
        if (dd.d.mnemonic == ids[k].mn && svm_intercepted1(c->svm, ids[k].bit))
            svm_exit_insn(c, ids[k].code, 0, 0);
}

static void insn_event(struct cpu *c, struct cpu_event *ev)
{
    struct svm *s = c->svm;
    u64 arg = ev->u.insn.arg;
    switch (ev->u.insn.which) {
    case INSN_EV_RDMSR:
    case INSN_EV_WRMSR: {
        bool w = ev->u.insn.which == INSN_EV_WRMSR;
        if (msr_exits(c, (u32)arg, w))
            svm_exit_insn(c, SVM_EXIT_MSR, w, 0);
        break;
    }
    case INSN_EV_INVD:
        if (svm_intercepted1(s, I1_INVD))
            svm_exit_insn(c, SVM_EXIT_INVD, 0, 0);
        break;
    case INSN_EV_WBINVD:
        if (svm_intercepted2(s, I2_WBINVD))
            svm_exit_insn(c, SVM_EXIT_WBINVD, 0, 0);
        break;
    case INSN_EV_RDPMC:
        if (svm_intercepted1(s, I1_RDPMC))
            svm_exit_insn(c, SVM_EXIT_RDPMC, 0, 0);
        break;
    case INSN_EV_MONITOR:
        if (svm_intercepted2(s, I2_MONITOR))
            svm_exit_insn(c, SVM_EXIT_MONITOR, 0, 0);
        break;
    case INSN_EV_MWAIT:
        /* unconditional, or only when the monitor is armed (APM 15.13.2) */
        if (svm_intercepted2(s, I2_MWAIT))
            svm_exit_insn(c, SVM_EXIT_MWAIT, 0, 0);
        if (svm_intercepted2(s, I2_MWAIT_COND) && (arg & 1))
            svm_exit_insn(c, SVM_EXIT_MWAIT_COND, 0, 0);
        break;
    case INSN_EV_XSETBV:
        if (svm_intercepted2(s, I2_XSETBV))
            svm_exit_insn(c, SVM_EXIT_XSETBV, 0, 0);
        break;
    case INSN_EV_DESC_TABLE:
        desc_table(c);
        break;
    case INSN_EV_STRING_IO:
        io_event(c, (u16)arg, (arg >> 16) & 0xff, (arg >> 24) & 1);
        break;
    case INSN_EV_PUSHF:
        if (svm_intercepted1(s, I1_PUSHF))
            svm_exit_insn(c, SVM_EXIT_PUSHF, 0, 0);
        break;
    case INSN_EV_POPF:
        if (svm_intercepted1(s, I1_POPF))
            svm_exit_insn(c, SVM_EXIT_POPF, 0, 0);
        break;
    case INSN_EV_IRET:
        if (svm_intercepted1(s, I1_IRET))
            svm_exit_insn(c, SVM_EXIT_IRET, 0, 0);
        break;
    case INSN_EV_INTN: /* decode assists: the vector in EXITINFO1 */
        if (svm_intercepted1(s, I1_INTN))
            svm_exit_insn(c, SVM_EXIT_SWINT, arg & 0xff, 0);
        break;
    case INSN_EV_SMSW: /* SMSW reads CR0 (APM 15.9.1) */
        if ((u32)s->ctl[VMCB_INTERCEPT_CR] & 1)
            svm_exit_insn(c, SVM_EXIT_CR0_READ, 0, 0);
        break;
    case INSN_EV_RSM:
        if (svm_intercepted1(s, I1_RSM))
            svm_exit_insn(c, SVM_EXIT_RSM, 0, 0);
        break;
    case INSN_EV_INVPCID:
        break; /* the INVPCID intercept (vector 5) is not offered */
    case INSN_EV_ENCLS:
        break; /* SGX is Intel's */
    }
}

/* Task switch (APM 15.14.5): EXITINFO1 the new TSS selector; EXITINFO2 bit 36 for an
 * IRET, 38 for a JMP, 44 when an error code is pushed (bits 31:0). */
static void task_switch(struct cpu *c, struct cpu_event *ev)
{
    if (!svm_intercepted1(c->svm, I1_TASK_SWITCH))
        return;
    u8 reason = ev->u.task.reason; /* 0 CALL, 1 IRET, 2 JMP, 3 task gate */
    struct svm_exit_info x = {
        .code = SVM_EXIT_TASK_SWITCH, .info1 = ev->u.task.selector,
        .info2 = (reason == 1 ? BIT(36) : 0) | (reason == 2 ? BIT(38) : 0),
    };
    svm_vmexit(c, &x);
}

bool svm_intercept(struct cpu *c, struct cpu_event *ev)
{
    struct svm *s = c->svm;
    switch (ev->kind) {
    case EV_INSN:
        insn_event(c, ev);
        break;
    case EV_IO:
        io_event(c, ev->u.io.port, ev->u.io.size, ev->u.io.write);
        break;
    case EV_CPUID:
        if (svm_intercepted1(s, I1_CPUID))
            svm_exit_insn(c, SVM_EXIT_CPUID, 0, 0);
        break;
    case EV_HLT:
        if (svm_intercepted1(s, I1_HLT))
            svm_exit_insn(c, SVM_EXIT_HLT, 0, 0);
        break;
    case EV_INVLPG: /* decode assists: the linear address in EXITINFO1 */
        if (svm_intercepted1(s, I1_INVLPG))
            svm_exit_insn(c, SVM_EXIT_INVLPG, ev->u.invlpg.linear, 0);
        break;
    case EV_CR_ACCESS:
        return cr_access(c, ev);
    case EV_DR_ACCESS: {
        u32 drs = (u32)s->ctl[VMCB_INTERCEPT_DR];
        bool w = ev->u.dr.write;
        if ((drs >> (ev->u.dr.dr + (w ? 16 : 0))) & 1)
            svm_exit_insn(c, (w ? SVM_EXIT_DR0_WRITE : SVM_EXIT_DR0_READ) + ev->u.dr.dr,
                          mov_info(c, w), 0);
        break;
    }
    case EV_RDTSC:
        if (ev->u.rdtsc.rdtscp ? svm_intercepted2(s, I2_RDTSCP) : svm_intercepted1(s, I1_RDTSC))
            svm_exit_insn(c, ev->u.rdtsc.rdtscp ? SVM_EXIT_RDTSCP : SVM_EXIT_RDTSC, 0, 0);
        break;
    case EV_TSC_WRITTEN:
        /* a WRMSR to the TSC that L1 let through wrote L2's view of it: L1's offset is
         * what remains without the VMCB's */
        s->l1_tsc_offset = c->tsc_multiplier ? c->tsc_offset
                                             : (s64)((u64)c->tsc_offset - s->ctl[VMCB_TSC_OFFSET]);
        break;
    case EV_HYPERCALL:
        /* VMMCALL: an exit when intercepted, else #UD (APM 15.14.1); never a hypercall
         * of this machine's own hypervisor interface */
        if (svm_intercepted2(s, I2_VMMCALL))
            svm_exit_insn(c, SVM_EXIT_VMMCALL, 0, 0);
        cpu_fault_noerr(c, EXC_UD);
    case EV_PAUSE:
        pause_event(c);
        break;
    case EV_EXCEPTION:
        exception(c, ev);
        break;
    case EV_SOFT_EXCEPTION: {
        /* INT3 and INTO meet the exception intercepts (#BP, #OF); INT1 (ICEBP) has an
         * intercept of its own. They are instructions: nRIP follows them. */
        u8 vec = ev->u.soft.vector;
        u64 nrip = (c->rip + ev->u.soft.length) & cpu_rip_mask(c);
        if (ev->u.soft.privileged) {
            if (svm_intercepted2(s, I2_ICEBP)) {
                struct svm_exit_info x = { .code = SVM_EXIT_ICEBP, .nrip = nrip };
                svm_vmexit(c, &x);
            }
        } else if ((s->ctl[VMCB_INTERCEPT_EXC] >> vec) & 1) {
            struct svm_exit_info x = { .code = SVM_EXIT_EXCP_BASE + vec, .nrip = nrip };
            svm_vmexit(c, &x);
        }
        break;
    }
    case EV_NMI:
        /* the NMI stays pending: L1 takes it once it sets GIF (APM 15.13.1) */
        if (svm_intercepted1(s, I1_NMI)) {
            struct svm_exit_info x = { .code = SVM_EXIT_NMI };
            svm_vmexit(c, &x);
        }
        return !svm_l2_gif(c); /* L2's virtual GIF holds what reaches L2 */
    case EV_INTERRUPT:
        /* the interrupt is not acknowledged: it stays pending for L1 (APM 15.13.1) */
        if (svm_intercepted1(s, I1_INTR)) {
            struct svm_exit_info x = { .code = SVM_EXIT_INTR };
            svm_vmexit(c, &x);
        }
        return !svm_l2_gif(c);
    case EV_SHUTDOWN:
        if (svm_intercepted1(s, I1_SHUTDOWN)) {
            struct svm_exit_info x = { .code = SVM_EXIT_SHUTDOWN };
            svm_vmexit(c, &x);
        }
        break;
    case EV_TASK_SWITCH:
        task_switch(c, ev);
        break;
    default:
        break;
    }
    return false;
}

/* ---- instruction boundaries ---- */
bool svm_intr_masked_by_if(const struct cpu *c)
{
    const struct svm *s = c->svm;
    if (c->svm_guest && !svm_l2_gif(c) && !svm_intercepted1(s, I1_INTR))
        return true; /* L2's virtual GIF holds an interrupt that would reach L2 */
    if (c->svm_guest && (s->ctl[VMCB_VINTR] & VINTR_MASKING))
        return !s->host_if; /* the host's IF masks physical interrupts (APM 15.21.1) */
    return !(c->rflags & FL_IF);
}

/* A virtual interrupt is taken when V_IRQ is set, L2 can take interrupts (IF, no shadow)
 * and its priority is above V_TPR unless V_IGN_TPR (APM 15.21.4). */
static bool virq_deliverable(const struct cpu *c)
{
    u64 v = c->svm->ctl[VMCB_VINTR];
    if (!(v & VINTR_IRQ) || !(c->rflags & FL_IF) || c->intr_shadow || !c->gif || !svm_l2_gif(c))
        return false;
    unsigned prio = (v >> VINTR_PRIO_SHIFT) & 0xf, tpr = v & 0xf;
    return (v & VINTR_IGN_TPR) || prio > tpr;
}

bool svm_virq_wakeup(const struct cpu *c)
{
    return virq_deliverable(c) || c->svm->init_pending;
}

void svm_boundary(struct cpu *c)
{
    struct svm *s = c->svm;
    if (s->init_pending && c->gif && svm_intercepted1(s, I1_INIT)) {
        s->init_pending = false;
        struct svm_exit_info x = { .code = SVM_EXIT_INIT };
        svm_vmexit(c, &x);
    }
    if (!virq_deliverable(c))
        return;
    /* a physical interrupt L2 can take comes first (it exits or is delivered) */
    if (!svm_intr_masked_by_if(c) && c->ops->intr_pending &&
        c->ops->intr_pending(c, c->ops_opaque) >= 0)
        return;
    if (svm_intercepted1(s, I1_VINTR)) {
        struct svm_exit_info x = { .code = SVM_EXIT_VINTR };
        svm_vmexit(c, &x);
    }
    u8 vector = (u8)(s->ctl[VMCB_VINTR] >> VINTR_VECTOR_SHIFT);
    s->ctl[VMCB_VINTR] &= ~VINTR_IRQ;
    c->state = CPU_RUNNING;
    exec_deliver_interrupt(c, vector);
}
