/* Which events of L2 exit to L1 (SDM Vol. 3C 26.1-26.2, 26.7), decided at the one
 * interception point from the current VMCS's controls, and the exit information each
 * carries (SDM 28.2). Instruction details (length, operands) come from decoding the
 * instruction at RIP again: exits are rare enough for that, and the engine's hot path
 * carries nothing for VMX. */
#include <string.h>

#include "cpu/nested.h"
#include "cpu/vmx/vmx_internal.h"

/* ---- the instruction that caused an exit (decoded again at RIP: nested.h) ---- */

u32 vmx_insn_length(const struct cpu *c)
{
    struct nested_decoded dd;
    nested_decode_at_rip((struct cpu *)c, &dd);
    return dd.ok ? dd.d.length : 1;
}

/* VM-exit instruction information (SDM 28.2.5): scaling (1:0), address size (9:7),
 * memory/register (10), segment (17:15), index (21:18) and its invalid bit (22), base
 * (26:23) and its invalid bit (27), and reg2 (31:28); operand size (12:11) and reg1
 * (6:3) where the instruction has them. One layout serves VMX instructions, INVEPT,
 * INVVPID, INVPCID, LGDT/SGDT/... and LLDT/LTR/...: the fields they do not use are 0. */
static u32 insn_info_from(const struct nested_decoded *dd, int mem_op, int reg1_op, int reg2_op)
{
    u32 info = 0;
    const ZydisDecodedInstruction *d = &dd->d;
    info |= (d->address_width == 16 ? 0u : d->address_width == 32 ? 1u : 2u) << 7;
    info |= (d->operand_width == 16 ? 0u : d->operand_width == 32 ? 1u : 2u) << 11;
    if (reg1_op >= 0) {
        int r = nested_gpr_number(dd->op[reg1_op].reg.value);
        if (r >= 0)
            info |= (u32)r << 3;
    }
    if (mem_op >= 0 && dd->op[mem_op].type == ZYDIS_OPERAND_TYPE_MEMORY) {
        const ZydisDecodedOperand *m = &dd->op[mem_op];
        unsigned scale = m->mem.scale;
        info |= (scale == 2 ? 1u : scale == 4 ? 2u : scale == 8 ? 3u : 0u);
        info |= (u32)zseg(m->mem.segment) << 15;
        int idx = nested_gpr_number(m->mem.index);
        info |= idx >= 0 ? (u32)idx << 18 : BIT(22);
        int base = nested_gpr_number(m->mem.base);
        info |= base >= 0 ? (u32)base << 23 : BIT(27);
    } else if (mem_op >= 0) {
        info |= BIT(10); /* register operand */
        int r = nested_gpr_number(dd->op[mem_op].reg.value);
        if (r >= 0)
            info |= (u32)r << 3;
    }
    if (reg2_op >= 0) {
        int r = nested_gpr_number(dd->op[reg2_op].reg.value);
        if (r >= 0)
            info |= (u32)r << 28;
    }
    return info;
}

/* The displacement of memory operand n: the exit qualification of instructions with a
 * memory operand (SDM 28.2.1, table 28-1 note). */
static u64 displacement(const struct nested_decoded *dd, int n)
{
    if (dd->op[n].type != ZYDIS_OPERAND_TYPE_MEMORY || !dd->op[n].mem.disp.has_displacement)
        return 0;
    return (u64)dd->op[n].mem.disp.value;
}

u64 vmx_insn_displacement(const struct insn *i)
{
    for (int n = 0; n < INSN_MAX_OPERANDS; n++)
        if (i->opd[n].kind == OPD_MEM)
            return i->opd[n].val;
    return 0;
}

u32 vmx_insn_info_of(struct cpu *c, const struct insn *i)
{
    (void)i;
    struct nested_decoded dd;
    nested_decode_at_rip(c, &dd);
    if (!dd.ok)
        return 0;
    switch (dd.d.mnemonic) {
    case ZYDIS_MNEMONIC_VMREAD: /* VMREAD r/m, r: r/m is operand 0, the field reg2 */
        return insn_info_from(&dd, 0, -1, 1);
    case ZYDIS_MNEMONIC_VMWRITE: /* VMWRITE r, r/m */
        return insn_info_from(&dd, 1, -1, 0);
    case ZYDIS_MNEMONIC_INVEPT: case ZYDIS_MNEMONIC_INVVPID: case ZYDIS_MNEMONIC_INVPCID:
        return insn_info_from(&dd, 1, -1, 0) & ~(u32)(0xfu << 3 | 3u << 11);
    case ZYDIS_MNEMONIC_VMLAUNCH: case ZYDIS_MNEMONIC_VMRESUME: case ZYDIS_MNEMONIC_VMXOFF:
    case ZYDIS_MNEMONIC_VMCALL:
        return 0;
    default: /* VMXON, VMCLEAR, VMPTRLD, VMPTRST: m64 */
        return insn_info_from(&dd, 0, -1, -1) & ~(u32)(0xfu << 3 | 3u << 11);
    }
}

