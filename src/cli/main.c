/* nestor's command line: QEMU's option names where the meaning is the same. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/console.h"
#include "cli/sgx_options.h"
#include "control/gdb.h"
#include "control/migrate.h"
#include "control/qmp.h"
#include "control/snapshot.h"
#include "dom0/xenstore.h"
#include "machine/machine.h"

#define NESTOR_VERSION "0.1.0"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: nestor run [options] [KERNEL]\n"
            "       nestor --help | --version\n"
            "\n"
            "Runs an x86-64 guest kernel on nestor's software CPU.\n"
            "\n"
            "options (QEMU's names where the meaning is the same):\n"
            "  -kernel FILE     kernel image: multiboot v1, PVH ELF, Linux bzImage or ELF\n"
            "  -initrd FILE     initial ramdisk / multiboot modules (comma-separated)\n"
            "  -append CMDLINE  kernel command line\n"
            "  -m SIZE          guest RAM, default 256M (suffixes K, M, G, T; plain number = MiB)\n"
            "  -smp N           number of vCPUs, default 1\n"
            "  -cpu MODEL[,+feat|,-feat|,vendor=V|,phys-bits=N]...\n"
            "                   CPU model: max (default), qemu64 or kvm64, with /proc/cpuinfo feature names;\n"
            "                   phys-bits=N: physical address width (MAXPHYADDR), 32-52, default 40\n"
            "                   pmu=on|off: performance counters (on in max, off in qemu64)\n"
            "                   vmx: Intel VT-x for guest hypervisors (in max with the Intel\n"
            "                   vendor; -vmx removes it)\n"
            "                   ,fep: UD2 followed by \"kvm\" or \"xen\" is KVM's/Xen's forced-emulation\n"
            "                   prefix: skipped, the instruction after it runs (for their test kernels)\n"
            "                   hv-relaxed,hv-vapic,hv-time,hv-vpindex,hv-runtime,hv-crash,hv-reset,\n"
            "                   hv-frequencies,hv-reenlightenment,hv-tlbflush,hv-tlbflush-ext,hv-ipi,\n"
            "                   hv-synic,hv-stimer,hv-stimer-direct,hv-xmm-input,hv-syndbg,hv-evmcs,\n"
            "                   hv-spinlocks=N,hv-vendor-id=S, hv-passthrough (all but hv-syndbg):\n"
            "                   Hyper-V's enlightenments, as QEMU names them (hv_time also works)\n"
            "  -device NAME[,prop=value...]\n"
            "                   add a device, as QEMU names them: isa-debug-exit[,iobase=P][,iosize=N]\n"
            "                   (QEMU's defaults 0x501/2; without one, nestor has it at 0xf4/4),\n"
            "                   pc-testdev, pci-testdev[,addr=SLOT], hyperv-testdev (port 0x3000),\n"
            "                   hv-syndbg[,host_ip=A][,host_port=P][,use_hcalls=on] (the synthetic\n"
            "                   debugger's UDP peer, default 127.0.0.1:50000), and with -xen the PV disk\n"
            "                   xen-disk,drive=ID,vdev=xvda[,logical_block_size=512|4096]\n"
            "                   [,physical_block_size=N][,max-ring-page-order=0-4][,num-queues=1-16]\n"
            "  -drive file=IMG,if=none,id=ID[,format=raw][,readonly=on][,snapshot=on]\n"
            "                   a raw disk image for a xen-disk; if=xen[,index=N] makes the\n"
            "                   xen-disk itself (xvda, xvdb...). readonly=on: the guest sees a\n"
            "                   read-only disk; snapshot=on: writes go to a temporary copy. The\n"
            "                   image is locked against a second writer\n"
            "  -netdev user,id=ID[,hostfwd=tcp|udp:[HOSTADDR]:PORT-[GUESTADDR]:PORT...][,restrict=on]\n"
            "  -netdev tap,id=ID,ifname=TAP\n"
            "                   a network for a xen-net-device: user networking through libslirp\n"
            "                   (DHCP 10.0.2.15, the host at 10.0.2.2, DNS at 10.0.2.3), or a\n"
            "                   host TAP interface. With -xen:\n"
            "                   -device xen-net-device,netdev=ID[,mac=MAC][,vif=N][,queues=1-8]\n"
            "  -xen [version=MAJOR.MINOR[EXTRA]][,domid=N][,platform=off]\n"
            "                   present Xen's HVM interface (CPUID leaves, hypercall page,\n"
            "                   hypercalls, event channels, timers) as Xen 4.17.0 shows it to\n"
            "                   domain 1 (the defaults), with the Xen platform PCI device\n"
            "                   5853:0001 (ports 0x10-0x1f; platform=off leaves it out)\n"
            "  -object memory-backend-epc,id=M,size=S   -M sgx-epc.N.memdev=M\n"
            "                   an SGX EPC section of S bytes (K/M/G suffixes), as QEMU spells it;\n"
            "                   sections lie above RAM, reserved in the memory map\n"
            "  -sgx-epc S[,S...] the same in short: EPC sections of these sizes\n"
            "  -sgx-provision   enclaves may have the provisioning key (ATTRIBUTES.PROVISIONKEY,\n"
            "                   with -cpu ...,+sgx-provisionkey)\n"
            "  -sgx-key FILE    SGX's keys derive from FILE's 32 bytes (made if FILE does not\n"
            "                   exist): sealed data survives restarts; else a random secret\n"
            "  -icount          deterministic mode: time advances with retired instructions\n"
            "  -rtc base=DATE   the guest's wall clock starts at DATE (YYYY-MM-DD[THH:MM:SS],\n"
            "                   UTC) instead of the host's time (with -icount: 2026-01-01)\n"
            "  -incoming file:PATH | tcp:[HOST]:PORT | unix:PATH | exec:COMMAND\n"
            "                   start from a machine saved to PATH, or wait for one migrated to\n"
            "                   this socket or from this command's output (same options as the\n"
            "                   source)\n"
            "  -save-at N:PATH[:continue]\n"
            "                   when the machine has retired N instructions (all vCPUs), save it\n"
            "                   to PATH and stop with status 0 (or continue running)\n"
            "  -state-digest    print a SHA-256 of the machine's final state and RAM at exit\n"
            "  -qmp unix:PATH,server=on,wait=off | tcp:HOST:PORT,server=on,wait=off\n"
            "                   serve QEMU's machine protocol (QMP) there; wait=on starts the\n"
            "                   guest only once a client has connected\n"
            "  -incoming defer  wait for QMP's migrate-incoming\n"
            "  -gdb tcp::PORT   serve gdb's remote protocol (target remote :PORT); -s is\n"
            "                   -gdb tcp::1234\n"
            "  -S               start the guest stopped (gdb's continue or QMP's cont runs it)\n"
            "  -d ITEMS         trace: comma-separated list of 'insn' (executed instructions)\n"
            "                   'exit' (every event leaving the CPU), 'state' (with\n"
            "                   -state-digest, a digest of each component's state) and\n"
            "                   'xenstore' (with -xen, the store's tree at exit)\n"
            "  -D FILE          write the trace to FILE (default stderr)\n"
            "  -max-insns N     stop (status 4) after N instructions on vCPU 0\n"
            "  -stats           print instructions retired and MIPS when the guest stops\n"
            "  -nographic, -no-reboot, -serial stdio\n"
            "                   accepted for QEMU compatibility (this is how nestor always runs)\n"
            "\n"
            "The serial port COM1 is the console on standard input/output. A guest write of V\n"
            "to the debug-exit port (0xf4) ends nestor with exit status (V << 1) | 1. Poweroff or reset gives 0;\n"
            "a triple fault gives 4 and a dump of the vCPU state; bad options or images give 2.\n");
}


static int parse_int(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

/* -rtc base=...: QEMU's date forms (UTC); base=utc is the default, the host's time. */
static int parse_rtc(const char *v, s64 *out)
{
    for (const char *p = v; p && *p;) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n > 5 && !strncmp(p, "base=", 5)) {
            char d[32];
            if (n - 5 >= sizeof(d))
                return -1;
            memcpy(d, p + 5, n - 5);
            d[n - 5] = 0;
            if (!strcmp(d, "utc") || !strcmp(d, "localtime")) {
                *out = 0;
            } else {
                struct tm tm = { 0 };
                char *rest = strptime(d, "%Y-%m-%d", &tm);
                if (rest && *rest == 'T')
                    rest = strptime(rest + 1, "%H:%M:%S", &tm);
                if (!rest || *rest)
                    return -1;
                time_t t = timegm(&tm);
                if (t <= 0)
                    return -1;
                *out = (s64)t;
            }
        } else if (!(n >= 6 && !strncmp(p, "clock=", 6)) && !(n >= 6 && !strncmp(p, "driftfix=", 9))) {
            return -1;
        }
        p = e ? e + 1 : NULL;
    }
    return 0;
}

