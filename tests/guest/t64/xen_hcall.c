/* -xen: Xen's HVM interface as Xen 4.17 shows it to a domU, in 64-bit mode: CPUID leaves
 * 40000000h-40000005h, the hypercall page placed by WRMSR (VMCALL stubs for Intel,
 * VMMCALL for AMD, ud2 for iret, int3 filler), calls through the page and raw, the
 * 64-bit argument registers, CPL 3 refused (-EPERM), unknown numbers (-ENOSYS), every
 * xen_version sub-op, console_io, and bad argument pointers of every kind (-EFAULT,
 * nothing written, guest and nestor unharmed). QEMU TCG has no Xen interface: the test
 * skips there.
 * Without -xen nothing of it is there: nestor's own leaves, VMCALL and VMMCALL #UD, the
 * MSR #GP (the -off run).
 * guest: xen=yes name=xen_hcall */
/* guest: name=xen_hcall-off */
/* guest: xen=version=4.13.5,domid=7 cpu=max,vendor=AuthenticAMD name=xen_hcall-amd */
#include "rt.h"

#include <stdint.h>
#define __XEN_INTERFACE_VERSION__ 0x00040e00
#include <xen/xen.h>
#include <xen/version.h>
#include <xen/features.h>

/* What nestor's Xen honours for an HVM domU (XENVER_get_features submap 0) */
#define XEN_HVM_FEATURES                                                                 \
    (BIT(XENFEAT_writable_page_tables) | BIT(XENFEAT_auto_translated_physmap) |          \
     BIT(XENFEAT_supervisor_mode_kernel) | BIT(XENFEAT_hvm_safe_pvclock) |       \
     BIT(XENFEAT_hvm_callback_vector) | BIT(XENFEAT_hvm_pirqs))
#include <xen/memory.h>
#include <xen/arch-x86/cpuid.h>

#define EPERM 1
#define EFAULT 14
#define EINVAL 22
#define ESRCH 3
#define EDOM 33
#define ENOSYS 38

static inline u64 get_cr3(void)
{
    u64 v;
    asm volatile("mov %%cr3, %0" : "=r"(v));
    return v;
}

static bool amd;
static u8 *hpage;

static long hc_raw(u64 nr, u64 a1, u64 a2, u64 a3)
{
    return xen_hypercall3(amd, nr, a1, a2, a3);
}

/* through the hypercall page, as Linux's _hypercall3 does */
static long hc_page(u32 nr, u64 a1, u64 a2, u64 a3)
{
    long r;
    register u64 rdx asm("rdx") = a3;
    void *stub = hpage + nr * 32;
    asm volatile("call *%[stub]"
                 : "=a"(r), "+D"(a1), "+S"(a2), "+r"(rdx)
                 : [stub] "r"(stub)
                 : "rcx", "r8", "r9", "r10", "r11", "memory");
    return r;
}

static ulong user_version(ulong nr)
{
    return (ulong)hc_raw(nr, XENVER_version, 0, 0);
}

static bool parse_version(const char *spec, u32 *ver, char *extra)
{
    const char *p = spec;
    while (*p && strncmp(p, "version=", 8))
        p++;
    if (!*p)
        return false;
    p += 8;
    u32 maj = 0, min = 0;
    while (*p >= '0' && *p <= '9')
        maj = maj * 10 + (u32)(*p++ - '0');
    p++;
    while (*p >= '0' && *p <= '9')
        min = min * 10 + (u32)(*p++ - '0');
    *ver = maj << 16 | min;
    size_t n = 0;
    while (*p && *p != ',' && n < 15)
        extra[n++] = *p++;
    extra[n] = 0;
    return true;
}

