/* Local APIC (Intel SDM Vol. 3A chapter 10 / 11 "Advanced Programmable Interrupt
 * Controller"): the xAPIC register page, the x2APIC MSRs, the APIC base MSR, the timer
 * (one-shot, periodic, TSC-deadline), interrupt acceptance by priority, EOI, IPIs.
 *
 * One register file serves both interfaces: an xAPIC offset and an x2APIC MSR name the
 * same register (index = offset >> 4 = msr - 0x800); the table `regs` says which
 * interface may read or write each one.
 *
 * What the LAPIC leaves to the machine:
 *  - routing of interrupt messages: an ICR write becomes machine_apic_send(); the machine
 *    applies the shorthand, finds the destinations with lapic_match_dest() and calls
 *    lapic_deliver() on each (choosing one for lowest priority, e.g. by
 *    lapic_arbitration_priority());
 *  - INIT and STARTUP messages: the machine calls cpu_init_signal()/cpu_sipi() on the
 *    target vCPU and lapic_init_signal() on its LAPIC; lapic_deliver() ignores them;
 *  - ExtINT: the vector comes from the 8259 PIC. lapic_extint_pending() says the CPU's
 *    INTR input is asserted through the LAPIC; the machine reads the vector from the PIC
 *    and calls lapic_extint_ack().
 *  - waking a halted vCPU: the machine polls lapic_intr_pending(); no callback. */
#include "dev/dev.h"

#include <stdio.h> /* machine.h uses FILE */
#include <stdlib.h>
#include <string.h>

#include "cpu/cpu.h"
#include "machine/machine.h"

/* ---- register indexes (xAPIC offset >> 4, x2APIC MSR - 0x800) ---- */
enum {
    REG_ID = 0x02, REG_VERSION = 0x03, REG_TPR = 0x08, REG_APR = 0x09, REG_PPR = 0x0a,
    REG_EOI = 0x0b, REG_RRD = 0x0c, REG_LDR = 0x0d, REG_DFR = 0x0e, REG_SVR = 0x0f,
    REG_ISR = 0x10, REG_TMR = 0x18, REG_IRR = 0x20, REG_ESR = 0x28,
    REG_ICR_LO = 0x30, REG_ICR_HI = 0x31,
    REG_LVT_TIMER = 0x32, REG_LVT_THERMAL = 0x33, REG_LVT_PERF = 0x34,
    REG_LVT_LINT0 = 0x35, REG_LVT_LINT1 = 0x36, REG_LVT_ERROR = 0x37,
    REG_TIMER_INITIAL = 0x38, REG_TIMER_CURRENT = 0x39, REG_TIMER_DIVIDE = 0x3e,
    REG_SELF_IPI = 0x3f,
    REG_COUNT = 0x40,
};

/* LVT entries in register order. "Max LVT entry" in the version register is 5: the six
 * below (no CMCI). */
enum { LVT_TIMER, LVT_THERMAL, LVT_PERF, LVT_LINT0, LVT_LINT1, LVT_ERROR, LVT_COUNT };

#define APIC_VERSION 0x14u
#define APIC_VERSION_REG (APIC_VERSION | ((LVT_COUNT - 1u) << 16))

/* Interface permissions of a register. */
enum {
    XR = 1 << 0, /* readable through the xAPIC page */
    XW = 1 << 1, /* writable through the xAPIC page */
    MR = 1 << 2, /* readable as an x2APIC MSR */
    MW = 1 << 3, /* writable as an x2APIC MSR */
};

static const u8 regs[REG_COUNT] = {
    [REG_ID] = XR | XW | MR,          /* read-only in x2APIC mode */
    [REG_VERSION] = XR | MR,
    [REG_TPR] = XR | XW | MR | MW,
    [REG_APR] = XR,                   /* no x2APIC MSR */
    [REG_PPR] = XR | MR,
    [REG_EOI] = XR | XW | MW,         /* xAPIC reads of write-only registers return 0 */
    [REG_RRD] = XR,
    [REG_LDR] = XR | XW | MR,         /* derived from the ID in x2APIC mode */
    [REG_DFR] = XR | XW,              /* no DFR in x2APIC mode */
    [REG_SVR] = XR | XW | MR | MW,
    [REG_ISR + 0] = XR | MR, [REG_ISR + 1] = XR | MR, [REG_ISR + 2] = XR | MR,
    [REG_ISR + 3] = XR | MR, [REG_ISR + 4] = XR | MR, [REG_ISR + 5] = XR | MR,
    [REG_ISR + 6] = XR | MR, [REG_ISR + 7] = XR | MR,
    [REG_TMR + 0] = XR | MR, [REG_TMR + 1] = XR | MR, [REG_TMR + 2] = XR | MR,
    [REG_TMR + 3] = XR | MR, [REG_TMR + 4] = XR | MR, [REG_TMR + 5] = XR | MR,
    [REG_TMR + 6] = XR | MR, [REG_TMR + 7] = XR | MR,
    [REG_IRR + 0] = XR | MR, [REG_IRR + 1] = XR | MR, [REG_IRR + 2] = XR | MR,
    [REG_IRR + 3] = XR | MR, [REG_IRR + 4] = XR | MR, [REG_IRR + 5] = XR | MR,
    [REG_IRR + 6] = XR | MR, [REG_IRR + 7] = XR | MR,
    [REG_ESR] = XR | XW | MR | MW,
    [REG_ICR_LO] = XR | XW | MR | MW, /* one 64-bit MSR in x2APIC mode */
    [REG_ICR_HI] = XR | XW,
    [REG_LVT_TIMER] = XR | XW | MR | MW, [REG_LVT_THERMAL] = XR | XW | MR | MW,
    [REG_LVT_PERF] = XR | XW | MR | MW, [REG_LVT_LINT0] = XR | XW | MR | MW,
    [REG_LVT_LINT1] = XR | XW | MR | MW, [REG_LVT_ERROR] = XR | XW | MR | MW,
    [REG_TIMER_INITIAL] = XR | XW | MR | MW,
    [REG_TIMER_CURRENT] = XR | MR,
    [REG_TIMER_DIVIDE] = XR | XW | MR | MW,
    [REG_SELF_IPI] = MW,              /* x2APIC only, write-only */
};

