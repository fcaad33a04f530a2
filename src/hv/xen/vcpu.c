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

/* The secondary time area (VCPUOP_register_vcpu_time_memory_area), a guest-virtual
 * address of the vCPU, as Xen's update_secondary_system_time(): the same contents as
 * the primary, the version odd while they change. Written through the vCPU's own paging;
 * an address that does not translate is skipped, as Xen ignores the failed copy. */
static void write_time_area(struct xen *x, struct cpu *c, const struct vcpu_time_info *t)
{
    u64 gva = x->vcpu[c->id].time_area_gva;
    if (!gva)
        return;
    struct vcpu_time_info u = *t;
    u32 version = 0;
    if (cpu_copy_guest(c, gva, &version, sizeof(version), false))
        return;
    u.version = (version + 1) | 1;
    if (cpu_copy_guest(c, gva, &u.version, sizeof(u.version), true) ||
        cpu_copy_guest(c, gva, &u, sizeof(u), true))
        return;
    u.version++;
    cpu_copy_guest(c, gva, &u.version, sizeof(u.version), true);
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
        .tsc_timestamp = cpu_l1_tsc_at(c, now),
        .system_time = now,
        .tsc_to_system_mul = x->time_mul,
        .tsc_shift = x->time_shift,
        .flags = x->host.tsc_stable ? XEN_PVCLOCK_TSC_STABLE_BIT : 0,
    };
    mem_write_u32(mem, gpa + offsetof(struct vcpu_time_info, version), t.version);
    mem_write(mem, gpa + offsetof(struct vcpu_time_info, tsc_timestamp), &t.tsc_timestamp,
              sizeof(t) - offsetof(struct vcpu_time_info, tsc_timestamp));
    mem_write_u32(mem, gpa + offsetof(struct vcpu_time_info, version), t.version + 1);
    write_time_area(x, c, &t);
}

/* ---- runstate ----
 * The runstate follows nestor's run state of the vCPU: running while it executes,
 * blocked while halted (HLT, SCHEDOP_block or _poll), offline while it waits for its
 * SIPI. vCPUs take turns on one host thread but share virtual time (each round's time
 * is the most any of them retired): none ever waits for a physical CPU, so runnable
 * time stays 0 and the guest sees no steal time. */
static int runstate_of(const struct cpu *c)
{
    switch (c->state) {
    case CPU_HALTED: return RUNSTATE_blocked;
    case CPU_WAIT_FOR_SIPI:
    case CPU_SHUTDOWN: return RUNSTATE_offline;
    default: return RUNSTATE_running;
    }
}

static void runstate_account(struct xen_vcpu *v, int state, u64 now)
{
    if (now > v->rs_entry_ns)
        v->rs_time[v->rs_state] += now - v->rs_entry_ns;
    if (now > v->rs_entry_ns || state != v->rs_state)
        v->rs_entry_ns = now > v->rs_entry_ns ? now : v->rs_entry_ns;
    v->rs_state = state;
}

/* The runstate as the guest reads it: in the latched layout (x86_32: the 64-bit fields
 * 4-byte aligned, state_entry_time at 4, time[] at 12, 44 bytes in all). */
static size_t runstate_image(const struct xen *x, const struct vcpu_runstate_info *r, u8 *out)
{
    if (!x->shinfo_32) {
        memcpy(out, r, sizeof(*r));
        return sizeof(*r);
    }
    memcpy(out, &r->state, 4);
    memcpy(out + 4, &r->state_entry_time, 8);
    memcpy(out + 12, r->time, sizeof(r->time));
    return 44;
}

static void runstate_get(const struct xen *x, int id, struct vcpu_runstate_info *r)
{
    const struct xen_vcpu *v = &x->vcpu[id];
    *r = (struct vcpu_runstate_info){ .state = v->rs_state, .state_entry_time = v->rs_entry_ns };
    memcpy(r->time, v->rs_time, sizeof(r->time));
}

/* Xen's update_runstate_area(): with VMASST_TYPE_runstate_update_flag the guest sees
 * XEN_RUNSTATE_UPDATE in state_entry_time while the area changes. */
static void write_runstate(struct xen *x, struct cpu *c)
{
    struct xen_vcpu *v = &x->vcpu[c->id];
    if (!v->runstate_gva)
        return;
    struct vcpu_runstate_info r;
    runstate_get(x, c->id, &r);
    u8 img[sizeof(r)];
    size_t len = runstate_image(x, &r, img);
    size_t entry_off = x->shinfo_32 ? 4 : offsetof(struct vcpu_runstate_info, state_entry_time);
    bool flag = x->vm_assist & BIT(VMASST_TYPE_runstate_update_flag);
    if (flag) {
        u64 e = r.state_entry_time | XEN_RUNSTATE_UPDATE;
        if (cpu_copy_guest(c, v->runstate_gva + entry_off, &e, 8, true))
            return;
        u64 marked = e;
        memcpy(img + entry_off, &marked, 8);
    }
    if (cpu_copy_guest(c, v->runstate_gva, img, len, true))
        return;
    if (flag)
        cpu_copy_guest(c, v->runstate_gva + entry_off, &r.state_entry_time, 8, true);
}

