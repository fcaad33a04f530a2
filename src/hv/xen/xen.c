/* Xen's HVM interface: identification, hypercall page, the hypercall dispatcher and the
 * hypercalls implemented so far. Facts follow Xen 4.17 (xen/arch/x86/cpuid.c,
 * xen/arch/x86/hvm/hypercall.c, xen/arch/x86/msr.c, xen/common/kernel.c,
 * xen/drivers/char/console.c); every structure and constant is the public header's. */
#include "hv/xen/xen.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cpu/cpu.h"
#include "machine/mem.h"

#define __XEN_INTERFACE_VERSION__ 0x00040e00 /* the 4.14+ interface, as Linux uses it */
#include <xen/xen.h>
#include <xen/version.h>
#include <xen/features.h>
#include <xen/memory.h>
#include <xen/vcpu.h>
#include <xen/arch-x86/cpuid.h>
#include <xen/foreign/x86_32.h>

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

struct xen {
    struct xen_config cfg;
    struct xen_host host;
    u32 base;      /* first CPUID leaf */
    u32 msr_base;  /* hypercall-page MSR */
    u32 time_mul;  /* TSC ticks to ns: (ticks << shift) * mul >> 32, as Xen's time scale */
    s8 time_shift;
    /* The shared_info layout, latched from the guest's mode when it places the hypercall
     * page (Xen's has_32bit_shinfo): 32-bit (x86_32) unless in 64-bit mode then. */
    bool shinfo_32;
    /* Where the guest placed shared_info (XENMEM_add_to_physmap), if it did */
    bool shinfo_placed;
    u64 shinfo_gpa;
    /* Per vCPU (host.ncpus of them): where the guest registered its vcpu_info
     * (VCPUOP_register_vcpu_info), if it did; until then vCPUs 0..31 use their slot in
     * shared_info and the others have none. */
    struct xen_vcpu {
        bool info_registered;
        u64 info_gpa;
    } *vcpu;
};

