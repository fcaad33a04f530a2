/* hvm_op (xen/arch/x86/hvm/hvm.c): the HVM parameters, the per-vCPU upcall vector,
 * pagetable_dying, get_time, as Xen 4.17 answers them for an HVM domU. */
#include <string.h>

#include "hv/xen/xen_internal.h"

#include <xen/hvm/hvm_op.h>

/* What a domU may do with its own parameters (Xen's hvm_allow_set_param and
 * hvm_allow_get_param): set the callback and the ports and addresses its own firmware
 * and drivers choose, read those and what the toolstack gave it (xenstore and console
 * rings); everything else is the toolstack's (-EPERM). */
static const u64 guest_may_set = BIT(HVM_PARAM_CALLBACK_IRQ) | BIT(HVM_PARAM_VM86_TSS) |
                                 BIT(HVM_PARAM_VM86_TSS_SIZED) |
                                 BIT(HVM_PARAM_ACPI_IOPORTS_LOCATION) |
                                 BIT(HVM_PARAM_VM_GENERATION_ID_ADDR) |
                                 BIT(HVM_PARAM_STORE_EVTCHN) | BIT(HVM_PARAM_CONSOLE_EVTCHN) |
                                 BIT(HVM_PARAM_X87_FIP_WIDTH);
static const u64 guest_may_get = BIT(HVM_PARAM_CALLBACK_IRQ) | BIT(HVM_PARAM_VM86_TSS) |
                                 BIT(HVM_PARAM_VM86_TSS_SIZED) |
                                 BIT(HVM_PARAM_ACPI_IOPORTS_LOCATION) |
                                 BIT(HVM_PARAM_VM_GENERATION_ID_ADDR) |
                                 BIT(HVM_PARAM_STORE_PFN) | BIT(HVM_PARAM_STORE_EVTCHN) |
                                 BIT(HVM_PARAM_CONSOLE_PFN) | BIT(HVM_PARAM_CONSOLE_EVTCHN) |
                                 BIT(HVM_PARAM_ALTP2M) | BIT(HVM_PARAM_X87_FIP_WIDTH);

/* The values a toolstack (xl) gives an HVM domain: timer mode
 * no_delay_for_missed_ticks, the HPET on. The rings of the console and xenstore (their
 * PFN and EVTCHN parameters) are set afterwards by xen_special_ring (special.c), as dom0's
 * services are set up; the guest reads them and may not move the pages. */
void xen_hvm_params_init(struct xen *x)
{
    memset(x->hvm_param, 0, sizeof(x->hvm_param));
    x->hvm_param[HVM_PARAM_TIMER_MODE] = HVMPTM_no_delay_for_missed_ticks;
    x->hvm_param[HVM_PARAM_HPET_ENABLED] = 1;
}

u64 xen_hvm_param(const struct xen *x, u32 index)
{
    return index < HVM_NR_PARAMS ? x->hvm_param[index] : 0;
}

/* struct xen_hvm_param: domid, pad, index, value (the same in both ABIs: value is
 * 8-aligned at 8) */
static long hvm_param(struct xcall *k, bool set)
{
    struct xen *x = k->x;
    struct xen_hvm_param a;
    if (xen_copy_from(k, k->arg[1], &a, sizeof(a)))
        return -EFAULT;
    if (a.index >= HVM_NR_PARAMS)
        return -EINVAL;
    long rc = xen_own_domain(x, a.domid);
    if (rc)
        return rc;
    if (!(BIT(a.index) & (set ? guest_may_set : guest_may_get)))
        return -EPERM;
    if (!set) {
        a.value = x->hvm_param[a.index];
        return xen_copy_to(k, k->arg[1], &a, sizeof(a));
    }
    switch (a.index) {
    case HVM_PARAM_CALLBACK_IRQ:
        xen_evtchn_set_callback_via(x, a.value);
        xen_latch_shinfo(x, k->c);
        break;
    case HVM_PARAM_X87_FIP_WIDTH:
        if (a.value != 0 && a.value != 4 && a.value != 8)
            return -EINVAL;
        break;
    case HVM_PARAM_VM86_TSS_SIZED:
        /* size in bits 63:32 at least 128 bytes, base below 4G */
        if ((a.value >> 32) < 128 || (u32)a.value + (a.value >> 32) > MASK(32) + 1ull)
            return -EINVAL;
        break;
    }
    x->hvm_param[a.index] = a.value;
    return 0;
}

long xen_do_hvm_op(struct xcall *k)
{
    struct xen *x = k->x;
    switch ((u32)k->arg[0]) {
    case HVMOP_set_param:
        return hvm_param(k, true);
    case HVMOP_get_param:
        return hvm_param(k, false);
    case HVMOP_set_evtchn_upcall_vector: {
        /* a vCPU's own vector for its upcalls, through its LAPIC: 0x10 and up */
        struct xen_hvm_evtchn_upcall_vector op;
        if (xen_copy_from(k, k->arg[1], &op, sizeof(op)))
            return -EFAULT;
        if (op.vector < 0x10)
            return -EINVAL;
        if (op.vcpu >= (u32)x->host.ncpus)
            return -ENOENT;
        xen_evtchn_set_upcall_vector(x, (int)op.vcpu, op.vector);
        return 0;
    }
    case HVMOP_pagetable_dying: {
        /* a hint for shadow paging: nothing to do for nestor's page walker */
        struct xen_hvm_pagetable_dying a;
        if (xen_copy_from(k, k->arg[1], &a, sizeof(a)))
            return -EFAULT;
        long rc = xen_own_domain(x, a.domid);
        return rc ? rc : 0;
    }
    case HVMOP_get_time: {
        struct xen_hvm_get_time t = { x->host.ops->now_ns(x->host.opaque) };
        return xen_copy_to(k, k->arg[1], &t, sizeof(t));
    }
    case HVMOP_flush_tlbs:
        /* Xen flushes every vCPU's TLB; nestor's vCPUs take the same point to flush */
        if (k->arg[1])
            return -EINVAL;
        for (int i = 0; i < x->host.ncpus; i++)
            tlb_flush_all(&x->host.cpus[i]->tlb);
        return 0;
    default:
        /* the device-model, altp2m, monitor and tracing ops are the toolstack's */
        return -ENOSYS;
    }
}
