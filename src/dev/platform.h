/* PC platform devices around the CPUs: the 8259A PIC pair, the I/O APIC, the 8254 PIT
 * (with port 0x61), the CMOS RTC/NVRAM, the HPET, the ACPI PM register blocks (PM1,
 * PM timer, GPE0, the 0xcf9 reset register), the PCI host bridge (configuration
 * mechanism #1 and ECAM) and the i8042 keyboard controller.
 *
 * Every *_create() registers the device's port/MMIO ranges on the machine's buses.
 * Interrupt outputs go through machine_set_irq(m, line, level): lines 0-15 are ISA IRQs,
 * 16-23 GSIs of the I/O APIC; `level` is the asserted state of the line. The machine
 * fans ISA IRQs out to pic_set_irq() and ioapic_set_irq() (ISA IRQ0 -> GSI 2, as the
 * MADT's interrupt source override says). All timing follows the machine's virtual
 * clock (m->clock). *_reset() puts a device back in its power-on state (waking from ACPI
 * S3, which the PIC, I/O APIC, PIT, HPET and i8042 do not survive). */
#ifndef NESTOR_DEV_PLATFORM_H
#define NESTOR_DEV_PLATFORM_H

#include "machine/state.h"

#include <time.h>

#include "common.h"

struct machine;

/* ---- fixed platform addresses and numbers (MADT/FADT/DSDT/MCFG/HPET tables use these) ---- */
#define PIC_MASTER_PORT 0x20
#define PIC_SLAVE_PORT 0xa0
#define PIC_ELCR_PORT 0x4d0
#define PIT_PORT 0x40
#define PORT_B 0x61             /* system control port B: PIT gate 2, speaker, OUT2 */
#define RTC_INDEX_PORT 0x70
#define RTC_IRQ 8
#define RTC_CENTURY_REG 0x32    /* FADT CENTURY */
#define KBC_DATA_PORT 0x60
#define KBC_CMD_PORT 0x64
#define KBC_KBD_IRQ 1
#define KBC_AUX_IRQ 12
#define PORT_A 0x92             /* system control port A: fast A20, fast reset */

#define IOAPIC_MMIO_BASE 0xfec00000ull
#define IOAPIC_ID 0             /* MADT I/O APIC ID (the CPUs' APIC IDs start at 0 too:
                                   different buses, as on QEMU) */
#define IOAPIC_PINS 24
#define IOAPIC_GSI_BASE 0

#define HPET_MMIO_BASE 0xfed00000ull
#define HPET_TIMERS 3
#define HPET_FREQ_HZ 100000000ull  /* 100 MHz: a period of 10,000,000 fs */
/* Timers' interrupt routing capability: I/O APIC inputs 20-23 (free of ISA and PCI). */
#define HPET_ROUTE_CAP 0x00f00000u

#define ACPI_PM1A_EVT_BLK 0x600    /* PM1_STS (2 bytes) + PM1_EN (2 bytes) */
#define ACPI_PM1_EVT_LEN 4
#define ACPI_PM1A_CNT_BLK 0x604
#define ACPI_PM1_CNT_LEN 2
#define ACPI_PM_TMR_BLK 0x608
#define ACPI_PM_TMR_LEN 4
#define ACPI_GPE0_BLK 0x620        /* GPE0_STS (2 bytes) + GPE0_EN (2 bytes) */
#define ACPI_GPE0_BLK_LEN 4
#define ACPI_SCI_IRQ 9             /* level, active high (MADT override) */
#define ACPI_RESET_PORT 0xcf9      /* FADT RESET_REG: system I/O, 8 bits; RESET_VALUE 6 */
#define ACPI_RESET_VALUE 0x06
/* SLP_TYP value of \_S5 (soft off), as QEMU's PM devices decode it: the DSDT's \_S5
 * package and the PM1 control register agree on it. */
#define ACPI_S5_SLP_TYP 0
/* SLP_TYP of \_S3 (suspend to RAM), QEMU's value too */
#define ACPI_S3_SLP_TYP 1
#define ACPI_PM_TIMER_HZ 3579545ull

#define PCI_CONFIG_ADDR_PORT 0xcf8
#define PCI_CONFIG_DATA_PORT 0xcfc
/* ECAM (MCFG: base, segment 0, buses 0-255). It sits in the PCI hole [3G, 4G) below the
 * I/O APIC; the e820 map must mark it reserved (Linux checks before using MCFG). */
#define PCI_ECAM_BASE 0xe0000000ull
#define PCI_ECAM_BUSES 256
#define PCI_ECAM_SIZE (PCI_ECAM_BUSES * MiB)

/* ---- 8259A PIC pair (master 0x20/0x21, slave 0xa0/0xa1 cascaded on IR2, ELCR 0x4d0/1) ----
 * The master's INT output drives LINT0 of every LAPIC (lapic_set_lint(l, 0, level));
 * when a CPU takes the ExtINT, the machine calls pic_intr_ack() for the vector. */
