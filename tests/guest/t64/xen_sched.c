/* -xen: time and scheduling as Xen 4.17 gives them to an HVM domU.
 *  - vcpu_op: the runstate area (running/blocked/offline times that add up, blocked time
 *    growing while halted, the XEN_RUNSTATE_UPDATE protocol with vm_assist), the
 *    secondary time area, periodic and single-shot timers, the sub-ops an HVM domU may
 *    not use, the vCPU checked after the sub-op;
 *  - set_timer_op; sched_op: block (woken by VIRQ_TIMER), poll (a pending port at once, a
 *    timeout, errors), watchdog slots, shutdown_code, remote_shutdown;
 *  - runs that end the domain: poweroff and reboot end nestor with status 0, crash and an
 *    expired watchdog with 4; suspend is cancelled (returns 1) and the guest goes on.
 * Runs with -icount, so that timer and runstate figures are exact.
 * QEMU TCG has no Xen interface: the test skips there.
 * guest: xen=yes smp=2 icount=yes name=xen_sched */
/* guest: xen=yes icount=yes append=shutdown=poweroff expect=exit-0 name=xen_sched-poweroff */
/* guest: xen=yes icount=yes append=shutdown=reboot expect=exit-0 name=xen_sched-reboot */
/* guest: xen=yes icount=yes append=shutdown=crash expect=exit-4 name=xen_sched-crash */
/* guest: xen=yes icount=yes append=shutdown=watchdog expect=exit-4 timeout=240 name=xen_sched-watchdog */
/* guest: xen=yes icount=yes cpu=max,vendor=AuthenticAMD append=shutdown=suspend name=xen_sched-suspend */
#include "rt.h"

#include <stdint.h>
#define __XEN_INTERFACE_VERSION__ 0x00040e00
#include <xen/xen.h>
#include <xen/memory.h>
#include <xen/vcpu.h>
#include <xen/sched.h>
#include <xen/event_channel.h>
#include <xen/hvm/hvm_op.h>
#include <xen/hvm/params.h>
#include <xen/arch-x86/cpuid.h>

#define EPERM 1
#define ENOENT 2
#define ESRCH 3
#define EFAULT 14
#define EINVAL 22
#define ENOSPC 28
#define ENOSYS 38

#define CALLBACK_VECTOR 0x40

static bool amd;
static struct shared_info *shinfo;
static volatile unsigned upcalls;

static long hc(u64 nr, u64 a1, u64 a2, u64 a3)
{
    return xen_hypercall3(amd, nr, a1, a2, a3);
}

static void callback_handler(struct exc_frame *f)
{
    (void)f;
    upcalls++;
    shinfo->vcpu_info[0].evtchn_upcall_pending = 0;
    shinfo->vcpu_info[0].evtchn_pending_sel = 0;
    memset((void *)shinfo->evtchn_pending, 0, sizeof(shinfo->evtchn_pending));
}

static u64 now_ns(void)
{
    struct xen_hvm_get_time t;
    hc(__HYPERVISOR_hvm_op, HVMOP_get_time, (u64)&t, 0);
    return t.now;
}

static u32 bind_virq_timer(void)
{
    struct evtchn_bind_virq b = { .virq = VIRQ_TIMER, .vcpu = 0 };
    TEST_EQ(hc(__HYPERVISOR_event_channel_op, EVTCHNOP_bind_virq, (u64)&b, 0), 0, "bind VIRQ_TIMER");
    return b.port;
}