static void test_cpuid(u32 want_version, u32 domid)
{
    struct cpuid_regs r = cpuid(0x40000000);
    TEST_EQ(r.a, 0x40000005, "40000000h: maximum leaf base+5");
    TEST_EQ(r.b, XEN_CPUID_SIGNATURE_EBX, "signature XenV");
    TEST_EQ(r.c, XEN_CPUID_SIGNATURE_ECX, "signature MMXe");
    TEST_EQ(r.d, XEN_CPUID_SIGNATURE_EDX, "signature nVMM");
    TEST_EQ(cpuid(0x40000001).a, want_version, "40000001h: the version");
    r = cpuid(0x40000002);
    TEST_EQ(r.a, 1, "40000002h: one hypercall page");
    TEST_EQ(r.b, 0x40000000, "40000002h: the hypercall MSR");
    TEST_EQ(r.c | r.d, 0, "40000002h: no PV feature flags");
    r = cpuid2(0x40000003, 0);
    TEST_EQ(r.a & 1, 0, "40000003h.0: TSC not emulated");
    TEST_EQ((r.a >> 1) & 1, 1, "40000003h.0: TSC safe");
    TEST_EQ((r.a >> 2) & 1, (u32)!!(cpuid(0x80000001).d & BIT(27)), "40000003h.0: RDTSCP as CPUID says");
    TEST_EQ(r.b, 0, "40000003h.0: TSC mode default");
    TEST_EQ(r.c, 2000000, "40000003h.0: TSC kHz");
    r = cpuid2(0x40000003, 1);
    TEST_EQ(r.c, 0x80000000u, "40000003h.1: 2 GHz to ns: mul 1/2");
    TEST_EQ(r.d, 0, "40000003h.1: shift 0");
    TEST_EQ(cpuid2(0x40000003, 2).a, 2000000, "40000003h.2: CPU kHz");
    r = cpuid2(0x40000004, 0);
    TEST_EQ(r.a, XEN_HVM_CPUID_VCPU_ID_PRESENT | XEN_HVM_CPUID_DOMID_PRESENT | XEN_HVM_CPUID_UPCALL_VECTOR,
            "40000004h: vCPU id and domid present, the per-vCPU upcall vector, no acceleration");
    TEST_EQ(r.b, 0, "40000004h: vCPU id 0");
    TEST_EQ(r.c, domid, "40000004h: domid");
    r = cpuid2(0x40000004, 1);
    TEST_EQ(r.a | r.b | r.c | r.d, 0, "40000004h.1: zero");
    r = cpuid(0x40000005);
    TEST_EQ(r.a | r.b | r.c | r.d, 0, "40000005h: PV only, zero for HVM");
    r = cpuid(0x40000100);
    TEST_EQ(r.a | r.b | r.c | r.d, 0, "40000100h: Xen's range, zero");
}

static void test_page(void)
{
    u64 v;
    TEST_EQ(rdmsr_safe(0x40000000, &v), GP_VECTOR, "the hypercall MSR is write-only");
    TEST_EQ(wrmsr_safe(0x40000000, (u64)hpage | 1), GP_VECTOR, "page index 1 of 1: #GP");
    TEST_EQ(wrmsr_safe(0x40000001, (u64)hpage), GP_VECTOR, "other Xen MSR: #GP");
    TEST_EQ(wrmsr_safe(0x40000000, 0xfee00000), GP_VECTOR, "a frame that is not RAM: #GP");
    TEST_EQ(hpage[0], 0, "refused writes left the page alone");
    TEST_EQ(wrmsr_safe(0x40000000, (u64)hpage), NO_EXCEPTION, "hypercall page placed");
    bool ok = true;
    for (u32 i = 0; i < 128; i++) {
        const u8 *p = hpage + i * 32;
        if (i == __HYPERVISOR_iret) {
            ok &= p[0] == 0x0f && p[1] == 0x0b;
            for (int k = 2; k < 32; k++)
                ok &= p[k] == 0xcc;
            continue;
        }
        u32 imm;
        memcpy(&imm, p + 1, 4);
        ok &= p[0] == 0xb8 && imm == i && p[5] == 0x0f && p[6] == 0x01 &&
              p[7] == (amd ? 0xd9 : 0xc1) && p[8] == 0xc3;
        for (int k = 9; k < 32; k++)
            ok &= p[k] == 0xcc;
        if (!ok) {
            printf("stub %u differs\n", i);
            break;
        }
    }
    TEST_ASSERT(ok, "128 stubs: mov $N,%%eax; %s; ret; int3 filler; ud2 for iret",
                amd ? "vmmcall" : "vmcall");
}