struct pic *pic_create(struct machine *m);
/* Registers its state description (machine/state.h). */
void pic_state_register(struct pic *d, struct state_registry *r);
void pic_destroy(struct pic *p);
void pic_reset(struct pic *p);
/* ISA IRQ 0-15 input line (IRQ2 is the cascade and cannot be raised from outside). */
void pic_set_irq(struct pic *p, int irq, bool level);
/* Firmware programs the ELCR: these IRQs level-triggered (others edge; the edge-only
 * lines stay edge). */
void pic_set_elcr(struct pic *p, u16 level_irqs);
/* The master's INT output. */
bool pic_has_intr(const struct pic *p);
/* INTA cycle: the vector of the highest-priority request; a spurious IRQ7 (or IRQ15 on
 * the slave) when the request went away before the acknowledge. */
u8 pic_intr_ack(struct pic *p);
/* The vector pic_intr_ack() would return now, without acknowledging anything. */
u8 pic_intr_peek(const struct pic *p);
/* Observation for tests and tracing: chip 0 master, 1 slave. */
struct pic_state { u8 irr, isr, imr, elcr, base; };
struct pic_state pic_get_state(const struct pic *p, int chip);

/* ---- I/O APIC at IOAPIC_MMIO_BASE: 24 pins, version 0x20 (with the EOI register) ---- */
struct ioapic *ioapic_create(struct machine *m);
/* Registers its state description (machine/state.h). */
void ioapic_state_register(struct ioapic *d, struct state_registry *r);
void ioapic_destroy(struct ioapic *io);
void ioapic_reset(struct ioapic *io);
/* Electrical level of input pin 0-23; the entry's polarity bit says which level asserts
 * the pin (active-high lines: level = asserted). */
void ioapic_set_irq(struct ioapic *io, int pin, bool level);
/* EOI broadcast of a level-triggered vector from a LAPIC (or the EOI register). */
void ioapic_eoi(struct ioapic *io, u8 vector);
u64 ioapic_redirection(const struct ioapic *io, int pin); /* for tests and tracing */

/* ---- 8254 PIT at 0x40-0x43 and port 0x61 (counter 0 -> IRQ0, counter 2 -> port 0x61) ---- */
struct pit *pit_create(struct machine *m);
/* Registers its state description (machine/state.h). */
void pit_state_register(struct pit *d, struct state_registry *r);
void pit_destroy(struct pit *p);
void pit_reset(struct pit *p);
/* The HPET's legacy replacement disconnects the PIT's IRQ0 output. */
void pit_connect_irq(struct pit *p, bool connected);
/* OUT of counter 0-2 at the current virtual time. */
bool pit_out(struct pit *p, int counter);

/* ---- MC146818 RTC and CMOS NVRAM at 0x70/0x71, IRQ8 ----
 * start: the wall-clock time (UTC) the RTC shows at creation; it then advances with
 * virtual time. The memory-size bytes come from the machine's RAM size. */
struct rtc *rtc_create(struct machine *m, time_t start);
/* Registers its state description (machine/state.h). */
void rtc_state_register(struct rtc *d, struct state_registry *r);
void rtc_destroy(struct rtc *r);
/* The HPET's legacy replacement disconnects the RTC's IRQ8 output. */
void rtc_connect_irq(struct rtc *r, bool connected);
/* Bit 7 of port 0x70: NMI sources masked. */
bool rtc_nmi_masked(const struct rtc *r);

/* ---- HPET at HPET_MMIO_BASE (1 KiB): 3 timers, 64-bit counter, legacy replacement ---- */
struct hpet *hpet_create(struct machine *m, struct pit *pit, struct rtc *rtc);
/* Registers its state description (machine/state.h). */
void hpet_state_register(struct hpet *d, struct state_registry *r);
void hpet_destroy(struct hpet *h);
void hpet_reset(struct hpet *h);
/* The ACPI "HPET" table for this HPET. On entry *len is the room in buf; on return it is
 * the table's length (nothing is written when the room is too small). */
void hpet_acpi_table(u8 *buf, size_t *len);

/* ---- ACPI PM registers, SCI, reset register 0xcf9 ---- */
struct acpi_pm *acpi_pm_create(struct machine *m);
/* Registers its state description (machine/state.h). */
void acpi_pm_state_register(struct acpi_pm *d, struct state_registry *r);
void acpi_pm_destroy(struct acpi_pm *pm);
/* The power button was pressed (PWRBTN_STS; an SCI if enabled; wakes from S3). */
void acpi_pm_power_button(struct acpi_pm *pm);
/* The RTC raised its alarm interrupt (RTC_STS; an SCI, or a wake from S3, with RTC_EN). */
void acpi_pm_rtc_alarm(struct acpi_pm *pm);
/* The machine enters S3 (core-well enables go off) / wakes from it (WAK_STS). */
void acpi_pm_sleep(struct acpi_pm *pm);
void acpi_pm_resume(struct acpi_pm *pm);
u32 acpi_pm_timer(struct acpi_pm *pm); /* current PM timer value */

