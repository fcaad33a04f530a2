/* Xen's HVM interface: identification, hypercall page, the hypercall dispatcher and the
 * hypercalls implemented so far. Facts follow Xen 4.17 (xen/arch/x86/cpuid.c,
 * xen/arch/x86/hvm/hypercall.c, xen/arch/x86/msr.c, xen/common/kernel.c,
 * xen/drivers/char/console.c); every structure and constant is the public header's. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hv/xen/xen_internal.h"

#include <xen/version.h>
#include <xen/features.h>
#include <xen/arch-x86/cpuid.h>

/* Leaves Xen answers without viridian: its own from the base, to 0x400001ff. */
#define XEN_CPUID_LAST 0x400001ffu
/* The MSR whose write places the hypercall page: 0x40000000, 0x40000200 with viridian;
 * Xen owns the range up to 0x400002ff (other indices #GP). */
#define XEN_MSR_LAST 0x400002ffu
#define HYPERCALL_PAGE_SIZE 4096u
#define HYPERCALL_STUB_SIZE 32u
/* Xen's default TSC mode (TSC_MODE_DEFAULT in xen/include/asm-x86/time.h, not public):
 * the guest reads the TSC natively when it is safe, as nestor's virtual TSC always is. */
#define TSC_MODE_DEFAULT 0u

/* ---- option ---- */
int xen_parse_option(struct xen_config *cfg, const char *spec, char *err, size_t errlen)
{
    *cfg = (struct xen_config){ .enabled = true, .major = 4, .minor = 17, .domid = 1, .platform = true };
    strcpy(cfg->extraversion, ".0");
    if (!spec || !*spec)
        return 0;
    char *copy = strdup(spec), *save = NULL;
    const char *why = NULL, *bad = NULL;
    for (char *t = strtok_r(copy, ",", &save); t && !why; t = strtok_r(NULL, ",", &save)) {
        char *end;
        bad = t;
        if (!strncmp(t, "version=", 8)) {
            const char *v = t + 8;
            unsigned long maj = strtoul(v, &end, 10), min = 0;
            bool ok = end != v && *end == '.' && maj <= 0xffff;
            if (ok) {
                v = end + 1;
                min = strtoul(v, &end, 10);
                ok = end != v && min <= 0xffff;
            }
            /* Xen's extraversion is the rest, ".0" when only MAJOR.MINOR is given */
            if (!ok)
                why = "the version is MAJOR.MINOR[EXTRA], e.g. 4.17 or 4.17.3";
            else if (strlen(end) >= sizeof(cfg->extraversion))
                why = "the extra version (after MAJOR.MINOR) has at most 15 characters";
            else {
                cfg->major = (u16)maj;
                cfg->minor = (u16)min;
                strcpy(cfg->extraversion, *end ? end : ".0");
            }
        } else if (!strncmp(t, "domid=", 6)) {
            /* a domU's id: not dom0, below DOMID_FIRST_RESERVED */
            unsigned long d = strtoul(t + 6, &end, 0);
            if (end == t + 6 || *end || d == 0 || d >= DOMID_FIRST_RESERVED)
                why = "the domain id is a number from 1 to 32751";
            else
                cfg->domid = (u16)d;
        } else if (!strcmp(t, "platform=on") || !strcmp(t, "platform=off")) {
            cfg->platform = t[9] == 'o' && t[10] == 'n';
        } else {
            why = "unknown property (version=, domid=, platform=on|off)";
        }
    }
    if (why)
        snprintf(err, errlen, "-xen %s: %s", bad, why);
    int rc = why ? -1 : 0;
    free(copy);
    return rc;
}

/* ---- creation ---- */
/* Xen's set_time_scale(): shift and 32-bit fraction with ns = ((ticks << shift) * mul)
 * >> 32 (a right shift for negative shift). */
static void time_scale(u64 ticks_per_sec, u32 *mul, s8 *shift)
{
    u64 tps = ticks_per_sec;
    int s = 0;
    while (tps > 2000000000ull) {
        tps >>= 1;
        s--;
    }
    u32 tps32 = (u32)tps;
    while (tps32 <= 1000000000u) {
        tps32 <<= 1;
        s++;
    }
    *mul = (u32)((1000000000ull << 32) / tps32);
    *shift = (s8)s;
}

