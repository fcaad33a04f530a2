/* Devices of the PC platform. Each registers its ranges on the machine's buses; those
 * with per-CPU state (the LAPIC) are reached by the machine through these functions. */
#ifndef NESTOR_DEV_DEV_H
#define NESTOR_DEV_DEV_H

#include "machine/state.h"

#include "common.h"

struct machine;
struct cpu;

/* 16550A UART at 0x3f8 (COM1), IRQ 4, on the console file descriptors. */
struct uart *uart_create(struct machine *m, u16 base, int irq, int in_fd, int out_fd);
/* Registers its state description (machine/state.h). */
void uart_state_register(struct uart *d, struct state_registry *r);
void uart_destroy(struct uart *u);
void uart_reset(struct uart *u); /* power-on state (waking from ACPI S3) */
/* Feeds console input bytes (from the machine's stdin poller). */
void uart_receive(struct uart *u, const u8 *buf, size_t len);
bool uart_can_receive(const struct uart *u);
/* Level of the UART's interrupt line as the ISA bus sees it (IER, IIR, MCR.OUT2). */
bool uart_irq_level(const struct uart *u);

/* QEMU's isa-debug-exit at ports [port, port+size): a write of v stops the machine with
 * status (v << 1) | 1. nestor has one at 0xf4 (4 ports) unless -device isa-debug-exit
 * says where (QEMU's defaults then: iobase 0x501, iosize 2). Returns 0, or -1 with a
 * message when the ports are taken. */
int debugexit_create(struct machine *m, u16 port, u16 size);
#define DEBUGEXIT_DEFAULT_PORT 0xf4
#define DEBUGEXIT_DEFAULT_SIZE 4

/* QEMU's test devices (src/dev/testdev.c): pc-testdev (ports 0xe0-0xeb, IRQ lines at
 * 0x2000-0x2017, 64 KiB of MMIO at PC_TESTDEV_IOMEM_BASE) and pci-testdev (1b36:0005 in
 * PCI slot `slot`, BAR0 4 KiB memory, BAR1 256 I/O ports). */
#define PC_TESTDEV_IOMEM_BASE 0xff000000ull
struct pc_testdev *pc_testdev_create(struct machine *m);
/* Registers its state description (machine/state.h). */
void pc_testdev_state_register(struct pc_testdev *d, struct state_registry *r);
void pc_testdev_destroy(struct pc_testdev *t);
struct pci_testdev *pci_testdev_create(struct machine *m, int slot);
/* Registers its state description (machine/state.h). */
void pci_testdev_state_register(struct pci_testdev *d, struct state_registry *r);
void pci_testdev_destroy(struct pci_testdev *d);

/* The Xen platform PCI device 5853:0001 (with -xen; src/dev/xen_platform.c): in the first
 * free PCI slot, with the fixed I/O ports 0x10-0x1f of Xen's PV-driver protocol; its
 * debug log goes to console_fd. */
/* QEMU's hyperv-testdev (port 3000h): the guest asks for SynIC routes and message and
 * event connections, as kvm-unit-tests' Hyper-V tests do. NULL if out of memory. */
struct hyperv;
struct hyperv_testdev *hyperv_testdev_create(struct machine *m, struct hyperv *hv);
void hyperv_testdev_destroy(struct hyperv_testdev *d);
void hyperv_testdev_state_register(struct hyperv_testdev *d, struct state_registry *r);

struct xen_platform *xen_platform_create(struct machine *m, int console_fd);
/* Registers its state description (machine/state.h). */
void xen_platform_state_register(struct xen_platform *d, struct state_registry *r);
void xen_platform_destroy(struct xen_platform *p);
/* Takes the device away again (a PVH guest has no device model, so no platform device). */
void xen_platform_remove(struct xen_platform *p);
u8 xen_platform_devfn(const struct xen_platform *p);

/* fw_cfg at 0x510 (selector) / 0x511 (data), with DMA at 0x514, as QEMU has it. */
struct fwcfg *fwcfg_create(struct machine *m);
/* Registers its state description (machine/state.h). */
void fwcfg_state_register(struct fwcfg *d, struct state_registry *r);
void fwcfg_destroy(struct fwcfg *f);
/* Adds a named file (copied). */
void fwcfg_add_file(struct fwcfg *f, const char *name, const void *data, size_t len);
/* Sets a fixed-key item (copied). */
void fwcfg_set(struct fwcfg *f, u16 key, const void *data, size_t len);

/* ACPI tables (RSDP in the BIOS area, XSDT, MADT, FADT, DSDT ...) written to guest RAM.
 * Returns the RSDP's physical address. */
u64 acpi_build(struct machine *m);
/* The ACPI PM device (PM1 blocks, PM timer, reset register) is in src/dev/platform.h;
 * create it before acpi_build(), which advertises the blocks whose ports are owned. */
