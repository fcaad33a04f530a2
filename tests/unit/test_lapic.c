/* Unit tests of the local APIC: priorities, EOI, errors, the timer in its three modes on a
 * deterministic clock, the APIC base MSR transitions, x2APIC and IPIs. The machine is
 * built by hand: clock, CPU model and one vCPU whose only use is cpu_tsc()/cpu_nmi(). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "cpu/cpu.h"
#include "dev/dev.h"
#include "machine/machine.h"

static struct machine m;
static struct cpu vcpu;
static struct lapic *apic;

#define BUS_KHZ 100000u    /* 100 MHz: one timer tick per 10 ns at divide 1 */
#define TSC_KHZ 1000000u   /* 1 GHz: one TSC tick per ns */

static u64 test_now_ns(struct cpu *c, void *opaque)
{
    (void)c, (void)opaque;
    return clock_now(&m.clock);
}

static const struct cpu_ops test_ops = { .now_ns = test_now_ns };

static void setup(void)
{
    memset(&m, 0, sizeof(m));
    memset(&vcpu, 0, sizeof(vcpu));
    char err[128];
    cr_assert_eq(cpuid_model_parse(&m.model, "max", err, sizeof(err)), 0, "%s", err);
    m.model.bus_khz = BUS_KHZ;
    m.model.tsc_khz = TSC_KHZ;
    clock_init(&m.clock, true);
    bus_init(&m.io, "io");
    bus_init(&m.mmio, "mmio");
    vcpu.ops = &test_ops;
    vcpu.model = &m.model;
    apic = lapic_create(&m, &vcpu, 0, true);
    /* one CPU, so IPIs go through the real machine_apic_send() */
    m.ncpus = 1;
    m.cpu[0] = &vcpu;
    m.lapic[0] = apic;
}

static void teardown(void)
{
    lapic_destroy(apic);
}

TestSuite(lapic, .init = setup, .fini = teardown);

static u32 rd(u32 off) { return (u32)lapic_mmio_read(apic, off, 4); }
static void wr(u32 off, u32 v) { lapic_mmio_write(apic, off, 4, v); }

static bool irr_has(u8 v) { return rd(0x200 + (v >> 5) * 0x10) & (1u << (v & 31)); }
static bool isr_has(u8 v) { return rd(0x100 + (v >> 5) * 0x10) & (1u << (v & 31)); }

static void run_until(u64 ns)
{
    clock_advance_to(&m.clock, ns);
    clock_run_timers(&m.clock);
}

static void enable(void) { wr(0xf0, 0x1ff); }

Test(lapic, reset_state)
{
    cr_assert_eq(lapic_base(apic), 0xfee00900ull); /* default base, EN, BSP */
    cr_assert_eq(rd(0x30), 0x50014u);
    cr_assert_eq(rd(0x20), 0u);
    cr_assert_eq(rd(0xe0), 0xffffffffu);
    cr_assert_eq(rd(0xf0), 0xffu);
    cr_assert_eq(rd(0x320), 0x10000u);
    cr_assert_eq(rd(0x350), 0x700u, "BSP LINT0 passes the PIC through");
    cr_assert_eq(rd(0x360), 0x10000u);
    cr_assert_eq(rd(0x370), 0x10000u);
    cr_assert_eq(lapic_intr_pending(apic), -1);
}

Test(lapic, priority_ack_eoi)
{
    enable();
    lapic_deliver(apic, 0x31, APIC_DM_FIXED, false);
    lapic_deliver(apic, 0x52, APIC_DM_FIXED, false);
    cr_assert(irr_has(0x31) && irr_has(0x52));
    cr_assert_eq(lapic_intr_pending(apic), 0x52);

    wr(0x80, 0x50); /* TPR class 5 blocks class 5 and below */
    cr_assert_eq(lapic_intr_pending(apic), -1);
    cr_assert_eq(rd(0xa0), 0x50u);
    wr(0x80, 0x4f);
    cr_assert_eq(lapic_intr_pending(apic), 0x52);
    cr_assert_eq(lapic_get_tpr(apic), 4);
    wr(0x80, 0);

    cr_assert_eq(lapic_intr_ack(apic), 0x52);
    cr_assert(isr_has(0x52) && !irr_has(0x52));
    cr_assert_eq(rd(0xa0), 0x50u, "PPR follows the in-service class");
    wr(0x80, 0x5f);
    cr_assert_eq(rd(0xa0), 0x5fu, "TPR of the same class wins with its low bits");
    wr(0x80, 0x3f);
    cr_assert_eq(rd(0xa0), 0x50u);
    wr(0x80, 0);
    cr_assert_eq(lapic_intr_pending(apic), -1, "0x31 is below the in-service class");

    lapic_deliver(apic, 0x61, APIC_DM_FIXED, false);
    cr_assert_eq(lapic_intr_pending(apic), 0x61);
    cr_assert_eq(lapic_intr_ack(apic), 0x61);
    cr_assert_eq(rd(0xa0), 0x60u);

    wr(0xb0, 0); /* EOI retires the highest in service: 0x61 */
    cr_assert(!isr_has(0x61) && isr_has(0x52));
    wr(0xb0, 0);
    cr_assert(!isr_has(0x52));
    cr_assert_eq(rd(0xa0), 0u);
    cr_assert_eq(lapic_intr_pending(apic), 0x31);
}