static void test_dispatch(u32 want_version)
{
    TEST_EQ(hc_page(__HYPERVISOR_xen_version, XENVER_version, 0, 0), (long)want_version,
            "xen_version through the page");
    TEST_EQ(hc_raw(__HYPERVISOR_xen_version, XENVER_version, 0, 0), (long)want_version,
            "xen_version by a raw VMCALL/VMMCALL");
    /* the number is the whole of RAX in 64-bit mode */
    TEST_EQ(hc_raw(BIT(32) | __HYPERVISOR_xen_version, XENVER_version, 0, 0), -ENOSYS,
            "RAX bit 32 set: no such hypercall");
    TEST_EQ(hc_raw(__HYPERVISOR_set_trap_table, 0, 0, 0), -ENOSYS, "PV-only call: -ENOSYS");
    TEST_EQ(hc_raw(128, 0, 0, 0), -ENOSYS, "number 128: -ENOSYS");
    TEST_EQ(hc_raw(~0ull, 0, 0, 0), -ENOSYS, "number ~0: -ENOSYS");
    TEST_EQ(hc_page(__HYPERVISOR_xen_version, 1000, 0, 0), -ENOSYS, "unknown sub-op: -ENOSYS");
    TEST_EQ((long)run_user(user_version, __HYPERVISOR_xen_version, 0), -EPERM, "CPL 3: -EPERM");
    TEST_EQ((long)run_user(user_version, 1000, 0), -EPERM, "CPL 3, unknown number: -EPERM first");
}

static u8 buf[2048] __attribute__((aligned(4096)));

static bool all(const u8 *p, size_t n, u8 v)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != v)
            return false;
    return true;
}