/* Writable bits of each LVT entry (vector, delivery mode, polarity, trigger, mask, timer
 * mode). Delivery status and remote IRR are read-only. The timer's bit 18 (TSC-deadline)
 * is only writable when the CPU model has TSC-deadline. */
#define LVT_MASKED BIT(16)
#define LVT_LEVEL BIT(15)
#define LVT_REMOTE_IRR BIT(14)
#define LVT_TIMER_MODE_SHIFT 17
static const u32 lvt_writable[LVT_COUNT] = {
    [LVT_TIMER] = 0x300ff,   /* + 0x40000 with TSC-deadline */
    [LVT_THERMAL] = 0x107ff,
    [LVT_PERF] = 0x107ff,
    [LVT_LINT0] = 0x1a7ff,
    [LVT_LINT1] = 0x1a7ff,
    [LVT_ERROR] = 0x100ff,
};

enum { TIMER_ONESHOT = 0, TIMER_PERIODIC = 1, TIMER_TSC_DEADLINE = 2 };

/* Error status bits. */
enum {
    ESR_SEND_ILLEGAL_VECTOR = 1 << 5,
    ESR_RECV_ILLEGAL_VECTOR = 1 << 6,
    ESR_ILLEGAL_REGISTER = 1 << 7,
};

/* APIC base MSR */
#define BASE_BSP BIT(8)
#define BASE_EXTD BIT(10)
#define BASE_EN BIT(11)
#define BASE_DEFAULT 0xfee00000ull

#define SVR_ENABLE BIT(8)
#define SVR_WRITABLE 0x3ffu /* vector, APIC enable, focus processor checking */

/* ICR */
#define ICR_DELIVERY_STATUS BIT(12)
#define ICR_ASSERT BIT(14)
#define ICR_LEVEL BIT(15)
#define ICR_LOGICAL BIT(11)
#define ICR_WRITABLE 0x000ccfffu /* vector, mode, dest mode, level, trigger, shorthand */

#define MSR_APIC_BASE 0x1b
#define MSR_TSC_DEADLINE 0x6e0
#define MSR_X2APIC_FIRST 0x800
#define MSR_X2APIC_LAST 0x8ff

struct lapic {
    struct machine *m;
    struct cpu *cpu;
    u32 initial_id; /* the x2APIC ID, and the xAPIC ID after reset */
    u64 base;       /* IA32_APIC_BASE */
    bool tsc_deadline_supported, x2apic_supported;
    u64 base_reserved; /* bits of the APIC base MSR that must be zero */

    u32 id;         /* xAPIC ID register (ID in bits 31:24) */
    u32 tpr, ldr, dfr, svr;
    u32 esr;        /* what software reads */
    u32 esr_pending;/* errors seen since the last ESR write */
    u32 icr_lo, icr_hi;
    u32 lvt[LVT_COUNT];
    u32 isr[8], tmr[8], irr[8];

    /* Timer: the count was start_count at start_ns and then decrements at
     * bus_khz / divisor; periodic mode reloads initial_count. next_expiry is the
     * elapsed-tick count of the next expiry not yet signalled (~0: none). counting is
     * false once a count has stopped at 0 for good (a one-shot count that reached 0 and
     * was then switched to periodic): only writing the initial count starts it again. */
    u32 initial_count, divide;
    u64 start_ns;
    u32 start_count;
    bool counting;
    u64 next_expiry;
    u64 tsc_deadline;
    int timer;

    bool lint[2];    /* LINT0/LINT1 input levels */
    bool extint_msg; /* an ExtINT message waits for the PIC's vector */
};

/* ---- helpers ---- */

static bool x2apic_mode(const struct lapic *l)
{
    return (l->base & (BASE_EN | BASE_EXTD)) == (BASE_EN | BASE_EXTD);
}

bool lapic_x2apic_mode(const struct lapic *l)
{
    return x2apic_mode(l);
}

bool lapic_hw_enabled(const struct lapic *l)
{
    return l->base & BASE_EN;
}

static bool sw_enabled(const struct lapic *l)
{
    return l->svr & SVR_ENABLE;
}

u64 lapic_base(const struct lapic *l)
{
    return l->base;
}

/* The xAPIC page belongs to the LAPIC only while it is enabled in xAPIC mode: in x2APIC
 * mode the MMIO interface behaves as that of a globally disabled APIC (SDM 10.12.2), and
 * a disabled APIC is as if absent (10.4.3), so the address is ordinary memory space. */
bool lapic_mmio_decoded(const struct lapic *l)
{
    return lapic_hw_enabled(l) && !x2apic_mode(l);
}

/* Highest set vector of a 256-bit register, or -1. */
static int highest_vector(const u32 r[8])
{
    for (int i = 7; i >= 0; i--)
        if (r[i])
            return i * 32 + 31 - __builtin_clz(r[i]);
    return -1;
}

