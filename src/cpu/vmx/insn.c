/* The VMX instructions (SDM Vol. 3C chapter 31 "VMX Instruction Reference"), each as its
 * pseudocode orders the checks: the #UD conditions, a VM exit in non-root operation, the
 * CPL check, then VMfailInvalid / VMfailValid(error) or VMsucceed. */
#include <string.h>

#include "cpu/vmx/vmx_internal.h"
#include "machine/mem.h"

/* ---- conventions (SDM 31.2) ---- */
void vmx_succeed(struct cpu *c)
{
    flags_set(c, FL_ARITH, 0);
}

static void fail_invalid(struct cpu *c)
{
    flags_set(c, FL_ARITH, FL_CF);
}

void vmx_fail(struct cpu *c, enum vmx_insn_error err)
{
    struct vmx *v = c->vmx;
    if (v->current == ~0ull && v->evmcs == ~0ull) {
        fail_invalid(c);
        return;
    }
    flags_set(c, FL_ARITH, FL_ZF);
    v->vmcs.f[VMCS_VM_INSTRUCTION_ERROR] = err;
    vmx_evmcs_write_back(c); /* an enlightened VMCS gets the error number */
}

/* ---- physical memory of VMX structures ---- */
/* The current VMCS goes back to its region (VMCLEAR, VMPTRLD of another, VMXOFF): its
 * field slots and launch state, in nestor's private layout. */
void vmx_vmcs_flush(struct cpu *c)
{
    struct vmx *v = c->vmx;
    if (v->current == ~0ull)
        return;
    nested_phys_write(c, v->current + VMCS_REGION_FIELDS, v->vmcs.f, sizeof(v->vmcs.f));
    u32 launch = v->launched ? VMCS_LAUNCHED_MAGIC : 0;
    nested_phys_write(c, v->current + VMCS_REGION_LAUNCH, &launch, 4);
}

/* Loads a region's fields (each masked to its width: the region may hold anything). */
static void vmcs_load_region(struct cpu *c, u64 pa, struct vmcs *out, bool *launched)
{
    u64 raw[VMCS_NFIELDS];
    if (!nested_phys_read(c, pa + VMCS_REGION_FIELDS, raw, sizeof(raw)))
        memset(raw, 0xff, sizeof(raw));
    int n;
    const struct vmcs_field_desc *t = vmcs_field_table(&n);
    memset(out, 0, sizeof(*out));
    for (int k = 0; k < n; k++)
        vmcs_write(out, &t[k], false, raw[t[k].field]);
    u32 launch = 0;
    nested_phys_read(c, pa + VMCS_REGION_LAUNCH, &launch, 4);
    *launched = launch == VMCS_LAUNCHED_MAGIC;
}

/* ---- common checks ---- */
static _Noreturn void ud(struct cpu *c)
{
    cpu_fault_noerr(c, EXC_UD);
}

static _Noreturn void gp0(struct cpu *c)
{
    cpu_fault(c, EXC_GP, 0);
}

static bool compat_mode(const struct cpu *c)
{
    return (c->efer & EFER_LMA) && !(c->seg[SEG_CS].attr & SEG_ATTR_L);
}

/* The start of every VMX instruction but VMXON: #UD outside VMX operation, in real,
 * virtual-8086 and compatibility mode; a VM exit in non-root operation (with the
 * instruction's information); #GP(0) above CPL 0. */
static void vmx_insn_begin(struct cpu *c, const struct insn *i, u32 reason)
{
    struct vmx *v = c->vmx;
    if (!v || !v->on || !(c->cr0 & CR0_PE) || (c->rflags & FL_VM) || compat_mode(c))
        ud(c);
    if (c->vmx_non_root)
        vmx_exit_insn(c, reason, vmx_insn_displacement(i), vmx_insn_info_of(c, i));
    if (c->cpl > 0)
        gp0(c);
}

/* The 64-bit memory operand of VMXON, VMCLEAR, VMPTRLD: a physical address. */
static u64 read_pointer_operand(struct cpu *c, const struct insn *i)
{
    return vmem_read(c, opr_seg(i, 0), opr_ea(c, i, 0), 8);
}

static bool bad_phys_addr(const struct cpu *c, u64 pa)
{
    return (pa & 0xfff) || (pa >> c->model->phys_bits);
}

static u32 region_revision(struct cpu *c, u64 pa)
{
    u32 rev = ~0u; /* not RAM: reads as all-ones, no valid revision */
    nested_phys_read(c, pa + VMCS_REGION_REVISION, &rev, 4);
    return rev;
}

