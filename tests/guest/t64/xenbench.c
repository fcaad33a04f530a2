/* Benchmark of the Xen interface (bench/run.sh runs it; docs/PERFORMANCE.md has the
 * figures), ROUNDS times each:
 *   hypercall  xen_version(XENVER_version) by raw VMCALL: the cheapest round trip from
 *              the guest into the hypervisor interface and back;
 *   page       the same through the hypercall page (a call into its stub);
 *   evtchn     EVTCHNOP_send on an IPI port bound to this vCPU, to the upcall handler
 *              (per-vCPU vector through the LAPIC, EOI) that clears it;
 * Prints the guest time (TSC) per operation. Guest time follows the host clock (less the
 * time the host did not run nestor), so it is what a guest pays; with -icount it is the
 * instruction count and repeats exactly.
 * guest: default=no xen=yes timeout=600 */
#include "rt.h"

#include <stdint.h>
#define __XEN_INTERFACE_VERSION__ 0x00040e00
#include <xen/xen.h>
#include <xen/version.h>
#include <xen/memory.h>
#include <xen/event_channel.h>
#include <xen/hvm/hvm_op.h>
#include <xen/arch-x86/cpuid.h>

#define ROUNDS 200000
#define UPCALL_VECTOR 0x50

static bool amd;
static struct shared_info *shinfo;
static volatile unsigned upcalls;
static u8 *hcpage;

static void upcall_handler(struct exc_frame *f)
{
    (void)f;
    upcalls++;
    shinfo->vcpu_info[0].evtchn_upcall_pending = 0;
    shinfo->vcpu_info[0].evtchn_pending_sel = 0;
    shinfo->evtchn_pending[0] = 0;
    apic_eoi();
}

static u64 tsc_khz;

static void report_ns(const char *what, u64 cycles, u64 n)
{
    u64 ns = cycles * 1000000u / tsc_khz / n;
    printf("xenbench: %s %llu in %llu us: %llu ns each\n", what, (unsigned long long)n,
           (unsigned long long)(cycles * 1000u / tsc_khz), (unsigned long long)ns);
}

static long page_call(u64 nr, u64 a1, u64 a2)
{
    long r;
    asm volatile("call *%1" : "=a"(r) : "r"(hcpage + nr * 32), "D"(a1), "S"(a2) : "memory", "rdx", "rcx", "r11");
    return r;
}

void test_main(void)
{
    if (cpuid(0x40000000).b != XEN_CPUID_SIGNATURE_EBX) {
        test_skip("no Xen interface (run with -xen)");
        return;
    }
    amd = cpuid(0).b == 0x68747541;
    tsc_khz = cpuid(XEN_CPUID_FIRST_LEAF + 3).c;
    hcpage = page_alloc();
    wrmsr(0x40000000, (u64)hcpage);

    u64 t0 = rdtsc();
    for (int i = 0; i < ROUNDS; i++)
        xen_hypercall3(amd, __HYPERVISOR_xen_version, XENVER_version, 0, 0);
    report_ns("hypercall", rdtsc() - t0, ROUNDS);

    t0 = rdtsc();
    for (int i = 0; i < ROUNDS; i++)
        page_call(__HYPERVISOR_xen_version, XENVER_version, 0);
    report_ns("page", rdtsc() - t0, ROUNDS);

    shinfo = page_alloc();
    struct xen_add_to_physmap a = { .domid = DOMID_SELF, .space = XENMAPSPACE_shared_info,
                                    .gpfn = (u64)shinfo >> 12 };
    TEST_EQ(xen_hypercall3(amd, __HYPERVISOR_memory_op, XENMEM_add_to_physmap, (u64)&a, 0), 0,
            "shared_info");
    exc_set_handler(UPCALL_VECTOR, upcall_handler);
    apic_enable();
    struct xen_hvm_evtchn_upcall_vector uv = { .vcpu = 0, .vector = UPCALL_VECTOR };
    TEST_EQ(xen_hypercall3(amd, __HYPERVISOR_hvm_op, HVMOP_set_evtchn_upcall_vector, (u64)&uv, 0), 0,
            "upcall vector");
    struct evtchn_bind_ipi ipi = { .vcpu = 0 };
    TEST_EQ(xen_hypercall3(amd, __HYPERVISOR_event_channel_op, EVTCHNOP_bind_ipi, (u64)&ipi, 0), 0,
            "bind_ipi");
    sti();
    udelay(10);
    struct evtchn_send s = { .port = ipi.port };
    unsigned before = upcalls;
    t0 = rdtsc();
    for (int i = 0; i < ROUNDS; i++)
        xen_hypercall3(amd, __HYPERVISOR_event_channel_op, EVTCHNOP_send, (u64)&s, 0);
    u64 t = rdtsc() - t0;
    TEST_EQ(upcalls - before, ROUNDS, "one upcall per send");
    report_ns("evtchn send-to-upcall", t, ROUNDS);
}