static u64 xen_page_id(void *opaque, const u8 *host);
static u8 *xen_page(void *opaque, u64 id, u32 **gen);

struct xen *xen_create(const struct xen_config *cfg, const struct xen_host *host, u32 base)
{
    struct xen *x = calloc(1, sizeof(*x));
    if (!x)
        return NULL;
    x->vcpu = calloc(host->ncpus > 0 ? (size_t)host->ncpus : 1, sizeof(*x->vcpu));
    x->cfg = *cfg;
    x->host = *host;
    x->base = base;
    x->msr_base = base == XEN_CPUID_FIRST_LEAF ? 0x40000000u : 0x40000200u;
    time_scale((u64)host->tsc_khz * 1000, &x->time_mul, &x->time_shift);
    if (!x->vcpu || xen_time_create(x) || xen_evtchn_create(x) || xen_gnttab_create(x) ||
        xen_pirq_create(x)) {
        xen_destroy(x);
        return NULL;
    }
    xen_hvm_params_init(x);
    if (host->ncpus > 0 && host->cpus)
        mem_set_foreign_pages(host->cpus[0]->mem, xen_page_id, xen_page, x);
    return x;
}

void xen_destroy(struct xen *x)
{
    if (!x)
        return;
    if (x->host.ncpus > 0 && x->host.cpus)
        mem_set_foreign_pages(x->host.cpus[0]->mem, NULL, NULL, NULL);
    xen_special_destroy(x);
    xen_memory_destroy(x);
    xen_pirq_destroy(x);
    xen_gnttab_destroy(x);
    xen_evtchn_destroy(x);
    free(x->vcpu);
    free(x);
}

/* ---- CPUID ---- */
bool xen_cpuid(struct xen *x, const struct cpu *c, u32 leaf, u32 subleaf, u32 r[4])
{
    if (leaf < x->base || leaf > XEN_CPUID_LAST)
        return false;
    r[0] = r[1] = r[2] = r[3] = 0;
    switch (leaf - x->base) {
    case 0:
        r[0] = x->base + XEN_CPUID_MAX_NUM_LEAVES;
        r[1] = XEN_CPUID_SIGNATURE_EBX;
        r[2] = XEN_CPUID_SIGNATURE_ECX;
        r[3] = XEN_CPUID_SIGNATURE_EDX;
        break;
    case 1:
        r[0] = (u32)x->cfg.major << 16 | x->cfg.minor;
        break;
    case 2: /* one hypercall page, its MSR; no PV-only feature flags */
        r[0] = 1;
        r[1] = x->msr_base;
        break;
    case 3: /* time */
        switch (subleaf) {
        case 0: /* bit 0: TSC not emulated; 1: TSC safe (invariant); 2: RDTSCP */
            r[0] = BIT(1) | (x->host.rdtscp ? BIT(2) : 0);
            r[1] = TSC_MODE_DEFAULT;
            r[2] = x->host.tsc_khz;
            r[3] = 0; /* incarnation: never migrated */
            break;
        case 1: /* the system time at TSC 0 (0: the vCPU's TSC starts with virtual time)
                 * and the TSC-to-ns scale */
            r[2] = x->time_mul;
            r[3] = (u32)(s32)x->time_shift;
            break;
        case 2: /* the physical CPU's kHz: nestor's CPU is the virtual one */
            r[0] = x->host.tsc_khz;
            break;
        }
        break;
    case 4: /* HVM leaf: no APIC/x2APIC acceleration (software CPU); the per-vCPU upcall
             * vector (HVMOP_set_evtchn_upcall_vector) */
        if (subleaf == 0) {
            r[0] = XEN_HVM_CPUID_VCPU_ID_PRESENT | XEN_HVM_CPUID_DOMID_PRESENT |
                   XEN_HVM_CPUID_UPCALL_VECTOR;
            r[1] = (u32)c->id;
            r[2] = x->cfg.domid;
        }
        break;
    default: /* leaf 5 is PV-only: zero for HVM, as are leaves past the maximum */
        break;
    }
    return true;
}

/* ---- MSRs ---- */
bool xen_msr_owned(const struct xen *x, u32 index)
{
    return index >= x->msr_base && index <= XEN_MSR_LAST;
}

bool xen_msr_read(struct xen *x, struct cpu *c, u32 index, u64 *value)
{
    (void)x, (void)c, (void)index, (void)value;
    return false; /* Xen's MSRs are write-only */
}