/* ---- VMXON / VMXOFF ---- */
void vmx_insn_vmxon(struct cpu *c, const struct insn *i)
{
    struct vmx *v = c->vmx;
    if (!v || !(c->cr0 & CR0_PE) || !(c->cr4 & CR4_VMXE) || (c->rflags & FL_VM) ||
        compat_mode(c))
        ud(c);
    if (c->vmx_non_root)
        vmx_exit_insn(c, EXIT_REASON_VMXON, vmx_insn_displacement(i), vmx_insn_info_of(c, i));
    if (v->on) {
        if (c->cpl > 0)
            gp0(c);
        vmx_fail(c, VMXERR_VMXON_IN_ROOT);
        return;
    }
    /* CR0/CR4 must already hold the values VMX operation fixes; FEATURE_CONTROL must be
     * locked with VMX enabled outside SMX (SDM 24.7, 24.8) */
    u64 fc = c->msr_feature_control;
    if (c->cpl > 0 || !vmx_cr0_allowed_root(c, c->cr0) || !vmx_cr4_allowed(c, c->cr4) ||
        !(fc & FEATURE_CONTROL_LOCK) || !(fc & FEATURE_CONTROL_VMX_OUTSIDE_SMX))
        gp0(c);
    u64 pa = read_pointer_operand(c, i);
    if (bad_phys_addr(c, pa)) {
        fail_invalid(c);
        return;
    }
    u32 rev = region_revision(c, pa);
    if (rev != VMX_REVISION) { /* bit 31 set (a shadow VMCS) fails too */
        fail_invalid(c);
        return;
    }
    v->on = true;
    v->vmxon_ptr = pa;
    v->current = ~0ull;
    v->evmcs = ~0ull;
    v->launched = false;
    c->monitor_armed = false; /* address-range monitoring is cleared */
    vmx_succeed(c);
}

void vmx_insn_vmxoff(struct cpu *c, const struct insn *i)
{
    vmx_insn_begin(c, i, EXIT_REASON_VMXOFF);
    struct vmx *v = c->vmx;
    vmx_vmcs_flush(c);
    v->on = false;
    v->current = ~0ull;
    v->evmcs = ~0ull;
    c->monitor_armed = false;
    vmx_succeed(c);
    /* an INIT blocked in VMX root operation happens now */
    if (v->init_pending) {
        v->init_pending = false;
        cpu_init_signal(c, v->init_bsp);
        c->in->exits |= EXIT_RIP_WRITTEN | EXIT_BLOCK_END;
    }
}

/* ---- VMCLEAR / VMPTRLD / VMPTRST ---- */
void vmx_insn_vmclear(struct cpu *c, const struct insn *i)
{
    vmx_insn_begin(c, i, EXIT_REASON_VMCLEAR);
    struct vmx *v = c->vmx;
    u64 pa = read_pointer_operand(c, i);
    if (bad_phys_addr(c, pa)) {
        vmx_fail(c, VMXERR_VMCLEAR_INVALID_ADDR);
        return;
    }
    if (pa == v->vmxon_ptr) {
        vmx_fail(c, VMXERR_VMCLEAR_VMXON_PTR);
        return;
    }
    if (vmx_evmcs_in_use(c)) {
        /* the operand is taken for an enlightened VMCS (there is no telling them apart,
         * as in KVM): it has no launch state to clear; the one in use is released */
        if (pa == v->evmcs)
            vmx_evmcs_release(c);
    } else if (pa == v->current) {
        v->launched = false;
        vmx_vmcs_flush(c);
        v->current = ~0ull;
    } else {
        u32 launch = 0;
        nested_phys_write(c, pa + VMCS_REGION_LAUNCH, &launch, 4);
    }
    vmx_succeed(c);
}

void vmx_insn_vmptrld(struct cpu *c, const struct insn *i)
{
    vmx_insn_begin(c, i, EXIT_REASON_VMPTRLD);
    struct vmx *v = c->vmx;
    u64 pa = read_pointer_operand(c, i);
    if (bad_phys_addr(c, pa)) {
        vmx_fail(c, VMXERR_VMPTRLD_INVALID_ADDR);
        return;
    }
    if (pa == v->vmxon_ptr) {
        vmx_fail(c, VMXERR_VMPTRLD_VMXON_PTR);
        return;
    }
    u32 rev = region_revision(c, pa);
    bool shadow_ok = (v->caps.msr[VMX_PROCBASED2] >> 32) & PROC2_SHADOW_VMCS;
    if ((rev & 0x7fffffffu) != VMX_REVISION || ((rev >> 31) && !shadow_ok)) {
        vmx_fail(c, VMXERR_VMPTRLD_BAD_REVISION);
        return;
    }
    vmx_evmcs_release(c); /* a VMCS of VMPTRLD's replaces an enlightened one */
    if (pa != v->current) {
        vmx_vmcs_flush(c);
        vmcs_load_region(c, pa, &v->vmcs, &v->launched);
        v->current = pa;
    }
    v->current_is_shadow = rev >> 31;
    vmx_succeed(c);
}

