/* sched_op and set_timer_op (xen/common/sched/core.c, xen/common/domain.c): yield,
 * block, poll, shutdown, watchdog, the single-shot timer, as Xen answers an HVM domU. */
#include <stdio.h>
#include <string.h>

#include "hv/xen/xen_internal.h"

#include <xen/sched.h>
#include <xen/event_channel.h>

/* ---- blocking ---- */
/* A blocked or polling vCPU wakes on any interrupt, masked or not, as Xen's vcpu_kick()
 * unblocks it whatever the guest's RFLAGS.IF; on an event for it (xen_sched_wake); a
 * polling one also when a polled port becomes pending or its timeout passes. */
static void block_vcpu(struct xen *x, struct cpu *c, bool polling, s64 port)
{
    struct xen_vcpu *v = &x->vcpu[c->id];
    v->blocked = true;
    v->polling = polling;
    v->poll_port = port;
    cpu_block(c, true);
}

void xen_sched_wake(struct xen *x, int id)
{
    struct xen_vcpu *v = &x->vcpu[id];
    if (!v->blocked)
        return;
    v->blocked = v->polling = false;
    x->host.ops->timer_disarm(x->host.opaque, v->poll_timer);
    cpu_unblock(x->host.cpus[id]);
    x->host.ops->kick(x->host.opaque, id);
}

/* Xen's evtchn_check_pollers(): vCPUs polling this port, or several ports, wake. */
void xen_sched_port_pending(struct xen *x, u32 port)
{
    for (int i = 0; i < x->host.ncpus; i++) {
        struct xen_vcpu *v = &x->vcpu[i];
        if (v->polling && (v->poll_port < 0 || (u32)v->poll_port == port))
            xen_sched_wake(x, i);
    }
}

/* A blocked vCPU that woke by itself (an interrupt ended its halt) is no longer
 * blocked for Xen either. */
static void sync_blocked(struct xen *x, struct cpu *c)
{
    struct xen_vcpu *v = &x->vcpu[c->id];
    if (v->blocked && c->state != CPU_HALTED) {
        v->blocked = v->polling = false;
        x->host.ops->timer_disarm(x->host.opaque, v->poll_timer);
    }
}

/* Would an interrupt be taken now (Xen's local_events_need_delivery() for HVM)? */
static bool events_need_delivery(struct cpu *c)
{
    return (c->rflags & FL_IF) && c->ops->intr_pending && c->ops->intr_pending(c, c->ops_opaque) >= 0;
}

/* struct sched_poll: ports handle, nr_ports, timeout; in the x86_32 layout the handle is
 * 4 bytes and timeout 4-byte aligned (16 bytes, timeout at 8). */
static long do_poll(struct xcall *k, u64 arg)
{
    struct xen *x = k->x;
    struct cpu *c = k->c;
    u64 ports, timeout;
    u32 nr;
    if (k->compat) {
        u8 b[16];
        if (xen_copy_from(k, arg, b, sizeof(b)))
            return -EFAULT;
        u32 p;
        memcpy(&p, b, 4);
        memcpy(&nr, b + 4, 4);
        memcpy(&timeout, b + 8, 8);
        ports = p;
    } else {
        struct sched_poll sp;
        if (xen_copy_from(k, arg, &sp, sizeof(sp)))
            return -EFAULT;
        ports = (u64)(uintptr_t)sp.ports.p;
        nr = sp.nr_ports;
        timeout = sp.timeout;
    }
    if (nr > 128)
        return -EINVAL;
    if (events_need_delivery(c))
        return 0;
    evtchn_port_t port = 0;
    for (u32 i = 0; i < nr; i++) {
        if (xen_copy_from(k, ports + (u64)i * sizeof(port), &port, sizeof(port)))
            return -EFAULT;
        if (port >= xen_evtchn_max_ports(x))
            return -EINVAL;
        if (xen_evtchn_is_pending(x, port))
            return 0;
    }
    block_vcpu(x, c, true, nr == 1 ? (s64)port : -1);
    if (timeout)
        x->host.ops->timer_arm(x->host.opaque, x->vcpu[c->id].poll_timer, timeout);
    return 0;
}