Test(lapic, same_class_waits_for_eoi)
{
    enable();
    lapic_deliver(apic, 0x45, APIC_DM_FIXED, false);
    cr_assert_eq(lapic_intr_ack(apic), 0x45);
    lapic_deliver(apic, 0x4a, APIC_DM_FIXED, false);
    cr_assert_eq(lapic_intr_pending(apic), -1, "same priority class as in service");
    wr(0xb0, 0);
    cr_assert_eq(lapic_intr_pending(apic), 0x4a);
}

Test(lapic, spurious_and_disabled)
{
    wr(0xf0, 0x1e7);
    cr_assert_eq(lapic_intr_ack(apic), 0xe7, "nothing pending: the spurious vector");
    cr_assert_eq(rd(0x100 + 7 * 0x10), 0u, "spurious does not go in service");

    wr(0xf0, 0x0e7); /* software-disable */
    lapic_deliver(apic, 0x40, APIC_DM_FIXED, false);
    cr_assert(!irr_has(0x40), "a software-disabled APIC drops fixed interrupts");
    wr(0x320, 0x20); /* the mask cannot be cleared while disabled */
    cr_assert_eq(rd(0x320), 0x10020u);
}

Test(lapic, software_disable_masks_lvt)
{
    enable();
    wr(0x370, 0xe0);
    cr_assert_eq(rd(0x370), 0xe0u);
    wr(0xf0, 0xff);
    cr_assert_eq(rd(0x370), 0x100e0u);
}

Test(lapic, esr_write_before_read_and_error_lvt)
{
    enable();
    wr(0x370, 0xe3); /* error LVT: vector 0xe3 */
    lapic_deliver(apic, 0x05, APIC_DM_FIXED, false);
    cr_assert(!irr_has(0x05), "vectors 0-15 are never accepted");
    cr_assert(irr_has(0xe3), "the error LVT signalled");
    cr_assert_eq(rd(0x280), 0u, "not visible before an ESR write");
    wr(0x280, 0);
    cr_assert_eq(rd(0x280), 0x40u, "received illegal vector");
    wr(0x280, 0);
    cr_assert_eq(rd(0x280), 0u, "a second write clears it");

    (void)rd(0x2f0); /* no CMCI entry with max LVT 5: illegal register */
    wr(0x280, 0);
    cr_assert_eq(rd(0x280), 0x80u);
}

Test(lapic, apr_and_narrow_reads)
{
    enable();
    wr(0x80, 0x35);
    cr_assert_eq(rd(0x90), 0x35u, "no IRR/ISR above the TPR: APR = TPR");
    lapic_deliver(apic, 0x72, APIC_DM_FIXED, false);
    cr_assert_eq(rd(0x90), 0x70u);
    cr_assert_eq(lapic_mmio_read(apic, 0x31, 1), 0x00u); /* version byte 1 */
    cr_assert_eq(lapic_mmio_read(apic, 0x32, 1), 0x05u); /* max LVT */
    cr_assert_eq(lapic_mmio_read(apic, 0x30, 2), 0x14u);
    lapic_mmio_write(apic, 0x80, 1, 0x77); /* narrow writes are dropped */
    cr_assert_eq(rd(0x80), 0x35u);
}