void vmx_insn_vmptrst(struct cpu *c, const struct insn *i)
{
    vmx_insn_begin(c, i, EXIT_REASON_VMPTRST);
    vmem_write(c, opr_seg(i, 0), opr_ea(c, i, 0), 8, c->vmx->current);
    vmx_succeed(c);
}

/* ---- VMREAD / VMWRITE ---- */

/* In non-root operation with VMCS shadowing, does the VMREAD/VMWRITE bitmap let the
 * field through to the shadow VMCS (bit clear) rather than exit? Encodings above 0x7fff
 * always exit (SDM 26.1.3). */
static bool shadowed(struct cpu *c, u64 encoding, bool write)
{
    struct vmx *v = c->vmx;
    if (!(vmx_proc2(v) & PROC2_SHADOW_VMCS) || (encoding >> 15))
        return false;
    u64 bitmap = v->vmcs.f[write ? VMCS_VMWRITE_BITMAP : VMCS_VMREAD_BITMAP];
    u8 byte = 0xff;
    nested_phys_read(c, bitmap + (encoding & 0x7fff) / 8, &byte, 1);
    return !((byte >> (encoding & 7)) & 1);
}

/* VMREAD/VMWRITE's register and memory operands are 64-bit in 64-bit mode, else 32. */
static unsigned vmx_operand_bytes(const struct cpu *c)
{
    return cpu_is_long64(c) ? 8 : 4;
}

static u64 read_rm(struct cpu *c, const struct insn *i, int n, unsigned bytes)
{
    if (opr_is_mem(i, n))
        return vmem_read(c, opr_seg(i, n), opr_ea(c, i, n), bytes);
    return c->gpr[i->opd[n].reg] & size_mask(bytes);
}

/* The shadow VMCS's slot for a field, in its region (nestor's layout). */
static u64 shadow_slot(const struct vmx *v, const struct vmcs_field_desc *d)
{
    return v->vmcs.f[VMCS_LINK_POINTER] + VMCS_REGION_FIELDS + 8 * (u64)d->field;
}

/* The common part of VMREAD and VMWRITE (SDM 31.3). vmrw_begin: which VMCS the
 * instruction reaches (the current one, or in non-root operation with VMCS shadowing and
 * the field's bitmap bit clear, the shadow VMCS at the link pointer, without an exit), with
 * the #UD / VM exit / #GP checks; vmrw_field: the VMfail checks and the field, or NULL
 * when the instruction failed (flags already set). */
static bool vmrw_begin(struct cpu *c, const struct insn *i, u64 enc, bool write)
{
    struct vmx *v = c->vmx;
    bool to_shadow = c->vmx_non_root && v && v->on && shadowed(c, enc, write);
    if (!to_shadow)
        vmx_insn_begin(c, i, write ? EXIT_REASON_VMWRITE : EXIT_REASON_VMREAD);
    else if (c->cpl > 0)
        gp0(c);
    return to_shadow;
}

static const struct vmcs_field_desc *vmrw_field(struct cpu *c, u64 enc, bool to_shadow, bool *high)
{
    struct vmx *v = c->vmx;
    if (to_shadow ? v->vmcs.f[VMCS_LINK_POINTER] == ~0ull : v->current == ~0ull) {
        fail_invalid(c);
        return NULL;
    }
    const struct vmcs_field_desc *d = vmcs_field_find(enc, v->caps.features, high);
    if (!d)
        vmx_fail(c, VMXERR_UNSUPPORTED_FIELD);
    return d;
}

/* A field's whole 64-bit slot, in the current VMCS or in the shadow VMCS's region. */
static u64 slot_load(struct cpu *c, bool shadow, const struct vmcs_field_desc *d)
{
    u64 raw = ~0ull;
    if (!shadow)
        return c->vmx->vmcs.f[d->field];
    nested_phys_read(c, shadow_slot(c->vmx, d), &raw, 8);
    return raw;
}

