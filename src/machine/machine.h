/* The machine: guest RAM, the port/MMIO buses, the vCPUs, the virtual clock and the
 * devices. It owns the handler behind cpu_intercept() and routes every exit to exactly
 * one owner. vCPUs run round-robin on one host thread, which keeps runs deterministic. */
#ifndef NESTOR_MACHINE_MACHINE_H
#define NESTOR_MACHINE_MACHINE_H

#include <stdio.h>

#include "common.h"
#include "cpu/cpu.h"
#include "cpu/sgx/sgx.h"
#include "machine/bus.h"
#include "machine/clock.h"
#include "machine/mem.h"
#include "machine/state.h"
#include "hv/xen/xen.h"
#include "hv/hyperv/hyperv.h"

struct xenstore;
struct xenstore_ring;
struct pvconsole;
struct xendevs;

/* What the console's escape commands ask of the machine */
enum console_action { CONSOLE_NONE, CONSOLE_QUIT, CONSOLE_POWERDOWN };

#define MACHINE_MAX_CPUS 64

struct lapic;
struct ioapic;
struct uart;
struct fwcfg;
struct pic;
struct pit;
struct rtc;
struct hpet;
struct acpi_pm;
struct pci_bus;
struct kbc;
struct pc_testdev;
struct pci_testdev;
struct xen_platform;
struct hyperv_testdev;

#define MACHINE_MAX_DEVICES 16
#define MACHINE_MAX_DRIVES 16
#define MACHINE_MAX_NETDEVS 8

struct machine_config {
    u64 ram_size;
    int ncpus;
    const char *cpu_spec;     /* -cpu */
    const char *kernel;
    const char *initrd;
    const char *append;
    /* -device NAME[,prop=value...] options, as QEMU spells them */
    const char *devices[MACHINE_MAX_DEVICES];
    int ndevices;
    /* -drive key=value,... (machine/xendev.h) */
    const char *drives[MACHINE_MAX_DRIVES];
    int ndrives;
    /* -netdev TYPE,id=N,... (machine/xendev.h) */
    const char *netdevs[MACHINE_MAX_NETDEVS];
    int nnetdevs;
    bool deterministic;
    s64 rtc_base;             /* -rtc base=DATE: the wall clock at start (Unix time), 0: default */
    FILE *trace;              /* NULL: no trace */
    bool trace_insns, trace_events;
    u64 max_insns;            /* 0 = unlimited; stop with an error after this many */
    bool stats;               /* print instructions retired and MIPS at exit */
    int console_in_fd;        /* -1: no console input */
    int console_out_fd;
    /* Console input filter (escape commands); returns bytes left for the guest. May set
     * *action: CONSOLE_QUIT ends the run with status 0, CONSOLE_POWERDOWN asks the guest to
     * power off (machine_powerdown). NULL: input goes to the guest unchanged. */
    size_t (*console_filter)(void *opaque, u8 *buf, size_t n, enum console_action *action);
    void *console_opaque;
    struct xen_config xen;    /* -xen: the Xen HVM interface */
    /* SGX: the EPC sections' sizes (-object memory-backend-epc / -M sgx-epc.N.memdev, or
     * -sgx-epc), the provisioning key grant (-sgx-provision) and the keys' root secret
     * (-sgx-key FILE); the machine places the sections above RAM */
    struct sgx_config sgx;
};

/* A vCPU's scheduling state (see machine_run: rounds of passes). */
struct vcpu_sched {
    u64 ran;          /* instructions retired in the current round */
    bool waiting;     /* its pass ended in a PAUSE loop: it waits for another vCPU */
    u64 wait_mark;    /* m->progress when it began to wait */
    u64 last_pause;   /* icount at its last PAUSE */
    u32 pause_run;    /* PAUSEs in its current PAUSE loop */
};

/* The round of vCPU passes in progress (machine_run), kept in the machine so that a
 * round cut at a stop point goes on from there, in this process or after a restore. */
struct machine_round {
    bool active;
    u64 budget;
    int pos;          /* the vCPU whose pass is next or open */
    bool progress;    /* a pass of this sweep retired instructions */
    bool pass_open;   /* vCPU pos's pass was cut at a stop point */
    u64 pass_start;   /* its icount when the pass began */
};

/* What the control plane (src/control/: QMP, gdb, save/restore) hears from the machine,
 * and how it gets to act: between rounds the run loop calls poll, often while vCPUs
 * run (timeout 0) and in every wait while paused. */