/* -save-at: the machine saves itself at an exact instruction count. */
struct save_point {
    struct machine *m;
    u64 icount;
    char *path;
    bool keep_running;
    bool failed;
};

static int parse_save_at(const char *v, struct save_point *sp)
{
    char *end;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 10);
    if (errno || end == v || *end != ':' || !end[1] || n == 0)
        return -1;
    free(sp->path);
    sp->path = strdup(end + 1);
    sp->icount = n;
    size_t len = strlen(sp->path);
    if (len > 9 && !strcmp(sp->path + len - 9, ":continue")) {
        sp->path[len - 9] = 0;
        sp->keep_running = true;
    }
    return 0;
}

static void save_point_event(void *opaque, enum machine_event ev)
{
    struct save_point *sp = opaque;
    if (ev != MACHINE_EV_STOP_POINT)
        return;
    char err[512];
    u64 bytes = 0;
    if (snapshot_save_file(sp->m, sp->path, &bytes, err, sizeof(err)) < 0) {
        fprintf(stderr, "nestor: -save-at: %s\n", err);
        sp->failed = true;
        machine_request_stop(sp->m, NESTOR_EXIT_GUEST_ERROR);
        return;
    }
    nestor_log("saved the machine at instruction %llu to %s (%llu bytes)",
               (unsigned long long)sp->icount, sp->path, (unsigned long long)bytes);
    if (!sp->keep_running)
        machine_request_stop(sp->m, NESTOR_EXIT_OK);
}

