/* VMX and SGX together: the "enable ENCLS exiting" secondary control (offered only on a
 * model with SGX) and the ENCLS-exiting bitmap (field 202EH) (SDM Vol. 3C 24.6.16,
 * 26.1.3, A.3.3); exit reason 60 with its exit information (28.2.1); ENCLS at CPL 3 #UD
 * before any exit; a VM exit while L2 is inside an enclave: the AEX first, then the exit
 * with reason bit 27 ("enclave interruption") and the AEX's synthetic state as L2's
 * state (Vol. 3D 39.4, Vol. 3C 28.2.1); L2 ERESUMEs from its AEP after VMRESUME.
 * Without an EPC the control is not offered and the field does not exist.
 * guest: cpu=max epc=8M name=vmx-sgx timeout=60 */
/* guest: cpu=max name=vmx-sgx-noepc */
#include "vmx.h"
#include "sgx.h"

#define PROC2_ENCLS BIT(15)
#define F_ENCLS_BITMAP 0x202e
#define R_ENCLS 60
#define REASON_ENCLAVE BIT(27)
#define FC_VMX_OUTSIDE_SMX BIT(2)
#define INTR_UD vmx_hw_exc_info(6, false)
#define INTR_GP vmx_hw_exc_info(13, true)
#define BASE 0x8000000000ull /* 512 GiB: ELRANGE, 64 KiB */
#define TCS0 (BASE + ENCL_TCS0)
#define V_TIMER 0x45

static u64 proc2_allowed1(void) { return rdmsr(MSR_VMX_PROCBASED2) >> 32; }

/* ---------------------------------------------------------------- capabilities */
VMX_L2_CODE(l2_nothing, "");

static void caps(bool sgx)
{
    u64 v = 0;
    vmx_setup_l2(l2_nothing, 0, 0);
    if (sgx) {
        TEST_ASSERT(proc2_allowed1() & PROC2_ENCLS,
                    "with an EPC: IA32_VMX_PROCBASED_CTLS2 allows enable ENCLS exiting (bit 47)");
        TEST_EQ(vmwrite_safe(F_ENCLS_BITMAP, 0x8000000012345678ull), 0, "VMWRITE of the ENCLS-exiting bitmap");
        TEST_EQ(vmread_safe(F_ENCLS_BITMAP, &v), 0, "VMREAD of the ENCLS-exiting bitmap");
        TEST_EQ(v, 0x8000000012345678ull, "it reads back all 64 bits");
        TEST_EQ(vmread_safe(F_ENCLS_BITMAP + 1, &v), 0, "VMREAD of its high half (202FH)");
        TEST_EQ(v, 0x80000000ull, "the high half is bits 63:32");
        return;
    }
    TEST_ASSERT(!(proc2_allowed1() & PROC2_ENCLS),
                "without SGX: IA32_VMX_PROCBASED_CTLS2 does not allow enable ENCLS exiting");
    TEST_EQ(vmwrite_safe(F_ENCLS_BITMAP, 1), 2, "VMWRITE of 202EH without SGX: VMfailValid");
    TEST_EQ(vmread(F_INSN_ERROR), 12, "VM-instruction error 12 (unsupported VMCS component)");
    TEST_EQ(vmread_safe(F_ENCLS_BITMAP, &v), 2, "VMREAD of 202EH without SGX: VMfailValid");
    TEST_EQ(vmread(F_INSN_ERROR), 12, "VM-instruction error 12");
    TEST_EQ(vmread_safe(F_ENCLS_BITMAP + 1, &v), 2, "VMREAD of 202FH (its high half) without SGX: VMfailValid");
    TEST_EQ(vmread(F_INSN_ERROR), 12, "VM-instruction error 12");
    /* the control forced on: an invalid control field at VM entry */
    vmwrite(F_PROC, vmread(F_PROC) | PROC_SECONDARY);
    vmwrite(F_PROC2, PROC2_ENCLS);
    TEST_EQ(vmx_run(), -2, "VM entry with enable ENCLS exiting not allowed: VMfailValid");
    TEST_EQ(vmread(F_INSN_ERROR), 7, "VM-instruction error 7 (invalid control fields)");
}