static void set_vec(u32 r[8], u8 v) { r[v >> 5] |= 1u << (v & 31); }
static void clear_vec(u32 r[8], u8 v) { r[v >> 5] &= ~(1u << (v & 31)); }
static bool test_vec(const u32 r[8], u8 v) { return r[v >> 5] & (1u << (v & 31)); }

/* Processor priority (SDM 10.8.3.1): the TPR, or the class of the highest in-service
 * vector if that is higher. */
static u32 ppr(const struct lapic *l)
{
    int isrv = highest_vector(l->isr);
    u32 isr_class = isrv < 0 ? 0 : (u32)isrv & 0xf0;
    return (l->tpr & 0xf0) >= isr_class ? l->tpr & 0xff : isr_class;
}

/* Arbitration priority (P6 family definition, SDM 10.8.3.1 of older editions). */
static u32 apr(const struct lapic *l)
{
    int isrv = highest_vector(l->isr), irrv = highest_vector(l->irr);
    u32 tpr_class = l->tpr & 0xf0;
    u32 isr_class = isrv < 0 ? 0 : (u32)isrv & 0xf0;
    u32 irr_class = irrv < 0 ? 0 : (u32)irrv & 0xf0;
    if (tpr_class >= irr_class && tpr_class > isr_class)
        return l->tpr & 0xff;
    u32 m = tpr_class > isr_class ? tpr_class : isr_class;
    return m > irr_class ? m : irr_class;
}

u8 lapic_arbitration_priority(const struct lapic *l)
{
    return (u8)apr(l);
}

/* Records an error; the error LVT entry signals it when a new error bit appears (a new
 * bit only, so an illegal error vector cannot recurse). */
static void lvt_signal(struct lapic *l, int lvt);
static void signal_error(struct lapic *l, u32 bit)
{
    if (l->esr_pending & bit)
        return;
    l->esr_pending |= bit;
    lvt_signal(l, LVT_ERROR);
}

/* A fixed interrupt accepted into the IRR; vectors 0-15 are illegal (SDM 10.5.3). */
static void accept_fixed(struct lapic *l, u8 vector, bool level)
{
    if (vector < 16) {
        signal_error(l, ESR_RECV_ILLEGAL_VECTOR);
        return;
    }
    set_vec(l->irr, vector);
    if (level)
        set_vec(l->tmr, vector);
    else
        clear_vec(l->tmr, vector);
}

/* An interrupt generated by an LVT entry. Delivery modes other than fixed, NMI and
 * ExtINT (SMI, INIT) are not modelled: nestor has no SMM, and INIT through an LVT is
 * reserved on current processors. */
static void lvt_signal(struct lapic *l, int lvt)
{
    u32 e = l->lvt[lvt];
    if (e & LVT_MASKED)
        return;
    /* Only LINT0/LINT1 have a delivery-mode field; the others are always fixed. */
    u32 mode = (lvt == LVT_LINT0 || lvt == LVT_LINT1 || lvt == LVT_THERMAL ||
                lvt == LVT_PERF) ? (e >> 8) & 7 : APIC_DM_FIXED;
    switch (mode) {
    case APIC_DM_FIXED: {
        bool level = (lvt == LVT_LINT0 || lvt == LVT_LINT1) && (e & LVT_LEVEL);
        if (level) {
            if (e & LVT_REMOTE_IRR)
                return;
            if ((u8)e >= 16)
                l->lvt[lvt] |= LVT_REMOTE_IRR;
        }
        accept_fixed(l, (u8)e, level);
        break;
    }
    case APIC_DM_NMI:
        if (l->cpu)
            cpu_nmi(l->cpu);
        break;
    case APIC_DM_EXTINT:
        /* Pending as long as the pin is asserted: see lapic_extint_pending(). */
        break;
    default:
        break;
    }
}

/* ---- timer ---- */

static u64 bus_khz(const struct lapic *l)
{
    return l->m->model.bus_khz ? l->m->model.bus_khz : 1000000; /* model unset: 1 GHz */
}

static u64 tsc_khz(const struct lapic *l)
{
    return l->m->model.tsc_khz ? l->m->model.tsc_khz : 1000000;
}

static unsigned timer_mode(const struct lapic *l)
{
    unsigned mode = (l->lvt[LVT_TIMER] >> LVT_TIMER_MODE_SHIFT) & 3;
    return mode == 3 ? TIMER_ONESHOT : mode; /* 11b is reserved; it counts as one-shot */
}

/* Divide configuration bits 3,1:0 -> divisor 2,4,...,128,1 (SDM Figure 10-10). */
static unsigned divide_shift(u32 dcr)
{
    unsigned v = ((dcr >> 1) & 4) | (dcr & 3);
    return (v + 1) & 7;
}

/* Whole timer ticks in ns nanoseconds. */
static u64 ns_to_ticks(const struct lapic *l, u64 ns)
{
    unsigned __int128 t = (unsigned __int128)ns * bus_khz(l);
    return (u64)(t / ((unsigned __int128)1000000 << divide_shift(l->divide)));
}

/* Nanoseconds until ticks ticks have elapsed (rounded up). */
static u64 ticks_to_ns(const struct lapic *l, u64 ticks)
{
    unsigned __int128 d = ((unsigned __int128)ticks * 1000000) << divide_shift(l->divide);
    unsigned __int128 ns = (d + bus_khz(l) - 1) / bus_khz(l);
    return ns > CLOCK_NEVER - 1 ? CLOCK_NEVER - 1 : (u64)ns;
}