enum machine_event {
    MACHINE_EV_STOP,       /* machine_pause took effect */
    MACHINE_EV_RESUME,     /* machine_resume */
    MACHINE_EV_SHUTDOWN,   /* the run ends (m->exit_status) */
    MACHINE_EV_GUEST_PANICKED, /* the guest reported a crash (m->panic_info: the Hyper-V
                              crash parameters); the run then ends with the guest-error status */
    MACHINE_EV_STOP_POINT, /* the machine reached the machine_stop_at count: every vCPU
                              is between instructions; the handler may save, pause, stop */
    MACHINE_EV_DEBUG,      /* a vCPU stopped at a host debugger's breakpoint or watchpoint
                              (m->debug_vcpu; cpu->host_stop says which): the machine is
                              paused, every vCPU between instructions */
};
#define MACHINE_MAX_CONTROLS 4
struct machine_control_ops {
    void (*poll)(void *opaque, int timeout_ms);
    void (*event)(void *opaque, enum machine_event ev);
};

struct machine {
    struct machine_config cfg;
    struct guest_mem mem;
    struct bus io, mmio;
    struct vclock clock;
    struct cpuid_model model;
    struct cpu *cpu[MACHINE_MAX_CPUS];
    struct lapic *lapic[MACHINE_MAX_CPUS];
    int ncpus;
    struct uart *uart;
    struct fwcfg *fwcfg;
    struct pic *pic;
    struct ioapic *ioapic;
    struct pit *pit;
    struct rtc *rtc;
    struct hpet *hpet;
    struct acpi_pm *acpi_pm;
    struct pci_bus *pci;
    u32 irq_level;            /* lines raised through machine_set_irq (bit n = line n) */
    u32 pci_gsis;             /* I/O APIC inputs and ... */
    u16 pci_isa_irqs;         /* ... 8259 inputs driven by PCI INTx (machine_set_pci_lines) */
    u32 xen_cb_lines;         /* GSIs the Xen callback line (GSI form) drives */
    struct kbc *kbc;
    struct pc_testdev *pc_testdev;   /* -device pc-testdev */
    struct pci_testdev *pci_testdev; /* -device pci-testdev */
    struct xen *xen;                 /* -xen: the hypervisor interface, or NULL */
    struct hyperv *hyperv;           /* -cpu ...,hv-*: the Hyper-V interface, or NULL */
    struct sgx_epc *sgx_epc;         /* SGX's EPC (cfg.sgx), or NULL */
    struct hyperv_config hyperv_cfg; /* what -cpu and -device hv-syndbg asked of it */
    struct hyperv_testdev *hyperv_testdev; /* -device hyperv-testdev */
    u64 panic_info[5];               /* the guest's crash report (MACHINE_EV_GUEST_PANICKED) */
    struct xen_platform *xen_platform; /* -xen: its platform PCI device */
    struct xenstore *xenstore;       /* -xen: domain 0's store for the guest */
    struct xenstore_ring *xenstore_ring; /* and its ring */
    struct pvconsole *pvconsole;     /* -xen: the PV console's backend (hvc0) */
    struct xendevs *xendevs;         /* -xen: the PV disks' and NICs' backends */
    struct vcpu_sched sched[MACHINE_MAX_CPUS];
    bool started[MACHINE_MAX_CPUS];  /* the vCPU has run (the BSP, an AP after its SIPI) */
    int running;              /* the vCPU in cpu_run(), or -1 */
    bool end_pass;            /* the running vCPU made another one runnable: let it run */
    u64 progress;             /* passes that retired instructions, this run */
    u64 stat_rounds, stat_runs, stat_pause_waits, stat_message_ends; /* for -stats */
    bool stop;
    int exit_status;          /* status the process exits with when the guest stops */
    /* a host signal asked the guest to power off (machine_powerdown_async); when the
     * request was made (host ns), so that a guest that ignores it does not keep nestor */
    volatile int powerdown_signal; /* sig_atomic_t is int here; <signal.h> stays out */
    u64 powerdown_since;
    u64 acpi_rsdp;            /* physical address of the RSDP */
    bool booted_pvh;          /* the kernel was entered through its PVH entry */
    u64 acpi_facs;            /* physical address of the FACS (the OS's waking vectors) */
    /* ACPI S3: requested by the guest (done between rounds), in effect, wake requested */
    bool sleep_requested, suspended, wake_requested;
    struct machine_round round;
    u64 rounds;               /* rounds run (the console is looked at every 16th) */
    /* control */
    const struct machine_control_ops *ctl[MACHINE_MAX_CONTROLS];
    void *ctl_opaque[MACHINE_MAX_CONTROLS];
    int nctl;
    bool paused;
    u64 stop_at;              /* machine_stop_at's count, 0: none */
    bool at_stop_point;
    int debug_vcpu;           /* the vCPU of the last MACHINE_EV_DEBUG */
    struct state_registry state; /* every component's state description */
};

/* Builds the machine (RAM, devices, CPUs, ACPI, fw_cfg) and loads the kernel.
 * Returns 0 or an exit status (NESTOR_EXIT_USAGE for bad images/options). */
