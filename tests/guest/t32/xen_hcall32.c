/* -xen in 32-bit protected mode: the hypercall page works unchanged, the 32-bit ABI
 * (number in EAX, arguments in EBX, ECX, EDX, ESI, EDI), compat layouts (a 4-byte
 * xen_ulong_t in platform_parameters), pointers as physical addresses without paging and
 * through 32-bit paging with it, -EFAULT for MMIO, addresses beyond RAM and a range that
 * would wrap past 4 GiB; CPL 3 is refused. QEMU TCG has no Xen interface: skipped there.
 * guest: xen=yes name=xen_hcall32 */
/* guest: xen=yes cpu=max,vendor=AuthenticAMD name=xen_hcall32-amd */
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
#include <xen/vcpu.h>
#include <xen/arch-x86/cpuid.h>
#include <xen/foreign/x86_32.h>

#define EPERM 1
#define ENOENT 2
#define EFAULT 14
#define ENOSYS 38

static u8 *hpage;
static bool amd;

static long hc_page(u32 nr, u32 a1, u32 a2, u32 a3)
{
    long r;
    void *stub = hpage + nr * 32;
    asm volatile("call *%[stub]" : "=a"(r), "+b"(a1), "+c"(a2), "+d"(a3) : [stub] "r"(stub) : "memory");
    return r;
}

static long hc_raw(u32 nr, u32 a1, u32 a2, u32 a3)
{
    return xen_hypercall3(amd, nr, a1, a2, a3);
}

static ulong user_version(ulong nr)
{
    return (ulong)hc_raw(nr, XENVER_version, 0, 0);
}

static u8 buf[64];

static void check_calls(const char *how)
{
    TEST_EQ(hc_page(__HYPERVISOR_xen_version, XENVER_version, 0, 0), 4 << 16 | 17, "version");
    memset(buf, 0xaa, sizeof(buf));
    TEST_EQ(hc_page(__HYPERVISOR_xen_version, XENVER_platform_parameters, (u32)buf, 0), 0,
            "platform_parameters");
    TEST_ASSERT(buf[0] == 0 && buf[3] == 0 && buf[4] == 0xaa,
                "%s: platform_parameters writes the 4-byte compat layout", how);
    memset(buf, 0xaa, sizeof(buf));
    TEST_EQ(hc_raw(__HYPERVISOR_xen_version, XENVER_extraversion, (u32)buf, 0), 0, "extraversion");
    TEST_ASSERT(!strcmp((char *)buf, ".0") && buf[15] == 0 && buf[16] == 0xaa,
                "%s: extraversion \".0\" in 16 bytes", how);
    xen_feature_info_t fi = { 0, 0 };
    TEST_EQ(hc_page(__HYPERVISOR_xen_version, XENVER_get_features, (u32)&fi, 0), 0, "get_features");
    TEST_EQ(fi.submap, XEN_HVM_FEATURES, "get_features submap 0");
    static const char msg[] = "xen console_io from 32-bit code\n";
    TEST_EQ(hc_page(__HYPERVISOR_console_io, CONSOLEIO_write, sizeof(msg) - 1, (u32)msg), 0,
            "console_io write");
}

/* XENMEM_memory_map in the compat layout: nr_entries and a 32-bit buffer pointer (8 bytes;
 * the native struct is 16) */
static void test_memory_map(void)
{
    static u8 map[20 * 32];
    static u32 mm[4];
    memset(map, 0xaa, sizeof(map));
    mm[0] = 32;
    mm[1] = (u32)map;
    mm[2] = mm[3] = 0xdeadbeef; /* where a native handle would be */
    TEST_EQ(hc_page(__HYPERVISOR_memory_op, XENMEM_memory_map, (u32)mm, 0), 0, "memory_map (compat)");
    TEST_ASSERT(mm[0] >= 2 && mm[0] < 32 && map[20 * mm[0]] == 0xaa && mm[2] == 0xdeadbeef,
                "memory_map: %u entries through the 32-bit handle", mm[0]);
    u64 ram = 0;
    for (u32 i = 0; i < mm[0]; i++) {
        u32 type;
        u64 size;
        memcpy(&size, map + 20 * i + 8, 8);
        memcpy(&type, map + 20 * i + 16, 4);
        if (type == 1)
            ram += size >> 12;
    }
    u16 self = DOMID_SELF;
    long tot = hc_page(__HYPERVISOR_memory_op, XENMEM_current_reservation, (u32)&self, 0);
    TEST_ASSERT(tot >= (long)ram && tot < (long)ram + 0x100,
                "current_reservation: the RAM pages of the map and the reserved ones below 1 MiB "
                "(%ld, map %lu)", tot, (unsigned long)ram);
}

/* shared_info in the x86_32 layout, latched when 32-bit code placed the hypercall page:
 * the wall clock where a 32-bit guest's struct has it */