static bool count_timer_running(const struct lapic *l)
{
    return timer_mode(l) != TIMER_TSC_DEADLINE && l->initial_count != 0 && l->counting;
}

/* Elapsed ticks since start at time now. */
static u64 timer_elapsed(const struct lapic *l, u64 now)
{
    return now > l->start_ns ? ns_to_ticks(l, now - l->start_ns) : 0;
}

static u32 timer_current(const struct lapic *l)
{
    if (!count_timer_running(l))
        return 0;
    u64 e = timer_elapsed(l, clock_now(&l->m->clock));
    if (e < l->start_count)
        return (u32)(l->start_count - e);
    if (timer_mode(l) != TIMER_PERIODIC)
        return 0;
    return l->initial_count - (u32)((e - l->start_count) % l->initial_count);
}

/* The first expiry (in elapsed ticks) strictly after `after` elapsed ticks; ~0 if none. */
static u64 expiry_after(const struct lapic *l, u64 after)
{
    if (!count_timer_running(l))
        return ~0ull;
    if (after < l->start_count)
        return l->start_count;
    if (timer_mode(l) != TIMER_PERIODIC)
        return ~0ull;
    u64 periods = (after - l->start_count) / l->initial_count + 1;
    return l->start_count + periods * l->initial_count;
}

static void timer_arm_next(struct lapic *l)
{
    if (l->next_expiry == ~0ull)
        clock_timer_disarm(&l->m->clock, l->timer);
    else
        clock_timer_arm(&l->m->clock, l->timer, l->start_ns + ticks_to_ns(l, l->next_expiry));
}

/* Starts counting down from count now. */
static void timer_start(struct lapic *l, u32 count)
{
    l->start_ns = clock_now(&l->m->clock);
    l->start_count = count;
    l->counting = count != 0;
    l->next_expiry = count ? count : ~0ull;
    if (!count_timer_running(l))
        l->next_expiry = ~0ull;
    timer_arm_next(l);
}

/* After a mode or divisor change: keep the current count and continue from it. */
static void timer_rebase(struct lapic *l, u32 current)
{
    if (!count_timer_running(l)) {
        l->next_expiry = ~0ull;
        timer_arm_next(l);
        return;
    }
    timer_start(l, current);
}

static void deadline_arm(struct lapic *l);

static void timer_expired(void *opaque, u64 now)
{
    struct lapic *l = opaque;
    if (timer_mode(l) == TIMER_TSC_DEADLINE) {
        deadline_arm(l); /* fires if the TSC has reached the deadline, else re-arms */
        return;
    }
    u64 e = timer_elapsed(l, now);
    if (l->next_expiry == ~0ull || e < l->next_expiry) {
        timer_arm_next(l); /* early (clock moved): wait again */
        return;
    }
    lvt_signal(l, LVT_TIMER);
    l->next_expiry = expiry_after(l, e);
    timer_arm_next(l);
}

/* Signals an expiry that is due but that the clock has not reported yet (timers run
 * between instruction slices): a register write that changes the timer must find the
 * expiries before it already signalled, through the LVT entry they happened under. */
static void timer_catch_up(struct lapic *l)
{
    if (timer_mode(l) == TIMER_TSC_DEADLINE || l->next_expiry == ~0ull)
        return;
    u64 e = timer_elapsed(l, clock_now(&l->m->clock));
    if (e < l->next_expiry)
        return;
    lvt_signal(l, LVT_TIMER);
    l->next_expiry = expiry_after(l, e);
    timer_arm_next(l);
}

/* One-shot <-> periodic (the LVT already holds the new mode, old_mode is the previous
 * one). The count goes on from where it is; a one-shot count that has reached 0 stays at
 * 0 in periodic mode until the initial count is written again. */
static void timer_switch_mode(struct lapic *l, unsigned old_mode)
{
    if (!count_timer_running(l))
        return;
    u64 e = timer_elapsed(l, clock_now(&l->m->clock));
    if (e >= l->start_count) {
        if (old_mode != TIMER_PERIODIC) {
            l->counting = false; /* the one-shot count is 0 and stays there */
            l->next_expiry = ~0ull;
            timer_arm_next(l);
            return;
        }
        /* Periodic -> one-shot after at least one reload: count down the current
         * period from its reload, then stop. */
        u64 reload = l->start_count + (e - l->start_count) / l->initial_count * l->initial_count;
        l->start_ns += ticks_to_ns(l, reload);
        l->start_count = l->initial_count;
        e -= reload;
    }
    l->next_expiry = expiry_after(l, e);
    timer_arm_next(l);
}

/* The TSC the deadline counts against: the vCPU's own (L1's), also while an L2 runs
 * with an offset or scaling of its own (an L2 timer expiry seen through L2's TSC would be
 * re-armed for a far future and L1's timer lost) */
static u64 current_tsc(struct lapic *l)
{
    return cpu_l1_tsc_at(l->cpu, clock_now(&l->m->clock));
}

/* TSC-deadline mode: signal when the TSC reaches the deadline (then the MSR reads 0). */
static void deadline_arm(struct lapic *l)
{
    if (timer_mode(l) != TIMER_TSC_DEADLINE || l->tsc_deadline == 0) {
        clock_timer_disarm(&l->m->clock, l->timer);
        return;
    }
    u64 tsc = current_tsc(l);
    if (tsc >= l->tsc_deadline) {
        l->tsc_deadline = 0;
        clock_timer_disarm(&l->m->clock, l->timer);
        lvt_signal(l, LVT_TIMER);
        return;
    }
    unsigned __int128 ns = ((unsigned __int128)(l->tsc_deadline - tsc) * 1000000 +
                            tsc_khz(l) - 1) / tsc_khz(l);
    u64 now = clock_now(&l->m->clock);
    u64 when = ns > CLOCK_NEVER - 1 - now ? CLOCK_NEVER - 1 : now + (u64)ns;
    clock_timer_arm(&l->m->clock, l->timer, when);
}

