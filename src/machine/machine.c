/* The machine: builds RAM, buses, devices and vCPUs; routes every event that leaves a
 * vCPU through cpu_intercept() to exactly one owner; runs the vCPUs round-robin. */
#include "machine/machine.h"

#include <stdint.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "boot/boot.h"
#include "dom0/pvconsole.h"
#include "dom0/xenstore.h"
#include "dom0/xenstore_ring.h"
#include "machine/opts.h"
#include "machine/xendev.h"
#include <xen/hvm/params.h>
#include "dev/dev.h"

#define APIC_PAGE_SIZE 4096
#define SLICE_INSNS 20000u
/* Real-time mode cuts the slices so that a round ends near the next timer deadline, at
 * the instruction rate measured over the last rounds: with whole slices a timer could
 * fire a round late, and a periodic tick (HPET, PIT, the RTC) would merge periods. */
#define MIN_SLICE_INSNS 100u
#define INITIAL_INSNS_PER_NS 0.02 /* 20 MIPS until the first rounds are measured */
/* A round whose host time exceeds the thread's CPU time by more than this lost the host
 * CPU meanwhile: guest time leaves the difference out (clock_exclude_host_time). Below
 * it, the difference is measurement noise. */
#define STEAL_THRESHOLD_NS 50000u
/* A PAUSE loop (PAUSEs at most PAUSE_LOOP_GAP instructions apart, as a spin-wait loop
 * issues them) of PAUSE_LOOP_WINDOW PAUSEs ends the vCPU's pass when another vCPU could
 * run: what it waits for can only come from elsewhere (cf. VMX pause-loop exiting). */
#define PAUSE_LOOP_GAP 64u
#define PAUSE_LOOP_WINDOW 16u

/* ---- event routing ---- */
/* A handled event; the vCPU leaves cpu_run() after the instruction if the machine stops
 * or another vCPU should run first (see machine_run). */
static enum intercept_result handled(const struct machine *m)
{
    return m->stop || m->end_pass || m->sleep_requested ? INTERCEPT_STOP : INTERCEPT_HANDLED;
}

/* Could a vCPU other than self run now? */
static bool other_vcpu_runnable(struct machine *m, int self)
{
    for (int i = 0; i < m->ncpus; i++)
        if (i != self && cpu_runnable(m->cpu[i]))
            return true;
    return false;
}

/* PAUSE: counts the vCPU's PAUSE loop; at PAUSE_LOOP_WINDOW its pass ends if another
 * vCPU could run, and it waits until some other vCPU has made progress. */
static enum intercept_result pause_loop(struct machine *m, struct cpu *c)
{
    struct vcpu_sched *s = &m->sched[c->id];
    if (c->icount - s->last_pause > PAUSE_LOOP_GAP)
        s->pause_run = 0;
    s->last_pause = c->icount;
    if (++s->pause_run < PAUSE_LOOP_WINDOW)
        return INTERCEPT_DEFAULT;
    s->pause_run = 0;
    if (m->ncpus == 1 || !other_vcpu_runnable(m, c->id))
        return INTERCEPT_DEFAULT;
    s->waiting = true;
    m->stat_pause_waits++;
    return INTERCEPT_STOP;
}

static bool lapic_msr(u32 index)
{
    return index == 0x1b || index == 0x6e0 || (index >= 0x800 && index <= 0x8ff);
}

static enum intercept_result route_event(struct cpu *c, struct cpu_event *ev, void *opaque)
{
    struct machine *m = opaque;
    struct lapic *apic = m->lapic[c->id];
    if (m->xen) /* as Xen at each VM exit */
        xen_maybe_deassert_callback(m->xen);
    switch (ev->kind) {
    case EV_IO:
        if (ev->u.io.write)
            bus_write(&m->io, ev->u.io.port, ev->u.io.size, ev->u.io.value);
        else
            ev->u.io.value = (u32)bus_read(&m->io, ev->u.io.port, ev->u.io.size);
        return handled(m);
    case EV_MMIO: {
        /* The APIC page is per vCPU: each one's accesses reach its own LAPIC. */
        u64 base = lapic_base(apic) & ~0xfffull;
        if (lapic_mmio_decoded(apic) && ev->u.mmio.gpa - base < APIC_PAGE_SIZE) {
            if (m->hyperv)
                hyperv_pv_eoi_sync(m->hyperv, c);
            if (ev->u.mmio.write)
                lapic_mmio_write(apic, ev->u.mmio.gpa - base, ev->u.mmio.size, ev->u.mmio.value);
            else
                ev->u.mmio.value = lapic_mmio_read(apic, ev->u.mmio.gpa - base, ev->u.mmio.size);
        } else if (ev->u.mmio.write) {
            bus_write(&m->mmio, ev->u.mmio.gpa, ev->u.mmio.size, ev->u.mmio.value);
        } else {
            ev->u.mmio.value = bus_read(&m->mmio, ev->u.mmio.gpa, ev->u.mmio.size);
        }
        return handled(m);
    }
    case EV_MSR_READ:
        if (m->hyperv && hyperv_msr_owned(m->hyperv, ev->u.msr.index))
            return hyperv_msr_read(m->hyperv, c, ev->u.msr.index, &ev->u.msr.value)
                       ? INTERCEPT_HANDLED : INTERCEPT_FAULT;
        if (m->xen && xen_msr_owned(m->xen, ev->u.msr.index))
            return xen_msr_read(m->xen, c, ev->u.msr.index, &ev->u.msr.value) ? INTERCEPT_HANDLED
                                                                             : INTERCEPT_FAULT;
        if (lapic_msr(ev->u.msr.index)) {
            if (m->hyperv) /* an EOI made through the VP assist page comes first */
                hyperv_pv_eoi_sync(m->hyperv, c);
            return lapic_msr_read(apic, ev->u.msr.index, &ev->u.msr.value) ? INTERCEPT_HANDLED
                                                                             : INTERCEPT_FAULT;
        }
        return INTERCEPT_FAULT;
    case EV_MSR_WRITE:
        if (m->hyperv && hyperv_msr_owned(m->hyperv, ev->u.msr.index))
            return hyperv_msr_write(m->hyperv, c, ev->u.msr.index, ev->u.msr.value) ? handled(m)
                                                                                  : INTERCEPT_FAULT;
        if (m->xen && xen_msr_owned(m->xen, ev->u.msr.index))
            return xen_msr_write(m->xen, c, ev->u.msr.index, ev->u.msr.value) ? handled(m)
                                                                            : INTERCEPT_FAULT;
        if (lapic_msr(ev->u.msr.index)) {
            if (m->hyperv)
                hyperv_pv_eoi_sync(m->hyperv, c);
            return lapic_msr_write(apic, ev->u.msr.index, ev->u.msr.value) ? handled(m)
                                                                             : INTERCEPT_FAULT;
        }
        return INTERCEPT_FAULT;
    case EV_CPUID: {
        /* The hypervisor interfaces own their leaves (Hyper-V's first, at 40000000h, with
         * Xen's moved to 40000100h); with the hypervisor bit hidden there are none. */
        u32 hv[4];
        if (m->model.fast.has[CF_HYPERVISOR] &&
            ((m->hyperv && hyperv_cpuid(m->hyperv, c, ev->u.cpuid.leaf, ev->u.cpuid.subleaf, hv)) ||
             (m->xen && xen_cpuid(m->xen, c, ev->u.cpuid.leaf, ev->u.cpuid.subleaf, hv)))) {
            ev->u.cpuid.eax = hv[0], ev->u.cpuid.ebx = hv[1];
            ev->u.cpuid.ecx = hv[2], ev->u.cpuid.edx = hv[3];
            return INTERCEPT_HANDLED;
        }
        /* The engine answers from the model with the APIC present; the APIC flag
         * follows this vCPU's APIC base MSR. */
        if (lapic_hw_enabled(apic))
            return INTERCEPT_DEFAULT;
        cpuid_apply_apic_enable(ev->u.cpuid.leaf, false, &ev->u.cpuid.edx);
        return INTERCEPT_HANDLED;
    }
    case EV_HYPERCALL:
        /* Hyper-V's, or with Xen on too those its hypercall page marks (EAX bit 31) */
        if (m->hyperv && hyperv_hypercall_owned(m->hyperv, c))
            return hyperv_hypercall(m->hyperv, c) ? handled(m) : INTERCEPT_DEFAULT;
        if (!m->xen)
            return INTERCEPT_DEFAULT; /* #UD */
        xen_hypercall(m->xen, c);
        return handled(m);
    case EV_CR_ACCESS:
        if (ev->u.cr.cr != 8)
            return INTERCEPT_DEFAULT;
        /* CR8 is the LAPIC's task priority */
        if (ev->u.cr.write)
            lapic_set_tpr(apic, (u8)(ev->u.cr.value & 0xf));
        else
            ev->u.cr.value = lapic_get_tpr(apic);
        return INTERCEPT_HANDLED;
    case EV_PAUSE:
        return pause_loop(m, c);
    case EV_PMI:
        lapic_pmi(apic);
        return INTERCEPT_HANDLED;
    case EV_TSC_WRITTEN:
        if (m->xen)
            xen_tsc_written(m->xen, c);
        if (m->hyperv)
            hyperv_tsc_written(m->hyperv, c);
        return INTERCEPT_HANDLED;
    case EV_SHUTDOWN:
        nestor_log("vCPU %d: triple fault, the guest is shut down", c->id);
        cpu_dump(c, stderr);
        machine_request_stop(m, NESTOR_EXIT_GUEST_ERROR);
        return INTERCEPT_STOP;
    case EV_UNSUPPORTED:
        if (!ev->u.unsupported.stop)
            return INTERCEPT_DEFAULT; /* the engine reports it and raises #UD */
        nestor_log("vCPU %d: the guest needs %s, which nestor does not support: stopping",
                   c->id, ev->u.unsupported.what);
        cpu_dump(c, stderr);
        machine_request_stop(m, NESTOR_EXIT_GUEST_ERROR);
        return INTERCEPT_STOP;
    default:
        return INTERCEPT_DEFAULT;
    }
}