Test(lapic, oneshot_timer)
{
    enable();
    wr(0x3e0, 0xb);     /* divide by 1 */
    wr(0x320, 0x40);    /* one-shot, vector 0x40 */
    wr(0x380, 1000);    /* 1000 ticks = 10 us */
    cr_assert_eq(rd(0x380), 1000u);
    run_until(5000);
    cr_assert_eq(rd(0x390), 500u);
    cr_assert(!irr_has(0x40));
    run_until(9999);
    cr_assert(!irr_has(0x40));
    cr_assert_eq(rd(0x390), 1u);
    run_until(10000);
    cr_assert(irr_has(0x40));
    cr_assert_eq(rd(0x390), 0u);
    cr_assert_eq(clock_next_deadline(&m.clock), CLOCK_NEVER, "one-shot does not re-arm");
    cr_assert_eq(lapic_intr_ack(apic), 0x40);
    wr(0xb0, 0);
    run_until(50000);
    cr_assert(!irr_has(0x40));
}

Test(lapic, periodic_timer)
{
    enable();
    wr(0x3e0, 0x0);          /* divide by 2: 20 ns per tick */
    wr(0x320, 0x20000 | 0x41);
    wr(0x380, 100);          /* period 2 us */
    int fired = 0;
    for (u64 t = 500; t <= 10000; t += 500) {
        run_until(t);
        if (lapic_intr_pending(apic) == 0x41) {
            cr_assert_eq(t % 2000, 0, "fired at %llu", (unsigned long long)t);
            lapic_intr_ack(apic);
            wr(0xb0, 0);
            fired++;
        }
    }
    cr_assert_eq(fired, 5);
    run_until(11000);
    cr_assert_eq(rd(0x390), 50u, "half a period into the sixth period");
    wr(0x380, 0); /* a zero initial count stops the timer */
    cr_assert_eq(rd(0x390), 0u);
    run_until(20000);
    cr_assert(!irr_has(0x41));
}

Test(lapic, oneshot_at_zero_then_periodic_stays_zero)
{
    enable();
    wr(0x3e0, 0xb);
    wr(0x320, 0x44);
    wr(0x380, 100);          /* 1 us */
    run_until(2000);
    cr_assert_eq(lapic_intr_ack(apic), 0x44);
    wr(0xb0, 0);
    wr(0x320, 0x20000 | 0x44); /* periodic now */
    cr_assert_eq(rd(0x390), 0u, "the count stays 0");
    cr_assert_eq(clock_next_deadline(&m.clock), CLOCK_NEVER, "nothing armed");
    run_until(10000);
    cr_assert(!irr_has(0x44));
    cr_assert_eq(rd(0x390), 0u);
    wr(0x3e0, 0x0);          /* a divisor change does not start it either */
    run_until(20000);
    cr_assert_eq(rd(0x390), 0u);
    wr(0x3e0, 0xb);
    wr(0x380, 100);          /* the initial count does */
    run_until(21000);
    cr_assert(irr_has(0x44));
    cr_assert_eq(rd(0x390), 100u, "reloaded");
}

Test(lapic, oneshot_to_periodic_while_counting_goes_on)
{
    enable();
    wr(0x3e0, 0xb);
    wr(0x320, 0x44);
    wr(0x380, 100);
    run_until(500);
    wr(0x320, 0x20000 | 0x44);
    cr_assert_eq(rd(0x390), 50u);
    run_until(1000);
    cr_assert(irr_has(0x44));
    lapic_intr_ack(apic);
    wr(0xb0, 0);
    run_until(2000);
    cr_assert(irr_has(0x44), "periodic from the switch on");
}

Test(lapic, periodic_to_oneshot_runs_out_the_period)
{
    enable();
    wr(0x3e0, 0xb);
    wr(0x320, 0x20000 | 0x45);
    wr(0x380, 100);          /* period 1 us */
    run_until(2300);         /* two reloads, 30 ticks into the third period */
    cr_assert_eq(lapic_intr_ack(apic), 0x45);
    wr(0xb0, 0);
    wr(0x320, 0x45);         /* one-shot */
    cr_assert_eq(rd(0x390), 70u, "the current period goes on");
    run_until(2999);
    cr_assert(!irr_has(0x45));
    run_until(3000);
    cr_assert(irr_has(0x45), "fires when the period runs out");
    cr_assert_eq(rd(0x390), 0u);
    lapic_intr_ack(apic);
    wr(0xb0, 0);
    run_until(10000);
    cr_assert(!irr_has(0x45), "and only once");
    cr_assert_eq(rd(0x390), 0u);
}