/* ---- reset ---- */

/* Power-up state of the registers (SDM 10.4.7.1); the ID and base MSR are kept. */
static void reset_registers(struct lapic *l)
{
    l->tpr = 0;
    l->ldr = 0;
    l->dfr = 0xffffffff;
    l->svr = 0xff;
    l->esr = l->esr_pending = 0;
    l->icr_lo = l->icr_hi = 0;
    for (int i = 0; i < LVT_COUNT; i++)
        l->lvt[i] = LVT_MASKED;
    memset(l->isr, 0, sizeof(l->isr));
    memset(l->tmr, 0, sizeof(l->tmr));
    memset(l->irr, 0, sizeof(l->irr));
    l->initial_count = l->divide = 0;
    l->start_count = 0;
    l->counting = false;
    l->next_expiry = ~0ull;
    l->tsc_deadline = 0;
    l->extint_msg = false;
    clock_timer_disarm(&l->m->clock, l->timer);
    if (x2apic_mode(l))
        l->ldr = ((l->initial_id >> 4) << 16) | (1u << (l->initial_id & 15));
}

void lapic_init_signal(struct lapic *l)
{
    reset_registers(l);
}

void lapic_reset(struct lapic *l)
{
    l->id = l->initial_id << 24;
    l->base = BASE_DEFAULT | BASE_EN | (l->base & BASE_BSP); /* xAPIC mode */
    reset_registers(l);
    /* As firmware leaves a PC (and as QEMU's APIC starts): the boot CPU's LINT0 passes
     * the PIC's interrupts through (ExtINT, unmasked), so a kernel that never touches
     * the APIC still receives PIC interrupts. */
    if (l->base & BASE_BSP)
        l->lvt[LVT_LINT0] = APIC_DM_EXTINT << 8;
}

struct lapic *lapic_create(struct machine *m, struct cpu *cpu, int id, bool bsp)
{
    struct lapic *l = calloc(1, sizeof(*l));
    if (!l)
        nestor_panic("out of memory for the local APIC");
    l->m = m;
    l->cpu = cpu;
    l->initial_id = (u32)id;
    l->id = (u32)id << 24;
    l->timer = clock_timer_new(&m->clock, timer_expired, l);
    l->tsc_deadline_supported = cpuid_fast(&m->model)->has[CF_TSC_DEADLINE];
    l->x2apic_supported = cpuid_fast(&m->model)->has[CF_X2APIC];
    u32 phys_bits = cpuid_query(&m->model, 0x80000008, 0, (u32)id, false, true, 0).eax & 0xff;
    if (phys_bits < 32 || phys_bits > 52)
        phys_bits = 36;
    l->base_reserved = ~MASK(phys_bits) | MASK(8) | BIT(9) | (l->x2apic_supported ? 0 : BASE_EXTD);
    l->base = bsp ? BASE_BSP : 0;
    lapic_reset(l);
    return l;
}

void lapic_destroy(struct lapic *l)
{
    if (!l)
        return;
    clock_timer_disarm(&l->m->clock, l->timer);
    free(l);
}

/* ---- interrupt acceptance ---- */

int lapic_intr_pending(struct lapic *l)
{
    if (!lapic_hw_enabled(l) || !sw_enabled(l))
        return -1;
    int v = highest_vector(l->irr);
    if (v < 0 || ((u32)v & 0xf0) <= (ppr(l) & 0xf0))
        return -1;
    return v;
}

int lapic_intr_ack(struct lapic *l)
{
    int v = lapic_intr_pending(l);
    if (v < 0)
        return l->svr & 0xff; /* spurious: nothing goes in service */
    clear_vec(l->irr, (u8)v);
    set_vec(l->isr, (u8)v);
    return v;
}

void lapic_deliver(struct lapic *l, u8 vector, u8 delivery_mode, bool level)
{
    if (!lapic_hw_enabled(l))
        return;
    switch (delivery_mode) {
    case APIC_DM_FIXED:
    case APIC_DM_LOWEST:
        /* A software-disabled APIC does not accept fixed interrupts (as KVM). */
        if (sw_enabled(l))
            accept_fixed(l, vector, level);
        break;
    case APIC_DM_NMI:
        if (l->cpu)
            cpu_nmi(l->cpu);
        break;
    case APIC_DM_EXTINT:
        l->extint_msg = true;
        break;
    default:
        /* INIT/STARTUP are handled by the machine; SMI has no SMM to enter. */
        break;
    }
}

void lapic_inject(struct lapic *l, u8 vector)
{
    if (lapic_hw_enabled(l) && vector >= 16)
        accept_fixed(l, vector, false);
}

bool lapic_extint_pending(const struct lapic *l)
{
    if (!lapic_hw_enabled(l))
        return l->lint[0]; /* disabled APIC: LINT0 is the CPU's INTR pin */
    if (l->extint_msg)
        return true;
    for (int pin = 0; pin < 2; pin++) {
        u32 e = l->lvt[LVT_LINT0 + pin];
        if (!(e & LVT_MASKED) && ((e >> 8) & 7) == APIC_DM_EXTINT && l->lint[pin])
            return true;
    }
    return false;
}