/* The LAPIC decides; an ExtINT on LINT0 takes its vector from the 8259 PIC. */
static int intr_pending(struct cpu *c, void *opaque)
{
    struct machine *m = opaque;
    struct lapic *l = m->lapic[c->id];
    if (m->hyperv) /* an EOI made through the VP assist page, before priorities count */
        hyperv_pv_eoi_sync(m->hyperv, c);
    if (m->xen) {
        int v = xen_intr_pending(m->xen, c);
        if (v >= 0)
            return v;
    }
    if (m->pic && lapic_extint_pending(l) && pic_has_intr(m->pic))
        return pic_intr_peek(m->pic);
    return lapic_intr_pending(l);
}

static int intr_ack(struct cpu *c, void *opaque)
{
    struct machine *m = opaque;
    struct lapic *l = m->lapic[c->id];
    if (m->xen) {
        /* the callback vector needs no acknowledge: it stays while the upcall is pending */
        int v = xen_intr_pending(m->xen, c);
        if (v >= 0)
            return v;
    }
    if (m->pic && lapic_extint_pending(l) && pic_has_intr(m->pic)) {
        lapic_extint_ack(l);
        return pic_intr_ack(m->pic);
    }
    if (!m->hyperv)
        return lapic_intr_ack(l);
    int v = lapic_intr_ack(l);
    /* a SynIC auto-EOI vector leaves service as it is taken; an interrupt alone in
     * service may be ended through the VP assist page */
    if (v >= 16 && hyperv_auto_eoi(m->hyperv, c->id, (u8)v))
        lapic_isr_clear(l, (u8)v);
    else if (v >= 16)
        hyperv_intr_taken(m->hyperv, c, lapic_only_in_service(l, (u8)v));
    return v;
}

static u64 now_ns(struct cpu *c, void *opaque)
{
    (void)c;
    struct machine *m = opaque;
    return clock_now(&m->clock);
}

static const struct cpu_ops machine_cpu_ops = { route_event, intr_pending, intr_ack, now_ns };

static void control_event(struct machine *m, enum machine_event ev);

/* ---- what both hypervisor interfaces ask of the machine: kicks, the clock, timers ---- */
static void host_kick(void *opaque, int vcpu)
{
    machine_kick(opaque, vcpu);
}

static u64 host_now_ns(void *opaque)
{
    struct machine *m = opaque;
    return clock_now(&m->clock);
}

static int host_timer_new(void *opaque, void (*fn)(void *arg, u64 now_ns), void *arg)
{
    struct machine *m = opaque;
    return clock_timer_new(&m->clock, fn, arg);
}

static void host_timer_arm(void *opaque, int timer, u64 deadline_ns)
{
    struct machine *m = opaque;
    clock_timer_arm(&m->clock, timer, deadline_ns);
}

static void host_timer_disarm(void *opaque, int timer)
{
    struct machine *m = opaque;
    clock_timer_disarm(&m->clock, timer);
}

/* ---- what the Hyper-V interface asks of the machine (struct hyperv_host_ops) ---- */
static void hv_deliver_vector(void *opaque, int vcpu, u8 vector)
{
    struct machine *m = opaque;
    if (vcpu < 0 || vcpu >= m->ncpus)
        return;
    lapic_deliver(m->lapic[vcpu], vector, APIC_DM_FIXED, false);
    cpu_check_events(m->cpu[vcpu]);
    machine_kick(m, vcpu);
}

/* the synthetic APIC MSRs as the LAPIC's own registers: x2APIC's MSRs in x2APIC mode,
 * the xAPIC registers otherwise (ICR: the destination in the high half) */
static bool hv_apic_write(void *opaque, int vcpu, u32 reg, u64 value)
{
    struct machine *m = opaque;
    struct lapic *l = m->lapic[vcpu];
    if (!lapic_hw_enabled(l))
        return false;
    bool x2 = lapic_x2apic_mode(l);
    switch (reg) {
    case 0x40000070: /* EOI */
        return x2 ? lapic_msr_write(l, 0x80b, 0) : (lapic_mmio_write(l, 0xb0, 4, 0), true);
    case 0x40000071: /* ICR */
        if (x2)
            return lapic_msr_write(l, 0x830, value);
        lapic_mmio_write(l, 0x310, 4, value >> 32);
        lapic_mmio_write(l, 0x300, 4, (u32)value);
        return true;
    default: /* TPR */
        return x2 ? lapic_msr_write(l, 0x808, value) : (lapic_mmio_write(l, 0x80, 4, (u32)value), true);
    }
}

static bool hv_apic_read(void *opaque, int vcpu, u32 reg, u64 *value)
{
    struct machine *m = opaque;
    struct lapic *l = m->lapic[vcpu];
    if (!lapic_hw_enabled(l))
        return false;
    bool x2 = lapic_x2apic_mode(l);
    if (reg == 0x40000071) {
        if (x2)
            return lapic_msr_read(l, 0x830, value);
        *value = lapic_mmio_read(l, 0x300, 4) | lapic_mmio_read(l, 0x310, 4) << 32;
        return true;
    }
    if (x2)
        return lapic_msr_read(l, 0x808, value);
    *value = lapic_mmio_read(l, 0x80, 4);
    return true;
}

static void hv_flush_tlb(void *opaque, int vcpu)
{
    struct machine *m = opaque;
    if (vcpu >= 0 && vcpu < m->ncpus)
        tlb_flush_all(&m->cpu[vcpu]->tlb);
}

static void hv_reset(void *opaque)
{
    /* a reset is the end of the run, as the keyboard controller's (no firmware to rerun) */
    machine_request_stop(opaque, NESTOR_EXIT_OK);
}

static void hv_crashed(void *opaque, const u64 params[5])
{
    struct machine *m = opaque;
    char msg[256];
    hyperv_crash_format(params, msg, sizeof(msg));
    nestor_log("%s", msg);
    memcpy(m->panic_info, params, sizeof(m->panic_info));
    control_event(m, MACHINE_EV_GUEST_PANICKED);
    machine_request_stop(m, NESTOR_EXIT_GUEST_ERROR);
}

static const struct hyperv_host_ops machine_hyperv_ops = {
    hv_deliver_vector, hv_apic_write, hv_apic_read, hv_flush_tlb, host_kick, host_now_ns,
    host_timer_new, host_timer_arm, host_timer_disarm, hv_reset, hv_crashed,
};

/* ---- what the Xen interface asks of the machine (struct xen_host_ops) ---- */
static void drive_pic(struct machine *m, int irq);
static void drive_ioapic(struct machine *m, int pin);
/* The callback's GSI form is Xen's own line: it reaches the interrupt controllers
 * directly, never as a pirq (hvm_set_callback_irq_level) */
static void xen_set_gsi(void *opaque, int gsi, bool level)
{
    struct machine *m = opaque;
    if (gsi < 0 || gsi >= IOAPIC_PINS)
        return;
    m->xen_cb_lines = level ? m->xen_cb_lines | BIT(gsi) : m->xen_cb_lines & ~(u32)BIT(gsi);
    if (gsi < 16)
        drive_pic(m, gsi);
    drive_ioapic(m, gsi);
}

/* PCI INTx: the wire of that device's pin, routed as the platform routes it (and, as in
 * Xen's __hvm_pci_intx_assert, a pirq's if the guest mapped its GSI) */
static void xen_set_pci_intx(void *opaque, u8 devfn, int pin, bool level)
{
    struct machine *m = opaque;
    pci_set_intx(m->pci, devfn, pin, level);
}

/* A GSI was mapped to a pirq or unmapped: its I/O APIC input is driven again (held low
 * while the pirq has it); the level the interface passes is the one the machine's own
 * drivers give */
static void xen_set_ioapic_input(void *opaque, int gsi, bool level)
{
    (void)level;
    struct machine *m = opaque;
    if (gsi >= 0 && gsi < IOAPIC_PINS)
        drive_ioapic(m, gsi);
}

static void xen_deliver_vector(void *opaque, int vcpu, u8 vector)
{
    struct machine *m = opaque;
    if (vcpu < 0 || vcpu >= m->ncpus)
        return;
    lapic_inject(m->lapic[vcpu], vector);
    cpu_check_events(m->cpu[vcpu]);
    machine_kick(m, vcpu);
}


static void xen_stop(void *opaque, int status)
{
    machine_request_stop(opaque, status);
}

/* The guest-physical map changed (a page placed, moved, given back): no vCPU may keep
 * a translation to what was there (the code decoded from it is retired by guest_mem). */
static void flush_all_tlbs(void *opaque)
{
    struct machine *m = opaque;
    for (int i = 0; i < m->ncpus; i++)
        tlb_flush_all(&m->cpu[i]->tlb);
}