Test(lapic, due_expiry_is_signalled_before_a_timer_write)
{
    enable();
    wr(0x3e0, 0xb);
    wr(0x320, 0x46);
    wr(0x380, 100);
    clock_advance_to(&m.clock, 1500); /* expired at 1000; the clock has not run timers */
    wr(0x320, 0x10046);               /* masking now does not undo it */
    cr_assert(irr_has(0x46));
    lapic_intr_ack(apic);
    wr(0xb0, 0);
    wr(0x320, 0x46);
    wr(0x380, 100);
    clock_advance_to(&m.clock, 3000);
    wr(0x3e0, 0x0);                   /* nor does a divisor change */
    cr_assert(irr_has(0x46));
    run_until(10000);
    lapic_intr_ack(apic);
    wr(0xb0, 0);
    cr_assert(!irr_has(0x46), "signalled once");
}

Test(lapic, mmio_page_decoded_only_in_xapic_mode)
{
    const u64 base = 0xfee00000ull | BIT(8);
    cr_assert(lapic_mmio_decoded(apic));
    cr_assert(lapic_msr_write(apic, 0x1b, base | BIT(11) | BIT(10)));
    cr_assert(!lapic_mmio_decoded(apic), "x2APIC mode");
    cr_assert(lapic_msr_write(apic, 0x1b, base));
    cr_assert(!lapic_mmio_decoded(apic), "disabled");
    cr_assert(lapic_msr_write(apic, 0x1b, base | BIT(11)));
    cr_assert(lapic_mmio_decoded(apic));
}

Test(lapic, divide_configuration)
{
    /* divide values 0000..1011 -> divisor */
    static const struct { u32 dcr, div; } t[] = {
        { 0x0, 2 }, { 0x1, 4 }, { 0x2, 8 }, { 0x3, 16 },
        { 0x8, 32 }, { 0x9, 64 }, { 0xa, 128 }, { 0xb, 1 },
    };
    enable();
    for (size_t i = 0; i < ARRAY_SIZE(t); i++) {
        wr(0x3e0, t[i].dcr);
        cr_assert_eq(rd(0x3e0), t[i].dcr);
        wr(0x380, 1000000);
        u64 start = clock_now(&m.clock);
        run_until(start + 10ull * t[i].div * 100); /* 100 ticks */
        cr_assert_eq(rd(0x390), 1000000u - 100, "divide %#x", t[i].dcr);
    }
}

Test(lapic, masked_timer_counts_without_interrupt)
{
    enable();
    wr(0x3e0, 0xb);
    wr(0x320, 0x10042);
    wr(0x380, 100);
    run_until(2000);
    cr_assert_eq(rd(0x390), 0u);
    cr_assert(!irr_has(0x42));
}

Test(lapic, tsc_deadline_timer)
{
    u64 v;
    enable();
    cr_assert(lapic_msr_read(apic, 0x6e0, &v));
    cr_assert_eq(v, 0u);
    cr_assert(lapic_msr_write(apic, 0x6e0, 1234));
    cr_assert(lapic_msr_read(apic, 0x6e0, &v));
    cr_assert_eq(v, 0u, "writes are ignored outside TSC-deadline mode");

    wr(0x320, 0x40000 | 0x43);
    wr(0x380, 5); /* ignored in TSC-deadline mode */
    cr_assert_eq(rd(0x380), 0u);
    run_until(1000);
    u64 tsc = cpu_tsc(&vcpu);
    cr_assert_eq(tsc, 1000u);
    cr_assert(lapic_msr_write(apic, 0x6e0, tsc + 5000));
    cr_assert(lapic_msr_read(apic, 0x6e0, &v));
    cr_assert_eq(v, tsc + 5000);
    run_until(5999);
    cr_assert(!irr_has(0x43));
    run_until(6000);
    cr_assert(irr_has(0x43));
    cr_assert(lapic_msr_read(apic, 0x6e0, &v));
    cr_assert_eq(v, 0u, "the deadline clears when it fires");
    lapic_intr_ack(apic);
    wr(0xb0, 0);

    /* a deadline already passed fires at once */
    cr_assert(lapic_msr_write(apic, 0x6e0, 1));
    cr_assert(irr_has(0x43));
    lapic_intr_ack(apic);
    wr(0xb0, 0);

    /* leaving TSC-deadline mode disarms */
    cr_assert(lapic_msr_write(apic, 0x6e0, cpu_tsc(&vcpu) + 100));
    wr(0x320, 0x43);
    run_until(100000);
    cr_assert(!irr_has(0x43));
}