/* ---- shared_info ----
 * The page lives in the guest frame the guest chose (as under KVM's Xen emulation):
 * nestor keeps its fields current there through the bounds-checked guest memory. */

/* Offsets of the wall-clock fields in the latched layout. In the x86_32 layout
 * wc_sec_hi is the word after arch.p2m_generation (xen.h puts it in arch_shared_info
 * for __i386__; foreign/x86_32.h keeps that under a macro no compiler defines). */
struct wc_offsets { size_t version, sec, nsec, sec_hi; };

static struct wc_offsets wc_offsets(const struct xen *x)
{
    if (x->shinfo_32)
        return (struct wc_offsets){
            offsetof(struct shared_info_x86_32, wc_version),
            offsetof(struct shared_info_x86_32, wc_sec),
            offsetof(struct shared_info_x86_32, wc_nsec),
            offsetof(struct shared_info_x86_32, arch) +
                offsetof(struct arch_shared_info_x86_32, p2m_generation) + sizeof(uint32_t),
        };
    return (struct wc_offsets){ offsetof(struct shared_info, wc_version),
                                offsetof(struct shared_info, wc_sec),
                                offsetof(struct shared_info, wc_nsec),
                                offsetof(struct shared_info, wc_sec_hi) };
}

/* The wall clock at system time 0, with Xen's version protocol: the version is odd
 * while the fields change. */
void xen_write_wallclock(struct xen *x, struct guest_mem *mem)
{
    if (!x->shinfo_placed)
        return;
    struct wc_offsets o = wc_offsets(x);
    u64 base = x->shinfo_gpa;
    u32 version = 0;
    mem_read_u32(mem, base + o.version, &version);
    u64 sec = x->host.boot_wall_ns / 1000000000ull;
    mem_write_u32(mem, base + o.version, (version + 1) | 1);
    mem_write_u32(mem, base + o.sec, (u32)sec);
    mem_write_u32(mem, base + o.nsec, (u32)(x->host.boot_wall_ns % 1000000000ull));
    mem_write_u32(mem, base + o.sec_hi, (u32)(sec >> 32));
    mem_write_u32(mem, base + o.version, ((version + 1) | 1) + 1);
}

/* Xen's hvm_latch_shinfo_size(): the guest's mode now decides the layout; a change
 * rewrites the wall clock where the new layout has it. */
void xen_latch_shinfo(struct xen *x, struct cpu *c)
{
    bool is32 = c->mode != MODE_LONG64;
    if (is32 != x->shinfo_32) {
        x->shinfo_32 = is32;
        xen_write_wallclock(x, c->mem);
    }
}

/* Xen's HVM hypercall page: 32-byte stubs "mov $N, %eax; vmcall (or vmmcall); ret", the
 * rest int3, and ud2 for __HYPERVISOR_iret, which HVM guests cannot use. The stubs are
 * the same in 16-, 32- and 64-bit code: the mode at each call selects the ABI. */
static void fill_hypercall_page(const struct xen *x, u8 *page)
{
    memset(page, 0xcc, HYPERCALL_PAGE_SIZE);
    for (u32 i = 0; i < HYPERCALL_PAGE_SIZE / HYPERCALL_STUB_SIZE; i++) {
        u8 *p = page + i * HYPERCALL_STUB_SIZE;
        if (i == __HYPERVISOR_iret) {
            p[0] = 0x0f, p[1] = 0x0b;
            continue;
        }
        p[0] = 0xb8;
        memcpy(p + 1, &i, 4);
        p[5] = 0x0f, p[6] = 0x01, p[7] = x->host.amd ? 0xd9 : 0xc1;
        p[8] = 0xc3;
    }
}

bool xen_msr_write(struct xen *x, struct cpu *c, u32 index, u64 value)
{
    if (index != x->msr_base)
        return false;
    /* bits 11:0 are the page's index among the leaf-2 pages (one), the rest its GPA;
     * a frame that is not RAM is refused with #GP as Xen does */
    if (value & 0xfff)
        return false;
    u64 gpa = value & ~0xfffull;
    if (!mem_ptr(c->mem, gpa, HYPERCALL_PAGE_SIZE))
        return false;
    u8 page[HYPERCALL_PAGE_SIZE];
    fill_hypercall_page(x, page);
    if (mem_write(c->mem, gpa, page, sizeof(page)))
        return false;
    xen_latch_shinfo(x, c);
    return true;
}

