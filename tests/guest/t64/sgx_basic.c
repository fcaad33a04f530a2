/* SGX enumeration and enabling (SDM Vol. 3D ch. 36, 37.7, Vol. 4 MSRs): CPUID leaf 7
 * (SGX, SGX_LC) and leaf 12h (SGX1/SGX2, MISCSELECT, maximum enclave sizes, ATTRIBUTES
 * and XFRM, the EPC section above RAM), the EPC reserved in the e820 map and an abort
 * page to software outside enclaves, IA32_FEATURE_CONTROL's SGX and Launch Control bits
 * and lock, the IA32_SGXLEPUBKEYHASH MSRs (Intel's hash at reset, writable only once
 * locked with Launch Control on), ENCLS/ENCLU's #UD and #GP rules. Without an EPC (and
 * on QEMU TCG) there is no SGX: CPUID bits clear, ENCLS/ENCLU #UD, the MSRs #GP.
 * guest: cpu=max epc=8M name=sgx-basic */
/* guest: cpu=max epc=8M append=sgx=nolc name=sgx-basic-nolc */
/* guest: cpu=max name=sgx-noepc */
/* guest: cpu=max mem=5120 epc=16M name=sgx-basic-5g */
#include "sgx.h"

static const u64 intel_lehash[4] = {
    0xa6053e051270b7acull, 0x6cfbe8ba8b3b413dull, 0xc4916d99f2b3735dull, 0xd4f8c05909f9bb3bull,
};

static int encls_vec(u64 leaf) { return encls(leaf, 0, 0, 0).vector; }

static ulong user_enclu(ulong leaf)
{
    u64 rax = leaf;
    asm volatile(ASM_TRY("1f") ".byte 0x0f, 0x01, 0xd7\n1:" : "+a"(rax) : "b"(0), "c"(0), "d"(0) : "memory");
    return (ulong)exc_vector();
}

static ulong user_encls(ulong leaf)
{
    u64 rax = leaf;
    asm volatile(ASM_TRY("1f") ".byte 0x0f, 0x01, 0xcf\n1:" : "+a"(rax) : "b"(0), "c"(0), "d"(0) : "memory");
    return (ulong)exc_vector();
}

static int enclu_cpl0(u64 leaf)
{
    u64 rax = leaf;
    asm volatile(ASM_TRY("1f") ".byte 0x0f, 0x01, 0xd7\n1:" : "+a"(rax) : "b"(0), "c"(0), "d"(0) : "memory");
    return exc_vector();
}

static void no_sgx(void)
{
    TEST_ASSERT(!cpu_has(7, 0, 1, 2), "no EPC: CPUID.7:EBX.SGX[2] = 0");
    TEST_ASSERT(!cpu_has(7, 0, 2, 30), "no EPC: CPUID.7:ECX.SGX_LC[30] = 0");
    struct cpuid_regs r = cpuid2(0x12, 0);
    if (cpuid(0).a >= 0x12)
        TEST_ASSERT(!(r.a & 3), "no EPC: CPUID.12h.0:EAX SGX1/SGX2 clear (%#x)", r.a);
    TEST_EQ(encls_vec(ECREATE), UD_VECTOR, "ENCLS without SGX: #UD");
    TEST_EQ(run_user(user_enclu, EENTER, 0), UD_VECTOR, "ENCLU without SGX: #UD");
    if (on_qemu_tcg()) {
        test_skip("QEMU TCG does not fault the SGX MSRs and FEATURE_CONTROL bits without SGX");
        return;
    }
    u64 v;
    TEST_EQ(rdmsr_safe(MSR_SGXLEPUBKEYHASH0, &v), GP_VECTOR, "IA32_SGXLEPUBKEYHASH0 without SGX_LC: #GP");
    TEST_EQ(wrmsr_safe(MSR_IA32_FEATURE_CONTROL, FC_SGX), GP_VECTOR,
            "FEATURE_CONTROL.SGX_ENABLE without CPUID SGX: #GP (reserved)");
    TEST_EQ(wrmsr_safe(MSR_IA32_FEATURE_CONTROL, FC_SGX_LC), GP_VECTOR,
            "FEATURE_CONTROL.SGX_LC without CPUID SGX_LC: #GP (reserved)");
}