static const struct machine_control_ops save_point_ops = { NULL, save_point_event };

/* SIGTERM: the first asks the guest to power off (machine_powerdown_async), the second
 * ends nestor at once */
static struct machine *signal_machine;
static volatile sig_atomic_t sigterms;

static void on_sigterm(int sig)
{
    if (++sigterms == 1 && signal_machine) {
        machine_powerdown_async(signal_machine);
        return;
    }
    console_restore_terminal();
    signal(sig, SIG_DFL);
    raise(sig);
}

static int cmd_run(int argc, char **argv)
{
    struct machine_config cfg = {
        .ram_size = 256 * MiB,
        .ncpus = 1,
        .console_in_fd = STDIN_FILENO,
        .console_out_fd = STDOUT_FILENO,
    };
    const char *trace_file = NULL;
    const char *trace_items = NULL;
    const char *incoming = NULL;
    struct save_point sp = { 0 };
    bool state_digest = false, trace_state = false, trace_xenstore = false;
    bool qmp = false, gdb = false, start_stopped = false;
    struct sgx_cli sgx = { 0 };
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        /* accept --opt as well as -opt */
        if (a[0] == '-' && a[1] == '-')
            a++;
#define NEED_VALUE                                                   \
    do {                                                             \
        if (!v) {                                                    \
            fprintf(stderr, "nestor: option %s needs a value\n", a); \
            return NESTOR_EXIT_USAGE;                                \
        }                                                            \
        i++;                                                         \
    } while (0)
        if (!strcmp(a, "-kernel")) {
            NEED_VALUE;
            cfg.kernel = v;
        } else if (!strcmp(a, "-initrd")) {
            NEED_VALUE;
            cfg.initrd = v;
        } else if (!strcmp(a, "-append")) {
            NEED_VALUE;
            cfg.append = v;
        } else if (!strcmp(a, "-m")) {
            NEED_VALUE;
            /* QEMU also accepts size=N */
            const char *sz = !strncmp(v, "size=", 5) ? v + 5 : v;
            if (parse_size(sz, MiB, &cfg.ram_size) < 0) {
                fprintf(stderr, "nestor: -m %s: not a memory size (e.g. 512M, 2G)\n", v);
                return NESTOR_EXIT_USAGE;
            }
        } else if (!strcmp(a, "-smp")) {
            NEED_VALUE;
            long n;
            const char *sn = !strncmp(v, "cpus=", 5) ? v + 5 : v;
            if (parse_int(sn, 1, MACHINE_MAX_CPUS, &n) < 0) {
                fprintf(stderr, "nestor: -smp %s: a number of vCPUs from 1 to %d\n", v, MACHINE_MAX_CPUS);
                return NESTOR_EXIT_USAGE;
            }
            cfg.ncpus = (int)n;
        } else if (!strcmp(a, "-device")) {
            NEED_VALUE;
            if (cfg.ndevices == MACHINE_MAX_DEVICES) {
                fprintf(stderr, "nestor: more than %d -device options\n", MACHINE_MAX_DEVICES);
                return NESTOR_EXIT_USAGE;
            }
            cfg.devices[cfg.ndevices++] = v;
        } else if (!strcmp(a, "-drive")) {
            NEED_VALUE;
            if (cfg.ndrives == MACHINE_MAX_DRIVES) {
                fprintf(stderr, "nestor: more than %d -drive options\n", MACHINE_MAX_DRIVES);
                return NESTOR_EXIT_USAGE;
            }
            cfg.drives[cfg.ndrives++] = v;
        } else if (!strcmp(a, "-netdev")) {
            NEED_VALUE;
            if (cfg.nnetdevs == MACHINE_MAX_NETDEVS) {
                fprintf(stderr, "nestor: more than %d -netdev options\n", MACHINE_MAX_NETDEVS);
                return NESTOR_EXIT_USAGE;
            }
            cfg.netdevs[cfg.nnetdevs++] = v;
        } else if (!strcmp(a, "-cpu")) {
            NEED_VALUE;
            cfg.cpu_spec = v;
        } else if (!strcmp(a, "-object") || !strcmp(a, "-M") || !strcmp(a, "-machine") ||
                   !strcmp(a, "-sgx-epc")) {
            NEED_VALUE;
            char err[256];
            int r = !strcmp(a, "-object") ? sgx_cli_object(&sgx, v, err, sizeof(err))
                    : !strcmp(a, "-sgx-epc") ? sgx_cli_epc(&sgx, v, err, sizeof(err))
                                             : sgx_cli_machine(&sgx, v, err, sizeof(err));
            if (r < 0) {
                fprintf(stderr, "nestor: %s\n", err);
                return NESTOR_EXIT_USAGE;
            }
        } else if (!strcmp(a, "-sgx-provision")) {
            sgx.provision = true;
        } else if (!strcmp(a, "-sgx-key")) {
            NEED_VALUE;
            sgx.key_file = v;
        } else if (!strcmp(a, "-xen")) {
            /* an optional value: version=...,domid=... */
            const char *spec = v && v[0] != '-' && strchr(v, '=') ? argv[++i] : NULL;
            char err[160];
            if (xen_parse_option(&cfg.xen, spec, err, sizeof(err)) < 0) {
                fprintf(stderr, "nestor: %s\n", err);
                return NESTOR_EXIT_USAGE;
            }
        } else if (!strcmp(a, "-icount")) {
            cfg.deterministic = true;
            /* QEMU's -icount takes an argument (shift=N,...); accept and ignore it */
            if (v && v[0] != '-' && (strchr(v, '=') || strspn(v, "0123456789") == strlen(v)))
                i++;
        } else if (!strcmp(a, "-rtc")) {
            NEED_VALUE;
            if (parse_rtc(v, &cfg.rtc_base) < 0) {
                fprintf(stderr, "nestor: -rtc %s: expected base=YYYY-MM-DD[THH:MM:SS] or base=utc\n", v);
                return NESTOR_EXIT_USAGE;
            }
        } else if (!strcmp(a, "-incoming")) {
            NEED_VALUE;
            if (strncmp(v, "file:", 5) && strncmp(v, "tcp:", 4) && strncmp(v, "unix:", 5) &&
                strncmp(v, "exec:", 5) && strcmp(v, "defer")) {
                fprintf(stderr, "nestor: -incoming %s: expected file:PATH, tcp:[HOST]:PORT, "
                                "unix:PATH or exec:COMMAND\n", v);
                return NESTOR_EXIT_USAGE;
            }
            incoming = v;
        } else if (!strcmp(a, "-save-at")) {
            NEED_VALUE;
            if (parse_save_at(v, &sp) < 0) {
                fprintf(stderr, "nestor: -save-at %s: expected N:PATH[:continue]\n", v);
                return NESTOR_EXIT_USAGE;
            }
        } else if (!strcmp(a, "-qmp")) {
            NEED_VALUE;
            char err[300];
            if (qmp_listen(v, err, sizeof(err)) < 0) {
                fprintf(stderr, "nestor: %s\n", err);
                return NESTOR_EXIT_USAGE;
            }
            qmp = true;
        } else if (!strcmp(a, "-gdb") || !strcmp(a, "-s")) {
            const char *spec = "tcp::1234";
            if (!strcmp(a, "-gdb")) {
                NEED_VALUE;
                spec = v;
            }
            char err[300];
            if (gdb || gdb_listen(spec, err, sizeof(err)) < 0) {
                fprintf(stderr, "nestor: %s\n", gdb ? "only one -gdb" : err);
                return NESTOR_EXIT_USAGE;
            }
            gdb = true;
        } else if (!strcmp(a, "-S")) {
            start_stopped = true;
        } else if (!strcmp(a, "-state-digest")) {
            state_digest = true;
        } else if (!strcmp(a, "-d")) {
            NEED_VALUE;
            trace_items = v;
        } else if (!strcmp(a, "-D")) {
            NEED_VALUE;
            trace_file = v;
        } else if (!strcmp(a, "-max-insns")) {
            NEED_VALUE;
            char *end;
            errno = 0;
            cfg.max_insns = strtoull(v, &end, 10);
            if (errno || *end || end == v) {
                fprintf(stderr, "nestor: -max-insns %s: not a number\n", v);
                return NESTOR_EXIT_USAGE;
            }
        } else if (!strcmp(a, "-stats")) {
            cfg.stats = true;
        } else if (!strcmp(a, "-nographic") || !strcmp(a, "-no-reboot")) {
            /* nestor always runs this way */
        } else if (!strcmp(a, "-serial")) {
            NEED_VALUE;
            if (strcmp(v, "stdio")) {
                fprintf(stderr, "nestor: -serial %s: only 'stdio' is supported\n", v);
                return NESTOR_EXIT_USAGE;
            }
        } else if (a[0] == '-') {
            fprintf(stderr, "nestor: unknown option %s (see nestor --help)\n", argv[i]);
            return NESTOR_EXIT_USAGE;
        } else if (!cfg.kernel) {
            cfg.kernel = a;
        } else {
            fprintf(stderr, "nestor: more than one kernel given: %s and %s\n", cfg.kernel, a);
            return NESTOR_EXIT_USAGE;
        }
#undef NEED_VALUE
    }
    {
        char err[256];
        if (sgx_cli_finish(&sgx, &cfg.sgx, err, sizeof(err)) < 0) {
            fprintf(stderr, "nestor: %s\n", err);
            return NESTOR_EXIT_USAGE;
        }
    }
    if (start_stopped && !gdb && !qmp) {
        fprintf(stderr, "nestor: -S needs -gdb (or -s) or -qmp: nothing could start the guest\n");
        return NESTOR_EXIT_USAGE;
    }
    if (!cfg.kernel && !incoming) {
        fprintf(stderr, "nestor: no kernel given (nestor run [options] KERNEL)\n");
        return NESTOR_EXIT_USAGE;
    }
    if (trace_items) {
        char *items = strdup(trace_items);
        for (char *t = strtok(items, ","); t; t = strtok(NULL, ",")) {
            if (!strcmp(t, "insn") || !strcmp(t, "in_asm"))
                cfg.trace_insns = true;
            else if (!strcmp(t, "exit") || !strcmp(t, "int"))
                cfg.trace_events = true;
            else if (!strcmp(t, "state"))
                trace_state = true;
            else if (!strcmp(t, "xenstore"))
                trace_xenstore = true;
            else {
                fprintf(stderr, "nestor: -d %s: unknown trace item (insn, exit, state, xenstore)\n", t);
                free(items);
                return NESTOR_EXIT_USAGE;
            }
        }
        free(items);
        cfg.trace = stderr;
        if (trace_file && !(cfg.trace = fopen(trace_file, "w"))) {
            fprintf(stderr, "nestor: -D %s: %s\n", trace_file, strerror(errno));
            return NESTOR_EXIT_USAGE;
        }
    }

    static struct machine m;
    signal_machine = &m;
    struct sigaction sa = { .sa_handler = on_sigterm };
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    static struct console con;
    console_open(&con, cfg.console_in_fd, cfg.console_out_fd);
    cfg.console_filter = console_filter;
    cfg.console_opaque = &con;
    int r = machine_create(&m, &cfg);
    if (r == 0 && qmp)
        qmp_attach(&m);
    if (r == 0 && gdb)
        gdb_attach(&m, start_stopped);
    if (r == 0 && start_stopped)
        m.paused = true; /* -S: until a debugger or QMP's cont lets it run */
    if (r == 0 && incoming && !strcmp(incoming, "defer")) {
        if (!qmp) {
            fprintf(stderr, "nestor: -incoming defer needs -qmp (migrate-incoming)\n");
            r = NESTOR_EXIT_USAGE;
        } else {
            qmp_set_incoming_deferred(true);
            m.paused = true;
        }
    } else if (r == 0 && incoming) {
        char err[512];
        if (migrate_incoming(&m, incoming, err, sizeof(err)) < 0) {
            fprintf(stderr, "nestor: -incoming: %s\n", err);
            r = NESTOR_EXIT_USAGE;
        }
    }
    if (r == 0 && sp.path) {
        char err[512];
        if (!snapshot_supported(&m, err, sizeof(err))) {
            fprintf(stderr, "nestor: -save-at: %s\n", err);
            r = NESTOR_EXIT_USAGE;
        } else {
            sp.m = &m;
            machine_set_control(&m, &save_point_ops, &sp);
            machine_stop_at(&m, sp.icount);
        }
    }
    if (r == 0 && qmp)
        qmp_wait_client();
    if (r == 0)
        r = machine_run(&m);
    /* system_reset: the machine starts again from its configuration */
    while (qmp && qmp_reset_requested()) {
        machine_destroy(&m);
        r = machine_create(&m, &cfg);
        if (r)
            break;
        qmp_attach(&m);
        if (gdb)
            gdb_attach(&m, false);
        r = machine_run(&m);
    }
    if (r != NESTOR_EXIT_USAGE && state_digest && !sp.failed) {
        char hex[65];
        snapshot_digest(&m, hex);
        fprintf(stderr, "nestor: state digest %s (%llu instructions)\n", hex,
                (unsigned long long)machine_icount(&m));
        if (trace_state)
            snapshot_digest_sections(&m, cfg.trace ? cfg.trace : stderr);
    }
    if (trace_xenstore && m.xenstore && r != NESTOR_EXIT_USAGE) {
        FILE *out = cfg.trace ? cfg.trace : stderr;
        fprintf(out, "xenstore at exit:\n");
        xenstore_dump(m.xenstore, out);
    }
    if (sp.failed)
        r = NESTOR_EXIT_GUEST_ERROR;
    machine_destroy(&m);
    console_close(&con);
    if (cfg.trace && cfg.trace != stderr)
        fclose(cfg.trace);
    free(sp.path);
    if (qmp)
        qmp_shutdown();
    if (gdb)
        gdb_shutdown();
    return r;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return NESTOR_EXIT_USAGE;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("nestor %s\n", NESTOR_VERSION);
        return 0;
    }
    if (!strcmp(argv[1], "run"))
        return cmd_run(argc - 2, argv + 2);
    /* `nestor [options] KERNEL` is `nestor run ...` */
    if (argv[1][0] == '-' || access(argv[1], R_OK) == 0)
        return cmd_run(argc - 1, argv + 1);
    fprintf(stderr, "nestor: unknown command '%s' (see nestor --help)\n", argv[1]);
    return NESTOR_EXIT_USAGE;
}