/* The exit for an instruction: its length, qualification and information. */
static _Noreturn void exit_for_insn(struct cpu *c, u32 reason, u64 qual, u32 info)
{
    vmx_exit_insn(c, reason, qual, info);
}

/* ---- bitmaps ---- */
static bool bitmap_bit(struct cpu *c, u64 base, u32 bit)
{
    u8 byte = 0xff; /* a bitmap outside RAM reads as all-ones: everything exits */
    nested_phys_read(c, base + bit / 8, &byte, 1);
    return (byte >> (bit & 7)) & 1;
}

/* I/O (SDM 26.1.3): unconditional I/O exiting, or the I/O bitmaps (A: ports 0-7fff, B:
 * 8000-ffff); an access that wraps past ffff or touches any port with its bit set exits. */
static bool io_exits(struct cpu *c, u16 port, unsigned size)
{
    struct vmx *v = c->vmx;
    u32 proc = vmx_proc(v);
    if (!(proc & PROC_IO_BITMAPS))
        return proc & PROC_UNCOND_IO_EXITING;
    for (unsigned k = 0; k < size; k++) {
        u32 p = (u32)port + k;
        if (p > 0xffff)
            return true;
        u64 base = v->vmcs.f[p < 0x8000 ? VMCS_IO_BITMAP_A : VMCS_IO_BITMAP_B];
        if (bitmap_bit(c, base, p & 0x7fff))
            return true;
    }
    return false;
}

/* An I/O instruction (IN/OUT; INS/OUTS before their count and memory are looked at)
 * that exits: the qualification (SDM 28.2.1 table 28-5), and for INS/OUTS
 * the linear address of the element and the address size and segment (table 28-8). */
static void io_event(struct cpu *c, u16 port, unsigned size, bool write)
{
    if (!io_exits(c, port, size))
        return;
    struct nested_io_insn io;
    nested_io_insn(c, write, &io);
    struct vmx_exit_info x = {
        .reason = EXIT_REASON_IO,
        .qual = (u64)(size - 1) | (write ? 0 : BIT(3)) | (io.string ? BIT(4) : 0) |
                (io.rep ? BIT(5) : 0) | (io.imm ? BIT(6) : 0) | (u64)port << 16,
        .insn_len = io.length, .in_insn = true,
    };
    if (io.string) {
        /* INS writes ES:rDI, OUTS reads seg:rSI (DS unless overridden) */
        int seg = io.seg;
        u64 off = c->gpr[write ? R_RSI : R_RDI] & size_mask(io.address_width / 8);
        if (cpu_is_long64(c))
            x.guest_linear = off + (seg == SEG_FS || seg == SEG_GS ? c->seg[seg].base : 0);
        else
            x.guest_linear = (c->seg[seg].base + off) & 0xffffffffull;
        x.has_linear = true;
        x.insn_info = (io.address_width == 16 ? 0u : io.address_width == 32 ? 1u : 2u) << 7 |
                      (u32)seg << 15;
    }
    vmx_exit(c, &x);
}

/* RDMSR/WRMSR (SDM 26.1.3): without MSR bitmaps always; with them, the bit of the MSR in
 * the read-low/read-high/write-low/write-high kilobyte, and every MSR outside the two
 * ranges exits. */
static bool msr_exits(struct cpu *c, u32 index, bool write)
{
    struct vmx *v = c->vmx;
    if (!(vmx_proc(v) & PROC_MSR_BITMAPS))
        return true;
    u32 off;
    if (index <= 0x1fff)
        off = 0;
    else if (index >= 0xc0000000u && index <= 0xc0001fffu)
        off = 1024;
    else
        return true;
    if (write)
        off += 2048;
    return bitmap_bit(c, v->vmcs.f[VMCS_MSR_BITMAP] + off, index & 0x1fff);
}