/* ---- shutdown ---- */
/* What nestor does when the domain shuts down: it is the toolstack, and ends the run as
 * xl would end the domain (poweroff and reboot as the guest's ACPI poweroff and reset
 * do; a crash, a watchdog reboot or an unknown reason with the guest-error status). A
 * suspend has nobody to save the domain: it is cancelled (the call returns 1, as Xen
 * returns to an HVM guest whose suspend the toolstack cancelled). */
static long shutdown_domain(struct xen *x, u32 reason)
{
    static const char *const names[] = {
        [SHUTDOWN_poweroff] = "poweroff", [SHUTDOWN_reboot] = "reboot",
        [SHUTDOWN_suspend] = "suspend",   [SHUTDOWN_crash] = "crash",
        [SHUTDOWN_watchdog] = "watchdog", [SHUTDOWN_soft_reset] = "soft_reset",
    };
    const char *name = reason <= SHUTDOWN_MAX ? names[reason] : "unknown";
    switch (reason) {
    case SHUTDOWN_poweroff:
    case SHUTDOWN_reboot:
    case SHUTDOWN_soft_reset:
        x->shut_down = true;
        x->host.ops->stop(x->host.opaque, NESTOR_EXIT_OK);
        return 0;
    case SHUTDOWN_suspend:
        nestor_log("Xen: the guest asked to suspend (SCHEDOP_shutdown suspend): cancelled, "
                   "nestor has no toolstack to save it");
        return 1;
    default:
        nestor_log("Xen: the guest shut down with reason %u (%s)%s", reason, name,
                   reason == SHUTDOWN_crash ? ": it crashed" : "");
        x->shut_down = true;
        x->host.ops->stop(x->host.opaque, NESTOR_EXIT_GUEST_ERROR);
        return 0;
    }
}

/* Xen's domain_crash(): the hypervisor ends a domain that did what it must not (the
 * toolstack sees a crashed domain): nestor ends the run with the guest-error status. */
void xen_domain_crash(struct xen *x, const char *why)
{
    nestor_log("Xen: the domain crashed: %s", why);
    x->shut_down = true;
    x->host.ops->stop(x->host.opaque, NESTOR_EXIT_GUEST_ERROR);
}

/* ---- watchdog (Xen's domain_watchdog) ---- */
static void watchdog_fire(void *arg, u64 now)
{
    struct xen *x = arg;
    (void)now;
    nestor_log("Xen: watchdog timer fired for the domain");
    shutdown_domain(x, SHUTDOWN_watchdog);
}

int xen_watchdog_create(struct xen *x)
{
    for (int i = 0; i < NR_XEN_WATCHDOGS; i++) {
        x->watchdog_timer[i] = x->host.ops->timer_new(x->host.opaque, watchdog_fire, x);
        if (x->watchdog_timer[i] < 0)
            return -ENOMEM;
    }
    return 0;
}

/* id 0 takes a free timer (its number + 1 is returned, -ENOSPC when none is free);
 * id N re-arms timer N, or with timeout 0 frees it; a timer not in use is -EINVAL. */
static long domain_watchdog(struct xen *x, u32 id, u32 timeout)
{
    const struct xen_host_ops *o = x->host.ops;
    u64 deadline = o->now_ns(x->host.opaque) + (u64)timeout * 1000000000ull;
    if (id > NR_XEN_WATCHDOGS)
        return -EINVAL;
    if (id == 0) {
        for (int i = 0; i < NR_XEN_WATCHDOGS; i++) {
            if (x->watchdog_used[i])
                continue;
            x->watchdog_used[i] = true;
            o->timer_arm(x->host.opaque, x->watchdog_timer[i], deadline);
            return i + 1;
        }
        return -ENOSPC;
    }
    id--;
    if (!x->watchdog_used[id])
        return -EINVAL;
    if (timeout == 0) {
        o->timer_disarm(x->host.opaque, x->watchdog_timer[id]);
        x->watchdog_used[id] = false;
    } else {
        o->timer_arm(x->host.opaque, x->watchdog_timer[id], deadline);
    }
    return 0;
}