void lapic_extint_ack(struct lapic *l)
{
    l->extint_msg = false;
}

/* Level-triggered LINT input still asserted after its EOI: signal again. */
static void lint_recheck(struct lapic *l, int pin)
{
    u32 e = l->lvt[LVT_LINT0 + pin];
    if (l->lint[pin] && (e & LVT_LEVEL) && !(e & LVT_REMOTE_IRR) &&
        ((e >> 8) & 7) == APIC_DM_FIXED)
        lvt_signal(l, LVT_LINT0 + pin);
}

void lapic_set_lint(struct lapic *l, int pin, bool level)
{
    if (pin < 0 || pin > 1)
        return;
    bool rising = level && !l->lint[pin];
    l->lint[pin] = level;
    if (!lapic_hw_enabled(l)) {
        /* A disabled APIC passes LINT0 through as INTR and LINT1 as NMI. */
        if (pin == 1 && rising && l->cpu)
            cpu_nmi(l->cpu);
        return;
    }
    u32 e = l->lvt[LVT_LINT0 + pin];
    u32 mode = (e >> 8) & 7;
    if (mode == APIC_DM_FIXED && (e & LVT_LEVEL))
        lint_recheck(l, pin);
    else if (rising && mode != APIC_DM_EXTINT)
        lvt_signal(l, LVT_LINT0 + pin);
}

void lapic_pmi(struct lapic *l)
{
    if (!lapic_hw_enabled(l))
        return;
    bool delivered = !(l->lvt[LVT_PERF] & LVT_MASKED);
    lvt_signal(l, LVT_PERF);
    /* Intel processors set the mask bit when they deliver a PMI (the handler unmasks
     * it); AMD's leave the entry as it is. */
    if (delivered && l->m->model.vendor == VENDOR_INTEL)
        l->lvt[LVT_PERF] |= LVT_MASKED;
}

void lapic_isr_clear(struct lapic *l, u8 vector)
{
    clear_vec(l->isr, vector);
}

bool lapic_only_in_service(const struct lapic *l, u8 vector)
{
    /* it alone is in service, it is edge-triggered, and nothing waits in IRR */
    if (!test_vec(l->isr, vector) || test_vec(l->tmr, vector) || highest_vector(l->irr) >= 0)
        return false;
    for (int i = 0; i < 8; i++)
        if (l->isr[i] & ~(i == vector / 32 ? 1u << (vector % 32) : 0))
            return false;
    return true;
}

static void eoi(struct lapic *l)
{
    int v = highest_vector(l->isr);
    if (v < 0)
        return;
    clear_vec(l->isr, (u8)v);
    if (l->cpu)
        machine_lapic_eoi(l->m, l->cpu->id, (u8)v);
    if (!test_vec(l->tmr, (u8)v))
        return;
    /* Level-triggered: the EOI is broadcast to the I/O APIC (remote IRR), and clears the
     * remote IRR of a LINT entry with this vector. */
    machine_eoi_broadcast(l->m, (u8)v);
    for (int pin = 0; pin < 2; pin++) {
        u32 *e = &l->lvt[LVT_LINT0 + pin];
        if ((*e & LVT_REMOTE_IRR) && (u8)*e == v) {
            *e &= ~LVT_REMOTE_IRR;
            lint_recheck(l, pin);
        }
    }
}

bool lapic_match_dest(const struct lapic *l, u32 dest, bool logical)
{
    if (!lapic_hw_enabled(l))
        return false;
    if (x2apic_mode(l)) {
        if (dest == 0xffffffff)
            return true;
        if (!logical)
            return dest == l->initial_id;
        /* Cluster model: bits 31:16 cluster, 15:0 a bitmap within the cluster. */
        return (dest >> 16) == (l->ldr >> 16) && (dest & l->ldr & 0xffff);
    }
    dest &= 0xff;
    if (dest == 0xff)
        return true;
    if (!logical)
        return dest == l->id >> 24;
    u32 ldr = l->ldr >> 24;
    if ((l->dfr >> 28) == 0xf) /* flat model: a bitmap of eight APICs */
        return dest & ldr;
    /* cluster model: bits 7:4 cluster, 3:0 a bitmap within it */
    return (dest >> 4) == (ldr >> 4) && (dest & ldr & 0xf);
}

void lapic_set_tpr(struct lapic *l, u8 tpr_4bit)
{
    l->tpr = (u32)(tpr_4bit & 0xf) << 4;
}

u8 lapic_get_tpr(const struct lapic *l)
{
    return (u8)(l->tpr >> 4);
}

/* ---- IPIs ---- */

static void send_ipi(struct lapic *l)
{
    u32 lo = l->icr_lo;
    u8 vector = (u8)lo, mode = (lo >> 8) & 7;
    /* INIT level de-assert only resynchronises arbitration IDs: nothing to do. */
    if (mode == APIC_DM_INIT && (lo & ICR_LEVEL) && !(lo & ICR_ASSERT))
        return;
    if ((mode == APIC_DM_FIXED || mode == APIC_DM_LOWEST) && vector < 16) {
        signal_error(l, ESR_SEND_ILLEGAL_VECTOR);
        return;
    }
    struct apic_msg msg = {
        .dest = x2apic_mode(l) ? l->icr_hi : l->icr_hi >> 24,
        .vector = vector,
        .delivery = mode,
        .logical = lo & ICR_LOGICAL,
        .level = lo & ICR_LEVEL,
        .shorthand = (lo >> 18) & 3,
        .src = (int)l->initial_id,
    };
    machine_apic_send(l->m, &msg);
    /* Delivery is immediate: the delivery-status bit is already back to idle. */
    l->icr_lo &= ~ICR_DELIVERY_STATUS;
}