/* ---- control registers ---- */
static u64 cr_mask(const struct vmx *v, int cr)
{
    return v->vmcs.f[cr == 0 ? VMCS_CR0_GUEST_HOST_MASK : VMCS_CR4_GUEST_HOST_MASK];
}

static u64 cr_shadow(const struct vmx *v, int cr)
{
    return v->vmcs.f[cr == 0 ? VMCS_CR0_READ_SHADOW : VMCS_CR4_READ_SHADOW];
}

/* CR-access qualification (SDM 28.2.1 table 28-3). */
enum { CRQ_MOV_TO = 0, CRQ_MOV_FROM = 1, CRQ_CLTS = 2, CRQ_LMSW = 3 };
static u64 cr_qual(int cr, unsigned type, int gpr)
{
    return (u64)cr | (u64)type << 4 | (u64)(gpr < 0 ? 0 : gpr) << 8;
}

static void cr_access(struct cpu *c, struct cpu_event *ev)
{
    struct vmx *v = c->vmx;
    u32 proc = vmx_proc(v);
    int cr = ev->u.cr.cr;
    struct nested_decoded dd;
    nested_decode_at_rip(c, &dd);
    ZydisMnemonic mn = dd.ok ? dd.d.mnemonic : ZYDIS_MNEMONIC_INVALID;
    int gpr = -1;
    if (mn == ZYDIS_MNEMONIC_MOV)
        gpr = nested_gpr_number(dd.op[ev->u.cr.write ? 1 : 0].reg.value);
    if (!ev->u.cr.write) {
        switch (cr) {
        case 3:
            if (proc & PROC_CR3_STORE_EXITING)
                exit_for_insn(c, EXIT_REASON_CR_ACCESS, cr_qual(3, CRQ_MOV_FROM, gpr), 0);
            break;
        case 8:
            if (proc & PROC_CR8_STORE_EXITING)
                exit_for_insn(c, EXIT_REASON_CR_ACCESS, cr_qual(8, CRQ_MOV_FROM, gpr), 0);
            break;
        case 0: case 4: /* reads see the read shadow in the bits L1 owns */
            ev->u.cr.value = (ev->u.cr.value & ~cr_mask(v, cr)) | (cr_shadow(v, cr) & cr_mask(v, cr));
            break;
        }
        return;
    }
    u64 val = ev->u.cr.value;
    switch (cr) {
    case 0: case 4: {
        u64 mask = cr_mask(v, cr), shadow = cr_shadow(v, cr);
        if (mn == ZYDIS_MNEMONIC_CLTS) {
            if ((mask & CR0_TS) && (shadow & CR0_TS))
                exit_for_insn(c, EXIT_REASON_CR_ACCESS, cr_qual(0, CRQ_CLTS, -1), 0);
        } else if (mn == ZYDIS_MNEMONIC_LMSW) {
            /* LMSW (SDM 26.1.3): an exit if a bit among 3:1 that L1 owns would differ
             * from the shadow, or if it would set PE while L1 owns PE and the shadow's
             * is clear (LMSW never clears PE). The exit carries the 16-bit source, and
             * a memory operand's linear address (SDM 28.2.1). */
            u64 src = ev->u.cr.lmsw_source, m = mask & 0xf;
            bool ex = ((src ^ shadow) & m & ~(u64)CR0_PE) ||
                      ((m & CR0_PE) && (src & CR0_PE) && !(shadow & CR0_PE));
            if (ex) {
                bool memop = ev->u.cr.lmsw_memory;
                struct vmx_exit_info x = {
                    .reason = EXIT_REASON_CR_ACCESS,
                    .qual = cr_qual(0, CRQ_LMSW, -1) | (memop ? BIT(6) : 0) | src << 16,
                    .guest_linear = memop ? ev->u.cr.lmsw_linear : 0, .has_linear = memop,
                    .insn_len = dd.ok ? dd.d.length : 1, .in_insn = true,
                };
                vmx_exit(c, &x);
            }
        } else if ((val ^ shadow) & mask) {
            exit_for_insn(c, EXIT_REASON_CR_ACCESS, cr_qual(cr, CRQ_MOV_TO, gpr), 0);
        }
        /* no exit: the bits L1 owns keep their values */
        u64 cur = cr == 0 ? c->cr0 : c->cr4;
        ev->u.cr.value = (val & ~mask) | (cur & mask);
        break;
    }
    case 3: {
        if (!(proc & PROC_CR3_LOAD_EXITING))
            break;
        u32 n = (u32)v->vmcs.f[VMCS_CR3_TARGET_COUNT];
        for (u32 k = 0; k < n && k < 4; k++)
            if (v->vmcs.f[VMCS_CR3_TARGET0 + k] == val)
                return;
        exit_for_insn(c, EXIT_REASON_CR_ACCESS, cr_qual(3, CRQ_MOV_TO, gpr), 0);
    }
    case 8:
        if (proc & PROC_CR8_LOAD_EXITING)
            exit_for_insn(c, EXIT_REASON_CR_ACCESS, cr_qual(8, CRQ_MOV_TO, gpr), 0);
        break;
    }
}