/* ---- option ---- */
int xen_parse_option(struct xen_config *cfg, const char *spec, char *err, size_t errlen)
{
    *cfg = (struct xen_config){ .enabled = true, .major = 4, .minor = 17, .domid = 1 };
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
        } else {
            why = "unknown property (version=, domid=)";
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

struct xen *xen_create(const struct xen_config *cfg, const struct xen_host *host, u32 base)
{
    struct xen *x = calloc(1, sizeof(*x));
    if (!x)
        return NULL;
    x->vcpu = calloc(host->ncpus > 0 ? (size_t)host->ncpus : 1, sizeof(*x->vcpu));
    if (!x->vcpu) {
        free(x);
        return NULL;
    }
    x->cfg = *cfg;
    x->host = *host;
    x->base = base;
    x->msr_base = base == XEN_CPUID_FIRST_LEAF ? 0x40000000u : 0x40000200u;
    time_scale((u64)host->tsc_khz * 1000, &x->time_mul, &x->time_shift);
    return x;
}

void xen_destroy(struct xen *x)
{
    if (x)
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
    case 4: /* HVM leaf: no APIC/x2APIC acceleration (software CPU), no per-vCPU upcall
             * vector yet (event channels are not implemented) */
        if (subleaf == 0) {
            r[0] = XEN_HVM_CPUID_VCPU_ID_PRESENT | XEN_HVM_CPUID_DOMID_PRESENT;
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
static void write_wallclock(struct xen *x, struct guest_mem *mem)
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
static void latch_shinfo_layout(struct xen *x, struct cpu *c)
{
    bool is32 = c->mode != MODE_LONG64;
    if (is32 != x->shinfo_32) {
        x->shinfo_32 = is32;
        write_wallclock(x, c->mem);
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
    latch_shinfo_layout(x, c);
    return true;
}

/* ---- hypercalls ---- */
/* One call in flight: the vCPU, its ABI (compat: 32-bit layouts and registers) and the
 * arguments. */
struct xcall {
    struct xen *x;
    struct cpu *c;
    bool compat;
    u64 arg[5];
};

static int copy_from(struct xcall *k, u64 gva, void *buf, size_t len)
{
    return cpu_copy_guest(k->c, gva, buf, len, false) ? -EFAULT : 0;
}

static int copy_to(struct xcall *k, u64 gva, const void *buf, size_t len)
{
    return cpu_copy_guest(k->c, gva, (void *)buf, len, true) ? -EFAULT : 0;
}

/* XENVER_get_features, submap 0: what nestor honours for an HVM domU. Translated
 * physmap, writable page tables and a ring-0 kernel are the HVM machine itself. Not
 * (yet): the callback vector, pirqs, the safe pvclock, vNUMA. */
static const u32 features_submap0 = BIT(XENFEAT_writable_page_tables) |
                                    BIT(XENFEAT_auto_translated_physmap) |
                                    BIT(XENFEAT_supervisor_mode_kernel);

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
        return copy_to(k, arg, v, sizeof(v));
    }
    case XENVER_compile_info: {
        xen_compile_info_t info = { 0 };
        snprintf(info.compiler, sizeof(info.compiler), "%s", "nestor");
        snprintf(info.compile_by, sizeof(info.compile_by), "%s", "nestor");
        snprintf(info.compile_domain, sizeof(info.compile_domain), "%s", "nestor");
        snprintf(info.compile_date, sizeof(info.compile_date), "%s", __DATE__);
        return copy_to(k, arg, &info, sizeof(info));
    }
    case XENVER_capabilities: {
        /* 64-bit Xen with HVM, no 32-bit PV */
        xen_capabilities_info_t caps = { 0 };
        strcpy(caps, "xen-3.0-x86_64 hvm-3.0-x86_32 hvm-3.0-x86_32p hvm-3.0-x86_64 ");
        return copy_to(k, arg, caps, sizeof(caps));
    }
    case XENVER_changeset: {
        xen_changeset_info_t cs = { 0 };
        strcpy(cs, "nestor");
        return copy_to(k, arg, cs, sizeof(cs));
    }
    case XENVER_platform_parameters: {
        /* virt_start (where a PV guest's hypervisor hole starts) is 0 for HVM; its type,
         * xen_ulong_t, is 32 bits wide in the x86_32 ABI */
        if (k->compat) {
            u32 v = 0;
            return copy_to(k, arg, &v, sizeof(v));
        }
        xen_platform_parameters_t p = { 0 };
        return copy_to(k, arg, &p, sizeof(p));
    }
    case XENVER_get_features: {
        xen_feature_info_t fi;
        if (copy_from(k, arg, &fi, sizeof(fi)))
            return -EFAULT;
        if (fi.submap_idx != 0)
            return -EINVAL;
        fi.submap = features_submap0;
        return copy_to(k, arg, &fi, sizeof(fi));
    }
    case XENVER_pagesize:
        return arg ? -EINVAL : 4096;
    case XENVER_guest_handle: {
        xen_domain_handle_t h = { 0 }; /* no toolstack gave the domain a UUID */
        return copy_to(k, arg, h, sizeof(h));
    }
    case XENVER_commandline:
        return copy_to(k, arg, xen_deny, sizeof(xen_deny));
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
            if (copy_from(k, buf, chunk, n))
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

static void update_time(struct xen *x, struct cpu *c);

/* ---- memory_op ---- */
/* memory_op's command: the op in bits 5:0, a continuation's start extent above (Xen's
 * MEMOP_CMD_MASK / MEMOP_EXTENT_SHIFT, which the public header keeps to Xen itself) */
#define MEMOP_CMD_MASK 0x3fu
/* An e820 entry as XENMEM_memory_map returns it: the BIOS INT 15h E820 layout (packed:
 * u64 address, u64 size, u32 type), which the public header names but does not define */
#define E820_ENTRY_SIZE 20u
#define E820_RAM 1u

static u64 ram_pages(const struct cpu *c)
{
    u64 n = 0;
    for (int i = 0; i < c->mem->ne820; i++)
        if (c->mem->e820[i].type == E820_RAM)
            n += c->mem->e820[i].size >> 12;
    return n;
}

/* The domain a domid_t names: this guest (DOMID_SELF or its own id), dom0 (where
 * nestor's backends are: it exists, and a domU may not look at it), or none. */
static long own_domain(const struct xen *x, u16 domid)
{
    if (domid == DOMID_SELF || domid == x->cfg.domid)
        return 0;
    return domid == 0 ? -EPERM : -ESRCH;
}

/* XENMEM_add_to_physmap: struct xen_add_to_physmap natively; in the 32-bit layout idx
 * (xen_ulong_t) and gpfn (xen_pfn_t) are 32-bit words at 8 and 12 (16 bytes). Only the
 * shared_info space so far: the page moves to the frame gpfn, taking its contents along.
 * nestor keeps it in guest RAM, so gpfn must be a RAM frame (-EINVAL otherwise; Xen
 * would map it anywhere) and a frame it leaves stays RAM (Xen leaves a hole). */
static long add_to_physmap(struct xcall *k, u64 arg)
{
    struct xen *x = k->x;
    struct xen_add_to_physmap a = { 0 };
    if (k->compat) {
        u8 b[16];
        if (copy_from(k, arg, b, sizeof(b)))
            return -EFAULT;
        u32 idx, gpfn;
        memcpy(&a.domid, b, 2);
        memcpy(&a.size, b + 2, 2);
        memcpy(&a.space, b + 4, 4);
        memcpy(&idx, b + 8, 4);
        memcpy(&gpfn, b + 12, 4);
        a.idx = idx;
        a.gpfn = gpfn;
    } else if (copy_from(k, arg, &a, sizeof(a))) {
        return -EFAULT;
    }
    if (a.space == XENMAPSPACE_gmfn_foreign)
        return -ENOSYS; /* only through add_to_physmap_batch, as in Xen */
    long rc = own_domain(x, a.domid);
    if (rc)
        return rc;
    if (a.space != XENMAPSPACE_shared_info)
        return -ENOSYS; /* grant frames, gmfn moves, device MMIO: not yet */
    if (a.idx != 0)
        return -EINVAL;
    struct guest_mem *mem = k->c->mem;
    if (a.gpfn > MASK(52 - 12) || !mem_ptr(mem, a.gpfn << 12, 4096))
        return -EINVAL;
    u64 gpa = a.gpfn << 12;
    if (x->shinfo_placed && x->shinfo_gpa == gpa)
        return 0;
    u8 page[4096] = { 0 };
    if (x->shinfo_placed && mem_read(mem, x->shinfo_gpa, page, sizeof(page)))
        return -EINVAL;
    bool first = !x->shinfo_placed;
    if (mem_write(mem, gpa, page, sizeof(page)))
        return -EINVAL;
    x->shinfo_placed = true;
    x->shinfo_gpa = gpa;
    if (first)
        write_wallclock(x, mem);
    for (int i = 0; i < x->host.ncpus; i++)
        if (!x->vcpu[i].info_registered)
            update_time(x, x->host.cpus[i]);
    return 0;
}

static long memory_map(struct xcall *k, u64 arg)
{
    /* struct xen_memory_map: nr_entries, then the buffer handle (a 32-bit pointer right
     * after it in the compat layout, an aligned 64-bit one natively) */
    u32 nr;
    u64 buffer;
    size_t handle_off = k->compat ? 4 : offsetof(struct xen_memory_map, buffer);
    if (copy_from(k, arg, &nr, sizeof(nr)))
        return -EFAULT;
    if (k->compat) {
        u32 b;
        if (copy_from(k, arg + handle_off, &b, sizeof(b)))
            return -EFAULT;
        buffer = b;
    } else if (copy_from(k, arg + handle_off, &buffer, sizeof(buffer))) {
        return -EFAULT;
    }
    const struct guest_mem *mem = k->c->mem;
    if (nr > (u32)mem->ne820)
        nr = (u32)mem->ne820;
    for (u32 i = 0; i < nr; i++) {
        u8 e[E820_ENTRY_SIZE];
        memcpy(e, &mem->e820[i].addr, 8);
        memcpy(e + 8, &mem->e820[i].size, 8);
        memcpy(e + 16, &mem->e820[i].type, 4);
        if (copy_to(k, buffer + i * E820_ENTRY_SIZE, e, sizeof(e)))
            return -EFAULT;
    }
    return copy_to(k, arg, &nr, sizeof(nr));
}

/* The sub-ops of an HVM domU. Reservations: every RAM page is the domain's, and
 * without ballooning (not yet) the maximum is what it has, less the frame shared_info
 * covers (Xen frees the RAM page there; nestor's frames left behind stay RAM). Not yet: add_to_physmap for other spaces,
 * add_to_physmap_batch, remove_from_physmap, decrease_reservation, populate_physmap:
 * -ENOSYS. */
static long do_memory_op(struct xcall *k)
{
    u64 arg = k->arg[1];
    switch ((u32)k->arg[0] & MEMOP_CMD_MASK) {
    case XENMEM_current_reservation:
    case XENMEM_maximum_reservation: {
        domid_t domid;
        if (copy_from(k, arg, &domid, sizeof(domid)))
            return -EFAULT;
        long rc = own_domain(k->x, domid);
        return rc ? rc : (long)(ram_pages(k->c) - k->x->shinfo_placed);
    }
    case XENMEM_memory_map:
        return memory_map(k, arg);
    case XENMEM_add_to_physmap:
        /* a continuation's start extent must fit the 16-bit size field */
        if ((u32)k->arg[0] >> 6 > 0xffff)
            return -EDOM;
        return add_to_physmap(k, arg);
    default:
        return -ENOSYS;
    }
}

/* ---- vcpu_op ---- */
/* Offsets in vcpu_info of the latched layout: evtchn_pending_sel is a xen_ulong_t, 32
 * bits wide after 2 bytes of padding in the x86_32 layout. */
static size_t vcpu_info_pending_sel(const struct xen *x, size_t *width)
{
    *width = x->shinfo_32 ? sizeof(uint32_t) : sizeof(xen_ulong_t);
    return x->shinfo_32 ? offsetof(struct vcpu_info_x86_32, evtchn_pending_sel)
                        : offsetof(struct vcpu_info, evtchn_pending_sel);
}

/* The guest-physical address of vCPU id's vcpu_info: the registered one, else its slot
 * in shared_info (vCPUs below XEN_LEGACY_MAX_VCPUS, once shared_info is placed). */
static bool vcpu_info_gpa(const struct xen *x, int id, u64 *gpa)
{
    if (x->vcpu[id].info_registered) {
        *gpa = x->vcpu[id].info_gpa;
        return true;
    }
    if (!x->shinfo_placed || id >= XEN_LEGACY_MAX_VCPUS)
        return false;
    *gpa = x->shinfo_gpa + (x->shinfo_32
                                ? offsetof(struct shared_info_x86_32, vcpu_info) +
                                      (size_t)id * sizeof(struct vcpu_info_x86_32)
                                : offsetof(struct shared_info, vcpu_info) +
                                      (size_t)id * sizeof(struct vcpu_info));
    return true;
}

/* vcpu_time_info (pvclock) of vCPU c in its vcpu_info, as Xen's
 * update_vcpu_system_time(): the TSC and the virtual clock's ns now, the scale from TSC
 * ticks to ns, TSC_STABLE when the model's TSC is invariant; the version is odd while
 * the fields change. The layout is the same in both ABIs; only its place differs. */
static void update_time(struct xen *x, struct cpu *c)
{
    u64 gpa;
    if (!vcpu_info_gpa(x, c->id, &gpa))
        return;
    gpa += x->shinfo_32 ? offsetof(struct vcpu_info_x86_32, time)
                        : offsetof(struct vcpu_info, time);
    struct guest_mem *mem = c->mem;
    u32 version = 0;
    mem_read_u32(mem, gpa + offsetof(struct vcpu_time_info, version), &version);
    /* one reading of the clock for both: the pair must describe the same instant */
    u64 now = c->ops->now_ns(c, c->ops_opaque);
    struct vcpu_time_info t = {
        .version = (version + 1) | 1,
        .tsc_timestamp = cpu_tsc_at(c, now),
        .system_time = now,
        .tsc_to_system_mul = x->time_mul,
        .tsc_shift = x->time_shift,
        .flags = x->host.tsc_stable ? XEN_PVCLOCK_TSC_STABLE_BIT : 0,
    };
    mem_write_u32(mem, gpa + offsetof(struct vcpu_time_info, version), t.version);
    mem_write(mem, gpa + offsetof(struct vcpu_time_info, tsc_timestamp), &t.tsc_timestamp,
              sizeof(t) - offsetof(struct vcpu_time_info, tsc_timestamp));
    mem_write_u32(mem, gpa + offsetof(struct vcpu_time_info, version), t.version + 1);
}

void xen_vcpu_resume(struct xen *x, struct cpu *c)
{
    update_time(x, c);
}

/* VCPUOP_register_vcpu_info, as Xen's map_vcpu_info(): the whole native vcpu_info must
 * fit in the page (-EINVAL), once per vCPU (-EINVAL again), by the vCPU itself or for
 * one that is down (-EINVAL for another running one), in a RAM frame (-EINVAL). The
 * new area takes the contents of the vCPU's shared_info slot (zeros with the upcall
 * masked for a vCPU that had none), then all events are marked pending so the guest
 * rescans them. */
static long register_vcpu_info(struct xcall *k, int id, u64 arg)
{
    struct xen *x = k->x;
    struct vcpu_register_vcpu_info info;
    if (copy_from(k, arg, &info, sizeof(info)))
        return -EFAULT;
    if (info.offset > 4096 - sizeof(struct vcpu_info))
        return -EINVAL;
    if (x->vcpu[id].info_registered)
        return -EINVAL;
    if (id != k->c->id && x->host.cpus[id]->state != CPU_WAIT_FOR_SIPI)
        return -EINVAL;
    struct guest_mem *mem = k->c->mem;
    if (info.mfn > MASK(52 - 12) || !mem_ptr(mem, info.mfn << 12, 4096))
        return -EINVAL;
    u64 gpa = (info.mfn << 12) + info.offset;
    u8 area[sizeof(struct vcpu_info)] = { 0 };
    size_t len = x->shinfo_32 ? sizeof(struct vcpu_info_x86_32) : sizeof(struct vcpu_info);
    u64 old;
    if (vcpu_info_gpa(x, id, &old)) {
        if (mem_read(mem, old, area, len))
            return -EINVAL;
    } else if (id >= XEN_LEGACY_MAX_VCPUS) {
        area[offsetof(struct vcpu_info, evtchn_upcall_mask)] = 1;
    }
    area[offsetof(struct vcpu_info, evtchn_upcall_pending)] = 1;
    size_t width, sel = vcpu_info_pending_sel(x, &width);
    memset(area + sel, 0xff, width);
    if (mem_write(mem, gpa, area, len))
        return -EINVAL;
    x->vcpu[id].info_registered = true;
    x->vcpu[id].info_gpa = gpa;
    update_time(x, x->host.cpus[id]);
    return 0;
}

/* vcpu_op(cmd, vcpuid, arg): a vCPU the domain does not have is -ENOENT (Xen's
 * domain_vcpu()). Not yet: runstate areas, the secondary time area, timers,
 * get_physid, send_nmi (-ENOSYS, as Xen answers the sub-ops an HVM guest may not use). */
static long do_vcpu_op(struct xcall *k)
{
    u32 id = (u32)k->arg[1];
    if (id >= (u32)k->x->host.ncpus)
        return -ENOENT;
    switch ((int)k->arg[0]) {
    case VCPUOP_register_vcpu_info:
        return register_vcpu_info(k, (int)id, k->arg[2]);
    default:
        return -ENOSYS;
    }
}

/* The dispatch table: Xen's hvm_hypercall_table for what is implemented. Each handler
 * takes both ABIs (k->compat selects the 32-bit layouts). Numbers without an entry are
 * -ENOSYS: hvm_op, sched_op, event_channel_op, grant_table_op,
 * physdev_op, set_timer_op, vm_assist, multicall are the next steps. */
struct hypercall {
    const char *name;
    long (*fn)(struct xcall *k);
    u8 nargs;
};

static const struct hypercall hypercalls[] = {
    [__HYPERVISOR_memory_op] = { "memory_op", do_memory_op, 2 },
    [__HYPERVISOR_xen_version] = { "xen_version", do_xen_version, 2 },
    [__HYPERVISOR_console_io] = { "console_io", do_console_io, 3 },
    [__HYPERVISOR_vcpu_op] = { "vcpu_op", do_vcpu_op, 3 },
};
#define NR_HYPERCALLS (sizeof(hypercalls) / sizeof(hypercalls[0]))

/* Argument registers: 64-bit rdi, rsi, rdx, r10, r8; 32-bit ebx, ecx, edx, esi, edi. */
static const u8 args64[5] = { R_RDI, R_RSI, R_RDX, R_R10, R_R8 };
static const u8 args32[5] = { R_RBX, R_RCX, R_RDX, R_RSI, R_RDI };

void xen_hypercall(struct xen *x, struct cpu *c)
{
    bool long64 = c->mode == MODE_LONG64;
    /* Xen's hvm_hypercall: the number is RAX in 64-bit mode, EAX otherwise; any CPL but 0
     * is refused, and virtual-8086 mode always; real mode has no CPL to check. */
    u64 nr = long64 ? c->gpr[R_RAX] : (u32)c->gpr[R_RAX];
    long ret;
    if (c->mode == MODE_V86 || (c->mode != MODE_REAL && c->cpl != 0)) {
        ret = -EPERM;
    } else if (nr >= NR_HYPERCALLS || !hypercalls[nr].fn) {
        ret = -ENOSYS;
    } else {
        struct xcall k = { .x = x, .c = c, .compat = !long64 };
        const u8 *regs = long64 ? args64 : args32;
        for (unsigned i = 0; i < hypercalls[nr].nargs; i++)
            k.arg[i] = long64 ? c->gpr[regs[i]] : (u32)c->gpr[regs[i]];
        ret = hypercalls[nr].fn(&k);
    }
    /* 64-bit: the full RAX; otherwise EAX, as a 32-bit register write */
    c->gpr[R_RAX] = long64 ? (u64)ret : (u32)ret;
}