void xen_tsc_written(struct xen *x, struct cpu *c)
{
    xen_update_time(x, c);
}

/* ---- hypercalls ---- */
int xen_copy_from(struct xcall *k, u64 gva, void *buf, size_t len)
{
    return cpu_copy_guest(k->c, gva, buf, len, false) ? -EFAULT : 0;
}

int xen_copy_to(struct xcall *k, u64 gva, const void *buf, size_t len)
{
    return cpu_copy_guest(k->c, gva, (void *)buf, len, true) ? -EFAULT : 0;
}

/* XENVER_get_features, submap 0: what nestor honours for an HVM domU, as Xen's
 * kernel.c builds it. Translated physmap, writable page tables and a ring-0 kernel are
 * the HVM machine itself; the pvclock is safe because a write of the TSC re-bases it
 * (xen_tsc_written); the callback vector is HVM_PARAM_CALLBACK_IRQ's vector kind;
 * pirqs for an HVM domain, not a PVH one (has_pirq: physdev.c). Not (yet): vNUMA
 * (memory_op_vnode_supported: XENMEM_get_vnumainfo is not implemented). */
static const u32 features_submap0 = BIT(XENFEAT_writable_page_tables) |
                                    BIT(XENFEAT_auto_translated_physmap) |
                                    BIT(XENFEAT_supervisor_mode_kernel) |
                                    BIT(XENFEAT_hvm_safe_pvclock) |
                                    BIT(XENFEAT_hvm_callback_vector);

/* What XSM's dummy policy answers a domU for the privileged sub-ops */
static const char xen_deny[] = "<denied>";

static long do_xen_version(struct xcall *k)
{
    struct xen *x = k->x;
    u64 arg = k->arg[1];
    switch ((int)k->arg[0]) {
    case XENVER_version:
        return (long)((u32)x->cfg.major << 16 | x->cfg.minor);
    case XENVER_extraversion: {
        xen_extraversion_t v = { 0 };
        strcpy(v, x->cfg.extraversion);
        return xen_copy_to(k, arg, v, sizeof(v));
    }
    case XENVER_compile_info: {
        xen_compile_info_t info = { 0 };
        snprintf(info.compiler, sizeof(info.compiler), "%s", "nestor");
        snprintf(info.compile_by, sizeof(info.compile_by), "%s", "nestor");
        snprintf(info.compile_domain, sizeof(info.compile_domain), "%s", "nestor");
        snprintf(info.compile_date, sizeof(info.compile_date), "%s", __DATE__);
        return xen_copy_to(k, arg, &info, sizeof(info));
    }
    case XENVER_capabilities: {
        /* 64-bit Xen with HVM, no 32-bit PV */
        xen_capabilities_info_t caps = { 0 };
        strcpy(caps, "xen-3.0-x86_64 hvm-3.0-x86_32 hvm-3.0-x86_32p hvm-3.0-x86_64 ");
        return xen_copy_to(k, arg, caps, sizeof(caps));
    }
    case XENVER_changeset: {
        xen_changeset_info_t cs = { 0 };
        strcpy(cs, "nestor");
        return xen_copy_to(k, arg, cs, sizeof(cs));
    }
    case XENVER_platform_parameters: {
        /* virt_start (where a PV guest's hypervisor hole starts) is 0 for HVM; its type,
         * xen_ulong_t, is 32 bits wide in the x86_32 ABI */
        if (k->compat) {
            u32 v = 0;
            return xen_copy_to(k, arg, &v, sizeof(v));
        }
        xen_platform_parameters_t p = { 0 };
        return xen_copy_to(k, arg, &p, sizeof(p));
    }
    case XENVER_get_features: {
        xen_feature_info_t fi;
        if (xen_copy_from(k, arg, &fi, sizeof(fi)))
            return -EFAULT;
        if (fi.submap_idx != 0)
            return -EINVAL;
        fi.submap = features_submap0 | (xen_has_pirqs(x) ? BIT(XENFEAT_hvm_pirqs) : 0);
        return xen_copy_to(k, arg, &fi, sizeof(fi));
    }
    case XENVER_pagesize:
        return arg ? -EINVAL : 4096;
    case XENVER_guest_handle: {
        xen_domain_handle_t h = { 0 }; /* no toolstack gave the domain a UUID */
        return xen_copy_to(k, arg, h, sizeof(h));
    }
    case XENVER_commandline:
        return xen_copy_to(k, arg, xen_deny, sizeof(xen_deny));
    case XENVER_build_id:
        return -EPERM;
    default:
        return -ENOSYS;
    }
}