/* ---- exceptions ---- */
static bool exception_exits(const struct vmx *v, u8 vector, u32 error)
{
    u32 bitmap = (u32)v->vmcs.f[VMCS_EXCEPTION_BITMAP];
    if (vector >= 32)
        return false;
    if (vector == EXC_PF) {
        /* #PF: the bit says whether a match of the error code exits (SDM 26.2) */
        u32 mask = (u32)v->vmcs.f[VMCS_PF_ERROR_MASK], match = (u32)v->vmcs.f[VMCS_PF_ERROR_MATCH];
        bool matches = (error & mask) == match;
        return ((bitmap >> EXC_PF) & 1) == matches;
    }
    return (bitmap >> vector) & 1;
}

static _Noreturn void exception_exit(struct cpu *c, u8 vector, unsigned type, bool has_error,
                                     u32 error, u64 qual, u32 len)
{
    struct vmx_exit_info x = {
        .reason = EXIT_REASON_EXCEPTION_NMI,
        .qual = qual,
        .intr_info = vector | (u32)type << 8 | (has_error ? INTR_INFO_ERROR : 0) | INTR_INFO_VALID,
        .intr_error = has_error ? error : 0,
        .insn_len = len,
        .in_insn = true,
    };
    vmx_exit(c, &x);
}

/* Pause-loop exiting (SDM 26.1.3): PAUSEs at CPL 0 less than PLE_Gap TSC ticks apart
 * form a loop; one that has lasted more than PLE_Window ticks exits. */
static void pause_loop(struct cpu *c)
{
    struct vmx *v = c->vmx;
    u64 now = vmx_l1_tsc(c);
    u32 gap = (u32)v->vmcs.f[VMCS_PLE_GAP], window = (u32)v->vmcs.f[VMCS_PLE_WINDOW];
    if (!v->ple_active || now - v->ple_last > gap) {
        v->ple_active = true;
        v->ple_start = now;
    }
    v->ple_last = now;
    if (now - v->ple_start > window) {
        v->ple_active = false;
        exit_for_insn(c, EXIT_REASON_PAUSE, 0, 0);
    }
}