/* ---------------------------------------------------------------- ENCLS exiting */
VMX_L2_CODE(l2_encls, ".globl l2_encls_insn\nl2_encls_insn: .byte 0x0f, 0x01, 0xcf");
extern char l2_encls_insn[];
VMX_L2_CODE(l2_u_encls, ".byte 0x0f, 0x01, 0xcf");

/* L2 at CPL 0 runs ENCLS with RAX = rax; #UD and #GP exit through the exception bitmap */
static long encls_run(bool control, u64 bitmap, u64 rax)
{
    vmx_setup_l2(l2_encls, 0, control ? PROC2_ENCLS : PROC2_WBINVD);
    vmwrite(F_ENCLS_BITMAP, bitmap);
    vmwrite(F_EXC_BITMAP, 1u << 13 | 1u << 6);
    vmx_gregs[GAX] = rax;
    return vmx_run();
}

static void expect_encls_exit(long r, u64 rax, const char *what)
{
    TEST_EQ(r, R_ENCLS, what);
    TEST_EQ(vmread(F_EXIT_REASON), R_ENCLS, "the full exit reason: 60, no other bit");
    TEST_EQ(vmread(F_EXIT_QUAL), 0, "its exit qualification: 0");
    TEST_EQ(vmread(F_EXIT_INSN_LEN), 3, "its instruction length: 3");
    TEST_EQ(vmread(F_GUEST_RIP), (ulong)l2_encls_insn, "guest RIP: the ENCLS");
    TEST_EQ(vmx_gregs[GAX], rax, "guest RAX: the leaf, unchanged");
}

static void expect_gp(long r, const char *what)
{
    TEST_EQ(r, R_EXC_NMI, what);
    TEST_EQ(vmread(F_EXIT_INTR_INFO), INTR_GP, "a #GP in L2 (exit reason 0, vector 13)");
    TEST_EQ(vmread(F_EXIT_INTR_ERROR), 0, "its error code: 0");
    TEST_EQ(vmread(F_GUEST_RIP), (ulong)l2_encls_insn, "at the ENCLS");
}

static void encls_exiting(void)
{
    static const u32 leaves[] = { ECREATE, EADD, EINIT, EDBGRD, EEXTEND, 7, 0x18, 0x30, 62 };
    for (unsigned k = 0; k < ARRAY_SIZE(leaves); k++) {
        u32 n = leaves[k];
        char what[96];
        snprintf(what, sizeof(what), "ENCLS[%u] with its bitmap bit set: exit 60", n);
        expect_encls_exit(encls_run(true, 1ull << n, n), n, what);
        if (k == 0) {
            vmx_skip();
            TEST_EQ(vmx_run(), R_VMCALL, "L2 goes on after the skipped ENCLS");
        }
    }
    expect_encls_exit(encls_run(true, 1ull << 63, 63), 63, "EAX = 63: bit 63 of the bitmap");
    expect_encls_exit(encls_run(true, 1ull << 63, 0x12345), 0x12345, "EAX = 12345H: bit 63 of the bitmap");
    expect_encls_exit(encls_run(true, 1ull << 63, 0xffffffff), 0xffffffff, "EAX = FFFFFFFFH: bit 63");
    expect_encls_exit(encls_run(true, 1ull << 0x30, 0xabcd000000000030ull), 0xabcd000000000030ull,
                      "RAX[63:32] ignored: EAX = 30H picks bit 48");
    expect_encls_exit(encls_run(true, ~0ull, 0x30), 0x30, "every bitmap bit set: the invalid leaf 30H exits");

    expect_gp(encls_run(true, ~(1ull << 0x30), 0x30), "ENCLS[30H] with only its bit clear: runs in L2");
    expect_gp(encls_run(true, ~(1ull << 63), 63), "ENCLS[63] with only bit 63 clear: runs in L2");
    expect_gp(encls_run(true, ~(1ull << 63), 0x100), "ENCLS[100H] with only bit 63 clear: runs in L2");
    expect_gp(encls_run(true, 1ull << 62 | 1ull << 48, 63), "ENCLS[63] with bits 62 and 48 set but not 63: runs in L2");
    expect_gp(encls_run(true, 0, 0x30), "an all-zero bitmap: ENCLS[30H] runs in L2");
    expect_gp(encls_run(false, ~0ull, 0x30), "the control off (bitmap all ones): ENCLS[30H] runs in L2");

    /* CPL 3: #UD comes before the exit check */
    vmx_setup_l2(l2_u_encls, 0, PROC2_ENCLS);
    vmx_guest_cpl3();
    vmwrite(F_ENCLS_BITMAP, ~0ull);
    vmwrite(F_EXC_BITMAP, 1u << 13 | 1u << 6);
    vmx_gregs[GAX] = ECREATE;
    TEST_EQ(vmx_run(), R_EXC_NMI, "ENCLS at CPL 3 with every bitmap bit set: no ENCLS exit");
    TEST_EQ(vmread(F_EXIT_INTR_INFO), INTR_UD, "the #UD of CPL 3 (vector 6)");
}