static void test_version_subops(const char *extra)
{
    memset(buf, 0xaa, sizeof(buf));
    TEST_EQ(hc_page(__HYPERVISOR_xen_version, XENVER_extraversion, (u64)buf, 0), 0, "extraversion");
    TEST_ASSERT(!strcmp((char *)buf, extra) && all(buf + strlen(extra), 16 - strlen(extra), 0) &&
                buf[16] == 0xaa, "extraversion \"%s\", 16 bytes, zero-padded", (char *)buf);

    memset(buf, 0xaa, sizeof(buf));
    TEST_EQ(hc_page(__HYPERVISOR_xen_version, XENVER_compile_info, (u64)buf, 0), 0, "compile_info");
    xen_compile_info_t *ci = (void *)buf;
    TEST_ASSERT(strlen(ci->compiler) < 64 && strlen(ci->compile_date) < 32 &&
                buf[sizeof(*ci)] == 0xaa, "compile_info: terminated strings, %u bytes",
                (unsigned)sizeof(*ci));

    memset(buf, 0xaa, sizeof(buf));
    TEST_EQ(hc_page(__HYPERVISOR_xen_version, XENVER_capabilities, (u64)buf, 0), 0, "capabilities");
    const char *caps = "xen-3.0-x86_64 hvm-3.0-x86_32 hvm-3.0-x86_32p hvm-3.0-x86_64 ";
    TEST_ASSERT(!strcmp((char *)buf, caps) && all(buf + strlen(caps), 1024 - strlen(caps), 0) &&
                buf[1024] == 0xaa, "capabilities: \"%s\", 1024 bytes", (char *)buf);

    memset(buf, 0xaa, sizeof(buf));
    TEST_EQ(hc_page(__HYPERVISOR_xen_version, XENVER_changeset, (u64)buf, 0), 0, "changeset");
    TEST_ASSERT(strlen((char *)buf) < 64 && buf[63] == 0 && buf[64] == 0xaa, "changeset: 64 bytes");

    memset(buf, 0xaa, sizeof(buf));
    TEST_EQ(hc_page(__HYPERVISOR_xen_version, XENVER_platform_parameters, (u64)buf, 0), 0,
            "platform_parameters");
    TEST_ASSERT(all(buf, 8, 0) && buf[8] == 0xaa, "platform_parameters: virt_start 0 for HVM, 8 bytes");

    xen_feature_info_t fi = { .submap_idx = 0, .submap = 0xdeadbeef };
    TEST_EQ(hc_page(__HYPERVISOR_xen_version, XENVER_get_features, (u64)&fi, 0), 0, "get_features");
    TEST_EQ(fi.submap, XEN_HVM_FEATURES,
            "submap 0: translated physmap, writable page tables, ring-0 kernel, safe pvclock");
    fi.submap_idx = 1;
    fi.submap = 0x1234;
    TEST_EQ(hc_page(__HYPERVISOR_xen_version, XENVER_get_features, (u64)&fi, 0), -EINVAL,
            "submap 1: -EINVAL");
    TEST_EQ(fi.submap, 0x1234, "submap 1: nothing written");

    TEST_EQ(hc_page(__HYPERVISOR_xen_version, XENVER_pagesize, 0, 0), 4096, "pagesize");
    TEST_EQ(hc_page(__HYPERVISOR_xen_version, XENVER_pagesize, (u64)buf, 0), -EINVAL,
            "pagesize with a buffer: -EINVAL");

    memset(buf, 0xaa, sizeof(buf));
    TEST_EQ(hc_page(__HYPERVISOR_xen_version, XENVER_guest_handle, (u64)buf, 0), 0, "guest_handle");
    TEST_ASSERT(all(buf, 16, 0) && buf[16] == 0xaa, "guest_handle: 16 bytes");

    memset(buf, 0xaa, sizeof(buf));
    TEST_EQ(hc_page(__HYPERVISOR_xen_version, XENVER_commandline, (u64)buf, 0), 0, "commandline");
    TEST_ASSERT(!strcmp((char *)buf, "<denied>") && buf[9] == 0xaa,
                "commandline: \"<denied>\" for a domU, 9 bytes");

    memset(buf, 0xaa, sizeof(buf));
    TEST_EQ(hc_page(__HYPERVISOR_xen_version, XENVER_build_id, (u64)buf, 0), -EPERM,
            "build_id: -EPERM for a domU");
    TEST_ASSERT(all(buf, 64, 0xaa), "build_id: nothing written");
}

static void test_console(void)
{
    static const char msg[] = "xen console_io: hello\n";
    TEST_EQ(hc_page(__HYPERVISOR_console_io, CONSOLEIO_write, sizeof(msg) - 1, (u64)msg), 0,
            "console_io write");
    static char big[300];
    memset(big, '.', sizeof(big));
    big[sizeof(big) - 1] = '\n';
    TEST_EQ(hc_page(__HYPERVISOR_console_io, CONSOLEIO_write, sizeof(big), (u64)big), 0,
            "console_io write of 300 bytes (chunked)");
    TEST_EQ(hc_page(__HYPERVISOR_console_io, CONSOLEIO_read, 16, (u64)buf), 0,
            "console_io read: no input, 0 characters");
    TEST_EQ(hc_page(__HYPERVISOR_console_io, CONSOLEIO_read, 0x80000000u, (u64)buf), -7 /* -E2BIG */,
            "console_io read of a negative count: -E2BIG");
    TEST_EQ(hc_page(__HYPERVISOR_console_io, 7, 0, 0), -ENOSYS, "console_io unknown: -ENOSYS");
    TEST_EQ(hc_page(__HYPERVISOR_console_io, CONSOLEIO_write, 16, 0x8000000000000000ull), -EFAULT,
            "console_io write of a non-canonical buffer: -EFAULT");
}