/* sched_op(cmd, arg) */
long xen_do_sched_op(struct xcall *k)
{
    struct xen *x = k->x;
    u64 arg = k->arg[1];
    sync_blocked(x, k->c);
    switch ((int)k->arg[0]) {
    case SCHEDOP_yield: /* the vCPU gives up the rest of its pass */
        x->host.ops->kick(x->host.opaque, -1);
        return 0;
    case SCHEDOP_block: {
        /* Xen's vcpu_block_enable_events(): the upcall unmasked, then blocked unless an
         * event is already deliverable */
        u64 gpa;
        if (xen_vcpu_info_gpa(x, k->c->id, &gpa))
            mem_write_u8(k->c->mem, gpa + offsetof(struct vcpu_info, evtchn_upcall_mask), 0);
        if (!events_need_delivery(k->c))
            block_vcpu(x, k->c, false, 0);
        return 0;
    }
    case SCHEDOP_poll:
        return do_poll(k, arg);
    case SCHEDOP_shutdown: {
        struct sched_shutdown s;
        if (xen_copy_from(k, arg, &s, sizeof(s)))
            return -EFAULT;
        return shutdown_domain(x, s.reason);
    }
    case SCHEDOP_shutdown_code: {
        /* the reason recorded for the toolstack: the first one stays */
        struct sched_shutdown s;
        if (xen_copy_from(k, arg, &s, sizeof(s)))
            return -EFAULT;
        if (!x->shutdown_code_set) {
            x->shutdown_code = s.reason;
            x->shutdown_code_set = true;
        }
        return 0;
    }
    case SCHEDOP_remote_shutdown: {
        struct sched_remote_shutdown r;
        if (xen_copy_from(k, arg, &r, sizeof(r)))
            return -EFAULT;
        /* Xen looks the domain up by its number (DOMID_SELF names none: -ESRCH), then
         * XSM lets only a device model or the control domain do it: -EPERM for this
         * domain and dom0 alike */
        if (r.domain_id == x->cfg.domid || r.domain_id == 0)
            return -EPERM;
        return -ESRCH;
    }
    case SCHEDOP_watchdog: {
        struct sched_watchdog w;
        if (xen_copy_from(k, arg, &w, sizeof(w)))
            return -EFAULT;
        return domain_watchdog(x, w.id, w.timeout);
    }
    case SCHEDOP_pin_override:
        return -EPERM; /* the hardware domain's alone */
    default:
        return -ENOSYS;
    }
}

/* set_timer_op(timeout): the single-shot timer at system time timeout, 0 stops it; in
 * the 32-bit ABI the 64-bit value comes in ebx (low) and ecx (high). As Xen, a timeout
 * that wrapped negative or lies more than 2^50 ns ahead fires in 100 ms (old Linux
 * asked for those when it had no timer). */
long xen_do_set_timer_op(struct xcall *k)
{
    struct xen *x = k->x;
    u64 timeout = k->compat ? (k->arg[0] & 0xffffffffu) | k->arg[1] << 32 : k->arg[0];
    if (!timeout) {
        xen_set_singleshot(x, k->c->id, 0);
        return 0;
    }
    u64 now = x->host.ops->now_ns(x->host.opaque);
    s64 offset = (s64)(timeout - now);
    if ((s64)timeout < 0 || (offset > 0 && (u32)((u64)offset >> 50) != 0))
        timeout = now + 100000000ull;
    xen_set_singleshot(x, k->c->id, timeout ? timeout : 1);
    return 0;
}