static void enumeration(void)
{
    struct cpuid_regs v = cpuid(0);
    TEST_ASSERT(v.b == 0x756e6547 && v.d == 0x49656e69 && v.c == 0x6c65746e, "vendor GenuineIntel");
    TEST_ASSERT(v.a >= 0x12, "CPUID max leaf reaches 12h (%#x)", v.a);
    TEST_ASSERT(cpu_has(7, 0, 1, 2), "CPUID.7:EBX.SGX[2]");
    TEST_ASSERT(cpu_has(7, 0, 2, 30), "CPUID.7:ECX.SGX_LC[30]");
    struct cpuid_regs l0 = cpuid2(0x12, 0), l1 = cpuid2(0x12, 1);
    TEST_ASSERT(l0.a & 1, "CPUID.12h.0:EAX.SGX1");
    TEST_ASSERT(l0.a & 2, "CPUID.12h.0:EAX.SGX2 (-cpu max)");
    TEST_EQ(l0.b & 1, 1, "CPUID.12h.0:EBX MISCSELECT: EXINFO supported");
    TEST_EQ(l0.b & ~1u, 0, "CPUID.12h.0:EBX: no other MISCSELECT bit");
    TEST_EQ(l0.d & 0xff, 31, "CPUID.12h.0:EDX[7:0] MaxEnclaveSize_Not64 = 2^31");
    TEST_EQ((l0.d >> 8) & 0xff, 36, "CPUID.12h.0:EDX[15:8] MaxEnclaveSize_64 = 2^36");
    TEST_EQ(l0.d >> 16, 0, "CPUID.12h.0:EDX[31:16] reserved");
    /* sub-leaf 1: the ATTRIBUTES bits ECREATE accepts, and XFRM */
    TEST_ASSERT((l1.a & (ATTR_DEBUG | ATTR_MODE64BIT)) == (ATTR_DEBUG | ATTR_MODE64BIT),
                "CPUID.12h.1:EAX: DEBUG and MODE64BIT (%#x)", l1.a);
    TEST_ASSERT(l1.a & ATTR_EINITTOKEN_KEY, "CPUID.12h.1:EAX: EINITTOKEN_KEY (sgx-tokenkey)");
    TEST_ASSERT(l1.a & BIT(7), "CPUID.12h.1:EAX: KSS (sgx-kss)");
    TEST_ASSERT(!(l1.a & ATTR_PROVISIONKEY), "CPUID.12h.1:EAX: no PROVISIONKEY without +sgx-provisionkey");
    TEST_ASSERT(!(l1.a & (BIT(3) | BIT(6))), "CPUID.12h.1:EAX: reserved bits 3 and 6 clear");
    TEST_EQ(l1.b, 0, "CPUID.12h.1:EBX (ATTRIBUTES[63:32]) 0");
    struct cpuid_regs xs = cpuid2(0xd, 0);
    TEST_EQ(l1.c & 3, 3, "CPUID.12h.1:ECX XFRM: x87 and SSE");
    TEST_ASSERT(!(l1.c & ~xs.a) && !(l1.d & ~xs.d), "CPUID.12h.1:ECX:EDX XFRM within XCR0's supported bits "
                "(CPUID.0Dh.0: %#x:%#x, XFRM %#x:%#x)", xs.d, xs.a, l1.d, l1.c);
}

static void epc_section(u64 *base, u64 *size)
{
    struct cpuid_regs r = cpuid2(0x12, 2);
    TEST_EQ(r.a & 0xf, 1, "CPUID.12h.2:EAX[3:0] = 1: an EPC section");
    TEST_ASSERT((r.c & 0xf) == 1 || (r.c & 0xf) == 2, "CPUID.12h.2:ECX[3:0]: protected (%u)", r.c & 0xf);
    *base = (r.a & 0xfffff000ull) | ((u64)(r.b & 0xfffff) << 32);
    *size = (r.c & 0xfffff000ull) | ((u64)(r.d & 0xfffff) << 32);
    TEST_ASSERT(!(r.a & 0xff0) && !(r.b & 0xfff00000) && !(r.c & 0xff0) && !(r.d & 0xfff00000),
                "CPUID.12h.2: reserved bits clear");
    /* the first 1 GiB boundary at or above max(4 GiB, the end of RAM in the e820 map) */
    u64 ram_end = 0;
    u16 sel;
    u32 len;
    if (fwcfg_find_file("etc/e820", &sel, &len)) {
        fwcfg_select(sel);
        for (u32 off = 0; off + 20 <= len; off += 20) {
            struct { u64 addr, len; u32 type; } __attribute__((packed)) e;
            fwcfg_read(&e, 20);
            if (e.type == 1 && e.addr + e.len > ram_end)
                ram_end = e.addr + e.len;
        }
    }
    u64 want = ram_end > (4ull << 30) ? ram_end : 4ull << 30;
    want = (want + (1ull << 30) - 1) & ~((1ull << 30) - 1);
    TEST_EQ(*base, want, "EPC base: the first 1 GiB boundary at or past 4 GiB and the end of RAM");
    TEST_ASSERT(*size == (8ull << 20) || *size == (16ull << 20), "EPC size %#llx as -object ...,size= gave",
                (unsigned long long)*size);
    r = cpuid2(0x12, 3);
    TEST_EQ(r.a & 0xf, 0, "CPUID.12h.3: no second section");
}