/* ---- register file ---- */

static u32 reg_read(struct lapic *l, unsigned r)
{
    switch (r) {
    case REG_ID: return x2apic_mode(l) ? l->initial_id : l->id;
    case REG_VERSION: return APIC_VERSION_REG;
    case REG_TPR: return l->tpr;
    case REG_APR: return apr(l);
    case REG_PPR: return ppr(l);
    case REG_LDR: return l->ldr;
    case REG_DFR: return l->dfr;
    case REG_SVR: return l->svr;
    case REG_ESR: return l->esr;
    case REG_ICR_LO: return l->icr_lo;
    case REG_ICR_HI: return l->icr_hi;
    case REG_TIMER_INITIAL: return l->initial_count;
    case REG_TIMER_CURRENT: return timer_current(l);
    case REG_TIMER_DIVIDE: return l->divide;
    default:
        if (r >= REG_ISR && r < REG_ISR + 8) return l->isr[r - REG_ISR];
        if (r >= REG_TMR && r < REG_TMR + 8) return l->tmr[r - REG_TMR];
        if (r >= REG_IRR && r < REG_IRR + 8) return l->irr[r - REG_IRR];
        if (r >= REG_LVT_TIMER && r <= REG_LVT_ERROR) return l->lvt[r - REG_LVT_TIMER];
        return 0; /* EOI, RRD */
    }
}

static void lvt_write(struct lapic *l, int lvt, u32 v)
{
    u32 writable = lvt_writable[lvt];
    if (lvt == LVT_TIMER && l->tsc_deadline_supported)
        writable |= 2u << LVT_TIMER_MODE_SHIFT;
    if (!sw_enabled(l))
        v |= LVT_MASKED; /* masks cannot be cleared while software-disabled */
    if (lvt == LVT_TIMER)
        timer_catch_up(l);
    u32 old = l->lvt[lvt];
    l->lvt[lvt] = (old & ~writable) | (v & writable);
    if (lvt == LVT_TIMER) {
        unsigned old_mode = (old >> LVT_TIMER_MODE_SHIFT) & 3;
        unsigned new_mode = timer_mode(l);
        if (old_mode == 3)
            old_mode = TIMER_ONESHOT; /* reserved: counts as one-shot */
        if ((old_mode == TIMER_TSC_DEADLINE) != (new_mode == TIMER_TSC_DEADLINE)) {
            /* Entering or leaving TSC-deadline mode disarms the timer (SDM 10.5.4.1). */
            l->initial_count = 0;
            l->tsc_deadline = 0;
            l->next_expiry = ~0ull;
            clock_timer_disarm(&l->m->clock, l->timer);
        } else if (old_mode != new_mode) {
            timer_switch_mode(l, old_mode);
        }
    }
    if (lvt == LVT_LINT0 || lvt == LVT_LINT1)
        lint_recheck(l, lvt - LVT_LINT0);
}

static void reg_write(struct lapic *l, unsigned r, u32 v)
{
    switch (r) {
    case REG_ID:
        l->id = v & 0xff000000u;
        break;
    case REG_TPR:
        l->tpr = v & 0xff;
        break;
    case REG_EOI:
        eoi(l);
        break;
    case REG_LDR:
        l->ldr = v & 0xff000000u;
        break;
    case REG_DFR:
        l->dfr = v | 0x0fffffffu;
        break;
    case REG_SVR:
        l->svr = v & SVR_WRITABLE;
        if (!sw_enabled(l))
            for (int i = 0; i < LVT_COUNT; i++)
                l->lvt[i] |= LVT_MASKED;
        break;
    case REG_ESR:
        /* Write-before-read: a write latches the errors seen since the last write. */
        l->esr = l->esr_pending;
        l->esr_pending = 0;
        break;
    case REG_ICR_LO:
        l->icr_lo = v & ICR_WRITABLE;
        send_ipi(l);
        break;
    case REG_ICR_HI:
        l->icr_hi = v & 0xff000000u;
        break;
    case REG_TIMER_INITIAL:
        if (timer_mode(l) == TIMER_TSC_DEADLINE)
            break; /* ignored in TSC-deadline mode */
        timer_catch_up(l);
        l->initial_count = v;
        timer_start(l, v);
        break;
    case REG_TIMER_DIVIDE: {
        timer_catch_up(l);
        u32 current = timer_current(l);
        l->divide = v & 0xb;
        timer_rebase(l, current);
        break;
    }
    case REG_SELF_IPI:
        lapic_deliver(l, (u8)v, APIC_DM_FIXED, false);
        break;
    default:
        if (r >= REG_LVT_TIMER && r <= REG_LVT_ERROR)
            lvt_write(l, (int)(r - REG_LVT_TIMER), v);
        break;
    }
}

/* ---- xAPIC page ---- */

/* Registers sit at 16-byte-aligned offsets and are accessed as aligned 32-bit words.
 * Narrower reads within the word return its bytes; other writes are dropped (SDM 10.4.1
 * leaves them undefined). The machine routes the page here only while
 * lapic_mmio_decoded(). */