static int xen_map_page(void *opaque, u64 gpa, u8 *host, u32 *gen)
{
    struct machine *m = opaque;
    return mem_overlay_map(&m->mem, gpa, host, gen);
}

static void xen_unmap_page(void *opaque, u8 *host)
{
    struct machine *m = opaque;
    mem_overlay_unmap(&m->mem, host);
}

static const struct xen_host_ops machine_xen_ops = {
    xen_set_gsi, xen_set_pci_intx, xen_deliver_vector, host_kick, host_now_ns,
    host_timer_new, host_timer_arm, host_timer_disarm, xen_stop, xen_map_page, xen_unmap_page,
    xen_set_ioapic_input,
};

/* ---- interrupts between devices and CPUs ---- */
void machine_request_stop(struct machine *m, int status)
{
    if (!m->stop) {
        m->stop = true;
        m->exit_status = status;
    }
}

/* ISA IRQs go to both controllers, as on a PC; IRQ0 is wired to IOAPIC pin 2 (the
 * MADT's interrupt source override). GSIs 16-23 reach only the IOAPIC. PCI INTx adds
 * its own drivers to the IOAPIC's inputs 16-19 and, through the router, to 8259 inputs;
 * each input sees the OR of its drivers. A GSI that a Xen guest mapped to a pirq is
 * that pirq's event channel instead of its I/O APIC input (xen_gsi_set); the 8259 still
 * sees its ISA lines, and Xen's own callback line stays a line. */
static void drive_pic(struct machine *m, int irq)
{
    if (m->pic)
        pic_set_irq(m->pic, irq, ((m->irq_level | m->pci_isa_irqs | m->xen_cb_lines) >> irq) & 1);
}

static void drive_ioapic(struct machine *m, int pin)
{
    u32 from = pin == 2 ? BIT(0) | BIT(2) : pin == 0 ? 0 : BIT(pin);
    bool level = ((m->irq_level | m->pci_gsis) & from) != 0;
    if (m->xen && xen_gsi_set(m->xen, pin, level))
        level = false;
    level |= (m->xen_cb_lines >> pin) & 1;
    if (m->ioapic)
        ioapic_set_irq(m->ioapic, pin, level);
}

void machine_set_irq(struct machine *m, int irq, bool level)
{
    if (irq < 0 || irq >= IOAPIC_PINS)
        return;
    m->irq_level = level ? m->irq_level | BIT(irq) : m->irq_level & ~(u32)BIT(irq);
    if (irq < 16)
        drive_pic(m, irq);
    drive_ioapic(m, irq == 0 ? 2 : irq);
}

void machine_set_pci_lines(struct machine *m, u32 gsis, u16 isa_irqs)
{
    u32 gsi_change = m->pci_gsis ^ gsis;
    u16 isa_change = m->pci_isa_irqs ^ isa_irqs;
    m->pci_gsis = gsis;
    m->pci_isa_irqs = isa_irqs;
    for (int n = 0; n < IOAPIC_PINS; n++)
        if (gsi_change & BIT(n))
            drive_ioapic(m, n);
    for (int n = 0; n < 16; n++)
        if (isa_change & BIT(n))
            drive_pic(m, n);
}

void machine_kick(struct machine *m, int vcpu)
{
    if (m->running >= 0 && vcpu != m->running && !m->end_pass) {
        m->end_pass = true;
        m->stat_message_ends++;
    }
}

void machine_lapic_eoi(struct machine *m, int vcpu, u8 vector)
{
    if (m->hyperv)
        hyperv_eoi(m->hyperv, vcpu, vector);
}

void machine_eoi_broadcast(struct machine *m, u8 vector)
{
    if (m->ioapic)
        ioapic_eoi(m->ioapic, vector);
}

void machine_apic_send(struct machine *m, const struct apic_msg *msg)
{
    /* Lowest priority: one target, the matching LAPIC with the lowest arbitration
     * priority (the first such one on a tie). */
    int lowest = -1;
    if (msg->delivery == APIC_DM_LOWEST && !msg->shorthand) {
        for (int i = 0; i < m->ncpus; i++)
            if (lapic_match_dest(m->lapic[i], msg->dest, msg->logical) &&
                (lowest < 0 || lapic_arbitration_priority(m->lapic[i]) <
                                   lapic_arbitration_priority(m->lapic[lowest])))
                lowest = i;
        if (lowest < 0)
            return;
    }
    for (int i = 0; i < m->ncpus; i++) {
        if (lowest >= 0 && i != lowest)
            continue;
        /* A globally disabled APIC is as if absent (SDM 10.4.3): it takes no message,
         * INIT, SIPI and NMI included, even through a shorthand. */
        if (!lapic_hw_enabled(m->lapic[i]))
            continue;
        bool hit;
        switch (msg->shorthand) {
        case 1: hit = i == msg->src; break;                /* self */
        case 2: hit = true; break;                         /* all including self */
        case 3: hit = i != msg->src; break;                /* all excluding self */
        default: hit = lapic_match_dest(m->lapic[i], msg->dest, msg->logical); break;
        }
        if (!hit)
            continue;
        /* Another vCPU gets something to do: the sender's pass ends after this
         * instruction, so that the target runs next (machine_run). */
        machine_kick(m, i);
        struct cpu *c = m->cpu[i];
        switch (msg->delivery) {
        case APIC_DM_INIT:
            /* the vCPU then waits for a SIPI (the BSP too: nestor has no firmware
             * for it to restart into). Under Xen an INIT to a vCPU that never ran
             * changes nothing (vlapic_init_sipi_one: "nothing to do if the VCPU is
             * already reset"): what the guest set up for it beforehand, such as an
             * upcall vector already pending in its LAPIC, stays. */
            /* (an INIT that VMX blocked or turned into a VM exit resets nothing) */
            if (cpu_init_signal(c, false) && (!m->xen || m->started[i]))
                lapic_init_signal(m->lapic[i]);
            break;
        case APIC_DM_STARTUP:
            cpu_sipi(c, msg->vector);
            if (c->state == CPU_RUNNING)
                m->started[i] = true;
            break;
        case APIC_DM_NMI:
            cpu_nmi(c);
            break;
        default:
            lapic_deliver(m->lapic[i], msg->vector, msg->delivery, msg->level);
            break;
        }
    }
}

/* ---- -device ---- */
static int add_debugexit(struct machine *m, const struct opts *o)
{
    u64 base = 0x501, size = 2; /* QEMU's defaults */
    if (opts_num(o, "iobase", 0xffff, &base) || opts_num(o, "iosize", 0x10000, &size))
        return -1;
    return debugexit_create(m, (u16)base, (u16)size);
}

static int add_pc_testdev(struct machine *m, const struct opts *o)
{
    (void)o;
    if (m->pc_testdev) {
        nestor_log("-device pc-testdev: only one (its ports are fixed)");
        return -1;
    }
    m->pc_testdev = pc_testdev_create(m);
    return 0;
}

/* QEMU's PCI address property: "SLOT[.FUNCTION]" in hex. */
static int add_pci_testdev(struct machine *m, const struct opts *o)
{
    if (m->pci_testdev) {
        nestor_log("-device pci-testdev: nestor has at most one");
        return -1;
    }
    int slot = pci_free_slot(m->pci);
    const char *addr = opts_get(o, "addr");
    if (addr) {
        char *end;
        unsigned long s = strtoul(addr, &end, 16), fn = 0;
        if (end != addr && *end == '.')
            fn = strtoul(end + 1, &end, 16);
        if (end == addr || *end || s == 0 || s > 31 || fn != 0) {
            nestor_log("-device pci-testdev: addr=%s: a slot from 1 to 1f (function 0)", addr);
            return -1;
        }
        if (pci_config_read(m->pci, 0, PCI_DEVFN(s, 0), 0, 2) != 0xffff) {
            nestor_log("-device pci-testdev: PCI slot %lx is taken", s);
            return -1;
        }
        slot = (int)s;
    }
    if (slot < 0) {
        nestor_log("-device pci-testdev: no free PCI slot");
        return -1;
    }
    m->pci_testdev = pci_testdev_create(m, slot);
    return 0;
}

static int add_hyperv_testdev(struct machine *m, const struct opts *o)
{
    (void)o;
    if (!m->hyperv || !(m->hyperv_cfg.features & BIT(HV_FEAT_SYNIC))) {
        nestor_log("-device hyperv-testdev needs -cpu ...,hv-synic");
        return -1;
    }
    if (m->hyperv_testdev) {
        nestor_log("-device hyperv-testdev: only one (its port is fixed)");
        return -1;
    }
    m->hyperv_testdev = hyperv_testdev_create(m, m->hyperv);
    return m->hyperv_testdev ? 0 : -1;
}

static int add_hv_syndbg(struct machine *m, const struct opts *o)
{
    (void)m, (void)o;
    return 0; /* made with the Hyper-V interface */
}

static const struct device_type {
    const char *name;
    const char *props[8]; /* besides "id", which every device takes; NULL-terminated */
    int (*add)(struct machine *m, const struct opts *o);
} device_types[] = {
    { "isa-debug-exit", { "iobase", "iosize", NULL }, add_debugexit },
    { "pc-testdev", { NULL }, add_pc_testdev },
    { "pci-testdev", { "addr", NULL }, add_pci_testdev },
    { "hyperv-testdev", { NULL }, add_hyperv_testdev },
    /* the synthetic debugger's host end: the Hyper-V interface's (parse_cpu_option) */
    { "hv-syndbg", { "host_ip", "host_port", "use_hcalls", NULL }, add_hv_syndbg },
    /* Xen PV devices: their backends are domain 0's, made with xenstore (xendev.c) */
    { "xen-disk", { XENDEV_DISK_PROPS, NULL }, NULL },
    { "xen-net-device", { XENDEV_NET_PROPS, NULL }, NULL },
};