/* ---- the interception point ---- */
static void insn_event(struct cpu *c, struct cpu_event *ev)
{
    struct vmx *v = c->vmx;
    u32 proc = vmx_proc(v), proc2 = vmx_proc2(v);
    u64 arg = ev->u.insn.arg;
    switch (ev->u.insn.which) {
    case INSN_EV_RDMSR:
    case INSN_EV_WRMSR: {
        bool w = ev->u.insn.which == INSN_EV_WRMSR;
        if (msr_exits(c, (u32)arg, w))
            exit_for_insn(c, w ? EXIT_REASON_WRMSR : EXIT_REASON_RDMSR, 0, 0);
        break;
    }
    case INSN_EV_INVD:
        exit_for_insn(c, EXIT_REASON_INVD, 0, 0);
    case INSN_EV_WBINVD:
        if (proc2 & PROC2_WBINVD_EXITING)
            exit_for_insn(c, EXIT_REASON_WBINVD, 0, 0);
        break;
    case INSN_EV_RDPMC:
        if (proc & PROC_RDPMC_EXITING)
            exit_for_insn(c, EXIT_REASON_RDPMC, 0, 0);
        break;
    case INSN_EV_MONITOR:
        if (proc & PROC_MONITOR_EXITING)
            exit_for_insn(c, EXIT_REASON_MONITOR, 0, 0);
        break;
    case INSN_EV_MWAIT:
        if (proc & PROC_MWAIT_EXITING)
            exit_for_insn(c, EXIT_REASON_MWAIT, arg & 1, 0);
        break;
    case INSN_EV_XSETBV:
        exit_for_insn(c, EXIT_REASON_XSETBV, 0, 0);
    case INSN_EV_DESC_TABLE:
        if (proc2 & PROC2_DESC_TABLE_EXITING) {
            struct nested_decoded dd;
            nested_decode_at_rip(c, &dd);
            /* instruction identity in bits 29:28: SGDT/SIDT/LGDT/LIDT, SLDT/STR/LLDT/LTR */
            static const struct { ZydisMnemonic mn; u32 id; bool ldtr_tr; } ids[] = {
                { ZYDIS_MNEMONIC_SGDT, 0, false }, { ZYDIS_MNEMONIC_SIDT, 1, false },
                { ZYDIS_MNEMONIC_LGDT, 2, false }, { ZYDIS_MNEMONIC_LIDT, 3, false },
                { ZYDIS_MNEMONIC_SLDT, 0, true },  { ZYDIS_MNEMONIC_STR, 1, true },
                { ZYDIS_MNEMONIC_LLDT, 2, true },  { ZYDIS_MNEMONIC_LTR, 3, true },
            };
            u32 id = 0;
            bool ldtr_tr = false;
            for (size_t k = 0; k < ARRAY_SIZE(ids); k++)
                if (dd.ok && dd.d.mnemonic == ids[k].mn) {
                    id = ids[k].id;
                    ldtr_tr = ids[k].ldtr_tr;
                }
            u32 info = insn_info_from(&dd, 0, -1, -1) | id << 28;
            if (!ldtr_tr) /* operand size: 16 or 32 (bit 11) */
                info = (info & ~(u32)(3u << 11)) | (dd.d.operand_width == 16 ? 0 : BIT(11));
            else
                info &= ~(u32)(3u << 11);
            exit_for_insn(c, ldtr_tr ? EXIT_REASON_LDTR_TR : EXIT_REASON_GDTR_IDTR,
                          displacement(&dd, 0), info);
        }
        break;
    case INSN_EV_STRING_IO:
        io_event(c, (u16)arg, (arg >> 16) & 0xff, (arg >> 24) & 1);
        break;
    case INSN_EV_INVPCID:
        if (proc & PROC_INVLPG_EXITING) {
            struct nested_decoded dd;
            nested_decode_at_rip(c, &dd);
            exit_for_insn(c, EXIT_REASON_INVPCID, displacement(&dd, 1),
                          vmx_insn_info_of(c, NULL));
        }
        break;
    case INSN_EV_ENCLS:
        /* SDM 26.1.3: with "enable ENCLS exiting", bit EAX of the ENCLS-exiting bitmap
         * (bit 63 for every leaf from 63 up) */
        if (proc2 & PROC2_ENCLS_EXITING) {
            u32 bit = arg < 63 ? (u32)arg : 63;
            if ((v->vmcs.f[VMCS_ENCLS_EXIT_BITMAP] >> bit) & 1)
                exit_for_insn(c, EXIT_REASON_ENCLS, 0, 0);
        }
        break;
    case INSN_EV_PUSHF: case INSN_EV_POPF: case INSN_EV_IRET: case INSN_EV_INTN:
    case INSN_EV_SMSW: case INSN_EV_RSM:
        break; /* SVM's: VMX does not exit on them */
    }
}

