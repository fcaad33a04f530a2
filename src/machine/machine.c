/* The machine: builds RAM, buses, devices and vCPUs; routes every event that leaves a
 * vCPU through cpu_intercept() to exactly one owner; runs the vCPUs round-robin. */
#include "machine/machine.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "boot/boot.h"
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

/* ---- event routing ---- */
static bool lapic_msr(u32 index)
{
    return index == 0x1b || index == 0x6e0 || (index >= 0x800 && index <= 0x8ff);
}

static enum intercept_result route_event(struct cpu *c, struct cpu_event *ev, void *opaque)
{
    struct machine *m = opaque;
    struct lapic *apic = m->lapic[c->id];
    switch (ev->kind) {
    case EV_IO:
        if (ev->u.io.write)
            bus_write(&m->io, ev->u.io.port, ev->u.io.size, ev->u.io.value);
        else
            ev->u.io.value = (u32)bus_read(&m->io, ev->u.io.port, ev->u.io.size);
        return m->stop ? INTERCEPT_STOP : INTERCEPT_HANDLED;
    case EV_MMIO: {
        u64 base = lapic_base(apic) & ~0xfffull;
        if (lapic_hw_enabled(apic) && ev->u.mmio.gpa - base < APIC_PAGE_SIZE) {
            if (ev->u.mmio.write)
                lapic_mmio_write(apic, ev->u.mmio.gpa - base, ev->u.mmio.size, ev->u.mmio.value);
            else
                ev->u.mmio.value = lapic_mmio_read(apic, ev->u.mmio.gpa - base, ev->u.mmio.size);
        } else if (ev->u.mmio.write) {
            bus_write(&m->mmio, ev->u.mmio.gpa, ev->u.mmio.size, ev->u.mmio.value);
        } else {
            ev->u.mmio.value = bus_read(&m->mmio, ev->u.mmio.gpa, ev->u.mmio.size);
        }
        return m->stop ? INTERCEPT_STOP : INTERCEPT_HANDLED;
    }
    case EV_MSR_READ:
        if (lapic_msr(ev->u.msr.index))
            return lapic_msr_read(apic, ev->u.msr.index, &ev->u.msr.value) ? INTERCEPT_HANDLED
                                                                             : INTERCEPT_FAULT;
        return INTERCEPT_FAULT;
    case EV_MSR_WRITE:
        if (lapic_msr(ev->u.msr.index))
            return lapic_msr_write(apic, ev->u.msr.index, ev->u.msr.value) ? INTERCEPT_HANDLED
                                                                             : INTERCEPT_FAULT;
        return INTERCEPT_FAULT;
    case EV_CR_ACCESS:
        if (ev->u.cr.cr != 8)
            return INTERCEPT_DEFAULT;
        /* CR8 is the LAPIC's task priority */
        if (ev->u.cr.write)
            lapic_set_tpr(apic, (u8)(ev->u.cr.value & 0xf));
        else
            ev->u.cr.value = lapic_get_tpr(apic);
        return INTERCEPT_HANDLED;
    case EV_PMI:
        lapic_pmi(apic);
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
    if (m->pic && lapic_extint_pending(l) && pic_has_intr(m->pic))
        return pic_intr_peek(m->pic);
    return lapic_intr_pending(l);
}

static int intr_ack(struct cpu *c, void *opaque)
{
    struct machine *m = opaque;
    struct lapic *l = m->lapic[c->id];
    if (m->pic && lapic_extint_pending(l) && pic_has_intr(m->pic)) {
        lapic_extint_ack(l);
        return pic_intr_ack(m->pic);
    }
    return lapic_intr_ack(l);
}

static u64 now_ns(struct cpu *c, void *opaque)
{
    (void)c;
    struct machine *m = opaque;
    return clock_now(&m->clock);
}

static const struct cpu_ops machine_cpu_ops = { route_event, intr_pending, intr_ack, now_ns };

/* ---- interrupts between devices and CPUs ---- */
void machine_request_stop(struct machine *m, int status)
{
    if (!m->stop) {
        m->stop = true;
        m->exit_status = status;
    }
}

void machine_set_irq(struct machine *m, int irq, bool level)
{
    /* ISA IRQs go to both controllers, as on a PC; IRQ0 is wired to IOAPIC pin 2 (the
     * MADT's interrupt source override). PCI GSIs 16-23 reach only the IOAPIC. */
    if (irq < 16 && m->pic)
        pic_set_irq(m->pic, irq, level);
    if (m->ioapic && irq < IOAPIC_PINS)
        ioapic_set_irq(m->ioapic, irq == 0 ? 2 : irq, level);
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
        bool hit;
        switch (msg->shorthand) {
        case 1: hit = i == msg->src; break;                /* self */
        case 2: hit = true; break;                         /* all including self */
        case 3: hit = i != msg->src; break;                /* all excluding self */
        default: hit = lapic_match_dest(m->lapic[i], msg->dest, msg->logical); break;
        }
        if (!hit)
            continue;
        struct cpu *c = m->cpu[i];
        switch (msg->delivery) {
        case APIC_DM_INIT:
            /* the vCPU then waits for a SIPI (the BSP too: nestor has no firmware
             * for it to restart into) */
            cpu_init_signal(c, false);
            lapic_init_signal(m->lapic[i]);
            break;
        case APIC_DM_STARTUP:
            cpu_sipi(c, msg->vector);
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

/* ---- construction ---- */
int machine_create(struct machine *m, const struct machine_config *cfg)
{
    memset(m, 0, sizeof(*m));
    m->cfg = *cfg;
    char err[256];
    if (cpuid_model_parse(&m->model, cfg->cpu_spec ? cfg->cpu_spec : "max", err, sizeof(err)) < 0) {
        nestor_log("-cpu %s: %s", cfg->cpu_spec ? cfg->cpu_spec : "max", err);
        return NESTOR_EXIT_USAGE;
    }
    if (cfg->ncpus < 1 || cfg->ncpus > MACHINE_MAX_CPUS) {
        nestor_log("-smp %d: between 1 and %d vCPUs are supported", cfg->ncpus, MACHINE_MAX_CPUS);
        return NESTOR_EXIT_USAGE;
    }
    m->model.ncpus = cfg->ncpus;
    if (mem_init(&m->mem, cfg->ram_size) < 0)
        return NESTOR_EXIT_USAGE;
    bus_init(&m->io, "io");
    bus_init(&m->mmio, "mmio");
    clock_init(&m->clock, cfg->deterministic);
    m->ncpus = cfg->ncpus;
    for (int i = 0; i < m->ncpus; i++) {
        m->cpu[i] = calloc(1, sizeof(struct cpu));
        if (!m->cpu[i] || cpu_init(m->cpu[i], i, &m->mem, &m->model, &machine_cpu_ops, m) < 0) {
            nestor_log("out of host memory creating vCPU %d", i);
            return NESTOR_EXIT_GUEST_ERROR;
        }
        m->lapic[i] = lapic_create(m, m->cpu[i], i, i == 0);
        /* No firmware runs before the kernel, so nestor leaves the MTRRs the way a BIOS
         * would: enabled, default type write-back, the same on every CPU. */
        m->cpu[i]->msr_mtrr_def_type = 0xc06;
        if (i > 0)
            cpu_init_signal(m->cpu[i], false);
        if (cfg->trace)
            cpu_set_trace(m->cpu[i], cfg->trace, cfg->trace_insns, cfg->trace_events);
    }
    m->io.report_unowned = m->mmio.report_unowned = cfg->trace && cfg->trace_events;
    m->pic = pic_create(m);
    m->ioapic = ioapic_create(m);
    m->pit = pit_create(m);
    /* the RTC starts at the host's date, or at a fixed one when runs must repeat */
    m->rtc = rtc_create(m, cfg->deterministic ? (time_t)1767225600 /* 2026-01-01 */ : time(NULL));
    m->hpet = hpet_create(m, m->pit, m->rtc);
    m->acpi_pm = acpi_pm_create(m);
    m->pci = pci_create(m);
    m->kbc = kbc_create(m);
    m->uart = uart_create(m, 0x3f8, 4, cfg->console_in_fd, cfg->console_out_fd);
    debugexit_create(m, 0xf4);
    m->fwcfg = fwcfg_create(m);
    /* the tables describe the devices above, so they come last */
    m->acpi_rsdp = acpi_build(m);
    if (cfg->kernel) {
        int r = boot_load_kernel(m, cfg->kernel, cfg->initrd, cfg->append);
        if (r)
            return r;
    }
    return 0;
}

void machine_destroy(struct machine *m)
{
    for (int i = 0; i < m->ncpus; i++) {
        if (m->lapic[i])
            lapic_destroy(m->lapic[i]);
        if (m->cpu[i]) {
            cpu_destroy(m->cpu[i]);
            free(m->cpu[i]);
        }
    }
    if (m->uart)
        uart_destroy(m->uart);
    if (m->kbc)
        kbc_destroy(m->kbc);
    if (m->pci)
        pci_destroy(m->pci);
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
/* Reads what is available on the console without blocking; returns false at EOF. */
static bool console_poll(struct machine *m, int timeout_ms)
{
    int fd = m->cfg.console_in_fd;
    if (fd < 0 || !m->uart)
        return false;
    if (!uart_can_receive(m->uart)) {
        if (timeout_ms > 0) {
            struct timespec ts = { timeout_ms / 1000, (long)(timeout_ms % 1000) * 1000000L };
            nanosleep(&ts, NULL);
        }
        return true;
    }
    struct pollfd p = { fd, POLLIN, 0 };
    int r = poll(&p, 1, timeout_ms);
    if (r <= 0)
        return true;
    u8 buf[16];
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        m->cfg.console_in_fd = -1; /* EOF: no more input */
        return false;
    }
    size_t len = n > 0 ? (size_t)n : 0;
    if (len && m->cfg.console_filter) {
        bool quit = false;
        len = m->cfg.console_filter(m->cfg.console_opaque, buf, len, &quit);
        if (quit)
            machine_request_stop(m, 0);
    }
    if (len)
        uart_receive(m->uart, buf, len);
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
}

int machine_run(struct machine *m)
{
    u64 rounds = 0;
    u64 start_ns = clock_host_ns();
    double insns_per_ns = INITIAL_INSNS_PER_NS; /* real-time mode: all vCPUs together */
    int running = m->ncpus;                     /* vCPUs that did not idle last round */
    while (!m->stop) {
        u64 now = clock_now(&m->clock);
        u64 deadline = clock_next_deadline(&m->clock);
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
        bool all_idle = true;
        running = 0;
        for (int i = 0; i < m->ncpus && !m->stop; i++) {
            struct cpu *c = m->cpu[i];
            u64 before = c->icount;
            enum cpu_stop_reason r = cpu_run(c, budget);
            u64 ran = c->icount - before;
            total += ran;
            if (ran > most)
                most = ran;
            if (r != STOP_HALTED) {
                all_idle = false;
                running++;
            }
            if (r == STOP_SHUTDOWN)
                machine_request_stop(m, NESTOR_EXIT_GUEST_ERROR);
        }
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
        if (all_idle) {
            deadline = clock_next_deadline(&m->clock);
            now = clock_now(&m->clock);
            bool input = m->cfg.console_in_fd >= 0;
            if (deadline == CLOCK_NEVER && !input) {
                nestor_log("every vCPU is halted and nothing can wake them: stopping");
                for (int i = 0; i < m->ncpus; i++)
                    if (m->cpu[i]->state == CPU_HALTED)
                        cpu_dump(m->cpu[i], stderr);
                machine_request_stop(m, NESTOR_EXIT_GUEST_ERROR);
                break;
            }
            if (m->clock.deterministic) {
                if (deadline != CLOCK_NEVER)
                    clock_advance_to(&m->clock, deadline);
                else
                    console_poll(m, -1);
            } else {
                int ms = deadline == CLOCK_NEVER ? -1
                         : deadline <= now       ? 0
                                                 : (int)((deadline - now + 999999) / 1000000);
                console_poll(m, ms);
            }
            clock_run_timers(&m->clock);
        } else if ((++rounds & 15) == 0) {
            console_poll(m, 0);
        }
    }
    if (m->cfg.stats)
        print_stats(m, clock_host_ns() - start_ns);
    return m->exit_status;
}