static void test_shared_info(u32 domid, long ram_pages);

struct e820 {
    u64 addr, size;
    u32 type;
} __attribute__((packed));

static void test_memory_op(u32 domid)
{
    static struct e820 map[32];
    memset(map, 0xaa, sizeof(map));
    struct xen_memory_map mm = { .nr_entries = 32 };
    set_xen_guest_handle(mm.buffer, map);
    TEST_EQ(hc_page(__HYPERVISOR_memory_op, XENMEM_memory_map, (u64)&mm, 0), 0, "memory_map");
    TEST_ASSERT(mm.nr_entries >= 2 && mm.nr_entries < 32, "memory_map: %u entries", mm.nr_entries);
    u64 ram = 0;
    bool has_1m = false, sorted = true;
    for (u32 i = 0; i < mm.nr_entries; i++) {
        if (map[i].type == 1) {
            ram += map[i].size >> 12;
            has_1m |= map[i].addr <= 0x100000 && map[i].addr + map[i].size > 0x100000;
        }
        if (i && map[i].addr < map[i - 1].addr + map[i - 1].size)
            sorted = false;
    }
    TEST_ASSERT(has_1m && sorted, "memory_map: 20-byte entries, sorted, RAM at 1 MiB");
    TEST_ASSERT(((u8 *)map)[20 * mm.nr_entries] == 0xaa, "memory_map: nothing past the last entry");
    domid_t self = DOMID_SELF, own = (domid_t)domid, dom0 = 0, other = 5;
    long tot = hc_page(__HYPERVISOR_memory_op, XENMEM_current_reservation, (u64)&self, 0);
    TEST_ASSERT(tot >= (long)ram && tot < (long)ram + 0x100,
                "current_reservation: the domain's RAM pages, those of the memory map and the "
                "reserved ones below 1 MiB (%ld, map %lu)", tot, (unsigned long)ram);
    TEST_EQ(hc_page(__HYPERVISOR_memory_op, XENMEM_maximum_reservation, (u64)&own, 0), tot,
            "maximum_reservation of its own domid: the same (nothing given back yet)");
    TEST_EQ(hc_page(__HYPERVISOR_memory_op, XENMEM_current_reservation, (u64)&dom0, 0), -EPERM,
            "current_reservation of dom0: -EPERM");
    TEST_EQ(hc_page(__HYPERVISOR_memory_op, XENMEM_current_reservation, (u64)&other, 0), -ESRCH,
            "current_reservation of a domain that does not exist: -ESRCH");
    TEST_EQ(hc_page(__HYPERVISOR_memory_op, XENMEM_current_reservation, 0x8000000000000000ull, 0),
            -EFAULT, "current_reservation with a non-canonical domid pointer: -EFAULT");

    memset(map, 0xaa, sizeof(map));
    mm.nr_entries = 1;
    TEST_EQ(hc_page(__HYPERVISOR_memory_op, XENMEM_memory_map, (u64)&mm, 0), 0, "memory_map, room for 1");
    TEST_ASSERT(mm.nr_entries == 1 && ((u8 *)map)[20] == 0xaa && map[0].addr == 0,
                "memory_map: one entry written, the first");
    mm.nr_entries = 32;
    set_xen_guest_handle(mm.buffer, (void *)0xfee00000ull);
    TEST_EQ(hc_page(__HYPERVISOR_memory_op, XENMEM_memory_map, (u64)&mm, 0), -EFAULT,
            "memory_map into MMIO: -EFAULT");
    TEST_EQ(hc_page(__HYPERVISOR_memory_op, XENMEM_memory_map, 0xfee00000ull, 0), -EFAULT,
            "memory_map with its struct in MMIO: -EFAULT");
    TEST_EQ(hc_page(__HYPERVISOR_memory_op, 63, 0, 0), -ENOSYS, "unknown memory_op: -ENOSYS");
    test_shared_info(domid, tot);
}