bool vmx_intercept(struct cpu *c, struct cpu_event *ev)
{
    struct vmx *v = c->vmx;
    u32 pin = vmx_pin(v), proc = vmx_proc(v), proc2 = vmx_proc2(v);
    switch (ev->kind) {
    case EV_INSN:
        insn_event(c, ev);
        /* x2APIC virtualization answers the MSRs the bitmap lets through */
        if (ev->u.insn.which == INSN_EV_RDMSR || ev->u.insn.which == INSN_EV_WRMSR)
            return vmx_x2apic_msr(c, (u32)ev->u.insn.arg, ev->u.insn.which == INSN_EV_WRMSR,
                                  &ev->u.insn.value);
        break;
    case EV_MMIO:
        if (vmx_apic_access_page(c, ev->u.mmio.gpa)) {
            if (ev->u.mmio.write)
                vmx_apic_access_write(c, ev->u.mmio.gpa, ev->u.mmio.size, ev->u.mmio.value);
            else
                ev->u.mmio.value = vmx_apic_access_read(c, ev->u.mmio.gpa, ev->u.mmio.size);
            return true;
        }
        break;
    case EV_IO:
        io_event(c, ev->u.io.port, ev->u.io.size, ev->u.io.write);
        break;
    case EV_CPUID:
        exit_for_insn(c, EXIT_REASON_CPUID, 0, 0);
    case EV_HLT:
        if (proc & PROC_HLT_EXITING)
            exit_for_insn(c, EXIT_REASON_HLT, 0, 0);
        break;
    case EV_INVLPG:
        if (proc & PROC_INVLPG_EXITING)
            exit_for_insn(c, EXIT_REASON_INVLPG, ev->u.invlpg.linear, 0);
        break;
    case EV_CR_ACCESS:
        cr_access(c, ev);
        /* CR8 with the TPR shadow: the virtual-APIC page's VTPR (SDM 30.1) */
        if (ev->u.cr.cr == 8 && (proc & PROC_TPR_SHADOW)) {
            if (ev->u.cr.write && (ev->u.cr.value & ~0xfull))
                return false; /* reserved bits: the #GP comes first, VTPR is not written */
            if (ev->u.cr.write)
                vmx_cr8_write(c, ev->u.cr.value);
            else
                ev->u.cr.value = vmx_cr8_read(c);
            return true;
        }
        break;
    case EV_DR_ACCESS:
        if (proc & PROC_MOV_DR_EXITING) {
            struct nested_decoded dd;
            nested_decode_at_rip(c, &dd);
            int gpr = dd.ok ? nested_gpr_number(dd.op[ev->u.dr.write ? 1 : 0].reg.value) : 0;
            u64 q = ev->u.dr.dr | (ev->u.dr.write ? 0 : BIT(4)) | (u64)(gpr < 0 ? 0 : gpr) << 8;
            exit_for_insn(c, EXIT_REASON_DR_ACCESS, q, 0);
        }
        break;
    case EV_RDTSC:
        if (proc & PROC_RDTSC_EXITING)
            exit_for_insn(c, ev->u.rdtsc.rdtscp ? EXIT_REASON_RDTSCP : EXIT_REASON_RDTSC, 0, 0);
        /* the TSC offset is in the vCPU's offset while L2 runs */
        break;
    case EV_TSC_WRITTEN:
        /* WRMSR to IA32_TSC (or TSC_ADJUST) without an exit writes the TSC itself, which
         * L1 sees; L2 sees it through the TSC offset (SDM 26.3: only RDMSR and RDTSC add
         * the offset) */
        v->l1_tsc_offset = c->tsc_offset;
        if ((proc & PROC_TSC_OFFSETTING) && !c->tsc_multiplier)
            c->tsc_offset = (s64)((u64)c->tsc_offset + v->vmcs.f[VMCS_TSC_OFFSET]);
        break;
    case EV_HYPERCALL:
        exit_for_insn(c, EXIT_REASON_VMCALL, 0, 0);
    case EV_PAUSE:
        if (proc & PROC_PAUSE_EXITING)
            exit_for_insn(c, EXIT_REASON_PAUSE, 0, 0);
        if ((proc2 & PROC2_PAUSE_LOOP_EXITING) && c->cpl == 0)
            pause_loop(c);
        break;
    case EV_EXCEPTION: {
        u8 vec = ev->u.exc.vector;
        bool has_error = ev->u.exc.has_error && exc_has_error_code(vec) && cpu_is_prot(c);
        if (exception_exits(v, vec, ev->u.exc.error)) {
            u64 qual = vec == EXC_PF ? ev->u.exc.cr2 : 0;
            if (vec == EXC_DB) { /* DR6 unchanged, its bits in the qualification */
                c->dr[6] = c->in->dr6_before_db;
                qual = c->in->db_qual;
            }
            exception_exit(c, vec, INTR_TYPE_HW_EXC, has_error, ev->u.exc.error, qual, 0);
        }
        break;
    }
    case EV_SOFT_EXCEPTION: {
        /* INT3, INTO (software exceptions) and INT1 (privileged software exception) */
        u8 vec = ev->u.soft.vector;
        if (exception_exits(v, vec, 0))
            exception_exit(c, vec, ev->u.soft.privileged ? INTR_TYPE_PRIV_SW_EXC : INTR_TYPE_SW_EXC,
                           false, 0, 0, ev->u.soft.length);
        break;
    }
    case EV_NMI:
        if (pin & PIN_NMI_EXITING) {
            struct vmx_exit_info x = { .reason = EXIT_REASON_EXCEPTION_NMI,
                                       .intr_info = EXC_NMI | INTR_TYPE_NMI << 8 | INTR_INFO_VALID };
            c->nmi_pending = false;
            vmx_exit(c, &x);
        }
        break;
    case EV_INTERRUPT:
        if (vmx_posted_interrupt(c, ev->u.intr.vector))
            return true;
        if (pin & PIN_EXT_INTR_EXITING) {
            struct vmx_exit_info x = { .reason = EXIT_REASON_EXTERNAL_INTERRUPT };
            if ((u32)v->vmcs.f[VMCS_EXIT_CONTROLS] & EXIT_ACK_INTR) {
                int vec = c->ops->intr_ack(c, c->ops_opaque);
                if (vec >= 0)
                    x.intr_info = (u32)vec | INTR_INFO_VALID;
            }
            vmx_exit(c, &x);
        }
        break;
    case EV_SHUTDOWN: {
        struct vmx_exit_info x = { .reason = EXIT_REASON_TRIPLE_FAULT };
        vmx_exit(c, &x);
    }
    case EV_TASK_SWITCH: {
        struct vmx_exit_info x = { .reason = EXIT_REASON_TASK_SWITCH,
                                   .qual = ev->u.task.selector | (u64)ev->u.task.reason << 30,
                                   .in_insn = true };
        vmx_exit(c, &x);
    }
    default:
        break;
    }
    (void)proc2;
    return false;
}