/* ---- PCI host bridge (Q35 MCH 8086:29c0 at 00.0), mechanism #1 and ECAM ---- */
#define PCI_CONFIG_SIZE 4096
#define PCI_DEVFN(dev, fn) ((u8)(((dev) << 3) | (fn)))

struct pci_device;
struct pci_bus;
struct pci_device_ops {
    /* Called after the guest changed config space bytes [offset, offset+size): BARs,
     * the command register. May be NULL. */
    void (*config_written)(struct pci_device *d, u16 offset, unsigned size);
};

/* A base address register: the range the device decodes where the guest puts it. */
enum pci_bar_kind { PCI_BAR_NONE, PCI_BAR_IO, PCI_BAR_MEM32 };
struct pci_bar {
    enum pci_bar_kind kind;
    u64 size;
    u64 (*read)(void *opaque, u64 offset, unsigned size);
    void (*write)(void *opaque, u64 offset, unsigned size, u64 value);
    void *opaque;
    const char *name;
    u64 mapped; /* address the range is registered at, 0 = not decoded */
};
#define PCI_NUM_BARS 6

struct pci_device {
    u8 devfn;
    const struct pci_device_ops *ops;
    void *opaque;
    struct pci_bus *bus;
    struct pci_bar bar[PCI_NUM_BARS];
    u8 config[PCI_CONFIG_SIZE]; /* contents as the guest reads them */
    u8 wmask[PCI_CONFIG_SIZE];  /* bits the guest may write */
    u8 w1cmask[PCI_CONFIG_SIZE];/* bits a guest write of 1 clears (status registers) */
};

struct pci_bus *pci_create(struct machine *m);
/* Registers its state description (machine/state.h). */
void pci_state_register(struct pci_bus *d, struct state_registry *r);
void pci_destroy(struct pci_bus *b);
/* Adds a function on bus 0 with an all-zero config space (the caller fills config,
 * wmask and w1cmask). NULL if devfn is taken. */
struct pci_device *pci_register_device(struct pci_bus *b, u8 devfn,
                                       const struct pci_device_ops *ops, void *opaque);
/* Takes a function off bus 0 again (its BARs stop decoding) and frees it. */
void pci_unregister_device(struct pci_device *d);
/* The first free device number on bus 0 (function 0), or -1 when all 32 are taken. */
int pci_free_slot(struct pci_bus *b);
/* Gives d the BAR `bar` (0-5): `size` bytes (a power of two; I/O at least 4, memory at
 * least 16) decoded by rd/wr. As firmware would, nestor assigns it an address in the
 * windows the DSDT gives PCI (I/O from PCI_IO_ALLOC_BASE, memory from the PCI hole) and
 * enables decoding in the command register; the guest may move or disable it. Where a
 * BAR overlaps a platform device, the platform device answers. */
void pci_device_add_bar(struct pci_device *d, int bar, enum pci_bar_kind kind, u64 size,
                        u64 (*rd)(void *, u64, unsigned), void (*wr)(void *, u64, unsigned, u64),
                        void *opaque, const char *name);
#define PCI_IO_ALLOC_BASE 0xc000u
#define PCI_MEM_ALLOC_BASE 0xc0000000ull
/* PCI INTx routing: pin (0 = INTA) of a function in slot drives PIRQ (slot + pin) % 4
 * (A-D; the pins of all functions are wired-OR), which reaches I/O APIC input 16 + that,
 * level-triggered and active-high (the DSDT's links GSIA-GSID in APIC mode, as QEMU's
 * q35 has them), and the 8259 input its router register in the ICH9 LPC bridge at
 * 00:1f.0 selects (PIRQx_ROUT, the DSDT's links LNKA-LNKD in PIC mode). */
#define PCI_INTX_LINKS 4
#define PCI_LPC_SLOT 31
int pci_intx_pirq(int slot, int pin);
int pci_intx_gsi(int slot, int pin);
/* A function's INTx pin is asserted or not (any devfn: Xen's callback drives the wire
 * of a device number whether or not a device is there). */
void pci_set_intx(struct pci_bus *b, u8 devfn, int pin, bool level);
/* Firmware's interrupt setup (as SeaBIOS programs a q35): the router registers and each
 * function's Interrupt Line register; returns the ISA IRQs that must be level-triggered
 * in the ELCR (pic_set_elcr). Call once the devices are on the bus. */
u16 pci_firmware_irq_setup(struct pci_bus *b);
/* Config space access by bus/devfn/offset as the guest sees it (absent: all-ones). */
u32 pci_config_read(struct pci_bus *b, u8 bus, u8 devfn, u16 offset, unsigned size);
void pci_config_write(struct pci_bus *b, u8 bus, u8 devfn, u16 offset, unsigned size, u32 value);

/* ---- i8042 keyboard controller at 0x60/0x64 (+ port 0x92), keyboard on IRQ1, an AUX
 * port with nothing attached on IRQ12 ---- */
struct kbc *kbc_create(struct machine *m);
/* Registers its state description (machine/state.h). */
void kbc_state_register(struct kbc *d, struct state_registry *r);
void kbc_destroy(struct kbc *k);
void kbc_reset(struct kbc *k);

#endif