static void slot_store(struct cpu *c, bool shadow, const struct vmcs_field_desc *d, u64 raw)
{
    if (shadow)
        nested_phys_write(c, shadow_slot(c->vmx, d), &raw, 8);
    else
        c->vmx->vmcs.f[d->field] = raw;
}

void vmx_insn_vmread(struct cpu *c, const struct insn *i)
{
    unsigned bytes = vmx_operand_bytes(c);
    u64 enc = c->vmx ? c->gpr[i->opd[1].reg] & size_mask(bytes) : 0;
    bool high, shadow = vmrw_begin(c, i, enc, false);
    const struct vmcs_field_desc *d = vmrw_field(c, enc, shadow, &high);
    if (!d)
        return;
    struct vmcs tmp;
    tmp.f[d->field] = slot_load(c, shadow, d);
    u64 val = vmcs_read(&tmp, d, high) & size_mask(bytes);
    if (opr_is_mem(i, 0))
        vmem_write(c, opr_seg(i, 0), opr_ea(c, i, 0), bytes, val);
    else
        c->gpr[i->opd[0].reg] = val; /* 32-bit outside 64-bit mode: the upper half is 0 */
    vmx_succeed(c);
}

void vmx_insn_vmwrite(struct cpu *c, const struct insn *i)
{
    unsigned bytes = vmx_operand_bytes(c);
    u64 enc = c->vmx ? c->gpr[i->opd[0].reg] & size_mask(bytes) : 0;
    bool high, shadow = vmrw_begin(c, i, enc, true);
    u64 val = read_rm(c, i, 1, bytes); /* its faults come before the VMfail checks */
    const struct vmcs_field_desc *d = vmrw_field(c, enc, shadow, &high);
    if (!d)
        return;
    /* read-only exit-information fields are writable: IA32_VMX_MISC[29] is reported */
    struct vmcs tmp;
    tmp.f[d->field] = slot_load(c, shadow, d);
    vmcs_write(&tmp, d, high, val);
    slot_store(c, shadow, d, tmp.f[d->field]);
    vmx_succeed(c);
}

/* ---- VMLAUNCH / VMRESUME ---- */
static void launch_or_resume(struct cpu *c, const struct insn *i, bool launch)
{
    vmx_insn_begin(c, i, launch ? EXIT_REASON_VMLAUNCH : EXIT_REASON_VMRESUME);
    struct vmx *v = c->vmx;
    /* an enlightened VMCS the VP assist page names (Hyper-V's hv-evmcs) */
    switch (vmx_evmcs_enter(c, launch)) {
    case EVMCS_UD:
        cpu_fault_noerr(c, EXC_UD);
        return;
    case EVMCS_VMFAIL_INVALID:
        fail_invalid(c);
        return;
    case EVMCS_BAD_CONTROLS:
        vmx_fail(c, VMXERR_ENTRY_INVALID_CONTROLS);
        return;
    case EVMCS_USED:
    case EVMCS_NOT_USED:
        break;
    }
    if (v->evmcs == ~0ull && (v->current == ~0ull || v->current_is_shadow)) {
        fail_invalid(c);
        return;
    }
    if (c->in->shadow_before == SHADOW_MOV_SS) {
        vmx_fail(c, VMXERR_ENTRY_EVENTS_BLOCKED_MOV_SS);
        return;
    }
    if (launch && v->launched) {
        vmx_fail(c, VMXERR_VMLAUNCH_NOT_CLEAR);
        return;
    }
    if (!launch && !v->launched) {
        vmx_fail(c, VMXERR_VMRESUME_NOT_LAUNCHED);
        return;
    }
    vmx_vmentry(c, launch);
}

void vmx_insn_vmlaunch(struct cpu *c, const struct insn *i)
{
    launch_or_resume(c, i, true);
}

void vmx_insn_vmresume(struct cpu *c, const struct insn *i)
{
    launch_or_resume(c, i, false);
}

/* ---- INVEPT / INVVPID ---- */
static void read_descriptor128(struct cpu *c, const struct insn *i, u64 d[2])
{
    int seg = opr_seg(i, 1);
    u64 ea = opr_ea(c, i, 1);
    vmem_read_bytes(c, seg, ea, d, 16);
}