Test(lapic, base_msr_transitions)
{
    const u64 base = 0xfee00000ull | BIT(8);
    u64 v;
    cr_assert(!lapic_msr_read(apic, 0x802, &v), "x2APIC MSRs #GP in xAPIC mode");
    cr_assert(!lapic_msr_write(apic, 0x1b, base | BIT(10)), "EXTD without EN is invalid");
    cr_assert(!lapic_msr_write(apic, 0x1b, base | BIT(11) | 0x1), "reserved bit");
    cr_assert(!lapic_msr_write(apic, 0x1b, base | BIT(11) | (1ull << 60)), "beyond MAXPHYADDR");
    cr_assert(lapic_msr_write(apic, 0x1b, base | BIT(11) | BIT(10)), "xAPIC -> x2APIC");
    cr_assert(lapic_msr_read(apic, 0x802, &v));
    cr_assert_eq(v, 0u);
    cr_assert(lapic_msr_read(apic, 0x80d, &v));
    cr_assert_eq(v, 1u, "x2APIC LDR of ID 0: cluster 0, bit 0");
    cr_assert_eq(lapic_mmio_read(apic, 0x30, 4), 0u, "no MMIO in x2APIC mode");
    cr_assert(!lapic_msr_write(apic, 0x1b, base | BIT(11)), "x2APIC -> xAPIC is illegal");
    cr_assert(lapic_msr_write(apic, 0x1b, base), "x2APIC -> disabled");
    cr_assert(!lapic_hw_enabled(apic));
    cr_assert(!lapic_msr_write(apic, 0x1b, base | BIT(11) | BIT(10)), "disabled -> x2APIC");
    cr_assert(lapic_msr_write(apic, 0x1b, base | BIT(11)), "disabled -> xAPIC");
    cr_assert_eq(rd(0xf0), 0xffu, "disabling reset the APIC");
    cr_assert(lapic_msr_write(apic, 0x1b, 0xfed00000ull | BIT(11)), "relocation, BSP cleared");
    cr_assert_eq(lapic_base(apic), 0xfed00800ull);
}

Test(lapic, x2apic_registers)
{
    struct lapic *b = lapic_create(&m, &vcpu, 0x23, false);
    u64 v;
    cr_assert(lapic_msr_write(b, 0x1b, 0xfee00000ull | BIT(11) | BIT(10)));
    cr_assert(lapic_msr_read(b, 0x802, &v));
    cr_assert_eq(v, 0x23u);
    cr_assert(lapic_msr_read(b, 0x80d, &v));
    cr_assert_eq(v, (2u << 16) | (1u << 3));
    cr_assert(!lapic_msr_write(b, 0x802, 5), "ID is read-only");
    cr_assert(!lapic_msr_write(b, 0x80d, 5), "LDR is read-only");
    cr_assert(!lapic_msr_read(b, 0x80b, &v), "EOI is write-only");
    cr_assert(!lapic_msr_read(b, 0x83f, &v), "SELF IPI is write-only");
    cr_assert(!lapic_msr_read(b, 0x80e, &v), "no DFR in x2APIC mode");
    cr_assert(!lapic_msr_read(b, 0x831, &v), "no ICR high in x2APIC mode");
    cr_assert(lapic_msr_write(b, 0x80f, 0x1ff));
    cr_assert(!lapic_msr_write(b, 0x808, 1ull << 32), "upper half reserved");
    cr_assert(lapic_msr_write(b, 0x83f, 0x55), "SELF IPI");
    cr_assert_eq(lapic_intr_ack(b), 0x55);
    cr_assert(!lapic_msr_write(b, 0x80b, 1), "EOI takes only 0");
    cr_assert(lapic_msr_write(b, 0x80b, 0));
    cr_assert(lapic_msr_read(b, 0x810 + (0x55 >> 5), &v));
    cr_assert_eq(v, 0u);
    cr_assert(!lapic_msr_write(b, 0x828, 1), "ESR takes only 0");
    cr_assert(lapic_match_dest(b, 0x23, false));
    cr_assert(!lapic_match_dest(b, 0x22, false));
    cr_assert(lapic_match_dest(b, 0x20008, true));
    cr_assert(!lapic_match_dest(b, 0x10008, true), "other cluster");
    cr_assert(lapic_match_dest(b, 0xffffffff, false));
    lapic_destroy(b);
}