/* the EPC in the firmware's memory map: reserved, never RAM */
static void e820(u64 base, u64 size)
{
    u16 sel;
    u32 len;
    if (!fwcfg_find_file("etc/e820", &sel, &len)) {
        test_skip("no fw_cfg etc/e820");
        return;
    }
    fwcfg_select(sel);
    bool ram_overlap = false, reserved = false;
    for (u32 off = 0; off + 20 <= len; off += 20) {
        struct { u64 addr, len; u32 type; } __attribute__((packed)) e;
        fwcfg_read(&e, 20);
        bool overlap = e.addr < base + size && base < e.addr + e.len;
        if (overlap && e.type == 1)
            ram_overlap = true;
        if (e.type == 2 && e.addr <= base && e.addr + e.len >= base + size)
            reserved = true;
    }
    TEST_ASSERT(!ram_overlap, "e820: no RAM range overlaps the EPC");
    TEST_ASSERT(reserved, "e820: the EPC is a reserved range");
}

static void feature_control(bool lc)
{
    u64 fc = rdmsr(MSR_IA32_FEATURE_CONTROL);
    TEST_EQ(fc & (FC_LOCK | FC_SGX | FC_SGX_LC), 0, "FEATURE_CONTROL at reset: unlocked, SGX and LC off");
    u64 v;
    bool all = true;
    for (int i = 0; i < 4; i++)
        all = all && rdmsr_safe(MSR_SGXLEPUBKEYHASH0 + i, &v) == NO_EXCEPTION && v == intel_lehash[i];
    TEST_ASSERT(all, "IA32_SGXLEPUBKEYHASH0-3 at reset: Intel's launch enclave key hash");
    TEST_EQ(encls_vec(EREMOVE), GP_VECTOR, "ENCLS with FEATURE_CONTROL unlocked: #GP");
    TEST_EQ(run_user(user_enclu, EENTER, 0), GP_VECTOR, "ENCLU at CPL 3 with FEATURE_CONTROL unlocked: #GP");
    TEST_EQ(wrmsr_safe(MSR_SGXLEPUBKEYHASH0, 1), GP_VECTOR, "hash MSR write before the lock: #GP");
    TEST_EQ(wrmsr_safe(MSR_IA32_FEATURE_CONTROL, FC_SGX | FC_SGX_LC), NO_EXCEPTION,
            "FEATURE_CONTROL bits 17 and 18 writable while unlocked");
    TEST_EQ(rdmsr(MSR_IA32_FEATURE_CONTROL) & (FC_SGX | FC_SGX_LC), FC_SGX | FC_SGX_LC, "and read back");
    TEST_EQ(encls_vec(EREMOVE), GP_VECTOR, "ENCLS with SGX enabled but unlocked: #GP");
    TEST_EQ(wrmsr_safe(MSR_SGXLEPUBKEYHASH0, 1), GP_VECTOR, "hash MSR write with LC on but unlocked: #GP");
    u64 set = FC_LOCK | FC_SGX | (lc ? FC_SGX_LC : 0);
    TEST_ASSERT(wrmsr_safe(MSR_IA32_FEATURE_CONTROL, set) == NO_EXCEPTION, "FEATURE_CONTROL locked with SGX%s",
                lc ? " and LC" : ", LC off");
    TEST_EQ(rdmsr(MSR_IA32_FEATURE_CONTROL) & (FC_LOCK | FC_SGX | FC_SGX_LC), set, "FEATURE_CONTROL reads back");
    TEST_EQ(wrmsr_safe(MSR_IA32_FEATURE_CONTROL, set ^ FC_SGX), GP_VECTOR, "a locked FEATURE_CONTROL: writes #GP");
    TEST_EQ(wrmsr_safe(MSR_IA32_FEATURE_CONTROL, set), GP_VECTOR, "even of the same value");
    if (lc) {
        all = true;
        for (int i = 0; i < 4; i++) {
            all = all && wrmsr_safe(MSR_SGXLEPUBKEYHASH0 + i, 0x1111111111111111ull * (u64)(i + 1)) == NO_EXCEPTION;
            all = all && rdmsr_safe(MSR_SGXLEPUBKEYHASH0 + i, &v) == NO_EXCEPTION && v == 0x1111111111111111ull * (u64)(i + 1);
        }
        TEST_ASSERT(all, "locked with LC on: the hash MSRs are writable and read back");
        for (int i = 0; i < 4; i++)
            wrmsr(MSR_SGXLEPUBKEYHASH0 + i, intel_lehash[i]);
    } else {
        TEST_EQ(wrmsr_safe(MSR_SGXLEPUBKEYHASH0, 1), GP_VECTOR, "locked with LC off: hash MSR writes #GP");
        TEST_EQ(wrmsr_safe(MSR_SGXLEPUBKEYHASH0 + 3, 1), GP_VECTOR, "(the fourth too)");
        TEST_ASSERT(rdmsr_safe(MSR_SGXLEPUBKEYHASH0, &v) == NO_EXCEPTION && v == intel_lehash[0],
                    "and still readable");
    }
    TEST_EQ(rdmsr_safe(MSR_SGXLEPUBKEYHASH0 + 4, &v), GP_VECTOR, "no MSR 90h");
}