void vmx_insn_invept(struct cpu *c, const struct insn *i)
{
    struct vmx *v = c->vmx;
    if (!v || !((v->caps.msr[VMX_PROCBASED2] >> 32) & PROC2_EPT) ||
        !(v->caps.msr[VMX_EPT_VPID_CAP] & EPT_CAP_INVEPT))
        ud(c);
    vmx_insn_begin(c, i, EXIT_REASON_INVEPT);
    u64 type = c->gpr[i->opd[0].reg] & size_mask(vmx_operand_bytes(c));
    static const u64 type_cap[] = { 0, EPT_CAP_INVEPT_SINGLE, EPT_CAP_INVEPT_ALL };
    if (type == 0 || type > 2 || !(v->caps.msr[VMX_EPT_VPID_CAP] & type_cap[type])) {
        vmx_fail(c, VMXERR_INVEPT_INVVPID_INVALID);
        return;
    }
    u64 desc[2];
    read_descriptor128(c, i, desc);
    if (type == 1 && !vmx_eptp_valid(v, desc[0], c->model->phys_bits)) {
        vmx_fail(c, VMXERR_INVEPT_INVVPID_INVALID);
        return;
    }
    /* nestor caches no guest-physical translations across VM entries and exits; the
     * running context's combined ones go */
    vmx_ept_flush(c);
    vmx_succeed(c);
}

void vmx_insn_invvpid(struct cpu *c, const struct insn *i)
{
    struct vmx *v = c->vmx;
    if (!v || !((v->caps.msr[VMX_PROCBASED2] >> 32) & PROC2_VPID) ||
        !(v->caps.msr[VMX_EPT_VPID_CAP] & VPID_CAP_INVVPID))
        ud(c);
    vmx_insn_begin(c, i, EXIT_REASON_INVVPID);
    u64 type = c->gpr[i->opd[0].reg] & size_mask(vmx_operand_bytes(c));
    static const u64 type_cap[] = { VPID_CAP_ADDR, VPID_CAP_SINGLE, VPID_CAP_ALL,
                                    VPID_CAP_SINGLE_NONGLOBAL };
    if (type > 3 || !(v->caps.msr[VMX_EPT_VPID_CAP] & type_cap[type])) {
        vmx_fail(c, VMXERR_INVEPT_INVVPID_INVALID);
        return;
    }
    u64 desc[2];
    read_descriptor128(c, i, desc);
    u16 vpid = (u16)desc[0];
    if (desc[0] >> 16) { /* bits 63:16 of the descriptor are reserved */
        vmx_fail(c, VMXERR_INVEPT_INVVPID_INVALID);
        return;
    }
    if (type != 2 && vpid == 0) {
        vmx_fail(c, VMXERR_INVEPT_INVVPID_INVALID);
        return;
    }
    if (type == 0 && !cpu_canonical_max(c, desc[1])) {
        vmx_fail(c, VMXERR_INVEPT_INVVPID_INVALID);
        return;
    }
    /* VPID-tagged translations of L2 are not kept across VM entries; flushing the
     * current ones covers every type */
    tlb_flush_all(&c->tlb);
    c->in->large_pages_cached = false;
    vmx_succeed(c);
}

/* ---- VMFUNC ---- */
void vmx_insn_vmfunc(struct cpu *c, const struct insn *i)
{
    (void)i;
    struct vmx *v = c->vmx;
    /* only in non-root operation with "enable VM functions"; elsewhere #UD */
    if (!v || !c->vmx_non_root || !(vmx_proc2(v) & PROC2_VMFUNC))
        ud(c);
    u32 leaf = (u32)c->gpr[R_RAX];
    u64 enabled = v->vmcs.f[VMCS_VMFUNC_CONTROLS];
    if (leaf >= 64 || !((enabled >> leaf) & 1) || leaf != 0)
        vmx_exit_insn(c, EXIT_REASON_VMFUNC, 0, 0);
    /* EPTP switching (SDM 26.5.6.3) */
    u32 index = (u32)c->gpr[R_RCX];
    u64 eptp = 0;
    if (index >= 512 ||
        !nested_phys_read(c, v->vmcs.f[VMCS_EPTP_LIST_ADDR] + 8 * (u64)index, &eptp, 8) ||
        !vmx_eptp_valid(v, eptp, c->model->phys_bits))
        vmx_exit_insn(c, EXIT_REASON_VMFUNC, 0, 0);
    v->vmcs.f[VMCS_EPT_POINTER] = eptp;
    if (vmx_proc2(v) & PROC2_EPT_VE)
        v->vmcs.f[VMCS_EPTP_INDEX] = index;
    vmx_ept_flush(c);
}

void vmx_vmcall_root(struct cpu *c)
{
    if ((c->rflags & FL_VM) || compat_mode(c))
        ud(c);
    if (c->cpl > 0)
        gp0(c);
    vmx_fail(c, VMXERR_VMCALL_IN_ROOT);
}