/* Guest physical area the tables occupy (in the BIOS area, reserved in e820); loaders
 * keep out of it. */
#define ACPI_AREA_BASE 0xF0000ull /* the F segment, where test kernels scan for the RSDP */
#define ACPI_AREA_SIZE 0x10000ull

/* Local APIC, one per vCPU: xAPIC MMIO at the APIC base, x2APIC MSRs, timer (one-shot,
 * periodic, TSC-deadline), IPIs (INIT/SIPI/fixed/NMI), EOI, TPR/PPR priorities. */
struct lapic *lapic_create(struct machine *m, struct cpu *cpu, int id, bool bsp);
/* Registers its state description (machine/state.h). */
void lapic_state_register(struct lapic *d, struct state_registry *r);
void lapic_destroy(struct lapic *l);
u64 lapic_mmio_read(struct lapic *l, u64 offset, unsigned size);
void lapic_mmio_write(struct lapic *l, u64 offset, unsigned size, u64 value);
bool lapic_msr_read(struct lapic *l, u32 msr, u64 *value);   /* APIC base, x2APIC, TSC deadline */
bool lapic_msr_write(struct lapic *l, u32 msr, u64 value);   /* false -> #GP */
u64 lapic_base(const struct lapic *l);                        /* APIC base MSR value */
bool lapic_hw_enabled(const struct lapic *l);
bool lapic_x2apic_mode(const struct lapic *l);                /* x2APIC mode (base MSR bit 10) */
/* Does the xAPIC page at the APIC base belong to this LAPIC (enabled, xAPIC mode)?
 * Otherwise an access there is an access to whatever else is at that address. */
bool lapic_mmio_decoded(const struct lapic *l);
/* Highest pending interrupt above the processor priority, or -1; ack moves it to ISR. */
int lapic_intr_pending(struct lapic *l);
int lapic_intr_ack(struct lapic *l);
/* Accepts an interrupt message (from another LAPIC, the IOAPIC or MSI). */
void lapic_deliver(struct lapic *l, u8 vector, u8 delivery_mode, bool level);
/* A hypervisor sets a fixed, edge-triggered vector in IRR directly (Xen's per-vCPU
 * upcall vector, vlapic_set_irq): unlike a message, it is taken even while the APIC is
 * software-disabled, and is delivered once the APIC is enabled. */
void lapic_inject(struct lapic *l, u8 vector);
/* Does this LAPIC match destination dest (physical/logical, flat/cluster, x2APIC)? */
bool lapic_match_dest(const struct lapic *l, u32 dest, bool logical);
/* CR8 <-> TPR */
void lapic_set_tpr(struct lapic *l, u8 tpr_4bit);
u8 lapic_get_tpr(const struct lapic *l);
/* LINT0/LINT1 pins (ExtINT from the PIC, NMI). */
void lapic_set_lint(struct lapic *l, int pin, bool level);
/* A performance counter overflowed with its interrupt on: the LVT performance-counter
 * entry signals (fixed or NMI); Intel's APIC then masks the entry. */
void lapic_pmi(struct lapic *l);
/* INIT received: registers back to their power-up state except the ID and base MSR. */
void lapic_init_signal(struct lapic *l);
/* Power-on reset (waking from ACPI S3): the ID and base MSR too, xAPIC mode. */
void lapic_reset(struct lapic *l);
/* ExtINT: the CPU's INTR input is asserted through this LAPIC (LINT0/LINT1 in ExtINT
 * mode, an ExtINT message, or LINT0 while the LAPIC is disabled); the vector comes from
 * the 8259 PIC, and the machine calls lapic_extint_ack() when the CPU takes it. */
bool lapic_extint_pending(const struct lapic *l);
void lapic_extint_ack(struct lapic *l);
/* A hypervisor's auto-EOI (Hyper-V SynIC): the vector just acknowledged leaves service at
 * once, with no EOI broadcast. */
void lapic_isr_clear(struct lapic *l, u8 vector);
/* Whether vector is the only one in service, edge-triggered, with nothing in IRR (the
 * condition for Hyper-V's EOI avoidance through the VP assist page). */
bool lapic_only_in_service(const struct lapic *l, u8 vector);
/* Arbitration priority, for choosing the target of a lowest-priority message. */
u8 lapic_arbitration_priority(const struct lapic *l);

/* APIC delivery modes */
enum { APIC_DM_FIXED = 0, APIC_DM_LOWEST = 1, APIC_DM_SMI = 2, APIC_DM_NMI = 4,
       APIC_DM_INIT = 5, APIC_DM_STARTUP = 6, APIC_DM_EXTINT = 7 };

/* The platform devices (PIC, I/O APIC, PIT, RTC, HPET, ACPI PM, PCI, i8042). */
#include "dev/platform.h"

#endif