static void test_runstate(void)
{
    struct vcpu_runstate_info *rs = page_alloc();
    memset(rs, 0xaa, sizeof(*rs));
    struct vcpu_register_runstate_memory_area area = { .addr.v = rs };
    TEST_EQ(hc(__HYPERVISOR_vcpu_op, VCPUOP_register_runstate_memory_area, 0, (u64)&area), 0,
            "register_runstate_memory_area");
    TEST_EQ(rs->state, RUNSTATE_running, "written at once: running");
    u64 sum = rs->time[0] + rs->time[1] + rs->time[2] + rs->time[3];
    TEST_ASSERT(sum <= rs->state_entry_time, "the times add up to no more than the entry time");
    TEST_EQ(rs->time[RUNSTATE_runnable], 0, "never runnable: nestor's vCPUs do not wait for a CPU");
    u64 blocked0 = rs->time[RUNSTATE_blocked];

    /* halt until the single-shot timer's upcall, 3 ms: blocked time grows by that */
    u32 port = bind_virq_timer();
    struct vcpu_set_singleshot_timer st = { .timeout_abs_ns = now_ns() + 3000000 };
    unsigned before = upcalls;
    TEST_EQ(hc(__HYPERVISOR_vcpu_op, VCPUOP_set_singleshot_timer, 0, (u64)&st), 0, "single-shot in 3 ms");
    while (upcalls == before)
        asm volatile("sti; hlt; cli");
    sti();
    udelay(10); /* the area is rewritten on the way back */
    u64 blocked = rs->time[RUNSTATE_blocked] - blocked0;
    TEST_ASSERT(blocked >= 2900000 && blocked <= 3100000, "blocked for the 3 ms halt (%llu ns)",
                (unsigned long long)blocked);
    TEST_EQ(rs->state, RUNSTATE_running, "running again");

    struct vcpu_runstate_info r1;
    TEST_EQ(hc(__HYPERVISOR_vcpu_op, VCPUOP_get_runstate_info, 1, (u64)&r1), 0, "get_runstate_info of vCPU 1");
    TEST_EQ(r1.state, RUNSTATE_offline, "vCPU 1, never started: offline");
    TEST_EQ(r1.time[RUNSTATE_running], 0, "and never ran");
    TEST_EQ(hc(__HYPERVISOR_vcpu_op, VCPUOP_get_runstate_info, 2, (u64)&r1), -ENOENT, "vCPU 2 of 2: -ENOENT");
    TEST_EQ(hc(__HYPERVISOR_vcpu_op, VCPUOP_get_runstate_info, 0, 0xfee00000ull), -EFAULT,
            "get_runstate_info into MMIO: -EFAULT");

    /* vm_assist: the update flag is the one type an HVM domain may use */
    TEST_EQ(hc(__HYPERVISOR_vm_assist, VMASST_CMD_enable, VMASST_TYPE_writable_pagetables, 0), -EINVAL,
            "vm_assist writable_pagetables: -EINVAL for HVM");
    TEST_EQ(hc(__HYPERVISOR_vm_assist, 7, VMASST_TYPE_runstate_update_flag, 0), -ENOSYS,
            "vm_assist unknown command: -ENOSYS");
    TEST_EQ(hc(__HYPERVISOR_vm_assist, VMASST_CMD_enable, VMASST_TYPE_runstate_update_flag, 0), 0,
            "vm_assist runstate_update_flag");
    udelay(10);
    TEST_EQ(rs->state_entry_time & XEN_RUNSTATE_UPDATE, 0, "the update flag is clear between updates");

    /* the secondary time area follows the primary one */
    struct vcpu_time_info *ti = page_alloc();
    memset(ti, 0, sizeof(*ti));
    struct vcpu_register_time_memory_area ta = { .addr.v = ti };
    TEST_EQ(hc(__HYPERVISOR_vcpu_op, VCPUOP_register_vcpu_time_memory_area, 0, (u64)&ta), 0,
            "register_vcpu_time_memory_area");
    TEST_ASSERT(ti->version >= 2 && !(ti->version & 1), "secondary area written (version %u)", ti->version);
    TEST_EQ(ti->tsc_to_system_mul, shinfo->vcpu_info[0].time.tsc_to_system_mul, "same scale as the primary");
    udelay(100);
    TEST_EQ(ti->tsc_timestamp, shinfo->vcpu_info[0].time.tsc_timestamp, "kept current with it");

    /* periodic timer */
    struct vcpu_set_periodic_timer pt = { .period_ns = 999999 };
    TEST_EQ(hc(__HYPERVISOR_vcpu_op, VCPUOP_set_periodic_timer, 0, (u64)&pt), -EINVAL,
            "periodic below 1 ms: -EINVAL");
    pt.period_ns = 1000000;
    before = upcalls;
    TEST_EQ(hc(__HYPERVISOR_vcpu_op, VCPUOP_set_periodic_timer, 0, (u64)&pt), 0, "periodic 1 ms");
    udelay(5500);
    unsigned ticks = upcalls - before;
    TEST_EQ(hc(__HYPERVISOR_vcpu_op, VCPUOP_stop_periodic_timer, 0, 0), 0, "stop periodic");
    TEST_ASSERT(ticks == 5, "5 ticks in 5.5 ms (%u)", ticks);
    before = upcalls;
    udelay(3000);
    TEST_EQ(upcalls, before, "none after stop");

    /* set_timer_op: the single-shot timer too; 0 stops it */
    before = upcalls;
    TEST_EQ(hc(__HYPERVISOR_set_timer_op, now_ns() + 1000000, 0, 0), 0, "set_timer_op in 1 ms");
    udelay(2000);
    TEST_EQ(upcalls, before + 1, "fired");
    TEST_EQ(hc(__HYPERVISOR_set_timer_op, now_ns() + 1000000, 0, 0), 0, "set_timer_op again");
    TEST_EQ(hc(__HYPERVISOR_set_timer_op, 0, 0, 0), 0, "set_timer_op 0: stop");
    udelay(2000);
    TEST_EQ(upcalls, before + 1, "a stopped timer does not fire");

    /* SCHEDOP_block: halts until the event */
    before = upcalls;
    u64 t0 = now_ns();
    hc(__HYPERVISOR_set_timer_op, t0 + 2000000, 0, 0);
    cli();
    TEST_EQ(hc(__HYPERVISOR_sched_op, SCHEDOP_block, 0, 0), 0, "SCHEDOP_block");
    u64 t1 = now_ns();
    sti();
    udelay(1);
    TEST_ASSERT(t1 - t0 >= 2000000 && upcalls == before + 1,
                "blocked until the timer's event (%llu ns)", (unsigned long long)(t1 - t0));

    /* SCHEDOP_poll */
    struct sched_poll sp;
    evtchn_port_t ports[2] = { port, 4096 };
    sp = (struct sched_poll){ .nr_ports = 129 };
    set_xen_guest_handle(sp.ports, ports);
    TEST_EQ(hc(__HYPERVISOR_sched_op, SCHEDOP_poll, (u64)&sp, 0), -EINVAL, "poll 129 ports: -EINVAL");
    sp.nr_ports = 2;
    TEST_EQ(hc(__HYPERVISOR_sched_op, SCHEDOP_poll, (u64)&sp, 0), -EINVAL, "poll port 4096 (beyond 2-level): -EINVAL");
    sp.nr_ports = 1;
    sp.timeout = now_ns() + 2000000;
    /* with interrupts off, only the polled port or the timeout ends it */
    cli();
    struct evtchn_unmask um;
    (void)um;
    t0 = now_ns();
    TEST_EQ(hc(__HYPERVISOR_sched_op, SCHEDOP_poll, (u64)&sp, 0), 0, "poll with a 2 ms timeout");
    t1 = now_ns();
    TEST_ASSERT(t1 - t0 >= 1990000 && t1 - t0 < 3000000, "returned at the timeout (%llu ns)",
                (unsigned long long)(t1 - t0));
    shinfo->evtchn_pending[0] |= 1ull << port;
    t0 = now_ns();
    sp.timeout = 0;
    TEST_EQ(hc(__HYPERVISOR_sched_op, SCHEDOP_poll, (u64)&sp, 0), 0, "poll a pending port");
    TEST_ASSERT(now_ns() - t0 < 100000, "returns at once");
    shinfo->evtchn_pending[0] = 0;
    /* the timer's event on the polled port ends the poll */
    hc(__HYPERVISOR_set_timer_op, now_ns() + 1000000, 0, 0);
    t0 = now_ns();
    TEST_EQ(hc(__HYPERVISOR_sched_op, SCHEDOP_poll, (u64)&sp, 0), 0, "poll until the timer's port");
    t1 = now_ns();
    TEST_ASSERT(t1 - t0 >= 900000 && t1 - t0 < 2000000, "woken by VIRQ_TIMER (%llu ns)",
                (unsigned long long)(t1 - t0));
    sti();
    udelay(1);
    set_xen_guest_handle(sp.ports, (evtchn_port_t *)0xfee00000ull);
    TEST_EQ(hc(__HYPERVISOR_sched_op, SCHEDOP_poll, (u64)&sp, 0), -EFAULT, "poll ports in MMIO: -EFAULT");
}