/* ---- instruction boundaries (SDM 26.7) ---- */
bool vmx_intr_masked_by_if(const struct cpu *c)
{
    if (c->vmx_non_root && (vmx_pin(c->vmx) & PIN_EXT_INTR_EXITING))
        return false;
    return !(c->rflags & FL_IF);
}

void vmx_boundary(struct cpu *c)
{
    struct vmx *v = c->vmx;
    u32 proc = vmx_proc(v);
    /* INIT and SIPI (SDM 26.2): INIT exits whatever L2 does; SIPI only reaches a vCPU
     * in wait-for-SIPI, with its vector as the qualification */
    if (v->init_pending) {
        v->init_pending = false;
        struct vmx_exit_info x = { .reason = EXIT_REASON_INIT };
        vmx_exit(c, &x);
    }
    if (v->sipi_pending) {
        v->sipi_pending = false;
        c->state = CPU_WAIT_FOR_SIPI; /* saved as the activity state */
        struct vmx_exit_info x = { .reason = EXIT_REASON_SIPI, .qual = v->sipi_vector };
        vmx_exit(c, &x);
    }
    /* trap-like APIC-virtualization exits of the previous instruction */
    if (v->trap_pending) {
        v->trap_pending = false;
        struct vmx_exit_info x = { .reason = v->trap_reason, .qual = v->trap_qual };
        vmx_exit(c, &x);
    }
    /* pending debug traps come first (step() raises them); then MTF */
    if (c->in->held_db_bits)
        return;
    if (v->mtf_pending) {
        struct vmx_exit_info x = { .reason = EXIT_REASON_MTF };
        vmx_exit(c, &x);
    }
    if (v->preempt_active && vmx_preempt_remaining(c) == 0) {
        struct vmx_exit_info x = { .reason = EXIT_REASON_PREEMPTION_TIMER };
        vmx_exit(c, &x);
    }
    if ((proc & PROC_NMI_WINDOW) && !c->nmi_blocked && c->intr_shadow != SHADOW_MOV_SS &&
        c->state != CPU_WAIT_FOR_SIPI) {
        struct vmx_exit_info x = { .reason = EXIT_REASON_NMI_WINDOW };
        vmx_exit(c, &x);
    }
    if ((proc & PROC_INTR_WINDOW) && (c->rflags & FL_IF) && !c->intr_shadow &&
        c->state != CPU_WAIT_FOR_SIPI) {
        struct vmx_exit_info x = { .reason = EXIT_REASON_INTERRUPT_WINDOW };
        vmx_exit(c, &x);
    }
    vmx_apicv_boundary(c);
}

bool vmx_mtf_step(struct cpu *c)
{
    struct vmx *v = c->vmx;
    if (!(vmx_proc(v) & PROC_MTF) || c->state != CPU_RUNNING)
        return false;
    v->mtf_pending = true;
    return true;
}