static int add_device(struct machine *m, const struct opts *o)
{
    const struct device_type *t = NULL;
    for (size_t i = 0; i < ARRAY_SIZE(device_types); i++)
        if (!strcmp(device_types[i].name, o->name))
            t = &device_types[i];
    if (!t) {
        nestor_log("-device %s: unknown device (nestor has isa-debug-exit, pc-testdev, "
                   "pci-testdev, hyperv-testdev, hv-syndbg, xen-disk, xen-net-device)", o->name);
        return -1;
    }
    if (opts_check_known(o, t->props))
        return -1;
    if (!t->add) {
        if (!m->xen) {
            nestor_log("-device %s: a Xen PV device needs -xen", o->name);
            return -1;
        }
        return 0; /* made once xenstore exists (xendev_create) */
    }
    return t->add(m, o);
}

/* The -device options; without an isa-debug-exit among them, nestor's own at 0xf4. */
static int add_devices(struct machine *m, const struct machine_config *cfg)
{
    bool debugexit = false;
    for (int i = 0; i < cfg->ndevices; i++) {
        struct opts o;
        if (opts_parse(&o, "-device", cfg->devices[i], true) || add_device(m, &o))
            return -1;
        debugexit |= !strcmp(o.name, "isa-debug-exit");
    }
    if (!debugexit && debugexit_create(m, DEBUGEXIT_DEFAULT_PORT, DEBUGEXIT_DEFAULT_SIZE))
        return -1;
    return 0;
}

/* ---- ACPI S3 ---- */
/* FACS fields (ACPI 6.x table 5-37) */
enum { FACS_WAKING_VECTOR = 12, FACS_X_WAKING_VECTOR = 24 };
#define MTRR_DEF_TYPE_FIRMWARE 0xc06 /* MTRRs enabled, default type write-back */

void machine_suspend(struct machine *m)
{
    if (!m->suspended)
        m->sleep_requested = true;
}

void machine_wake(struct machine *m)
{
    if (m->suspended || m->sleep_requested)
        m->wake_requested = true;
}

/* What firmware leaves a processor with when it hands over to the OS's waking vector
 * (ACPI 6.x 5.2.10, "Firmware Waking Vector"): caches on, interrupts off, and with the
 * 32-bit vector real mode at CS = vector >> 4, IP = vector & 0xf; with the
 * X_Firmware_Waking_Vector (when non-zero) 32-bit protected mode, paging off, flat
 * segments, EIP = the vector. The 64-bit environment is not offered (the FACS leaves
 * 64BIT_WAKE_SUPPORTED_F clear), so OSPM's 64BIT_WAKE_F is not looked at. */
static void start_at_waking_vector(struct machine *m, struct cpu *c)
{
    u32 vector = 0;
    u64 xvector = 0;
    if (mem_read_u32(&m->mem, m->acpi_facs + FACS_WAKING_VECTOR, &vector) < 0 ||
        mem_read_u64(&m->mem, m->acpi_facs + FACS_X_WAKING_VECTOR, &xvector) < 0)
        vector = 0, xvector = 0;
    c->cr0 = CR0_ET;
    if (xvector) {
        /* flat 4 GiB code (32-bit, execute/read, accessed) and data (read/write) */
        c->cr0 |= CR0_PE;
        for (int s = 0; s < 6; s++)
            cpu_set_seg(c, s, s == SEG_CS ? 0x08 : 0x10, 0, 0xffffffffu,
                        s == SEG_CS ? 0xc09b : 0xc093);
        c->rip = (u32)xvector;
    } else {
        /* a real-mode far jump to vector >> 4 : vector & 0xf (an address below 1 MiB) */
        u16 cs = (u16)(vector >> 4);
        cpu_set_seg(c, SEG_CS, cs, (u64)cs << 4, 0xffff, 0x9b);
        c->rip = vector & 0xf;
    }
    cpu_update_mode(c);
}

/* The machine loses power except for RAM and the resume well. */
static void power_down(struct machine *m)
{
    if (m->pic)
        pic_reset(m->pic);
    if (m->ioapic)
        ioapic_reset(m->ioapic);
    if (m->hpet)
        hpet_reset(m->hpet); /* before the PIT: it gives IRQ0 back to it */
    if (m->pit)
        pit_reset(m->pit);
    if (m->uart)
        uart_reset(m->uart);
    if (m->kbc)
        kbc_reset(m->kbc);
    for (int i = 0; i < m->ncpus; i++)
        if (m->lapic[i])
            lapic_reset(m->lapic[i]);
    if (m->acpi_pm)
        acpi_pm_sleep(m->acpi_pm);
}

/* Power comes back: the processors start from RESET, as after power-on (the TSC from 0,
 * the MTRRs as firmware restores them), the boot processor at the waking vector. */
static void power_up(struct machine *m)
{
    /* the EPC's keys do not survive a power cycle: every enclave is gone */
    if (m->sgx_epc)
        sgx_epc_reset(m->sgx_epc);
    for (int i = 0; i < m->ncpus; i++) {
        struct cpu *c = m->cpu[i];
        u64 icount = c->icount; /* nestor's count, not architectural state */
        cpu_reset(c);
        c->icount = icount;
        c->msr_mtrr_def_type = MTRR_DEF_TYPE_FIRMWARE;
        c->tsc_offset = -(s64)cpu_tsc(c);
        if (i == 0)
            start_at_waking_vector(m, c);
        else
            cpu_init_signal(c, false);
    }
    if (m->acpi_pm)
        acpi_pm_resume(m->acpi_pm);
}

void machine_power_transitions(struct machine *m)
{
    if (m->sleep_requested) {
        m->sleep_requested = false;
        m->suspended = true;
        power_down(m);
    }
    if (m->suspended && m->wake_requested) {
        m->suspended = m->wake_requested = false;
        power_up(m);
    }
}

static bool console_poll(struct machine *m, int timeout_ms);
static void control_poll(struct machine *m, int timeout_ms);
static void control_event(struct machine *m, enum machine_event ev);

/* Control clients that take input (a QMP or gdb connection can wake an idle machine). */
static int control_pollers(const struct machine *m)
{
    int n = 0;
    for (int i = 0; i < m->nctl; i++)
        n += m->ctl[i]->poll != NULL;
    return n;
}

/* The next virtual time something must happen: the machine's timers, and the vCPUs' own
 * (cpu_wake_deadline_ns: a halted L2's VMX-preemption timer). */
static u64 next_deadline(const struct machine *m)
{
    u64 d = clock_next_deadline(&m->clock);
    for (int i = 0; i < m->ncpus; i++) {
        u64 v = cpu_wake_deadline_ns(m->cpu[i]);
        if (v < d)
            d = v;
    }
    return d;
}

/* Nothing runs (every vCPU idle, or the machine suspended): time goes on to the next
 * timer, on the host's clock by waiting for it or for console input (a second at most:
 * the loop then looks again), with -icount by a jump. false: nothing can ever wake it. */
static bool wait_for_wakeup(struct machine *m)
{
    u64 deadline = next_deadline(m), now = clock_now(&m->clock);
    int pollers = control_pollers(m);
    if (deadline == CLOCK_NEVER && m->cfg.console_in_fd < 0 && !pollers && !xendev_can_wake(m))
        return false;
    if (deadline == CLOCK_NEVER) {
        /* with control clients, look at them at least every 50 ms */
        if (pollers)
            control_poll(m, 50);
        console_poll(m, pollers ? 0 : -1);
    } else if (m->clock.deterministic) {
        clock_advance_to(&m->clock, deadline);
        control_poll(m, 0);
        if (m->xendevs)
            console_poll(m, 0); /* the PV devices' host side goes on meanwhile */
    } else {
        u64 ms = deadline <= now ? 0 : (deadline - now + 999999) / 1000000;
        ms = ms < 1000 ? ms : 1000;
        if (pollers) {
            control_poll(m, (int)(ms < 50 ? ms : 50));
            console_poll(m, 0);
        } else {
            console_poll(m, (int)ms);
        }
    }
    clock_run_timers(&m->clock);
    return true;
}

/* Suspended: no vCPU runs until a wake event (an RTC alarm, the power button). */
static void wait_suspended(struct machine *m)
{
    if (!wait_for_wakeup(m)) {
        nestor_log("the machine is suspended (ACPI S3) and nothing can wake it: stopping");
        machine_request_stop(m, NESTOR_EXIT_GUEST_ERROR);
        return;
    }
    machine_power_transitions(m);
}