/* console_io: nestor's guest is the console domain (Xen's is_console), so it may write
 * to and read from the hypervisor console, which is nestor's. Writes go out in chunks
 * as they are read; a bad buffer ends the write with -EFAULT. No input reaches the
 * hypervisor console: reads return 0 characters. */
static long do_console_io(struct xcall *k)
{
    u32 count = (u32)k->arg[1];
    u64 buf = k->arg[2];
    switch ((int)k->arg[0]) {
    case CONSOLEIO_write: {
        char chunk[128];
        while (count) {
            u32 n = count < sizeof(chunk) ? count : (u32)sizeof(chunk);
            if (xen_copy_from(k, buf, chunk, n))
                return -EFAULT;
            if (k->x->host.console_fd >= 0) {
                ssize_t w = write(k->x->host.console_fd, chunk, n);
                (void)w; /* a closed console loses the output, as a serial line would */
            }
            buf += n;
            count -= n;
        }
        return 0;
    }
    case CONSOLEIO_read:
        if ((s32)count < 0)
            return -E2BIG;
        return 0;
    default:
        return -ENOSYS;
    }
}

/* The dispatch table: Xen's hvm_hypercall_table. Each handler takes both ABIs
 * (k->compat selects the 32-bit layouts); nargs registers are read. Numbers without an
 * entry are -ENOSYS, as in Xen for an HVM guest (the PV-only calls among them). */
struct hypercall {
    const char *name;
    long (*fn)(struct xcall *k);
    u8 nargs;
};

static long do_xen_version(struct xcall *k);
static long do_console_io(struct xcall *k);

static const struct hypercall hypercalls[] = {
    [__HYPERVISOR_set_timer_op] = { "set_timer_op", xen_do_set_timer_op, 2 },
    [__HYPERVISOR_memory_op] = { "memory_op", xen_do_memory_op, 2 },
    [__HYPERVISOR_multicall] = { "multicall", xen_do_multicall, 2 },
    [__HYPERVISOR_xen_version] = { "xen_version", do_xen_version, 2 },
    [__HYPERVISOR_console_io] = { "console_io", do_console_io, 3 },
    [__HYPERVISOR_grant_table_op] = { "grant_table_op", xen_do_grant_table_op, 3 },
    [__HYPERVISOR_vm_assist] = { "vm_assist", xen_do_vm_assist, 2 },
    [__HYPERVISOR_vcpu_op] = { "vcpu_op", xen_do_vcpu_op, 3 },
    [__HYPERVISOR_sched_op] = { "sched_op", xen_do_sched_op, 2 },
    [__HYPERVISOR_event_channel_op] = { "event_channel_op", xen_do_event_channel_op, 2 },
    [__HYPERVISOR_physdev_op] = { "physdev_op", xen_do_physdev_op, 2 },
    [__HYPERVISOR_hvm_op] = { "hvm_op", xen_do_hvm_op, 2 },
    [__HYPERVISOR_platform_op] = { "platform_op", xen_do_platform_op, 1 },
    [__HYPERVISOR_sysctl] = { "sysctl", xen_do_sysctl, 1 },
    [__HYPERVISOR_domctl] = { "domctl", xen_do_domctl, 1 },
    [XEN_HYPERCALL_PAGING_DOMCTL_CONT] = { "paging_domctl_cont", xen_do_paging_domctl_cont, 1 },
    [__HYPERVISOR_dm_op] = { "dm_op", xen_do_dm_op, 3 },
    [__HYPERVISOR_hypfs_op] = { "hypfs_op", xen_do_hypfs_op, 5 },
    [__HYPERVISOR_mmuext_op] = { "mmuext_op", xen_do_mmuext_op, 4 },
    [__HYPERVISOR_xenpmu_op] = { "xenpmu_op", xen_do_xenpmu_op, 2 },
};
#define NR_HYPERCALLS (sizeof(hypercalls) / sizeof(hypercalls[0]))