int machine_create(struct machine *m, const struct machine_config *cfg);
void machine_destroy(struct machine *m);
/* Runs until the guest stops; returns the process exit status. */
int machine_run(struct machine *m);
/* Devices ask the machine to stop with a status (debug-exit, poweroff, triple fault). */
/* Asks the guest to power off, as a host's shutdown does: a Xen guest through xenstore's
 * control/shutdown ("poweroff", as `xl shutdown`), any other through the ACPI power
 * button. */
void machine_powerdown(struct machine *m);
/* The same from a signal handler (SIGTERM): the run loop acts on it at its next turn. A
 * guest that has not stopped 30 s later is ended as a hung guest (status 4). */
void machine_powerdown_async(struct machine *m);
void machine_request_stop(struct machine *m, int status);
/* ACPI S3, suspend to RAM (the PM device calls it for SLP_TYP = S3 with SLP_EN). The
 * vCPU stops after the instruction; between rounds the machine then powers down what
 * loses power in S3 on a PC (the processors and their local APICs, the PIC, I/O APIC,
 * PIT, HPET, UART, i8042) and keeps RAM and the battery-backed or resume-well devices
 * (the RTC with its alarm, the ACPI PM registers, fw_cfg). No vCPU runs while the machine
 * is suspended; virtual time goes on. */
void machine_suspend(struct machine *m);
/* Wakes a machine that is suspended (or about to be) in S3: the ACPI PM device on a wake
 * event, a control command. Between rounds the devices come back in their power-on
 * state, WAK_STS is set, the boot vCPU starts at the FACS waking vector as firmware
 * leaves it, the others wait for a SIPI. A no-op for a running machine. */
void machine_wake(struct machine *m);
/* Carries out a requested suspend, then a requested wake, where no vCPU runs (the run
 * loop calls it between rounds). */
void machine_power_transitions(struct machine *m);
/* ---- control ---- */
/* Adds a control client (QMP, gdb, a save point): each hears every event. */
void machine_set_control(struct machine *m, const struct machine_control_ops *ops, void *opaque);
/* Pausing takes effect between rounds: no vCPU runs, virtual time stands still. */
void machine_pause(struct machine *m);
void machine_resume(struct machine *m);
/* Instructions retired by every vCPU together. */
u64 machine_icount(const struct machine *m);
/* Stops the run when the machine has retired exactly icount instructions in all
 * (machine_icount), at that instruction boundary, and tells the control plane
 * (MACHINE_EV_STOP_POINT); 0 cancels. With -icount the point is reproducible. */
void machine_stop_at(struct machine *m, u64 icount);
/* The machine's state (state.h): serialised, loaded into a machine created with the same
 * configuration (0, or -1 with a message). RAM is not part of it (see control/snapshot). */
void machine_state_save(struct machine *m, struct state_buf *b);
int machine_state_load(struct machine *m, const u8 *p, size_t len, char *err, size_t errlen);

/* Dirty logging for live migration: start (every page clean), the pages written since
 * the last take (mem_dirty_log_take's bitmap), stop. Between rounds only. */
int machine_dirty_log_start(struct machine *m);
void machine_dirty_log_take(struct machine *m, u8 *out);
void machine_dirty_log_stop(struct machine *m);

/* Raise/lower an ISA IRQ line (routes to PIC/IOAPIC when present, else LAPIC LINT0). */
void machine_set_irq(struct machine *m, int irq, bool level);
/* The lines PCI INTx drives now (the PCI interrupt router's outputs): I/O APIC inputs
 * (bit n = GSI n) and 8259 inputs (bit n = ISA IRQ n). Each controller input is the OR
 * of these and of the machine_set_irq() sources of the same line. */
void machine_set_pci_lines(struct machine *m, u32 gsis, u16 isa_irqs);
/* Deliver an interrupt message (from LAPIC IPIs, IOAPIC, MSI) to the destination CPUs. */
struct apic_msg { u32 dest; u8 vector; u8 delivery; bool logical; bool level; u8 shorthand; int src; };
void machine_apic_send(struct machine *m, const struct apic_msg *msg);
/* vCPU vcpu was given something to do by the running one (an interrupt message, an
 * event): the running vCPU's pass ends after this instruction so that it runs next. */
void machine_kick(struct machine *m, int vcpu);
/* A LAPIC's EOI of a level-triggered vector, broadcast to the I/O APIC. */
void machine_eoi_broadcast(struct machine *m, u8 vector);
/* vCPU vcpu's LAPIC ended the service of vector (any EOI): the hypervisor interface hears it */
void machine_lapic_eoi(struct machine *m, int vcpu, u8 vector);

#endif