u64 lapic_mmio_read(struct lapic *l, u64 offset, unsigned size)
{
    if (!lapic_mmio_decoded(l) || offset >= 0x1000)
        return 0;
    unsigned r = (unsigned)(offset >> 4), byte = offset & 0xf;
    if (r >= REG_COUNT || !(regs[r] & XR)) {
        signal_error(l, ESR_ILLEGAL_REGISTER);
        return 0;
    }
    if (byte >= 4)
        return 0;
    u64 v = reg_read(l, r) >> (byte * 8);
    return size >= 8 ? v : v & MASK(size * 8);
}

void lapic_mmio_write(struct lapic *l, u64 offset, unsigned size, u64 value)
{
    if (!lapic_mmio_decoded(l) || offset >= 0x1000)
        return;
    unsigned r = (unsigned)(offset >> 4);
    if (r >= REG_COUNT || !(regs[r] & XW)) {
        signal_error(l, ESR_ILLEGAL_REGISTER);
        return;
    }
    if ((offset & 0xf) != 0 || size < 4)
        return;
    reg_write(l, r, (u32)value);
}

/* ---- MSRs ---- */

bool lapic_msr_read(struct lapic *l, u32 msr, u64 *value)
{
    if (msr == MSR_APIC_BASE) {
        *value = l->base;
        return true;
    }
    if (msr == MSR_TSC_DEADLINE) {
        if (!l->tsc_deadline_supported)
            return false;
        *value = timer_mode(l) == TIMER_TSC_DEADLINE ? l->tsc_deadline : 0;
        return true;
    }
    if (msr < MSR_X2APIC_FIRST || msr > MSR_X2APIC_LAST || !x2apic_mode(l))
        return false;
    unsigned r = msr - MSR_X2APIC_FIRST;
    if (r >= REG_COUNT || !(regs[r] & MR))
        return false;
    *value = reg_read(l, r);
    if (r == REG_ICR_LO)
        *value |= (u64)l->icr_hi << 32;
    return true;
}

static bool base_write(struct lapic *l, u64 v)
{
    if (v & l->base_reserved)
        return false;
    bool en = v & BASE_EN, extd = v & BASE_EXTD;
    if (extd && !en)
        return false; /* invalid state */
    bool was_x2 = x2apic_mode(l), was_en = lapic_hw_enabled(l);
    if (was_x2 && en && !extd)
        return false; /* x2APIC -> xAPIC must go through disabled */
    if (!was_en && extd)
        return false; /* disabled -> x2APIC must go through xAPIC */
    l->base = v;
    if (!en && was_en) {
        /* Disabling the APIC puts it back in its power-up state. */
        l->id = l->initial_id << 24;
        reset_registers(l);
    } else if (extd && !was_x2) {
        /* Entering x2APIC mode: the ID is the x2APIC ID, the LDR follows from it. */
        l->ldr = ((l->initial_id >> 4) << 16) | (1u << (l->initial_id & 15));
        l->icr_hi = 0;
    }
    return true;
}

bool lapic_msr_write(struct lapic *l, u32 msr, u64 value)
{
    if (msr == MSR_APIC_BASE)
        return base_write(l, value);
    if (msr == MSR_TSC_DEADLINE) {
        if (!l->tsc_deadline_supported)
            return false;
        if (timer_mode(l) == TIMER_TSC_DEADLINE) { /* else ignored */
            l->tsc_deadline = value;
            deadline_arm(l);
        }
        return true;
    }
    if (msr < MSR_X2APIC_FIRST || msr > MSR_X2APIC_LAST || !x2apic_mode(l))
        return false;
    unsigned r = msr - MSR_X2APIC_FIRST;
    if (r >= REG_COUNT || !(regs[r] & MW))
        return false;
    if (r == REG_ICR_LO) {
        l->icr_hi = (u32)(value >> 32);
        l->icr_lo = (u32)value & ICR_WRITABLE;
        send_ipi(l);
        return true;
    }
    /* The upper half of every other x2APIC MSR is reserved; EOI and ESR take only 0,
     * SELF IPI only a vector. */
    if (value >> 32)
        return false;
    if ((r == REG_EOI || r == REG_ESR) && value != 0)
        return false;
    if (r == REG_SELF_IPI && (value & ~0xffull))
        return false;
    reg_write(l, r, (u32)value);
    return true;
}

/* ---- state ---- */
#define F(m) STATE_FIELD(struct lapic, m)
#define N(m) STATE_NOT_STATE(struct lapic, m)
static const struct state_field lapic_fields[] = {
    N(m), N(cpu), N(initial_id), N(tsc_deadline_supported), N(x2apic_supported),
    N(base_reserved), /* the configuration's */
    F(base), F(id), F(tpr), F(ldr), F(dfr), F(svr), F(esr), F(esr_pending), F(icr_lo),
    F(icr_hi), F(lvt), F(isr), F(tmr), F(irr), F(initial_count), F(divide), F(start_ns),
    F(start_count), F(counting), F(next_expiry), F(tsc_deadline), N(timer), F(lint),
    F(extint_msg),
};
#undef F
#undef N

static int lapic_post_load(void *obj, char *err, size_t errlen)
{
    struct lapic *l = obj;
    if (l->divide & ~0xbu) {
        return nestor_err(err, errlen, "divide configuration %#x has reserved bits", l->divide);
    }
    return 0;
}

static const struct state_desc lapic_state_desc =
    STATE_DESC("lapic", 1, struct lapic, lapic_fields, .post_load = lapic_post_load);

void lapic_state_register(struct lapic *l, struct state_registry *r)
{
    state_register(r, &lapic_state_desc, l->initial_id, l);
}