/* ---- state ---- */
#define F(x) STATE_FIELD(struct vcpu_sched, x)
static const struct state_field sched_fields[] = {
    F(ran), F(waiting), F(wait_mark), F(last_pause), F(pause_run),
};
#undef F
static const struct state_desc sched_desc = STATE_DESC("vcpu_sched", 1, struct vcpu_sched, sched_fields);
#define F(x) STATE_FIELD(struct machine_round, x)
static const struct state_field round_fields[] = {
    F(active), F(budget), F(pos), F(progress), F(pass_open), F(pass_start),
};
#undef F
static const struct state_desc round_desc = STATE_DESC("round", 1, struct machine_round, round_fields);
#define F(x) STATE_FIELD(struct machine, x)
#define N(x) STATE_NOT_STATE(struct machine, x)
static const struct state_field machine_fields[] = {
    N(cfg), N(mem), N(io), N(mmio), N(clock), N(model), N(cpu), N(lapic), N(ncpus), N(uart),
    N(fwcfg), N(pic), N(ioapic), N(pit), N(rtc), N(hpet), N(acpi_pm), N(pci),
    F(irq_level), F(pci_gsis), F(pci_isa_irqs), F(xen_cb_lines),
    N(kbc), N(pc_testdev), N(pci_testdev), N(xen), N(hyperv), N(sgx_epc) /* its own section, sgx.epc */, N(hyperv_cfg), N(hyperv_testdev), N(panic_info),
    N(xen_platform), N(xenstore), N(xenstore_ring), N(pvconsole), N(xendevs),
    STATE_STRUCT(struct machine, sched, sched_desc), F(started), N(running), N(end_pass), F(progress),
    N(stat_rounds), N(stat_runs), N(stat_pause_waits), N(stat_message_ends),
    N(stop), N(exit_status), N(powerdown_signal), N(powerdown_since), F(acpi_rsdp), F(booted_pvh), F(acpi_facs),
    F(sleep_requested), F(suspended), F(wake_requested), STATE_STRUCT(struct machine, round, round_desc), F(rounds),
    N(ctl), N(ctl_opaque), N(nctl), N(paused), N(stop_at), N(at_stop_point), N(debug_vcpu), N(state),
};
#undef F
#undef N

static int machine_post_load(void *obj, char *err, size_t errlen)
{
    struct machine *m = obj;
    if (m->round.pos < 0 || m->round.pos > m->ncpus || (m->round.pass_open && m->round.pos == m->ncpus) ||
        (m->round.pass_open && m->round.pass_start > m->cpu[m->round.pos]->icount)) {
        return nestor_err(err, errlen, "impossible scheduling state");
    }
    return 0;
}

static const struct state_desc machine_state_desc =
    STATE_DESC("machine", 1, struct machine, machine_fields, .post_load = machine_post_load);

/* Every component, in an order fixed by the configuration: the machine's own scheduling
 * state, the clock, the hypervisor interface and the frame map, then each vCPU with its
 * local APIC, then the devices. */
static void register_state(struct machine *m)
{
    struct state_registry *r = &m->state;
    state_register(r, &machine_state_desc, 0, m);
    clock_state_register(&m->clock, r);
    /* the hypervisor interface, then the frame map that holds its pages (before the vCPUs,
     * whose TLBs are checked against it) */
    if (m->xen)
        xen_state_register(m->xen, r);
    if (m->hyperv)
        hyperv_state_register(m->hyperv, r);
    if (m->xenstore)
        xenstore_state_register(m->xenstore, r);
    if (m->pvconsole)
        pvconsole_state_register(m->pvconsole, r);
    xendev_state_register(m, r);
    mem_state_register(&m->mem, r);
    if (m->sgx_epc)
        sgx_epc_state_register(m->sgx_epc, r);
    for (int i = 0; i < m->ncpus; i++) {
        cpu_state_register(m->cpu[i], r);
        lapic_state_register(m->lapic[i], r);
    }
    pic_state_register(m->pic, r);
    ioapic_state_register(m->ioapic, r);
    pit_state_register(m->pit, r);
    rtc_state_register(m->rtc, r);
    hpet_state_register(m->hpet, r);
    acpi_pm_state_register(m->acpi_pm, r);
    pci_state_register(m->pci, r);
    kbc_state_register(m->kbc, r);
    uart_state_register(m->uart, r);
    fwcfg_state_register(m->fwcfg, r);
    if (m->pc_testdev)
        pc_testdev_state_register(m->pc_testdev, r);
    if (m->pci_testdev)
        pci_testdev_state_register(m->pci_testdev, r);
    if (m->xen_platform)
        xen_platform_state_register(m->xen_platform, r);
    if (m->hyperv_testdev)
        hyperv_testdev_state_register(m->hyperv_testdev, r);
}

void machine_state_save(struct machine *m, struct state_buf *b)
{
    state_save_all(&m->state, b);
}

int machine_state_load(struct machine *m, const u8 *p, size_t len, char *err, size_t errlen)
{
    return state_load_all(&m->state, p, len, err, errlen);
}

/* ---- domain 0's services for a Xen guest ---- */
/* xenstore with its ring, then the PV console's (in libxl's order: the store's port is
 * the first the domain has, the console's the second), and what the toolstack writes for
 * the domain (once the boot protocol is known: libxl names the domain's type) */
static int create_dom0_services(struct machine *m, const struct machine_config *cfg)
{
    u32 pfn = 0, port = 0;
    if (!(m->xenstore = xenstore_create(cfg->xen.domid, &xenstore_default_limits)) ||
        !(m->xenstore_ring = xenstore_ring_create(m->xen, m->xenstore, &pfn, &port)) ||
        !(m->pvconsole = pvconsole_create(m->xen, cfg->console_out_fd))) {
        nestor_log("out of host memory creating xenstore and the PV console");
        return -1;
    }
    struct xenstore_domain d = {
        .name = "nestor", .pvh = m->booted_pvh, .ncpus = m->ncpus, .ram_bytes = cfg->ram_size,
        .store_port = port, .store_pfn = pfn,
        .console_port = (u32)xen_hvm_param(m->xen, HVM_PARAM_CONSOLE_EVTCHN),
        .console_pfn = (u32)xen_hvm_param(m->xen, HVM_PARAM_CONSOLE_PFN),
    };
    int rc = xenstore_write_domain(m->xenstore, &d);
    if (rc) {
        nestor_log("cannot write the domain's xenstore nodes: %s", strerror(-rc));
        return -1;
    }
    return xendev_create(m);
}

void machine_powerdown_async(struct machine *m)
{
    m->powerdown_signal = 1;
}

/* The run loop's turn for a signal's powerdown request */
static void powerdown_check(struct machine *m)
{
    if (m->powerdown_signal == 1) {
        m->powerdown_signal = 2;
        m->powerdown_since = clock_host_ns();
        nestor_log("asking the guest to power off (a second SIGTERM ends nestor at once)");
        machine_powerdown(m);
    } else if (m->powerdown_signal == 2 && clock_host_ns() - m->powerdown_since > 30000000000ull) {
        nestor_log("the guest did not power off within 30 s: ending it");
        machine_request_stop(m, NESTOR_EXIT_GUEST_ERROR);
    }
}

void machine_powerdown(struct machine *m)
{
    if (m->xenstore) {
        char path[64];
        snprintf(path, sizeof(path), "/local/domain/%u/control/shutdown", xenstore_domid(m->xenstore));
        xenstore_write(m->xenstore, path, "poweroff", 8);
        return;
    }
    acpi_pm_power_button(m->acpi_pm);
}

/* ---- construction ---- */
/* -cpu: the Hyper-V properties (hv-*) are the Hyper-V interface's, the rest the CPU
 * model's; -device hv-syndbg configures the interface's debugger. */
static int parse_cpu_option(struct machine *m, const struct machine_config *cfg, char *err, size_t errlen)
{
    const char *spec = cfg->cpu_spec ? cfg->cpu_spec : "max";
    char model[512] = "", item[256];
    struct hyperv_config *hv = &m->hyperv_cfg;
    bool first = true; /* the model's name */
    for (const char *p = spec; *p; first = false) {
        size_t n = strcspn(p, ",");
        if (n >= sizeof(item) || strlen(model) + n + 2 > sizeof(model)) {
            snprintf(err, errlen, "option string too long");
            return -1;
        }
        memcpy(item, p, n);
        item[n] = 0;
        p += n + (p[n] == ',');
        int r = first ? 0 : hyperv_parse_cpu_item(hv, item, err, errlen);
        if (r < 0)
            return -1;
        if (r == 0)
            snprintf(model + strlen(model), sizeof(model) - strlen(model), "%s%s",
                     model[0] ? "," : "", item);
    }
    if (hyperv_config_check(hv, err, errlen) < 0)
        return -1;
    for (int i = 0; i < cfg->ndevices; i++) {
        const char *d = cfg->devices[i];
        if (!strncmp(d, "hv-syndbg", 9) && (d[9] == 0 || d[9] == ',')) {
            if (hv->syndbg.enabled) {
                snprintf(err, errlen, "-device hv-syndbg: only one");
                return -1;
            }
            if (hyperv_parse_syndbg_device(hv, d[9] ? d + 10 : "", err, errlen) < 0)
                return -1;
            if (!(hv->features & BIT(HV_FEAT_SYNDBG))) {
                snprintf(err, errlen, "-device hv-syndbg needs -cpu ...,hv-syndbg");
                return -1;
            }
        }
    }
    if (cpuid_model_parse(&m->model, model, err, errlen) < 0)
        return -1;
    /* the enlightened VMCS is VMX's: hv-passthrough leaves it out without VMX */
    if ((hv->features & BIT(HV_FEAT_EVMCS)) && !cpuid_has(&m->model, "vmx")) {
        if (hv->evmcs_asked) {
            snprintf(err, errlen, "hv-evmcs needs VMX (the Intel vendor, with vmx in the model)");
            return -1;
        }
        hv->features &= ~BIT(HV_FEAT_EVMCS);
    }
    return 0;
}

