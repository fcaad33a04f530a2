/* Xen and Hyper-V on at once (-xen with -cpu ...,hv-*), as Xen with viridian shows them:
 * Hyper-V's leaves at 40000000h and Xen's at 40000100h, Hyper-V's MSRs at 40000000h and
 * Xen's hypercall-page MSR at 40000200h; Hyper-V's hypercall page marks its calls with
 * EAX bit 31 (orl $0x80000000, %eax before VMCALL), so that each call reaches its own
 * interface: Xen's by number in RAX, Hyper-V's by the control word in RCX.
 * guest: xen=yes cpu=max,hv-passthrough name=hv_xen */
/* guest: xen=yes cpu=max,vendor=AuthenticAMD,hv-passthrough name=hv_xen-amd */
#include "rt.h"

#define __XEN_INTERFACE_VERSION__ 0x00040e00
#include <xen/xen.h>
#include <xen/version.h>

#define HV_MSR_GUEST_OS_ID 0x40000000
#define HV_MSR_HYPERCALL 0x40000001
#define HV_MSR_VP_INDEX 0x40000002
#define XEN_MSR_HYPERCALL 0x40000200
#define HVCALL_FLUSH_VIRTUAL_ADDRESS_SPACE 0x0002
#define HV_HYPERCALL_FAST BIT(16)
#define HV_FLUSH_ALL_PROCESSORS 1

static u8 *xen_page, *hv_page;

static bool mentions(const char *s, const char *word)
{
    for (size_t n = strlen(word); *s; s++)
        if (strncmp(s, word, n) == 0)
            return true;
    return false;
}

static bool sig_is(struct cpuid_regs r, const char *s)
{
    return !memcmp(&r.b, s, 4) && !memcmp(&r.c, s + 4, 4) && !memcmp(&r.d, s + 8, 4);
}

/* a Xen hypercall through Xen's page: number in RAX, arguments in RDI, RSI, RDX */
static long xen_call(u32 nr, u64 a1, u64 a2)
{
    long r;
    void *stub = xen_page + nr * 32;
    asm volatile("call *%[stub]"
                 : "=a"(r), "+D"(a1), "+S"(a2)
                 : [stub] "r"(stub)
                 : "rcx", "rdx", "r8", "r9", "r10", "r11", "memory");
    return r;
}

/* a fast Hyper-V hypercall through Hyper-V's page: control in RCX, RDX, R8 */
static u64 hv_call_fast(u64 control, u64 in1, u64 in2)
{
    u64 r;
    register u64 r8 asm("r8") = in2;
    asm volatile("call *%[page]"
                 : "=a"(r), "+c"(control), "+d"(in1), "+r"(r8)
                 : [page] "r"(hv_page)
                 : "r9", "r10", "r11", "memory");
    return r;
}

void test_main(void)
{
    char spec[128] = "max";
    rt_cmdline_value("cpu", spec, sizeof(spec));
    bool amd = mentions(spec, "AuthenticAMD");

    struct cpuid_regs r = cpuid(0x40000000);
    TEST_EQ(sig_is(r, "Microsoft Hv"), true, "40000000h is Hyper-V's");
    TEST_EQ(cpuid(0x40000001).a, 0x31237648, "40000001h: Hv#1");
    r = cpuid(0x40000100);
    TEST_EQ(sig_is(r, "XenVMMXenVMM"), true, "40000100h is Xen's");
    TEST_EQ(r.a, 0x40000105, "Xen's highest leaf is its base + 5");
    TEST_EQ(cpuid(0x40000102).b, XEN_MSR_HYPERCALL, "Xen's hypercall MSR moved to 40000200h");

    /* each interface's pages */
    xen_page = page_alloc();
    hv_page = page_alloc();
    TEST_EQ(wrmsr_safe(XEN_MSR_HYPERCALL, (u64)(ulong)xen_page), NO_EXCEPTION,
            "Xen's hypercall page at 40000200h");
    wrmsr(HV_MSR_GUEST_OS_ID, 0x8100ull << 48);
    TEST_EQ(wrmsr_safe(HV_MSR_HYPERCALL, (u64)(ulong)hv_page | 1), NO_EXCEPTION,
            "Hyper-V's hypercall page");
    static const u8 marker[5] = { 0x0d, 0x00, 0x00, 0x00, 0x80 };
    TEST_EQ(memcmp(hv_page, marker, 5), 0, "Hyper-V's page ORs bit 31 into EAX first");
    u8 call[4] = { 0x0f, 0x01, amd ? 0xd9 : 0xc1, 0xc3 };
    TEST_EQ(memcmp(hv_page + 5, call, 4), 0, "then VMCALL (VMMCALL on AMD) and RET");
    u64 v = 99;
    TEST_EQ(rdmsr_safe(HV_MSR_VP_INDEX, &v), NO_EXCEPTION, "Hyper-V's VP index MSR");
    TEST_EQ(v, 0, "VP index 0");

    /* each call reaches its owner */
    long ver = xen_call(__HYPERVISOR_xen_version, XENVER_version, 0);
    TEST_EQ((u64)ver, (4ull << 16) | 17, "Xen's xen_version through its page");
    u64 st = hv_call_fast(HVCALL_FLUSH_VIRTUAL_ADDRESS_SPACE | HV_HYPERCALL_FAST, 0,
                          HV_FLUSH_ALL_PROCESSORS);
    TEST_EQ(st, 0, "Hyper-V's HvFlushVirtualAddressSpace through its page");
    /* Hyper-V's unknown code from its page: Hyper-V's status, not Xen's -ENOSYS */
    st = hv_call_fast(0x7fff | HV_HYPERCALL_FAST, 0, 0);
    TEST_EQ(st, 2, "an unknown Hyper-V code: HV_STATUS_INVALID_HYPERCALL_CODE");
    /* a raw VMCALL without the marker is Xen's: number 0x7fff is -ENOSYS */
    long raw = xen_hypercall3(amd, 0x7fff, 0, 0, 0);
    TEST_EQ(raw, -38, "a raw call without bit 31 is Xen's (-ENOSYS)");
}