void xen_vcpu_resume(struct xen *x, struct cpu *c)
{
    struct xen_vcpu *v = &x->vcpu[c->id];
    runstate_account(v, runstate_of(c), x->host.ops->now_ns(x->host.opaque));
    xen_update_time(x, c);
    write_runstate(x, c);
}

void xen_vcpu_ran(struct xen *x, struct cpu *c)
{
    runstate_account(&x->vcpu[c->id], runstate_of(c), x->host.ops->now_ns(x->host.opaque));
}

/* ---- timers ----
 * The single-shot and periodic timers raise VIRQ_TIMER on their vCPU, as Xen's
 * vcpu_singleshot_timer_fn / vcpu_periodic_timer_fn send_timer_event(). */
static void sshot_fire(void *arg, u64 now)
{
    struct xen_vcpu *v = arg;
    (void)now;
    xen_evtchn_send_virq(v->x, v->id, VIRQ_TIMER);
}

static void periodic_fire(void *arg, u64 now)
{
    struct xen_vcpu *v = arg;
    xen_evtchn_send_virq(v->x, v->id, VIRQ_TIMER);
    /* the next period after now: periods missed meanwhile are not made up (one event) */
    v->periodic_next += v->periodic_ns;
    if (v->periodic_next <= now)
        v->periodic_next = now + v->periodic_ns;
    v->x->host.ops->timer_arm(v->x->host.opaque, v->periodic_timer, v->periodic_next);
}

static void poll_timeout(void *arg, u64 now)
{
    struct xen_vcpu *v = arg;
    (void)now;
    xen_sched_wake(v->x, v->id);
}

int xen_time_create(struct xen *x)
{
    const struct xen_host_ops *o = x->host.ops;
    for (int i = 0; i < x->host.ncpus; i++) {
        struct xen_vcpu *v = &x->vcpu[i];
        v->x = x;
        v->id = i;
        v->rs_state = RUNSTATE_offline; /* until it first runs */
        v->sshot_timer = o->timer_new(x->host.opaque, sshot_fire, v);
        v->periodic_timer = o->timer_new(x->host.opaque, periodic_fire, v);
        v->poll_timer = o->timer_new(x->host.opaque, poll_timeout, v);
        if (v->sshot_timer < 0 || v->periodic_timer < 0 || v->poll_timer < 0)
            return -ENOMEM;
    }
    return xen_watchdog_create(x);
}

/* Arms vCPU id's single-shot timer at system time deadline (now: at once); 0 stops it. */
void xen_set_singleshot(struct xen *x, int id, u64 deadline)
{
    const struct xen_host_ops *o = x->host.ops;
    if (deadline)
        o->timer_arm(x->host.opaque, x->vcpu[id].sshot_timer, deadline);
    else
        o->timer_disarm(x->host.opaque, x->vcpu[id].sshot_timer);
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
    xen_evtchn_inject(x, id);
    return 0;
}

/* A guest-virtual area registered by handle (runstate, secondary time info): struct
 * vcpu_register_*_memory_area is one 64-bit word in both ABIs (a 32-bit pointer in the
 * low half in the x86_32 one). */
static long read_area_handle(struct xcall *k, u64 arg, u64 *gva)
{
    u64 h;
    if (xen_copy_from(k, arg, &h, sizeof(h)))
        return -EFAULT;
    *gva = k->compat ? (u32)h : h;
    return 0;
}

/* Xen's "max offset" for a single-shot deadline it takes as given */
static long set_singleshot(struct xcall *k, int id, u64 arg)
{
    struct vcpu_set_singleshot_timer t;
    if (id != k->c->id)
        return -EINVAL; /* only a vCPU's own */
    if (xen_copy_from(k, arg, &t, sizeof(t)))
        return -EFAULT;
    u64 now = k->x->host.ops->now_ns(k->x->host.opaque);
    if ((t.flags & VCPU_SSHOTTMR_future) && t.timeout_abs_ns < now)
        return -ETIME;
    xen_set_singleshot(k->x, id, t.timeout_abs_ns ? t.timeout_abs_ns : now);
    return 0;
}