/* Was the feature named on the -cpu string (as +name, name or name=on)? */
static bool cpu_spec_asks(const char *spec, const char *name)
{
    if (!spec)
        return false;
    size_t n = strlen(name);
    for (const char *p = strchr(spec, ','); p; p = strchr(p + 1, ',')) {
        const char *item = p + 1;
        if (*item == '+')
            item++;
        if (!strncmp(item, name, n) && (item[n] == ',' || !item[n] || !strncmp(item + n, "=on", 3)))
            return true;
    }
    return false;
}

/* SGX: the EPC sections go above RAM (from the first 1 GiB boundary past 4 GiB and the
 * end of RAM, as QEMU places them), reserved in the memory map; CPUID leaf 12h reports
 * them. Without an EPC the model has no SGX (asking for it is an error). */
static int layout_epc(struct machine *m, const struct machine_config *cfg, struct sgx_config *sc)
{
    *sc = cfg->sgx;
    if (sc->nsections == 0) {
        if (cpu_spec_asks(cfg->cpu_spec, "sgx")) {
            nestor_log("-cpu ...,+sgx: SGX needs an EPC (-object memory-backend-epc,id=M,size=S "
                       "-M sgx-epc.0.memdev=M, or -sgx-epc S)");
            return -1;
        }
        cpuid_disable_sgx(&m->model);
        return 0;
    }
    if (!cpuid_has(&m->model, "sgx")) {
        nestor_log("an EPC needs SGX in the CPU model (the Intel vendor: -cpu max, or +sgx)");
        return -1;
    }
    u64 ram_end = mem_ram_end(cfg->ram_size);
    u64 base = ram_end > MEM_4G ? ram_end : MEM_4G;
    base = (base + GiB - 1) & ~(GiB - 1);
    for (int k = 0; k < sc->nsections; k++) {
        u64 size = sc->section[k].size;
        if (size == 0 || (size & 0xfff)) {
            nestor_log("EPC section %d: its size (%llu bytes) must be a non-zero multiple of 4 KiB",
                       k, (unsigned long long)size);
            return -1;
        }
        sc->section[k].base = base;
        m->model.epc[k].base = base;
        m->model.epc[k].size = size;
        base += size;
    }
    m->model.nepc = sc->nsections;
    if (base - 1 > MASK(m->model.phys_bits)) {
        nestor_log("the EPC ends at %#llx, beyond the %u-bit physical address space",
                   (unsigned long long)base, m->model.phys_bits);
        return -1;
    }
    return 0;
}

int machine_create(struct machine *m, const struct machine_config *cfg)
{
    memset(m, 0, sizeof(*m));
    m->cfg = *cfg;
    char err[256];
    if (parse_cpu_option(m, cfg, err, sizeof(err)) < 0) {
        nestor_log("-cpu %s: %s", cfg->cpu_spec ? cfg->cpu_spec : "max", err);
        return NESTOR_EXIT_USAGE;
    }
    if (cfg->ncpus < 1 || cfg->ncpus > MACHINE_MAX_CPUS) {
        nestor_log("-smp %d: between 1 and %d vCPUs are supported", cfg->ncpus, MACHINE_MAX_CPUS);
        return NESTOR_EXIT_USAGE;
    }
    m->model.ncpus = cfg->ncpus;
    /* Every byte of RAM must be addressable within the guest's MAXPHYADDR. */
    u64 ram_end = mem_ram_end(cfg->ram_size);
    if (ram_end - 1 > MASK(m->model.phys_bits)) {
        nestor_log("-m %lluM places RAM up to %#llx, beyond the %u-bit physical address "
                   "space of -cpu phys-bits=%u", (unsigned long long)(cfg->ram_size / MiB),
                   (unsigned long long)ram_end, m->model.phys_bits, m->model.phys_bits);
        return NESTOR_EXIT_USAGE;
    }
    struct sgx_config sgx_cfg;
    if (layout_epc(m, cfg, &sgx_cfg) < 0)
        return NESTOR_EXIT_USAGE;
    if (mem_init(&m->mem, cfg->ram_size) < 0)
        return NESTOR_EXIT_USAGE;
    if (sgx_cfg.nsections) {
        sgx_cfg.deterministic = cfg->deterministic;
        if (!(m->sgx_epc = sgx_epc_create(&sgx_cfg))) {
            nestor_log("out of host memory creating the EPC");
            return NESTOR_EXIT_GUEST_ERROR;
        }
        sgx_epc_set_flush(m->sgx_epc, flush_all_tlbs, m);
        /* the sections are contiguous: one reserved range */
        const struct sgx_config *sc = &sgx_cfg;
        u64 first = sc->section[0].base;
        u64 end = sc->section[sc->nsections - 1].base + sc->section[sc->nsections - 1].size;
        mem_e820_mark(&m->mem, first, end - first, E820_RESERVED);
    }
    mem_set_map_listener(&m->mem, flush_all_tlbs, m);
    bus_init(&m->io, "io");
    bus_init(&m->mmio, "mmio");
    clock_init(&m->clock, cfg->deterministic);
    m->ncpus = cfg->ncpus;
    m->running = -1;
    for (int i = 0; i < m->ncpus; i++) {
        m->cpu[i] = calloc(1, sizeof(struct cpu));
        if (!m->cpu[i] || cpu_init(m->cpu[i], i, &m->mem, &m->model, &machine_cpu_ops, m) < 0) {
            nestor_log("out of host memory creating vCPU %d", i);
            return NESTOR_EXIT_GUEST_ERROR;
        }
        if (m->sgx_epc && sgx_cpu_init(m->cpu[i], m->sgx_epc) < 0) {
            nestor_log("out of host memory creating vCPU %d", i);
            return NESTOR_EXIT_GUEST_ERROR;
        }
        m->lapic[i] = lapic_create(m, m->cpu[i], i, i == 0);
        m->started[i] = i == 0;
        /* No firmware runs before the kernel, so nestor leaves the MTRRs the way a BIOS
         * would: enabled, default type write-back, the same on every CPU. */
        m->cpu[i]->msr_mtrr_def_type = MTRR_DEF_TYPE_FIRMWARE;
        if (i > 0)
            cpu_init_signal(m->cpu[i], false);
        if (cfg->trace)
            cpu_set_trace(m->cpu[i], cfg->trace, cfg->trace_insns, cfg->trace_events);
    }
    if (cfg->xen.enabled) {
        struct xen_host host = { .ops = &machine_xen_ops,
                                 .opaque = m,
                                 .amd = m->model.vendor == VENDOR_AMD,
                                 .rdtscp = m->model.fast.has[CF_RDTSCP],
                                 .tsc_stable = m->model.fast.has[CF_CONSTANT_TSC] &&
                                               m->model.fast.has[CF_NONSTOP_TSC],
                                 .tsc_khz = m->model.tsc_khz,
                                 .console_fd = cfg->console_out_fd,
                                 .cpus = m->cpu,
                                 .ncpus = m->ncpus,
                                 .nr_gsis = IOAPIC_PINS };
        /* the wall clock at virtual time 0, as the RTC starts (a fixed date with -icount) */
        if (cfg->rtc_base > 0) {
            host.boot_wall_ns = (u64)cfg->rtc_base * 1000000000ull;
        } else if (cfg->deterministic) {
            host.boot_wall_ns = 1767225600ull * 1000000000ull;
        } else {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            host.boot_wall_ns = (u64)ts.tv_sec * 1000000000ull + (u64)ts.tv_nsec;
        }
        /* with Hyper-V on too, its leaves come first and Xen's move up (viridian) */
        u32 base = hyperv_config_enabled(&m->hyperv_cfg) ? 0x40000100u : 0x40000000u;
        if (!(m->xen = xen_create(&cfg->xen, &host, base))) {
            nestor_log("out of host memory creating the Xen interface");
            return NESTOR_EXIT_GUEST_ERROR;
        }
        /* the rings of the console and xenstore are there, not RAM the guest may use (the
         * PVH memmap copies it) */
        u64 special_size, special = xen_special_region(&special_size);
        mem_e820_mark(&m->mem, special, special_size, E820_RESERVED);
    }
    if (hyperv_config_enabled(&m->hyperv_cfg)) {
        struct hyperv_host host = { .ops = &machine_hyperv_ops,
                                    .opaque = m,
                                    .amd = m->model.vendor == VENDOR_AMD,
                                    .xen_too = m->xen != NULL,
                                    .tsc_khz = m->model.tsc_khz,
                                    .apic_khz = m->model.bus_khz,
                                    .cpus = m->cpu,
                                    .ncpus = m->ncpus };
        if (!(m->hyperv = hyperv_create(&m->hyperv_cfg, &host))) {
            nestor_log("cannot create the Hyper-V interface (out of host memory, or the "
                       "synthetic debugger's host end)");
            return NESTOR_EXIT_USAGE;
        }
    }
    m->io.report_unowned = m->mmio.report_unowned = cfg->trace && cfg->trace_events;
    m->pic = pic_create(m);
    m->ioapic = ioapic_create(m);
    m->pit = pit_create(m);
    /* the RTC starts at the host's date, or at a fixed one when runs must repeat */
    m->rtc = rtc_create(m, cfg->rtc_base > 0 ? (time_t)cfg->rtc_base
                           : cfg->deterministic ? (time_t)1767225600 /* 2026-01-01 */ : time(NULL));
    m->hpet = hpet_create(m, m->pit, m->rtc);
    m->acpi_pm = acpi_pm_create(m);
    m->pci = pci_create(m);
    m->kbc = kbc_create(m);
    m->uart = uart_create(m, 0x3f8, 4, cfg->console_in_fd, cfg->console_out_fd);
    m->fwcfg = fwcfg_create(m);
    if (add_devices(m, cfg) || xendev_check_options(m))
        return NESTOR_EXIT_USAGE;
    if (m->xen && cfg->xen.platform)
        m->xen_platform = xen_platform_create(m, cfg->console_out_fd);
    /* firmware's PCI interrupt routing, once the devices are on the bus */
    pic_set_elcr(m->pic, pci_firmware_irq_setup(m->pci));
    /* the tables describe the devices above, so they come last */
    m->acpi_rsdp = acpi_build(m);
    if (cfg->kernel) {
        int r = boot_load_kernel(m, cfg->kernel, cfg->initrd, cfg->append);
        if (r)
            return r;
    }
    /* Xen gives a PVH domain no device model, hence no platform device */
    if (m->xen && m->booted_pvh)
        xen_set_pvh(m->xen);
    if (m->xen_platform && m->booted_pvh) {
        xen_platform_remove(m->xen_platform);
        m->xen_platform = NULL;
    }
    if (m->xen && create_dom0_services(m, cfg))
        return m->xendevs ? NESTOR_EXIT_USAGE : NESTOR_EXIT_GUEST_ERROR;
    register_state(m);
    return 0;
}