static long add_shinfo(domid_t domid, unsigned space, u64 idx, u64 gpfn)
{
    struct xen_add_to_physmap a = { .domid = domid, .space = space, .idx = idx, .gpfn = gpfn };
    return hc_page(__HYPERVISOR_memory_op, XENMEM_add_to_physmap, (u64)&a, 0);
}

static void test_shared_info(u32 domid, long ram_pages)
{
    u8 *p1 = page_alloc(), *p2 = page_alloc();
    memset(p1, 0xaa, 4096);
    memset(p2, 0xaa, 4096);
    TEST_EQ(add_shinfo(DOMID_SELF, XENMAPSPACE_shared_info, 1, (u64)p1 >> 12), -EINVAL,
            "shared_info index 1: -EINVAL");
    TEST_EQ(add_shinfo(0, XENMAPSPACE_shared_info, 0, (u64)p1 >> 12), -EPERM, "for dom0: -EPERM");
    TEST_EQ(add_shinfo(9, XENMAPSPACE_shared_info, 0, (u64)p1 >> 12), -ESRCH, "for domain 9: -ESRCH");
    TEST_EQ(add_shinfo(DOMID_SELF, XENMAPSPACE_gmfn_foreign, 0, (u64)p1 >> 12), -ENOSYS,
            "gmfn_foreign outside the batch: -ENOSYS");
    TEST_EQ(add_shinfo(DOMID_SELF, XENMAPSPACE_shared_info, 0, 0xd0000), 0,
            "onto a frame outside RAM (the PCI hole): Xen maps it anywhere");
    volatile struct shared_info *hole = (volatile struct shared_info *)0xd0000000ull;
    TEST_EQ(hole->wc_version, 2, "shared_info is there, its wall clock written");
    TEST_EQ(add_shinfo(DOMID_SELF, XENMAPSPACE_shared_info, 0, ~0ull), -EINVAL, "gpfn ~0: -EINVAL");
    struct xen_add_to_physmap a = { .domid = DOMID_SELF, .space = XENMAPSPACE_shared_info,
                                    .gpfn = (u64)p1 >> 12 };
    TEST_EQ(hc_page(__HYPERVISOR_memory_op, XENMEM_add_to_physmap | (0x10000u << 6), (u64)&a, 0),
            -EDOM, "a start extent beyond 16 bits: -EDOM");
    TEST_ASSERT(all(p1, 4096, 0xaa), "refused calls left the frame alone");

    TEST_EQ(add_shinfo((domid_t)domid, XENMAPSPACE_shared_info, 0, (u64)p1 >> 12), 0,
            "shared_info placed (own domid)");
    TEST_EQ(hole->wc_version, 0xffffffffu, "the frame it left holds nothing: all-ones");
    struct shared_info *si = (void *)p1;
    TEST_EQ(si->wc_version, 2, "wc_version even after one update");
    TEST_ASSERT(si->wc_sec > 1600000000u && si->wc_nsec < 1000000000u && si->wc_sec_hi == 0,
                "wall clock at system time 0: %u s %u ns", si->wc_sec, si->wc_nsec);
    /* vCPU 0's pvclock (the only vCPU) is written when the page is placed */
    size_t t0 = offsetof(struct shared_info, vcpu_info[0].time),
           t1 = t0 + sizeof(struct vcpu_time_info);
    u32 tv = si->vcpu_info[0].time.version;
    TEST_ASSERT(tv >= 2 && !(tv & 1) && si->vcpu_info[0].time.tsc_to_system_mul,
                "vCPU 0's time info written (version %u, even)", tv);
    TEST_ASSERT(all(p1, t0, 0) && all(p1 + t1, offsetof(struct shared_info, wc_version) - t1, 0) &&
                all(p1 + sizeof(*si), 4096 - sizeof(*si), 0),
                "the rest of the page is Xen's fresh page: zero");
    domid_t self = DOMID_SELF;
    TEST_EQ(hc_page(__HYPERVISOR_memory_op, XENMEM_current_reservation, (u64)&self, 0), ram_pages - 1,
            "current_reservation: the frame under shared_info is no longer RAM of the domain");

    si->evtchn_mask[3] = 0x1234;
    u32 sec = si->wc_sec;
    TEST_EQ(add_shinfo(DOMID_SELF, XENMAPSPACE_shared_info, 0, (u64)p1 >> 12), 0, "same frame again");
    TEST_EQ(si->wc_version, 2, "same frame: nothing rewritten");
    TEST_EQ(add_shinfo(DOMID_SELF, XENMAPSPACE_shared_info, 0, (u64)p2 >> 12), 0, "moved");
    struct shared_info *s2 = (void *)p2;
    TEST_ASSERT(s2->evtchn_mask[3] == 0x1234 && s2->wc_sec == sec && s2->wc_version == 2,
                "the page's contents moved with it");
    TEST_EQ(hc_page(__HYPERVISOR_memory_op, XENMEM_current_reservation, (u64)&self, 0), ram_pages - 2,
            "current_reservation: the RAM page under the new frame is freed too");
    TEST_EQ(*(volatile u32 *)p1, 0xffffffffu, "the frame it left holds nothing: all-ones");
}