/* ---------------------------------------------------------------- an enclave in L2 */
static struct enclave E;
static struct encls_res build_res, einit_res;
static u8 mrsigner[32];
static struct sgx_call C;
static u64 l2_user_stack[512] __attribute__((aligned(16)));

/* L2 at CPL 0: builds and initializes the enclave (ENCLS in L2) */
void l2_build_c(void);
void l2_build_c(void)
{
    build_res = sgx_build(&E, BASE, ATTR_MODE64BIT | ATTR_DEBUG, 1, NULL);
    if (build_res.vector == NO_EXCEPTION)
        einit_res = sgx_einit_raw(E.secs, encl_sig);
}
VMX_L2_CODE(l2_build, "sub $8, %rsp\n call l2_build_c");
/* where sgx_ucall returns to at CPL 3 */
VMX_L2_CODE(l2_user_done, "");

static u64 lcg(u64 x, u64 n)
{
    while (n--)
        x = x * 6364136223846793005ull + 1442695040888963407ull;
    return x;
}

static void enclave_in_l2(void)
{
    sgx_parse_layout();
    sgx_parse_hex(encl_meas + 65, mrsigner, 32);
    sgx_set_lehash(mrsigner);
    sgx_map_epc();

    /* the build: ENCLS exiting on, the leaves the build uses clear in the bitmap */
    vmx_setup_l2(l2_build, 0, PROC2_ENCLS);
    vmwrite(F_ENCLS_BITMAP, ~(1ull << ECREATE | 1ull << EADD | 1ull << EEXTEND | 1ull << EINIT));
    long r = vmx_run();
    TEST_EQ(r, R_VMCALL, "L2 builds the enclave with ENCLS exiting on and those leaves' bits clear: no exit");
    TEST_ASSERT(build_res.vector == NO_EXCEPTION, "ECREATE, EADD, EEXTEND in L2 (vector %d)", build_res.vector);
    TEST_ASSERT(einit_res.vector == NO_EXCEPTION && einit_res.rax == 0, "EINIT in L2 (vector %d, RAX %llu)",
                einit_res.vector, (unsigned long long)einit_res.rax);
    if (r != R_VMCALL || build_res.vector != NO_EXCEPTION || einit_res.rax)
        return;

    /* EENTER at CPL 3 in L2; the enclave spins; the LAPIC timer interrupts it */
    const u64 n = 300000;
    memset(&C, 0, sizeof(C));
    C.in.r[GAX] = EENTER;
    C.in.r[GBX] = TCS0;
    C.in.r[GDI] = CMD_SPIN;
    C.in.r[GDX] = n;
    C.in.r[G8] = 7;
    C.how = ~0ull;
    sgx_aep_resume = 1;
    sgx_aep_count = 0;
    vmx_setup_l2(sgx_ucall, 0, PROC2_ENCLS);
    vmx_guest_cpl3();
    vmwrite(F_ENCLS_BITMAP, ~0ull);
    vmwrite(F_PIN, vmread(F_PIN) | PIN_EXTINT);
    vmwrite(F_EXIT_CTLS, vmread(F_EXIT_CTLS) | EXIT_ACK_INTR);
    vmwrite(F_EXC_BITMAP, ~0u); /* any exception in L2 is an exit */
    vmwrite(F_GUEST_RFLAGS, 0x202);
    l2_user_stack[511] = (u64)(ulong)l2_user_done;
    vmwrite(F_GUEST_RSP, (u64)(ulong)&l2_user_stack[511]);
    vmx_gregs[GDI] = (u64)(ulong)&C;

    apic_enable();
    apic_write(APIC_TDCR, 0xb);
    apic_write(APIC_LVTT, V_TIMER | APIC_TIMER_PERIODIC);
    apic_write(APIC_TMICT, 20000);
    unsigned inside = 0, outside = 0, bad = 0, other = 0, vec_bad = 0;
    u32 last_other = 0;
    for (int k = 0; k < 100000; k++) {
        r = vmx_run();
        if (r != R_EXTINT) {
            break;
        }
        if ((vmread(F_EXIT_INTR_INFO) & 0x800000ff) != (0x80000000u | V_TIMER))
            vec_bad++;
        apic_eoi();
        u32 reason = (u32)vmread(F_EXIT_REASON);
        if (reason & REASON_ENCLAVE) {
            u64 rip = vmread(F_GUEST_RIP);
            if (reason != (R_EXTINT | REASON_ENCLAVE) || rip != (ulong)sgx_aep || vmx_gregs[GAX] != 3 ||
                vmx_gregs[GBX] != TCS0 || vmx_gregs[GCX] != (ulong)sgx_aep ||
                (vmread(F_GUEST_CS_SEL) & 3) != 3) {
                if (bad++ < 4)
                    printf("  exit %#x rip %#llx (aep %p) rax %#llx rbx %#llx rcx %#llx cs %#llx\n", reason,
                           (unsigned long long)rip, sgx_aep, (unsigned long long)vmx_gregs[GAX],
                           (unsigned long long)vmx_gregs[GBX], (unsigned long long)vmx_gregs[GCX],
                           (unsigned long long)vmread(F_GUEST_CS_SEL));
            }
            inside++;
        } else if (reason == R_EXTINT) {
            outside++;
        } else {
            other++;
            last_other = reason;
        }
    }
    apic_write(APIC_LVTT, APIC_LVT_MASKED);
    apic_write(APIC_TMICT, 0);
    sgx_aep_resume = 0;
    TEST_EQ(r, R_VMCALL, "L2's enclave call returns (its final VMCALL)");
    if (r == R_EXC_NMI)
        printf("  L2 exception: info %#llx error %#llx rip %#llx\n", (unsigned long long)vmread(F_EXIT_INTR_INFO),
               (unsigned long long)vmread(F_EXIT_INTR_ERROR), (unsigned long long)vmread(F_GUEST_RIP));
    TEST_ASSERT(inside > 0, "external-interrupt exits with L2 inside the enclave: reason 1 | bit 27 (%u of them, "
                            "%u outside it)", inside, outside);
    TEST_ASSERT(bad == 0, "each: guest RIP = the AEP, RAX = 3 (ERESUME), RBX = the TCS, RCX = the AEP, CPL 3 "
                          "(%u wrong)", bad);
    TEST_ASSERT(other == 0, "external-interrupt exits outside the enclave have bit 27 clear (%u other: %#x)", other,
                last_other);
    TEST_EQ(vec_bad, 0, "each exit acknowledged the timer's vector");
    TEST_EQ(sgx_aep_count, inside, "L2 reached its AEP once per enclave exit and ERESUMEd");
    TEST_EQ(C.how, SGX_BACK_EEXIT, "the enclave finished with EEXIT");
    TEST_EQ(C.out.r[GDX], lcg(7, n), "its computation is exact across the AEXs and VM exits");
}

void test_main(void)
{
    bool sgx = sgx_cpuid_present();
    if (on_qemu_tcg()) {
        test_skip("QEMU TCG has neither VMX nor SGX");
        return;
    }
    /* FEATURE_CONTROL locked with VMX and, when there is SGX, SGX and Launch Control */
    if (sgx && !(rdmsr(MSR_IA32_FEATURE_CONTROL) & FC_LOCK))
        wrmsr(MSR_IA32_FEATURE_CONTROL, FC_LOCK | FC_VMX_OUTSIDE_SMX | FC_SGX | FC_SGX_LC);
    TEST_ASSERT(vmx_on(), "VMXON");
    caps(sgx);
    if (sgx) {
        encls_exiting();
        enclave_in_l2();
    }
    TEST_EQ(vmxoff(), 0, "VMXOFF");
}