static void test_sched_misc(void)
{
    struct sched_watchdog w = { .id = 0, .timeout = 100 };
    TEST_EQ(hc(__HYPERVISOR_sched_op, SCHEDOP_watchdog, (u64)&w, 0), 1, "watchdog: slot 1");
    TEST_EQ(hc(__HYPERVISOR_sched_op, SCHEDOP_watchdog, (u64)&w, 0), 2, "watchdog: slot 2");
    TEST_EQ(hc(__HYPERVISOR_sched_op, SCHEDOP_watchdog, (u64)&w, 0), -ENOSPC, "no third: -ENOSPC");
    w = (struct sched_watchdog){ .id = 3, .timeout = 1 };
    TEST_EQ(hc(__HYPERVISOR_sched_op, SCHEDOP_watchdog, (u64)&w, 0), -EINVAL, "watchdog 3: -EINVAL");
    for (u32 id = 1; id <= 2; id++) {
        w = (struct sched_watchdog){ .id = id, .timeout = 0 };
        TEST_EQ(hc(__HYPERVISOR_sched_op, SCHEDOP_watchdog, (u64)&w, 0), 0, "watchdog freed");
    }
    w = (struct sched_watchdog){ .id = 1, .timeout = 5 };
    TEST_EQ(hc(__HYPERVISOR_sched_op, SCHEDOP_watchdog, (u64)&w, 0), -EINVAL, "a freed slot: -EINVAL");

    struct sched_shutdown code = { .reason = SHUTDOWN_suspend };
    TEST_EQ(hc(__HYPERVISOR_sched_op, SCHEDOP_shutdown_code, (u64)&code, 0), 0, "shutdown_code");
    struct sched_remote_shutdown rs = { .domain_id = 1, .reason = SHUTDOWN_poweroff };
    TEST_EQ(hc(__HYPERVISOR_sched_op, SCHEDOP_remote_shutdown, (u64)&rs, 0), -EPERM,
            "remote_shutdown of ourselves: -EPERM");
    rs.domain_id = DOMID_SELF;
    TEST_EQ(hc(__HYPERVISOR_sched_op, SCHEDOP_remote_shutdown, (u64)&rs, 0), -ESRCH,
            "remote_shutdown of DOMID_SELF: -ESRCH");
    TEST_EQ(hc(__HYPERVISOR_sched_op, SCHEDOP_yield, 0, 0), 0, "yield");
    TEST_EQ(hc(__HYPERVISOR_sched_op, 99, 0, 0), -ENOSYS, "unknown sched_op: -ENOSYS");
    TEST_EQ(hc(__HYPERVISOR_sched_op, SCHEDOP_shutdown, 0xfee00000ull, 0), -EFAULT, "shutdown from MMIO: -EFAULT");

    TEST_EQ(hc(__HYPERVISOR_vcpu_op, VCPUOP_is_up, 0, 0), -ENOSYS, "is_up: not for HVM, -ENOSYS");
    TEST_EQ(hc(__HYPERVISOR_vcpu_op, VCPUOP_is_up, 99, 0), -ENOSYS, "the sub-op is checked before the vCPU");
    TEST_EQ(hc(__HYPERVISOR_vcpu_op, VCPUOP_get_physid, 0, 0), -EINVAL, "get_physid: -EINVAL for a domU");
    TEST_EQ(hc(__HYPERVISOR_vcpu_op, VCPUOP_stop_periodic_timer, 99, 0), -ENOENT, "vCPU 99: -ENOENT");
}