/* A 4K-mapped page at BAD_VA whose successor is not mapped, a read-only one after a gap */
#define BAD_VA 0x200000000ull
#define RO_VA (BAD_VA + 0x2000)

static void test_bad_pointers(u32 want_version)
{
    struct page_table pt = { .format = PT_4LEVEL, .root = get_cr3() & ~0xfffull };
    u8 *rw = page_alloc(), *ro = page_alloc();
    pt_map(&pt, BAD_VA, (u64)rw, 4096, 4096, PTE_W);
    pt_map(&pt, RO_VA, (u64)ro, 4096, 4096, 0);
    asm volatile("mov %0, %%cr3" ::"r"(get_cr3()) : "memory");
    memset(rw, 0xaa, 4096);
    memset(ro, 0xaa, 4096);

    /* supervisor writes honour read-only pages only with CR0.WP, as the processor's */
    ulong cr0;
    asm volatile("mov %%cr0, %0" : "=r"(cr0));
    asm volatile("mov %0, %%cr0" ::"r"(cr0 | BIT(16)) : "memory");
    static const struct { u64 va; const char *what; } bad[] = {
        { 0x8000000000000000ull, "non-canonical" },
        { 0x0000800000000000ull, "non-canonical (bit 47)" },
        { BAD_VA + 0x1000, "unmapped" },
        { 0x300000000ull, "unmapped (no table)" },
        { 0xfee00000, "the LAPIC's MMIO page" },
        { 0xfec00000, "the I/O APIC's MMIO page" },
        { RO_VA, "a read-only page (for a write)" },
    };
    for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        long r = hc_page(__HYPERVISOR_xen_version, XENVER_extraversion, bad[i].va, 0);
        TEST_ASSERT(r == -EFAULT, "extraversion to %s: -EFAULT (got %ld)", bad[i].what, r);
        if (i < 6) {
            r = hc_page(__HYPERVISOR_xen_version, XENVER_get_features, bad[i].va, 0);
            TEST_ASSERT(r == -EFAULT, "get_features from %s: -EFAULT (got %ld)", bad[i].what, r);
        }
    }
    TEST_ASSERT(all(ro, 4096, 0xaa), "the read-only page is unchanged");
    /* a struct read that crosses into the unmapped page */
    TEST_EQ(hc_page(__HYPERVISOR_xen_version, XENVER_get_features, BAD_VA + 0xffc, 0), -EFAULT,
            "get_features crossing into an unmapped page: -EFAULT");
    TEST_ASSERT(all(rw, 4096, 0xaa), "its first half is unchanged");
    /* reading a read-only page is fine: the write of the result is not */
    xen_feature_info_t *f = (void *)(ro + 0x10);
    f->submap_idx = 0;
    TEST_EQ(hc_page(__HYPERVISOR_xen_version, XENVER_get_features, RO_VA + 0x10, 0), -EFAULT,
            "get_features: read from a read-only page, write refused: -EFAULT");
    asm volatile("mov %0, %%cr0" ::"r"(cr0 & ~BIT(16)) : "memory");
    TEST_EQ(hc_page(__HYPERVISOR_xen_version, XENVER_get_features, RO_VA + 0x10, 0), 0,
            "with CR0.WP clear the same call writes the read-only page");
    TEST_EQ(f->submap, XEN_HVM_FEATURES, "and the features are there");
    asm volatile("mov %0, %%cr0" ::"r"(cr0) : "memory");
    TEST_EQ(hc_page(__HYPERVISOR_xen_version, XENVER_extraversion, BAD_VA + 0xff8, 0), -EFAULT,
            "extraversion crossing into an unmapped page: -EFAULT");
    TEST_EQ(hc_page(__HYPERVISOR_xen_version, XENVER_version, 0, 0), (long)want_version,
            "the hypervisor still answers");
}