static void instructions(u64 base)
{
    struct encls_res r = encls(EREMOVE, 0, base, 0);
    TEST_ASSERT(r.vector == NO_EXCEPTION && r.rax == 0 && !(r.flags & FL_ZF),
                "enabled and locked: ENCLS[EREMOVE] of a free EPC page succeeds");
    TEST_EQ(encls_vec(0x3f), GP_VECTOR, "ENCLS leaf 3Fh: #GP");
    TEST_EQ(encls_vec(0x12), GP_VECTOR, "ENCLS leaf 12h (past the last SGX2/OVERSUB leaf): #GP");
    TEST_EQ(run_user(user_encls, EREMOVE, 0), UD_VECTOR, "ENCLS at CPL 3: #UD");
    TEST_EQ(enclu_cpl0(EENTER), UD_VECTOR, "ENCLU at CPL 0: #UD");
    TEST_EQ(run_user(user_enclu, 0x3f, 0), GP_VECTOR, "ENCLU leaf 3Fh at CPL 3: #GP");
    TEST_EQ(run_user(user_enclu, EEXIT, 0), GP_VECTOR, "ENCLU[EEXIT] outside an enclave: #GP");
    TEST_EQ(run_user(user_enclu, EENTER, 0), PF_VECTOR, "ENCLU[EENTER] with RBX at ordinary memory (0): #PF");
}

/* outside an enclave the EPC reads as all ones and ignores writes */
static void abort_page(u64 base, u64 size)
{
    u64 a = base + size - 4096;
    ulong v = 0;
    TEST_ASSERT(try_read(a, &v) == NO_EXCEPTION && v == ~0ul, "an EPC page read from outside: all ones (%#lx)", v);
    TEST_EQ(try_write(a, 0x1234), NO_EXCEPTION, "a write to it: no fault");
    TEST_ASSERT(try_read(a, &v) == NO_EXCEPTION && v == ~0ul, "and dropped");
    volatile u8 *b = (volatile u8 *)(ulong)(a + 0x123);
    TEST_EQ(*b, 0xff, "a byte read: FFh");
    u32 d = 0;
    asm volatile("movl (%1), %0" : "=r"(d) : "r"(a + 0x7fe));
    TEST_EQ(d, 0xffffffffu, "an unaligned doubleword: all ones");
}

void test_main(void)
{
    char mode[16] = "";
    rt_cmdline_value("sgx", mode, sizeof(mode));
    if (!sgx_cpuid_present()) {
        if (on_qemu_tcg()) {
            TEST_ASSERT(!cpu_has(7, 0, 1, 2), "QEMU TCG: no SGX in CPUID");
            test_skip("QEMU TCG has no SGX");
            no_sgx();
            return;
        }
        struct cpuid_regs r = cpuid2(0x12, 2);
        if ((r.a & 0xf) == 0 && !cpu_has(7, 0, 1, 2)) { /* the run without an EPC */
            no_sgx();
            return;
        }
        TEST_ASSERT(false, "CPUID: SGX with -cpu max and an EPC");
        return;
    }
    u64 base = 0, size = 0;
    enumeration();
    epc_section(&base, &size);
    e820(base, size);
    pt_map(&rt_boot_pt, base, base, size, 4096, PTE_W | PTE_U);
    write_cr3(read_cr3());
    bool lc = strcmp(mode, "nolc") != 0;
    feature_control(lc);
    instructions(base);
    abort_page(base, size);
    if (!lc) {
        /* the enclave of sgx_enclave, signed by a key of the build, cannot launch: the hash
         * MSRs keep Intel's key hash */
        sgx_parse_layout();
        epc_base = base;
        epc_size = size;
        epc_next = base;
        struct enclave e;
        struct encls_res r = sgx_build(&e, 0x8000000000ull, ATTR_MODE64BIT | ATTR_DEBUG, 1, NULL);
        TEST_ASSERT(r.vector == NO_EXCEPTION, "LC off: the test enclave builds");
        r = sgx_einit_raw(e.secs, encl_sig);
        TEST_ASSERT(r.vector == NO_EXCEPTION && r.rax == SGX_INVALID_EINITTOKEN && (r.flags & FL_ZF),
                    "LC off: EINIT of a non-Intel signer without a token: SGX_INVALID_EINITTOKEN (RAX %llu)",
                    (unsigned long long)r.rax);
    }
}