/* Argument registers: 64-bit rdi, rsi, rdx, r10, r8; 32-bit ebx, ecx, edx, esi, edi. */
static const u8 args64[5] = { R_RDI, R_RSI, R_RDX, R_R10, R_R8 };
static const u8 args32[5] = { R_RBX, R_RCX, R_RDX, R_RSI, R_RDI };

long xen_call(struct xen *x, struct cpu *c, bool compat, u64 nr, const u64 args[6])
{
    if (nr >= NR_HYPERCALLS || !hypercalls[nr].fn)
        return -ENOSYS;
    struct xcall k = { .x = x, .c = c, .compat = compat };
    for (unsigned i = 0; i < hypercalls[nr].nargs; i++)
        k.arg[i] = compat ? (u32)args[i] : args[i];
    return hypercalls[nr].fn(&k);
}

void xen_hypercall(struct xen *x, struct cpu *c)
{
    bool long64 = c->mode == MODE_LONG64;
    /* Xen's hvm_hypercall: the number is RAX in 64-bit mode, EAX otherwise; any CPL but 0
     * is refused, and virtual-8086 mode always; real mode has no CPL to check. */
    u64 nr = long64 ? c->gpr[R_RAX] : (u32)c->gpr[R_RAX];
    long ret;
    if (c->mode == MODE_V86 || (c->mode != MODE_REAL && c->cpl != 0)) {
        ret = -EPERM;
    } else {
        const u8 *regs = long64 ? args64 : args32;
        u64 args[6] = { 0 };
        for (unsigned i = 0; i < 5; i++)
            args[i] = c->gpr[regs[i]];
        ret = xen_call(x, c, !long64, nr, args);
    }
    /* 64-bit: the full RAX; otherwise EAX, as a 32-bit register write */
    c->gpr[R_RAX] = long64 ? (u64)ret : (u32)ret;
}

/* ---- state ----
 * The domain's own state (shared_info and where it is, the memory map it set, the
 * watchdogs and shutdown, VM assists, the HVM parameters) and each vCPU's (vcpu_info
 * and runstate areas, timers' settings, blocking); then each part's section (event
 * channels, grant tables, pirqs). Timers are the clock's, saved with it;
 * the ids here are fixed by the order the machine is built in. CPUID leaf 3's
 * incarnation stays 0 across a restore: a restored run is to be the same run. */
#define F(x) STATE_FIELD(struct xen_vcpu, x)
#define N(x) STATE_NOT_STATE(struct xen_vcpu, x)
static const struct state_field vcpu_fields[] = {
    F(info_registered), F(info_gpa), N(x), N(id), F(rs_state), F(rs_entry_ns), F(rs_time),
    F(runstate_gva), F(time_area_gva), N(sshot_timer), N(periodic_timer), N(poll_timer),
    F(periodic_ns), F(periodic_next), F(blocked), F(polling), F(poll_port), F(in_multicall),
};
#undef F
#undef N
static const struct state_desc vcpu_desc = STATE_DESC("xen.vcpu", 1, struct xen_vcpu, vcpu_fields);

#define F(x) STATE_FIELD(struct xen, x)
#define N(x) STATE_NOT_STATE(struct xen, x)
static const struct state_field xen_fields[] = {
    N(cfg), N(host), N(base), N(msr_base), N(time_mul), N(time_shift), F(shinfo_32),
    F(shinfo_placed), F(shinfo_gpa), N(shinfo_page), N(shinfo_gen), F(mem_unmapped),
    F(memmap_set), F(memmap_nr), N(memmap), N(vcpu), N(evtchn), N(gnttab), F(vm_assist),
    F(shut_down), F(shutdown_code), F(shutdown_code_set), N(watchdog_timer), F(watchdog_used),
    F(hvm_param), N(pirqs), N(special_page), N(special_gen),
};
#undef F
#undef N

static void xen_save(void *obj, struct state_buf *b)
{
    const struct xen *x = obj;
    state_put_u8(b, x->shinfo_page != NULL);
    if (x->shinfo_page)
        state_put(b, x->shinfo_page, 4096);
    for (unsigned i = 0; i < XEN_NR_SPECIAL_PAGES; i++) {
        state_put_u8(b, x->special_page[i] != NULL);
        if (x->special_page[i])
            state_put(b, x->special_page[i], 4096);
    }
    if (x->memmap_set)
        state_put(b, x->memmap, (size_t)x->memmap_nr * XEN_E820_ENTRY_SIZE);
    for (int i = 0; i < x->host.ncpus; i++)
        state_put_struct(b, &vcpu_desc, &x->vcpu[i]);
}

