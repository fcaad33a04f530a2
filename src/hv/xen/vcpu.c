/* vcpu_op and the per-vCPU shared areas: vcpu_info, the pvclock vcpu_time_info
 * (xen/common/domain.c, xen/arch/x86/time.c). */
#include <string.h>

#include "hv/xen/xen_internal.h"

#include <xen/vcpu.h>

/* ---- vcpu_op ---- */
/* Offsets in vcpu_info of the latched layout: evtchn_pending_sel is a xen_ulong_t, 32
 * bits wide after 2 bytes of padding in the x86_32 layout. */
static size_t vcpu_info_pending_sel(const struct xen *x, size_t *width)
{
    *width = x->shinfo_32 ? sizeof(uint32_t) : sizeof(xen_ulong_t);
    return x->shinfo_32 ? offsetof(struct vcpu_info_x86_32, evtchn_pending_sel)
                        : offsetof(struct vcpu_info, evtchn_pending_sel);
}

/* The guest-physical address of vCPU id's vcpu_info: the registered one, else its slot
 * in shared_info (vCPUs below XEN_LEGACY_MAX_VCPUS, once shared_info is placed). */
bool xen_vcpu_info_gpa(const struct xen *x, int id, u64 *gpa)
{
    if (x->vcpu[id].info_registered) {
        *gpa = x->vcpu[id].info_gpa;
        return true;
    }
    if (!x->shinfo_placed || id >= XEN_LEGACY_MAX_VCPUS)
        return false;
    *gpa = x->shinfo_gpa + (x->shinfo_32
                                ? offsetof(struct shared_info_x86_32, vcpu_info) +
                                      (size_t)id * sizeof(struct vcpu_info_x86_32)
                                : offsetof(struct shared_info, vcpu_info) +
                                      (size_t)id * sizeof(struct vcpu_info));
    return true;
}

/* vcpu_time_info (pvclock) of vCPU c in its vcpu_info, as Xen's
 * update_vcpu_system_time(): the TSC and the virtual clock's ns now, the scale from TSC
 * ticks to ns, TSC_STABLE when the model's TSC is invariant; the version is odd while
 * the fields change. The layout is the same in both ABIs; only its place differs. */
void xen_update_time(struct xen *x, struct cpu *c)
{
    u64 gpa;
    if (!xen_vcpu_info_gpa(x, c->id, &gpa))
        return;
    gpa += x->shinfo_32 ? offsetof(struct vcpu_info_x86_32, time)
                        : offsetof(struct vcpu_info, time);
    struct guest_mem *mem = c->mem;
    u32 version = 0;
    mem_read_u32(mem, gpa + offsetof(struct vcpu_time_info, version), &version);
    /* one reading of the clock for both: the pair must describe the same instant */
    u64 now = c->ops->now_ns(c, c->ops_opaque);
    struct vcpu_time_info t = {
        .version = (version + 1) | 1,
        .tsc_timestamp = cpu_tsc_at(c, now),
        .system_time = now,
        .tsc_to_system_mul = x->time_mul,
        .tsc_shift = x->time_shift,
        .flags = x->host.tsc_stable ? XEN_PVCLOCK_TSC_STABLE_BIT : 0,
    };
    mem_write_u32(mem, gpa + offsetof(struct vcpu_time_info, version), t.version);
    mem_write(mem, gpa + offsetof(struct vcpu_time_info, tsc_timestamp), &t.tsc_timestamp,
              sizeof(t) - offsetof(struct vcpu_time_info, tsc_timestamp));
    mem_write_u32(mem, gpa + offsetof(struct vcpu_time_info, version), t.version + 1);
}

void xen_vcpu_resume(struct xen *x, struct cpu *c)
{
    xen_update_time(x, c);
}

/* VCPUOP_register_vcpu_info, as Xen's map_vcpu_info(): the whole native vcpu_info must
 * fit in the page (-EINVAL), once per vCPU (-EINVAL again), by the vCPU itself or for
 * one that is down (-EINVAL for another running one), in a RAM frame (-EINVAL). The
 * new area takes the contents of the vCPU's shared_info slot (zeros with the upcall
 * masked for a vCPU that had none), then all events are marked pending so the guest
 * rescans them. */
static long register_vcpu_info(struct xcall *k, int id, u64 arg)
{
    struct xen *x = k->x;
    struct vcpu_register_vcpu_info info;
    if (xen_copy_from(k, arg, &info, sizeof(info)))
        return -EFAULT;
    if (info.offset > 4096 - sizeof(struct vcpu_info))
        return -EINVAL;
    if (x->vcpu[id].info_registered)
        return -EINVAL;
    if (id != k->c->id && x->host.cpus[id]->state != CPU_WAIT_FOR_SIPI)
        return -EINVAL;
    struct guest_mem *mem = k->c->mem;
    if (info.mfn > MASK(52 - 12) || !mem_ptr(mem, info.mfn << 12, 4096))
        return -EINVAL;
    u64 gpa = (info.mfn << 12) + info.offset;
    u8 area[sizeof(struct vcpu_info)] = { 0 };
    size_t len = x->shinfo_32 ? sizeof(struct vcpu_info_x86_32) : sizeof(struct vcpu_info);
    u64 old;
    if (xen_vcpu_info_gpa(x, id, &old)) {
        if (mem_read(mem, old, area, len))
            return -EINVAL;
    } else if (id >= XEN_LEGACY_MAX_VCPUS) {
        area[offsetof(struct vcpu_info, evtchn_upcall_mask)] = 1;
    }
    area[offsetof(struct vcpu_info, evtchn_upcall_pending)] = 1;
    size_t width, sel = vcpu_info_pending_sel(x, &width);
    memset(area + sel, 0xff, width);
    if (mem_write(mem, gpa, area, len))
        return -EINVAL;
    x->vcpu[id].info_registered = true;
    x->vcpu[id].info_gpa = gpa;
    xen_update_time(x, x->host.cpus[id]);
    return 0;
}

/* vcpu_op(cmd, vcpuid, arg): a vCPU the domain does not have is -ENOENT (Xen's
 * domain_vcpu()). Not yet: runstate areas, the secondary time area, timers,
 * get_physid, send_nmi (-ENOSYS, as Xen answers the sub-ops an HVM guest may not use). */
long xen_do_vcpu_op(struct xcall *k)
{
    u32 id = (u32)k->arg[1];
    if (id >= (u32)k->x->host.ncpus)
        return -ENOENT;
    switch ((int)k->arg[0]) {
    case VCPUOP_register_vcpu_info:
        return register_vcpu_info(k, (int)id, k->arg[2]);
    default:
        return -ENOSYS;
    }
}


/* Not implemented yet: -ENOSYS, as before. */
long xen_do_vm_assist(struct xcall *k)
{
    (void)k;
    return -ENOSYS;
}