static void shutdown_run(const char *how)
{
    static const struct { const char *name; unsigned reason; } reasons[] = {
        { "poweroff", SHUTDOWN_poweroff }, { "reboot", SHUTDOWN_reboot },
        { "crash", SHUTDOWN_crash },       { "suspend", SHUTDOWN_suspend },
    };
    if (!strcmp(how, "watchdog")) {
        struct sched_watchdog w = { .id = 0, .timeout = 1 };
        TEST_EQ(hc(__HYPERVISOR_sched_op, SCHEDOP_watchdog, (u64)&w, 0), 1, "watchdog of 1 s");
        printf("SHUTDOWN-NEXT\n");
        for (;;)
            udelay(1000);
    }
    for (unsigned i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++) {
        if (strcmp(how, reasons[i].name))
            continue;
        struct sched_shutdown s = { .reason = reasons[i].reason };
        if (reasons[i].reason == SHUTDOWN_suspend) {
            /* nobody saves the domain: the suspend is cancelled and the call returns 1 */
            TEST_EQ(hc(__HYPERVISOR_sched_op, SCHEDOP_shutdown, (u64)&s, 0), 1, "suspend: cancelled, 1");
            return;
        }
        printf("SHUTDOWN-NEXT\n");
        hc(__HYPERVISOR_sched_op, SCHEDOP_shutdown, (u64)&s, 0);
        TEST_ASSERT(false, "still running after SCHEDOP_shutdown %s", how);
        return;
    }
    TEST_ASSERT(false, "unknown shutdown=%s", how);
}

void test_main(void)
{
    char how[16] = "";
    if (!xen_test_start(&amd))
        return;
    if (rt_cmdline_value("shutdown", how, sizeof(how))) {
        shutdown_run(how);
        return;
    }
    shinfo = page_alloc();
    struct xen_add_to_physmap a = { .domid = DOMID_SELF, .space = XENMAPSPACE_shared_info,
                                    .gpfn = (u64)shinfo >> 12 };
    TEST_EQ(hc(__HYPERVISOR_memory_op, XENMEM_add_to_physmap, (u64)&a, 0), 0, "shared_info placed");
    memset((void *)shinfo->evtchn_pending, 0, sizeof(shinfo->evtchn_pending));
    memset((void *)shinfo->evtchn_mask, 0, sizeof(shinfo->evtchn_mask));
    exc_set_handler(CALLBACK_VECTOR, callback_handler);
    struct xen_hvm_param p = { .domid = DOMID_SELF, .index = HVM_PARAM_CALLBACK_IRQ,
                               .value = (u64)HVM_PARAM_CALLBACK_TYPE_VECTOR << 56 | CALLBACK_VECTOR };
    TEST_EQ(hc(__HYPERVISOR_hvm_op, HVMOP_set_param, (u64)&p, 0), 0, "callback vector");
    sti();
    udelay(10);
    upcalls = 0;
    test_runstate();
    test_sched_misc();
}