static void test_off(void)
{
    struct cpuid_regs r = cpuid(0x40000000);
    TEST_ASSERT(!memcmp(&r.b, "Nest", 4) && !memcmp(&r.c, "orNe", 4) && !memcmp(&r.d, "stor", 4),
                "40000000h: nestor's own signature");
    TEST_EQ(r.a, 0x40000001, "40000000h: nestor's maximum leaf");
    u64 v;
    TEST_EQ(wrmsr_safe(0x40000000, (u64)hpage), GP_VECTOR, "MSR 40000000h: #GP");
    TEST_EQ(rdmsr_safe(0x40000000, &v), GP_VECTOR, "MSR 40000000h read: #GP");
    asm volatile(ASM_TRY("1f") "vmcall\n1:" ::"a"(17), "D"(0) : "memory");
    TEST_EQ(exc_vector(), UD_VECTOR, "VMCALL: #UD");
    asm volatile(ASM_TRY("1f") "vmmcall\n1:" ::"a"(17), "D"(0) : "memory");
    TEST_EQ(exc_vector(), UD_VECTOR, "VMMCALL: #UD");
}

void test_main(void)
{
    char spec[128] = "", extra[16] = ".0";
    hpage = page_alloc();
    if (!rt_cmdline_value("xen", spec, sizeof(spec)) && !on_qemu_tcg()) {
        test_off();
        return;
    }
    struct cpuid_regs sig = cpuid(0x40000000);
    if (sig.b != XEN_CPUID_SIGNATURE_EBX) {
        if (on_qemu_tcg()) {
            test_skip("QEMU TCG has no Xen interface");
            return;
        }
        panic("no Xen signature at 40000000h");
    }
    struct cpuid_regs v0 = cpuid(0);
    amd = v0.b == 0x68747541; /* "Auth" */
    u32 want_version = 4 << 16 | 17;
    parse_version(spec, &want_version, extra);
    if (!extra[0])
        memcpy(extra, ".0", 3);
    u32 domid = 1;
    for (const char *p = spec; *p; p++)
        if (!strncmp(p, "domid=", 6)) {
            domid = 0;
            for (p += 6; *p >= '0' && *p <= '9'; p++)
                domid = domid * 10 + (u32)(*p - '0');
            break;
        }
    test_cpuid(want_version, domid);
    test_page();
    test_dispatch(want_version);
    test_version_subops(extra);
    test_console();
    test_memory_op(domid);
    test_bad_pointers(want_version);
}