void machine_destroy(struct machine *m)
{
    state_registry_free(&m->state);
    xendev_destroy(m);
    hyperv_testdev_destroy(m->hyperv_testdev);
    m->hyperv_testdev = NULL;
    hyperv_destroy(m->hyperv);
    m->hyperv = NULL;
    if (m->xen)
        xen_destroy(m->xen);
    xenstore_ring_destroy(m->xenstore_ring);
    xenstore_destroy(m->xenstore);
    pvconsole_destroy(m->pvconsole);
    m->xenstore_ring = NULL;
    m->xenstore = NULL;
    m->pvconsole = NULL;
    for (int i = 0; i < m->ncpus; i++) {
        if (m->lapic[i])
            lapic_destroy(m->lapic[i]);
        if (m->cpu[i]) {
            cpu_destroy(m->cpu[i]);
            free(m->cpu[i]);
        }
    }
    sgx_epc_destroy(m->sgx_epc);
    m->sgx_epc = NULL;
    if (m->uart)
        uart_destroy(m->uart);
    if (m->kbc)
        kbc_destroy(m->kbc);
    if (m->pci)
        pci_destroy(m->pci);
    if (m->pc_testdev)
        pc_testdev_destroy(m->pc_testdev);
    if (m->pci_testdev)
        pci_testdev_destroy(m->pci_testdev);
    if (m->xen_platform)
        xen_platform_destroy(m->xen_platform);
    if (m->acpi_pm)
        acpi_pm_destroy(m->acpi_pm);
    if (m->hpet)
        hpet_destroy(m->hpet);
    if (m->rtc)
        rtc_destroy(m->rtc);
    if (m->pit)
        pit_destroy(m->pit);
    if (m->ioapic)
        ioapic_destroy(m->ioapic);
    if (m->pic)
        pic_destroy(m->pic);
    if (m->fwcfg)
        fwcfg_destroy(m->fwcfg);
    mem_destroy(&m->mem);
}

/* ---- console input ---- */
static void host_sleep_ms(int ms)
{
    if (ms > 0) {
        struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
        nanosleep(&ts, NULL);
    }
}

/* Waits up to timeout_ms (-1: until something happens) for console input or for a PV
 * device's finished I/O, and takes them: what the console has (when a console can take
 * it), the backends' completions. Returns false at the console's EOF. */
#define HOST_POLL_FDS 256
static bool console_poll(struct machine *m, int timeout_ms)
{
    struct pollfd p[HOST_POLL_FDS];
    int fd = m->cfg.console_in_fd, n = 0;
    /* input waits until a console can take it: the serial port, or a Xen guest's PV
     * console (console=hvc0: nobody reads the serial port, whose FIFO stays full) */
    bool console = fd >= 0 && m->uart &&
                   (uart_can_receive(m->uart) || (m->pvconsole && pvconsole_input_room(m->pvconsole)));
    if (console)
        p[n++] = (struct pollfd){ fd, POLLIN, 0 };
    int devs = xendev_pollfds(m, p + n, HOST_POLL_FDS - n, &timeout_ms);
    n += devs;
    int r;
    if (n == 0) {
        host_sleep_ms(timeout_ms);
        r = 0;
    } else {
        r = poll(p, (nfds_t)n, timeout_ms);
        if (r < 0)
            for (int i = 0; i < n; i++)
                p[i].revents = 0; /* EINTR: nothing is ready */
    }
    if (m->xendevs)
        xendev_dispatch(m, p + (console ? 1 : 0), devs);
    if (!console)
        return fd >= 0 && m->uart;
    if (r <= 0 || !(p[0].revents & (POLLIN | POLLHUP | POLLERR)))
        return true;
    /* the console is readable */
    u8 buf[16];
    ssize_t got = read(fd, buf, sizeof(buf));
    if (got == 0 || (got < 0 && errno != EAGAIN && errno != EINTR)) {
        m->cfg.console_in_fd = -1; /* EOF: no more input */
        return false;
    }
    size_t len = got > 0 ? (size_t)got : 0;
    if (len && m->cfg.console_filter) {
        enum console_action action = CONSOLE_NONE;
        len = m->cfg.console_filter(m->cfg.console_opaque, buf, len, &action);
        if (action == CONSOLE_QUIT)
            machine_request_stop(m, 0);
        else if (action == CONSOLE_POWERDOWN)
            machine_powerdown(m);
    }
    if (len) {
        /* the serial port and, for a Xen guest, its PV console (hvc0) both get it, each as
         * much as it has room for */
        if (uart_can_receive(m->uart))
            uart_receive(m->uart, buf, len);
        if (m->pvconsole)
            pvconsole_input(m->pvconsole, buf, len);
    }
    return true;
}

/* ---- run loop ---- */
static u64 thread_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (u64)ts.tv_sec * 1000000000ull + (u64)ts.tv_nsec;
}

static void print_stats(const struct machine *m, u64 host_ns)
{
    u64 insns = 0, blocks = 0, flushes = 0;
    for (int i = 0; i < m->ncpus; i++) {
        insns += m->cpu[i]->icount;
        struct cpu_block_stats b = cpu_block_stats(m->cpu[i]);
        blocks += b.decoded;
        flushes += b.flushes;
    }
    double secs = (double)host_ns / 1e9;
    fprintf(stderr, "nestor: stats: %llu instructions retired in %.3f s: %.1f MIPS\n",
            (unsigned long long)insns, secs, secs > 0 ? (double)insns / secs / 1e6 : 0.0);
    fprintf(stderr, "nestor: stats: %llu blocks decoded, decode cache dropped %llu times\n",
            (unsigned long long)blocks, (unsigned long long)flushes);
    if (m->ncpus > 1)
        fprintf(stderr, "nestor: stats: %llu rounds, %llu vCPU runs; passes ended by %llu PAUSE "
                        "loops, %llu interrupt messages\n",
                (unsigned long long)m->stat_rounds, (unsigned long long)m->stat_runs,
                (unsigned long long)m->stat_pause_waits, (unsigned long long)m->stat_message_ends);
}

/* One round: every vCPU may retire up to budget instructions, in passes over the vCPUs
 * in order. A vCPU's pass ends when its budget is used, when it halts, right after it
 * gave another vCPU something to do (an interrupt message: that one runs next instead
 * of after the rest of the sender's slice), or in a PAUSE loop while another vCPU could
 * run: then it waits, and gets another pass only once some other vCPU has retired
 * instructions. Passes go on while they retire instructions. Virtual time advances by
 * the most any vCPU retired (they ran side by side), so a vCPU that gives up the rest of
 * its slice loses no guest time, and a spin-wait handshake between vCPUs costs each side
 * a few loop iterations per step instead of a slice. Every decision depends only on the
 * instructions executed: -icount runs repeat exactly. */