static int xen_load(void *obj, struct state_cursor *c, char *err, size_t errlen)
{
    struct xen *x = obj;
    if (state_get_u8(c)) {
        if (!x->shinfo_page && !(x->shinfo_page = calloc(1, 4096)))
            return nestor_err(err, errlen, "out of host memory");
        state_get(c, x->shinfo_page, 4096);
        mem_code_write(&x->shinfo_gen);
    } else if (x->shinfo_page) {
        /* as never placed (the map that may still hold it goes with the frame map's load) */
        free(x->shinfo_page);
        x->shinfo_page = NULL;
    }
    /* the special pages are the machine's (its services made them): the same ones */
    for (unsigned i = 0; i < XEN_NR_SPECIAL_PAGES; i++) {
        u8 present = state_get_u8(c);
        if (present != (x->special_page[i] != NULL))
            return nestor_err(err, errlen, "the Xen special page %u is %s here", i,
                              present ? "absent" : "present");
        if (present) {
            state_get(c, x->special_page[i], 4096);
            mem_code_write(&x->special_gen[i]);
        }
    }
    free(x->memmap);
    x->memmap = NULL;
    if (x->memmap_set) {
        if (x->memmap_nr > XEN_E820_MAX)
            return nestor_err(err, errlen, "an impossible memory map");
        if (!(x->memmap = malloc(x->memmap_nr ? (size_t)x->memmap_nr * XEN_E820_ENTRY_SIZE : 1)))
            return nestor_err(err, errlen, "out of host memory");
        state_get(c, x->memmap, (size_t)x->memmap_nr * XEN_E820_ENTRY_SIZE);
    }
    for (int i = 0; i < x->host.ncpus; i++)
        state_get_struct(c, &vcpu_desc, &x->vcpu[i]);
    return 0;
}

static int xen_post_load(void *obj, char *err, size_t errlen)
{
    struct xen *x = obj;
    struct guest_mem *m = x->host.cpus[0]->mem;
    bool ok = !x->shinfo_placed ||
              (x->shinfo_page && !(x->shinfo_gpa & 0xfff) && mem_frame_of(m, x->shinfo_page) == x->shinfo_gpa >> 12);
    for (int i = 0; ok && i < x->host.ncpus; i++)
        ok = x->vcpu[i].rs_state >= 0 && x->vcpu[i].rs_state < 4;
    if (!ok)
        return nestor_err(err, errlen, "impossible Xen domain state");
    return 0;
}

static const struct state_desc xen_state_desc =
    STATE_DESC("xen", 1, struct xen, xen_fields, .save = xen_save, .load = xen_load,
               .post_load = xen_post_load);

void xen_state_register(struct xen *x, struct state_registry *r)
{
    state_register(r, &xen_state_desc, 0, x);
    xen_evtchn_state_register(x, r);
    xen_gnttab_state_register(x, r);
    xen_pirq_state_register(x, r);
}

bool xen_state_savable(const struct xen *x, char *err, size_t errlen)
{
    return xen_gnttab_savable(x, err, errlen);
}

/* The interface's own pages as the frame map names them */
static u64 xen_page_id(void *opaque, const u8 *host)
{
    const struct xen *x = opaque;
    if (host == x->shinfo_page)
        return XEN_PAGE_SHARED_INFO;
    for (unsigned i = 0; i < XEN_NR_SPECIAL_PAGES; i++)
        if (host == x->special_page[i])
            return XEN_PAGE_SPECIAL + i;
    return xen_gnttab_page_id(x, host);
}

static u8 *xen_page(void *opaque, u64 id, u32 **gen)
{
    struct xen *x = opaque;
    if (id == XEN_PAGE_SHARED_INFO) {
        *gen = &x->shinfo_gen;
        return x->shinfo_page;
    }
    if (id - XEN_PAGE_SPECIAL < XEN_NR_SPECIAL_PAGES && x->special_page[id - XEN_PAGE_SPECIAL]) {
        *gen = &x->special_gen[id - XEN_PAGE_SPECIAL];
        return x->special_page[id - XEN_PAGE_SPECIAL];
    }
    return xen_gnttab_page(x, id, gen);
}