Test(lapic, xapic_destinations)
{
    wr(0x20, 0x05000000); /* xAPIC ID is writable */
    cr_assert_eq(rd(0x20), 0x05000000u);
    cr_assert(lapic_match_dest(apic, 5, false));
    cr_assert(!lapic_match_dest(apic, 0, false));
    cr_assert(lapic_match_dest(apic, 0xff, false));
    wr(0xd0, 0x24000000);
    cr_assert_eq(rd(0xd0), 0x24000000u);
    cr_assert(lapic_match_dest(apic, 0x04, true), "flat model: bitmap");
    cr_assert(!lapic_match_dest(apic, 0x01, true));
    wr(0xe0, 0x0fffffff); /* cluster model */
    cr_assert_eq(rd(0xe0), 0x0fffffffu);
    cr_assert(lapic_match_dest(apic, 0x24, true));
    cr_assert(lapic_match_dest(apic, 0x2c, true));
    cr_assert(!lapic_match_dest(apic, 0x34, true), "other cluster");
    cr_assert(lapic_match_dest(apic, 0xff, true), "broadcast");
}

Test(lapic, self_ipi_through_icr)
{
    enable();
    wr(0x310, 0);
    wr(0x300, (1u << 18) | 0x45); /* shorthand self, fixed */
    cr_assert(irr_has(0x45));
    cr_assert_eq(rd(0x300) & (1u << 12), 0u, "delivery status idle");
    cr_assert_eq(rd(0x300), (1u << 18) | 0x45);
    /* physical destination = own ID */
    wr(0x310, 0x00000000);
    wr(0x300, 0x46);
    cr_assert(irr_has(0x46));
    /* an illegal vector is not sent */
    wr(0x300, (1u << 18) | 0x07);
    wr(0x280, 0);
    cr_assert_eq(rd(0x280), 0x20u, "send illegal vector");
    /* NMI IPI */
    wr(0x300, (1u << 18) | (APIC_DM_NMI << 8));
    cr_assert(vcpu.nmi_pending);
}

Test(lapic, lint_pins)
{
    enable();
    wr(0x360, APIC_DM_NMI << 8);
    lapic_set_lint(apic, 1, true);
    cr_assert(vcpu.nmi_pending, "LINT1 programmed as NMI");
    vcpu.nmi_pending = false;
    lapic_set_lint(apic, 1, true);
    cr_assert(!vcpu.nmi_pending, "edge: no new NMI without a new edge");

    /* LINT0 in ExtINT mode: the PIC's vector, pending while the pin is up */
    wr(0x350, APIC_DM_EXTINT << 8);
    cr_assert(!lapic_extint_pending(apic));
    lapic_set_lint(apic, 0, true);
    cr_assert(lapic_extint_pending(apic));
    lapic_set_lint(apic, 0, false);
    cr_assert(!lapic_extint_pending(apic));

    /* LINT0 fixed, level-triggered: remote IRR until EOI, then again while asserted */
    wr(0x350, 0x8000 | 0x50);
    lapic_set_lint(apic, 0, true);
    cr_assert(irr_has(0x50));
    cr_assert(rd(0x350) & (1u << 14), "remote IRR");
    cr_assert_eq(lapic_intr_ack(apic), 0x50);
    cr_assert(rd(0x180 + 2 * 0x10) & (1u << 16), "TMR marks it level-triggered");
    wr(0xb0, 0);
    cr_assert(irr_has(0x50), "still asserted: signalled again");
    cr_assert_eq(lapic_intr_ack(apic), 0x50);
    lapic_set_lint(apic, 0, false);
    wr(0xb0, 0);
    cr_assert(!irr_has(0x50));
    cr_assert_eq(rd(0x350) & (1u << 14), 0u);
}

Test(lapic, init_signal_resets_registers)
{
    enable();
    wr(0x20, 0x07000000);
    wr(0x80, 0x20);
    lapic_deliver(apic, 0x80, APIC_DM_FIXED, false);
    lapic_init_signal(apic);
    cr_assert_eq(rd(0xf0), 0xffu);
    cr_assert_eq(rd(0x80), 0u);
    cr_assert(!irr_has(0x80));
    cr_assert_eq(rd(0x20), 0x07000000u, "INIT keeps the APIC ID");
}