static void run_round(struct machine *m, u64 budget)
{
    struct machine_round *rd = &m->round;
    if (!rd->active) {
        for (int i = 0; i < m->ncpus; i++) {
            m->sched[i].ran = 0;
            m->sched[i].waiting = false;
        }
        m->stat_rounds++;
        *rd = (struct machine_round){ .active = true, .budget = budget, .pos = 0, .progress = false };
    }
    budget = rd->budget;
    while (!m->stop && !m->sleep_requested && !m->paused) {
        if (rd->pos == m->ncpus) {
            if (!rd->progress)
                break;
            rd->progress = false;
            rd->pos = 0;
        }
        int i = rd->pos;
        struct vcpu_sched *s = &m->sched[i];
        struct cpu *c = m->cpu[i];
        bool opening = !rd->pass_open;
        if (!rd->pass_open) {
            if (s->ran >= budget || (s->waiting && s->wait_mark == m->progress)) {
                rd->pos++;
                continue;
            }
            s->waiting = false;
            m->stat_runs++;
            rd->pass_open = true;
            rd->pass_start = c->icount;
        }
        /* A stop point (-save-at, machine_stop_at) cuts the pass at an exact count of
         * instructions retired by the whole machine; the pass goes on from there when
         * the run continues, in this process or in the one the state is restored in. */
        u64 left = budget - s->ran - (c->icount - rd->pass_start);
        bool cut = false;
        if (m->stop_at) {
            u64 total = machine_icount(m);
            if (total >= m->stop_at) {
                m->at_stop_point = true;
                return;
            }
            if (m->stop_at - total < left) {
                left = m->stop_at - total;
                cut = true;
            }
        }
        m->running = i;
        m->end_pass = false;
        /* Xen's time and runstate areas are written where a pass begins and ends, not
         * where a stop point cuts it: a run cut there and continued (here or restored
         * elsewhere) writes them where an uncut run does */
        if (m->xen && opening)
            xen_vcpu_resume(m->xen, c);
        if (m->hyperv && opening)
            hyperv_vcpu_resume(m->hyperv, c);
        u64 before = c->icount;
        enum cpu_stop_reason r = cpu_run(c, left);
        m->running = -1;
        bool pass_over = !(cut && r == STOP_BUDGET && c->icount - before == left && !m->end_pass);
        if (m->xen && pass_over)
            xen_vcpu_ran(m->xen, c);
        if (m->hyperv && pass_over)
            hyperv_vcpu_ran(m->hyperv, c);
        m->end_pass = false;
        if (r == STOP_SHUTDOWN)
            machine_request_stop(m, NESTOR_EXIT_GUEST_ERROR);
        if (unlikely(c->host_stop)) {
            /* the host debugger's breakpoint or watchpoint: the machine stops here */
            m->debug_vcpu = i;
            machine_pause(m);
            control_event(m, MACHINE_EV_DEBUG);
        }
        if (!pass_over)
            continue; /* at the stop point: the check above returns */
        u64 ran = c->icount - rd->pass_start;
        rd->pass_open = false;
        s->ran += ran;
        if (ran) {
            m->progress++;
            rd->progress = true;
        }
        s->wait_mark = m->progress;
        rd->pos++;
    }
    rd->active = false;
}

u64 machine_icount(const struct machine *m)
{
    u64 n = 0;
    for (int i = 0; i < m->ncpus; i++)
        n += m->cpu[i]->icount;
    return n;
}

/* The control clients: each hears every event; a wait is spent in the first client's
 * poll (the others look without waiting), or asleep when there is none. */
static void control_event(struct machine *m, enum machine_event ev)
{
    for (int i = 0; i < m->nctl; i++)
        if (m->ctl[i]->event)
            m->ctl[i]->event(m->ctl_opaque[i], ev);
}

static void control_poll(struct machine *m, int timeout_ms)
{
    bool waited = false;
    for (int i = 0; i < m->nctl; i++)
        if (m->ctl[i]->poll) {
            m->ctl[i]->poll(m->ctl_opaque[i], waited ? 0 : timeout_ms);
            waited = true;
        }
    if (!waited)
        host_sleep_ms(timeout_ms);
}

/* Paused: no vCPU runs and virtual time stands still; the control plane is served. */
static void wait_paused(struct machine *m)
{
    u64 frozen = clock_now(&m->clock);
    while (m->paused && !m->stop) {
        control_poll(m, 100);
        if (m->powerdown_signal)
            powerdown_check(m);
    }
    clock_set_now(&m->clock, frozen);
}

int machine_run(struct machine *m)
{
    u64 start_ns = clock_host_ns();
    double insns_per_ns = INITIAL_INSNS_PER_NS; /* real-time mode: all vCPUs together */
    int running = m->ncpus;                     /* vCPUs that did not idle last round */
    while (!m->stop) {
        if (m->powerdown_signal)
            powerdown_check(m);
        if (m->paused) {
            wait_paused(m);
            continue;
        }
        if (m->suspended) {
            wait_suspended(m);
            continue;
        }
        u64 now = clock_now(&m->clock);
        u64 deadline = next_deadline(m);
        u64 budget = SLICE_INSNS;
        /* -max-insns stops vCPU 0 exactly at the limit */
        if (m->cfg.max_insns) {
            u64 done = m->cpu[0]->icount;
            u64 left = m->cfg.max_insns > done ? m->cfg.max_insns - done : 0;
            if (left < budget)
                budget = left ? left : 1;
        }
        if (deadline != CLOCK_NEVER) {
            u64 ns = deadline > now ? deadline - now : 0;
            if (m->clock.deterministic) {
                u64 insns = ns * 1000 / m->clock.ns_per_kinsn;
                budget = insns < 1 ? 1 : insns < budget ? insns : budget;
            } else {
                double insns = (double)ns * insns_per_ns / (running > 0 ? running : 1);
                budget = insns < MIN_SLICE_INSNS ? MIN_SLICE_INSNS
                         : insns < (double)budget ? (u64)insns : budget;
            }
        }
        u64 most = 0, total = 0;
        bool real_time = !m->clock.deterministic;
        u64 round_host = real_time ? clock_host_ns() : 0;
        u64 round_cpu = real_time ? thread_cpu_ns() : 0;
        run_round(m, budget);
        /* the PV devices' finished I/O answered before anyone decides the vCPUs idle */
        xendev_poll(m);
        if (m->paused && m->round.active)
            continue; /* paused inside the round (a debugger stop): it goes on later */
        if (m->at_stop_point) {
            /* the control plane acts on the machine at exactly this instruction */
            m->at_stop_point = false;
            m->stop_at = 0;
            control_event(m, MACHINE_EV_STOP_POINT);
            continue;
        }
        bool all_idle = true;
        running = 0;
        for (int i = 0; i < m->ncpus; i++) {
            u64 ran = m->sched[i].ran;
            total += ran;
            if (ran > most)
                most = ran;
            if (ran)
                running++;
            if (cpu_runnable(m->cpu[i]))
                all_idle = false;
        }
        /* A runnable vCPU retires instructions in its pass; a round without any (a
         * wake-up the CPU then refused) waits like an idle one rather than spin. */
        if (total == 0)
            all_idle = true;
        if (real_time) {
            u64 host = clock_host_ns() - round_host, cpu = thread_cpu_ns() - round_cpu;
            if (host > cpu + STEAL_THRESHOLD_NS)
                clock_exclude_host_time(&m->clock, host - cpu);
            /* the rate per CPU nanosecond (guest time leaves the rest out), as a moving
             * average over about eight rounds */
            if (total >= MIN_SLICE_INSNS && cpu > 0)
                insns_per_ns += ((double)total / (double)cpu - insns_per_ns) / 8;
        }
        clock_advance_insns(&m->clock, most);
        if (m->cfg.max_insns && m->cpu[0]->icount >= m->cfg.max_insns) {
            nestor_log("stopping after %llu instructions (-max-insns)",
                       (unsigned long long)m->cpu[0]->icount);
            machine_request_stop(m, NESTOR_EXIT_GUEST_ERROR);
            break;
        }
        /* a timer that fires now may wake a halted vCPU: run another round first */
        if (clock_run_timers(&m->clock))
            all_idle = false;
        if (m->stop)
            break;
        if (m->sleep_requested) {
            machine_power_transitions(m);
            continue;
        }
        if (all_idle && !wait_for_wakeup(m)) {
            nestor_log("every vCPU is halted and nothing can wake them: stopping");
            for (int i = 0; i < m->ncpus; i++)
                if (m->cpu[i]->state == CPU_HALTED)
                    cpu_dump(m->cpu[i], stderr);
            machine_request_stop(m, NESTOR_EXIT_GUEST_ERROR);
            break;
        }
        if (!all_idle && (++m->rounds & 15) == 0) {
            console_poll(m, 0);
            control_poll(m, 0);
        }
    }
    control_event(m, MACHINE_EV_SHUTDOWN);
    if (m->cfg.stats)
        print_stats(m, clock_host_ns() - start_ns);
    return m->exit_status;
}

void machine_set_control(struct machine *m, const struct machine_control_ops *ops, void *opaque)
{
    if (m->nctl == MACHINE_MAX_CONTROLS)
        nestor_panic("too many control clients");
    m->ctl[m->nctl] = ops;
    m->ctl_opaque[m->nctl++] = opaque;
}

void machine_pause(struct machine *m)
{
    if (!m->paused) {
        m->paused = true;
        control_event(m, MACHINE_EV_STOP);
    }
}

void machine_resume(struct machine *m)
{
    if (m->paused) {
        m->paused = false;
        control_event(m, MACHINE_EV_RESUME);
    }
}

int machine_dirty_log_start(struct machine *m)
{
    if (mem_dirty_log_start(&m->mem) < 0)
        return -1;
    /* writes through translations the TLBs already hold must fill again to be seen */
    for (int i = 0; i < m->ncpus; i++)
        tlb_drop_all_writes(&m->cpu[i]->tlb);
    return 0;
}

void machine_dirty_log_take(struct machine *m, u8 *out)
{
    mem_dirty_log_take(&m->mem, out);
    for (int i = 0; i < m->ncpus; i++)
        tlb_drop_all_writes(&m->cpu[i]->tlb);
}

void machine_dirty_log_stop(struct machine *m)
{
    mem_dirty_log_stop(&m->mem);
}

void machine_stop_at(struct machine *m, u64 icount)
{
    m->stop_at = icount;
}