static void test_shared_info(void)
{
    u8 *p = page_alloc();
    memset(p, 0xaa, 4096);
    u32 a[4] = { DOMID_SELF | (0u << 16), XENMAPSPACE_shared_info, 0, (u32)p >> 12 };
    TEST_EQ(hc_page(__HYPERVISOR_memory_op, XENMEM_add_to_physmap, (u32)a, 0), 0,
            "shared_info placed (16-byte compat struct)");
    struct shared_info_x86_32 *si = (void *)p;
    TEST_EQ(si->wc_version, 2, "x86_32 layout: wc_version");
    TEST_ASSERT(si->wc_sec > 1600000000u && si->wc_nsec < 1000000000u,
                "x86_32 layout: wall clock %u s %u ns", si->wc_sec, si->wc_nsec);
    /* vCPU 0's pvclock where the x86_32 vcpu_info has it (offset 32 of its 64 bytes) */
    u32 tv = si->vcpu_info[0].time.version;
    TEST_ASSERT(tv >= 2 && !(tv & 1) && si->vcpu_info[0].time.tsc_to_system_mul != 0,
                "x86_32 layout: vCPU 0's time info (version %u)", tv);

    /* register_vcpu_info from 32-bit code: the same 16-byte struct, the x86_32
     * vcpu_info (64 bytes as natively, the 32-bit selector word at 4, time at 32) */
    u8 *v = page_alloc();
    memset(v, 0xaa, 4096);
    si->vcpu_info[0].arch.cr2 = 0x1234;
    u32 r[4] = { (u32)v >> 12, 0, 4096 - 64, 0 };
    TEST_EQ(hc_page(__HYPERVISOR_vcpu_op, VCPUOP_register_vcpu_info, 1, (u32)r), -ENOENT,
            "register_vcpu_info for vCPU 1 of 1: -ENOENT");
    TEST_EQ(hc_page(__HYPERVISOR_vcpu_op, VCPUOP_register_vcpu_info, 0, (u32)r), 0,
            "register_vcpu_info (compat)");
    struct vcpu_info_x86_32 *vi = (void *)(v + 4096 - 64);
    TEST_ASSERT(vi->evtchn_upcall_pending == 1 && vi->evtchn_pending_sel == 0xffffffffu &&
                    vi->arch.cr2 == 0x1234,
                "x86_32 vcpu_info: the slot's contents, every selector bit pending");
    tv = vi->time.version;
    TEST_ASSERT(tv >= 2 && !(tv & 1) && vi->time.tsc_to_system_mul != 0 &&
                    vi->time.tsc_timestamp != 0,
                "x86_32 vcpu_info: its time info (version %u)", tv);
}

void test_main(void)
{
    struct cpuid_regs sig = cpuid(0x40000000);
    if (sig.b != XEN_CPUID_SIGNATURE_EBX) {
        if (on_qemu_tcg()) {
            test_skip("QEMU TCG has no Xen interface");
            return;
        }
        panic("no Xen signature at 40000000h");
    }
    amd = cpuid(0).b == 0x68747541;
    hpage = page_alloc();
    TEST_EQ(wrmsr_safe(0x40000000, (u32)hpage), NO_EXCEPTION, "hypercall page placed from 32-bit code");
    TEST_ASSERT(hpage[0] == 0xb8 && hpage[32 * 17 + 1] == 17 &&
                hpage[32 * 17 + 7] == (amd ? 0xd9 : 0xc1) && hpage[32 * 17 + 8] == 0xc3 &&
                hpage[32 * __HYPERVISOR_iret] == 0x0f && hpage[32 * __HYPERVISOR_iret + 1] == 0x0b,
                "the same page format as from 64-bit code");
    check_calls("no paging");

    TEST_EQ(hc_page(__HYPERVISOR_xen_version, XENVER_extraversion, 0xfee00000, 0), -EFAULT,
            "the LAPIC page: -EFAULT");
    TEST_EQ(hc_page(__HYPERVISOR_xen_version, XENVER_extraversion, 0x40000000, 0), -EFAULT,
            "beyond RAM: -EFAULT");
    TEST_EQ(hc_page(__HYPERVISOR_xen_version, XENVER_extraversion, 0xfffffff8, 0), -EFAULT,
            "wrapping past 4 GiB: -EFAULT");
    TEST_EQ(hc_page(__HYPERVISOR_console_io, CONSOLEIO_write, 0x100, 0xffffff80), -EFAULT,
            "console_io write wrapping past 4 GiB: -EFAULT");
    test_memory_map();
    test_shared_info();
    TEST_EQ(hc_page(60, 0, 0, 0), -ENOSYS, "number 60: -ENOSYS");
    TEST_EQ((long)run_user(user_version, __HYPERVISOR_xen_version, 0), -EPERM, "CPL 3: -EPERM");

    /* with 32-bit paging, pointers are linear: buf seen at another address */
    struct page_table pt;
    pt_init(&pt, PT_32BIT);
    pt_map_identity(&pt, PTE_W | PTE_U);
    u8 *alias = (u8 *)0x40000000;
    u32 page = (u32)buf & ~0xfffu;
    pt_map(&pt, (u32)alias, page, 4096, 4096, PTE_W);
    pt_activate(&pt, 0);
    check_calls("32-bit paging");
    memset(buf, 0xaa, sizeof(buf));
    TEST_EQ(hc_page(__HYPERVISOR_xen_version, XENVER_extraversion, (u32)alias + ((u32)buf & 0xfff), 0),
            0, "extraversion through an alias mapping");
    TEST_ASSERT(!strcmp((char *)buf, ".0"), "written through the guest's page tables");
    TEST_EQ(hc_page(__HYPERVISOR_xen_version, XENVER_extraversion, 0x40001000, 0), -EFAULT,
            "unmapped linear address: -EFAULT");
}