/* Xen: at least 1 ms, at most STIME_DELTA_MAX (2^62 ns) */
static long set_periodic(struct xcall *k, int id, u64 arg)
{
    struct vcpu_set_periodic_timer p;
    if (xen_copy_from(k, arg, &p, sizeof(p)))
        return -EFAULT;
    if (p.period_ns < 1000000ull || p.period_ns > (1ull << 62))
        return -EINVAL;
    struct xen_vcpu *v = &k->x->vcpu[id];
    v->periodic_ns = p.period_ns;
    v->periodic_next = k->x->host.ops->now_ns(k->x->host.opaque) + p.period_ns;
    k->x->host.ops->timer_arm(k->x->host.opaque, v->periodic_timer, v->periodic_next);
    return 0;
}

/* vcpu_op(cmd, vcpuid, arg) as Xen's hvm_vcpu_op(): the sub-ops an HVM domU may use
 * (others -ENOSYS, before the vCPU is looked at), then a vCPU the domain does not have
 * is -ENOENT (domain_vcpu()). */
long xen_do_vcpu_op(struct xcall *k)
{
    struct xen *x = k->x;
    int cmd = (int)k->arg[0];
    switch (cmd) {
    case VCPUOP_register_runstate_memory_area:
    case VCPUOP_get_runstate_info:
    case VCPUOP_set_periodic_timer:
    case VCPUOP_stop_periodic_timer:
    case VCPUOP_set_singleshot_timer:
    case VCPUOP_stop_singleshot_timer:
    case VCPUOP_register_vcpu_info:
    case VCPUOP_register_vcpu_time_memory_area:
    case VCPUOP_get_physid:
        break;
    default:
        return -ENOSYS;
    }
    u32 id = (u32)k->arg[1];
    if (id >= (u32)x->host.ncpus)
        return -ENOENT;
    struct xen_vcpu *v = &x->vcpu[id];
    struct cpu *target = x->host.cpus[id];
    u64 arg = k->arg[2];
    switch (cmd) {
    case VCPUOP_register_vcpu_info:
        return register_vcpu_info(k, (int)id, arg);
    case VCPUOP_register_runstate_memory_area: {
        /* the area is written now, through the caller's paging when it is another
         * vCPU's (Xen copies with current's page tables too) */
        u64 gva;
        if (read_area_handle(k, arg, &gva))
            return -EFAULT;
        v->runstate_gva = gva;
        if (gva) {
            struct vcpu_runstate_info r;
            runstate_get(x, (int)id, &r);
            u8 img[sizeof(r)];
            size_t len = runstate_image(x, &r, img);
            cpu_copy_guest(k->c, gva, img, len, true);
        }
        return 0;
    }
    case VCPUOP_get_runstate_info: {
        struct vcpu_runstate_info r;
        runstate_account(v, v->rs_state, x->host.ops->now_ns(x->host.opaque));
        runstate_get(x, (int)id, &r);
        u8 img[sizeof(r)];
        size_t len = runstate_image(x, &r, img);
        return xen_copy_to(k, arg, img, len);
    }
    case VCPUOP_register_vcpu_time_memory_area: {
        u64 gva;
        if (read_area_handle(k, arg, &gva))
            return -EFAULT;
        v->time_area_gva = gva;
        xen_update_time(x, target);
        return 0;
    }
    case VCPUOP_set_periodic_timer:
        return set_periodic(k, (int)id, arg);
    case VCPUOP_stop_periodic_timer:
        v->periodic_ns = 0;
        x->host.ops->timer_disarm(x->host.opaque, v->periodic_timer);
        return 0;
    case VCPUOP_set_singleshot_timer:
        return set_singleshot(k, (int)id, arg);
    case VCPUOP_stop_singleshot_timer:
        if ((int)id != k->c->id)
            return -EINVAL;
        xen_set_singleshot(x, (int)id, 0);
        return 0;
    case VCPUOP_get_physid: /* only for dom0's pinned vCPUs */
    default:
        return -EINVAL;
    }
}

/* vm_assist(cmd, type), as Xen's: the types an HVM domain may use are in
 * HVM_VM_ASSIST_MASK — runstate_update_flag alone (xen/include/asm-x86/config.h). */
long xen_do_vm_assist(struct xcall *k)
{
    u32 cmd = (u32)k->arg[0], type = (u32)k->arg[1];
    if (type >= 32 || !(BIT(type) & BIT(VMASST_TYPE_runstate_update_flag)))
        return -EINVAL;
    switch (cmd) {
    case VMASST_CMD_enable:
        k->x->vm_assist |= BIT(type);
        return 0;
    case VMASST_CMD_disable:
        k->x->vm_assist &= ~BIT(type);
        return 0;
    default:
        return -ENOSYS;
    }
}
