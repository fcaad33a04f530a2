/* SGX enclaves at run time (SDM Vol. 3D ch. 37-41): the test enclave (t64/sgx_encl.S,
 * measured and signed at build time) is built and initialised, then entered from ring 3:
 * EENTER/EEXIT and the registers they pass and set, FS/GS from the TCS, enclave memory
 * (all ones from outside, EPCM permissions inside), the AEX of exceptions and interrupts
 * (synthetic state, the SSA frame, EXITINFO/EXINFO, CSSA), the enclave as its own
 * exception handler and ERESUME, EENTER's and ERESUME's checks, the instructions illegal
 * in an enclave, EREPORT (checked with AES-CMAC under the key EGETKEY gives) and EGETKEY.
 * guest: cpu=max epc=8M name=sgx-enclave timeout=60 */
#include "sgx.h"

#define BASE 0x8000000000ull /* 512 GiB: ELRANGE, 64 KiB */
#define TCS0 (BASE + ENCL_TCS0)
#define TCS1 (BASE + ENCL_TCS1)
#define TIMER_VECTOR 0x40
#define ATTRS (ATTR_MODE64BIT | ATTR_DEBUG)

static struct enclave E;
static u8 mrenclave[32], mrsigner[32];
static struct sgx_call C;
static struct ssa_tail ssa;
static volatile u64 outside_word = 0x1122334455667788ull;

static u64 edbgrd(u64 epc)
{
    struct encls_res r = encls(EDBGRD, 0, epc, 0);
    return r.vector == NO_EXCEPTION && r.rax == 0 ? r.rbx : 0xdead;
}

static u32 tcs_cssa(u64 tcs_off) { return (u32)edbgrd(sgx_epc_of(&E, (u32)tcs_off) + 24); }

/* The AEX the ring-0 handler saw as event k: at the AEP with the synthetic state */
static bool aex_event_ok(unsigned k, int vector, u64 tcs, u64 urbp)
{
    const struct sgx_event *e = &sgx_events[k];
    bool ok = e->vector == vector && e->ip == (ulong)sgx_aep && e->ax == 3 && e->bx == tcs &&
              e->cx == (ulong)sgx_aep && e->dx == 0 && e->si == 0 && e->di == 0 && e->r8 == 0 &&
              e->r15 == 0 && e->sp == sgx_ustack && e->bp == urbp && (e->cs & 3) == 3 &&
              !(e->flags & (FL_CF | BIT(2) | BIT(4) | FL_ZF | BIT(7) | FL_OF)) &&
              /* RF: 0 in the synthetic state; a fault's frame has it set as anywhere */
              !!(e->flags & FL_RF) == (vector < 32 && vector != BP_VECTOR);
    if (!ok)
        printf("  event %u: vector %d error %#llx ip %#llx (aep %p) ax %#llx bx %#llx cx %#llx dx %#llx "
               "si %#llx di %#llx r8 %#llx r15 %#llx sp %#llx (ursp %#llx) bp %#llx cs %#llx flags %#llx\n",
               k, e->vector, (unsigned long long)e->error, (unsigned long long)e->ip, sgx_aep,
               (unsigned long long)e->ax, (unsigned long long)e->bx, (unsigned long long)e->cx,
               (unsigned long long)e->dx, (unsigned long long)e->si, (unsigned long long)e->di,
               (unsigned long long)e->r8, (unsigned long long)e->r15, (unsigned long long)e->sp,
               (unsigned long long)sgx_ustack, (unsigned long long)e->bp,
               (unsigned long long)e->cs, (unsigned long long)e->flags);
    return ok;
}

/* After an AEX on tcs: enter the enclave's handler (CSSA 1) to fetch the frame into ssa,
 * making the interrupted command give up; then ERESUME it. Returns the RDX the resumed
 * command left with (0xabad) or ~0 if a step went wrong. */
static u64 handle_and_resume(u64 tcs)
{
    memset(&ssa, 0, sizeof(ssa));
    u64 how = sgx_cmd(&C, tcs, 0, &ssa, 1, 0, 0);
    if (how != SGX_BACK_EEXIT || C.out.r[GDX] != 1) {
        printf("  handler entry: how %llu rdx %#llx\n", (unsigned long long)how,
               (unsigned long long)C.out.r[GDX]);
        return ~0ull;
    }
    memset(&C.in, 0, sizeof(C.in));
    how = sgx_call(&C, ERESUME, tcs);
    if (how != SGX_BACK_EEXIT) {
        printf("  ERESUME: how %llu, %u events, vector %d\n", (unsigned long long)how, sgx_nevents,
               sgx_events[0].vector);
        return ~0ull;
    }
    return C.out.r[GDX];
}

static void build(void)
{
    struct encls_res r = sgx_build(&E, BASE, ATTRS, 1, NULL);
    TEST_ASSERT(r.vector == NO_EXCEPTION, "ECREATE, EADD and EEXTEND of the test enclave (vector %d error %#llx)",
                r.vector, (unsigned long long)r.error);
    r = sgx_einit_raw(E.secs, encl_sig);
    TEST_ASSERT(r.vector == NO_EXCEPTION && r.rax == 0 && !(r.flags & FL_ZF),
                "EINIT with the build's SIGSTRUCT and the hash MSRs of its signer (vector %d, RAX %llu)",
                r.vector, (unsigned long long)r.rax);
}

/* ---------------------------------------------------------------- EENTER / EEXIT */
static void enter_exit(void)
{
    u64 saved[17];
    memset(saved, 0, sizeof(saved));
    memset(&C.in, 0, sizeof(C.in));
    C.in.r[GDI] = CMD_ECHO;
    C.in.r[GSI] = (ulong)saved;
    C.in.r[GDX] = 0x2222222222222222ull;
    C.in.r[GBP] = 0x5555555555555555ull;
    for (int r = G8; r <= G15; r++)
        C.in.r[r] = 0x0101010101010101ull * (u64)r;
    struct sgx_call in = C;
    u64 fs = rdmsr(MSR_FS_BASE), gs = rdmsr(MSR_GS_BASE);
    wrmsr(MSR_FS_BASE, 0x12345000);
    wrmsr(MSR_GS_BASE, 0x23456000);
    u64 how = sgx_call(&C, EENTER, TCS0);
    u64 fs_after = rdmsr(MSR_FS_BASE), gs_after = rdmsr(MSR_GS_BASE);
    wrmsr(MSR_FS_BASE, fs);
    wrmsr(MSR_GS_BASE, gs);
    TEST_EQ(how, SGX_BACK_EEXIT, "EENTER and EEXIT: back at the RBX of EEXIT");
    TEST_EQ(C.out.r[GDX], 0x600df00d, "the enclave ran its command");
    TEST_EQ(saved[GAX], 0, "EENTER: RAX = CSSA (0)");
    TEST_EQ(saved[GCX], (ulong)sgx_after_enclu, "EENTER: RCX = the address after ENCLU");
    TEST_EQ(saved[GBX], TCS0, "EENTER: RBX keeps the TCS address");
    TEST_EQ(saved[GSP], sgx_ustack, "EENTER: RSP unchanged (the outside stack)");
    bool same = true;
    for (int r = GBP; r <= G15; r++)
        if (r != GSP && saved[r] != in.in.r[r]) {
            printf("  register %d: %#llx, want %#llx\n", r, (unsigned long long)saved[r],
                   (unsigned long long)in.in.r[r]);
            same = false;
        }
    TEST_ASSERT(same && saved[GDX] == in.in.r[GDX], "EENTER: RDX, RBP, RSI, RDI, R8-R15 reach the enclave unchanged");
    TEST_EQ(saved[16] & 0x2, 0x2, "RFLAGS bit 1 inside");
    TEST_EQ(C.out.r[GAX], EEXIT, "EEXIT: RAX keeps the leaf");
    TEST_EQ(C.out.r[GBX], (ulong)sgx_after_enclu, "EEXIT: RBX keeps the target");
    TEST_EQ(C.out.r[GCX], (ulong)sgx_aep, "EEXIT: RCX = the AEP of the EENTER (SDM 41 EEXIT: RCX receives the current AEP)");
    same = true;
    for (int r = GBP; r <= G15; r++)
        if (r != GSP && C.out.r[r] != in.in.r[r])
            same = false;
    TEST_ASSERT(same, "EEXIT: RBP, RSI, RDI, R8-R15 come out as the enclave left them");
    TEST_EQ(fs_after, 0x12345000, "FS base restored by EEXIT");
    TEST_EQ(gs_after, 0x23456000, "GS base restored by EEXIT");
    TEST_EQ(edbgrd(sgx_epc_of(&E, ENCL_TCS0) + 40), (ulong)sgx_aep,
            "EENTER stores the AEP (RCX) in TCS.AEP (SDM 41 EENTER: CR_TCS_LA.AEP <- RCX)");

    /* the enclave's own memory: code, stack, data and read-only data */
    u64 want = 100 + 2080 * 0x0101010101ull + 64 * 7;
    how = sgx_cmd(&C, TCS0, CMD_SUM, NULL, 100, 0, 0);
    TEST_ASSERT(how == SGX_BACK_EEXIT && C.out.r[GDX] == want && C.out.r[G8] == ENCL_RODATA_MARKER,
                "the enclave sums its measured data through its stack (RDX %#llx, R8 %#llx)",
                (unsigned long long)C.out.r[GDX], (unsigned long long)C.out.r[G8]);
    how = sgx_cmd(&C, TCS0, CMD_READ, NULL, 0x4800, 0, 0);
    TEST_EQ(C.out.r[GDX], want, "what it wrote to its data page stays");

    /* FS and GS from the TCS */
    how = sgx_cmd(&C, TCS0, CMD_FSGS, NULL, 0, 0, 0);
    TEST_ASSERT(how == SGX_BACK_EEXIT && C.out.r[GDX] == ENCL_PAGE_A_MARKER && C.out.r[G8] == ENCL_PAGE_B_MARKER,
                "TCS0: FS:0 and GS:0 read the pages OFSBASE and OGSBASE name");
    how = sgx_cmd(&C, TCS1, CMD_FSGS, NULL, 0, 0, 0);
    TEST_ASSERT(how == SGX_BACK_EEXIT && C.out.r[GDX] == ENCL_PAGE_B_MARKER && C.out.r[G8] == ENCL_PAGE_A_MARKER,
                "TCS1: its own FS and GS (the pages swapped)");
    if (HAS_FSGSBASE()) {
        write_cr4(read_cr4() | CR4_FSGSBASE);
        how = sgx_cmd(&C, TCS0, CMD_FSGS, NULL, 0, 1, 0);
        TEST_ASSERT(how == SGX_BACK_EEXIT && C.out.r[G9] == BASE + ENCL_PAGE_A && C.out.r[G10] == BASE + ENCL_PAGE_B,
                    "RDFSBASE/RDGSBASE inside: enclave base + OFSBASE/OGSBASE (%#llx %#llx)",
                    (unsigned long long)C.out.r[G9], (unsigned long long)C.out.r[G10]);
        write_cr4(read_cr4() & ~CR4_FSGSBASE);
    }

    /* memory outside ELRANGE is reachable from inside */
    how = sgx_cmd(&C, TCS0, CMD_OUTREAD, NULL, (ulong)&outside_word, 0, 0);
    TEST_EQ(C.out.r[GDX], 0x1122334455667788ull, "the enclave reads memory outside the enclave");
    how = sgx_cmd(&C, TCS0, CMD_OUTWRITE, NULL, (ulong)&outside_word, 0x8877665544332211ull, 0);
    TEST_EQ(outside_word, 0x8877665544332211ull, "the enclave writes memory outside the enclave");

    /* outside the enclave its pages are the abort page */
    ulong v = 0;
    int vec = try_read(BASE + ENCL_DATA, &v);
    TEST_ASSERT(vec == NO_EXCEPTION && v == ~0ul, "an enclave page read outside the enclave: all ones (%#lx)", v);
    vec = try_read(sgx_epc_of(&E, ENCL_DATA), &v);
    TEST_ASSERT(vec == NO_EXCEPTION && v == ~0ul, "its EPC page at its physical address: all ones");
    vec = try_write(BASE + ENCL_DATA, 0);
    try_write(sgx_epc_of(&E, ENCL_DATA) + 8, 0);
    how = sgx_cmd(&C, TCS0, CMD_READ, NULL, ENCL_DATA, 0, 0);
    u64 r0 = C.out.r[GDX];
    u64 how2 = sgx_cmd(&C, TCS0, CMD_READ, NULL, ENCL_DATA + 8, 0, 0);
    TEST_ASSERT(vec == NO_EXCEPTION && how == SGX_BACK_EEXIT && how2 == SGX_BACK_EEXIT &&
                    r0 == 0x0101010101ull + 7 && C.out.r[GDX] == 2 * 0x0101010101ull + 7,
                "writes from outside are dropped (%#llx %#llx)", (unsigned long long)r0,
                (unsigned long long)C.out.r[GDX]);
}

/* ---------------------------------------------------------------- AEX on an exception */
static void aex_exception(void)
{
    /* CPUID inside: #UD */
    memset(&C.in, 0, sizeof(C.in));
    C.in.r[GDI] = CMD_ILLEGAL;
    C.in.r[GDX] = 0;
    C.in.r[GBP] = 0x4242424242424242ull;
    u64 how = sgx_call(&C, EENTER, TCS0);
    TEST_EQ(how, SGX_BACK_AEX, "CPUID inside an enclave: an AEX to the AEP");
    TEST_ASSERT(sgx_nevents == 1 && aex_event_ok(0, UD_VECTOR, TCS0, 0x4242424242424242ull),
                "#UD delivered at the AEP with the synthetic state (RAX 3, RBX TCS, RCX AEP, RSP/RBP "
                "the outside's, RDX RSI RDI R8-R15 0, arithmetic flags clear)");
    TEST_EQ(C.out.r[GAX], 3, "the AEP sees RAX = 3 (ERESUME)");
    TEST_EQ(tcs_cssa(ENCL_TCS0), 1, "the AEX advanced TCS.CSSA to 1");

    /* the enclave's handler: entered at CSSA 1 */
    memset(&ssa, 0, sizeof(ssa));
    how = sgx_cmd(&C, TCS0, 0, &ssa, 1, 0, 0);
    TEST_ASSERT(how == SGX_BACK_EEXIT && C.out.r[GDX] == 1, "EENTER after the AEX: RAX = CSSA = 1 (the handler)");
    TEST_EQ(ssa.exitinfo, 0x80000306, "SSA EXITINFO: valid, hardware exception, vector 6");
    TEST_ASSERT(ssa.rip == ssa.gpr[G13] && ssa.rip - BASE < 0x4000, "SSA RIP: the CPUID (%#llx, R13 %#llx)",
                (unsigned long long)ssa.rip, (unsigned long long)ssa.gpr[G13]);
    TEST_ASSERT(ssa.gpr[G12] == 0x1212121212121212ull && ssa.gpr[G14] == 0x1414141414141414ull &&
                    ssa.gpr[G15] == 0x1515151515151515ull && ssa.gpr[GDI] == CMD_ILLEGAL &&
                    ssa.gpr[GBX] == TCS0 && ssa.gpr[GBP] == 0x4242424242424242ull,
                "SSA GPRs: the enclave's registers at the fault");
    TEST_ASSERT(ssa.gpr[GSP] - (BASE + 0x9000) <= 0x800, "SSA RSP: the enclave's stack (%#llx)",
                (unsigned long long)ssa.gpr[GSP]);
    TEST_ASSERT((ssa.rflags & (FL_ZF | BIT(2))) == (FL_ZF | BIT(2)) && (ssa.rflags & 2),
                "SSA RFLAGS: the enclave's (ZF and PF of its XOR) (%#llx)", (unsigned long long)ssa.rflags);
    TEST_ASSERT(ssa.rflags & FL_RF, "SSA RFLAGS.RF = 1 for a fault, as it would be pushed outside an enclave "
                "(SDM 43.3.3)");
    TEST_EQ(ssa.ursp, sgx_ustack, "SSA URSP: RSP at EENTER");
    TEST_EQ(ssa.urbp, 0x4242424242424242ull, "SSA URBP: RBP at EENTER");
    TEST_ASSERT(ssa.fsbase == BASE + ENCL_PAGE_A && ssa.gsbase == BASE + ENCL_PAGE_B,
                "SSA FSBASE/GSBASE: the enclave's");
    TEST_EQ(tcs_cssa(ENCL_TCS0), 1, "CSSA stays 1 across the handler's EENTER/EEXIT");

    memset(&C.in, 0, sizeof(C.in));
    how = sgx_call(&C, ERESUME, TCS0);
    TEST_ASSERT(how == SGX_BACK_EEXIT && C.out.r[GDX] == 0xabad,
                "ERESUME continues at the RIP the handler put in the SSA (how %llu RDX %#llx)",
                (unsigned long long)how, (unsigned long long)C.out.r[GDX]);
    TEST_EQ(tcs_cssa(ENCL_TCS0), 0, "ERESUME took CSSA back to 0");
    memset(&C.in, 0, sizeof(C.in));
    how = sgx_call(&C, ERESUME, TCS0);
    TEST_ASSERT(how == SGX_BACK_FAULT && sgx_events[0].vector == GP_VECTOR, "ERESUME with CSSA 0: #GP");

    /* #PF from the EPCM: a write to the read-only page */
    how = sgx_cmd(&C, TCS0, CMD_WRITE, NULL, ENCL_RODATA + 0x128, 1, 0);
    TEST_ASSERT(how == SGX_BACK_AEX && sgx_nevents == 1 && aex_event_ok(0, PF_VECTOR, TCS0, 0),
                "a write to a read-only enclave page: #PF through an AEX");
    TEST_EQ(sgx_events[0].error, PFEC_P | PFEC_W | PFEC_U | PFEC_SGX, "#PF error code: P W U and SGX (bit 15)");
    TEST_EQ(sgx_events[0].cr2, BASE + ENCL_RODATA, "CR2: the page, low 12 bits cleared (SDM 40.3.3)");
    u64 rdx = handle_and_resume(TCS0);
    TEST_EQ(ssa.exitinfo, 0x8000030e, "EXITINFO of the #PF: valid (MISCSELECT.EXINFO), vector 14");
    TEST_EQ(ssa.maddr, BASE + ENCL_RODATA + 0x128, "EXINFO.MADDR: the whole faulting address");
    TEST_EQ(ssa.errcd, PFEC_P | PFEC_W | PFEC_U | PFEC_SGX, "EXINFO.ERRCD: the error code");
    TEST_EQ(rdx, 0xabad, "handled and resumed");
    how = sgx_cmd(&C, TCS0, CMD_READ, NULL, ENCL_RODATA, 0, 0);
    TEST_EQ(C.out.r[GDX], ENCL_RODATA_MARKER, "the read-only page kept its contents");

    /* #PF: reading a TCS inside the enclave */
    how = sgx_cmd(&C, TCS0, CMD_READ, NULL, ENCL_TCS1 + 8, 0, 0);
    TEST_ASSERT(how == SGX_BACK_AEX && sgx_events[0].vector == PF_VECTOR &&
                    sgx_events[0].error == (PFEC_P | PFEC_U | PFEC_SGX) && sgx_events[0].cr2 == TCS1,
                "a data read of a TCS from inside: #PF P U SGX, CR2 the page (error %#llx cr2 %#llx)",
                (unsigned long long)sgx_events[0].error, (unsigned long long)sgx_events[0].cr2);
    rdx = handle_and_resume(TCS0);
    TEST_ASSERT(rdx == 0xabad && ssa.maddr == TCS1 + 8 && ssa.errcd == (PFEC_P | PFEC_U | PFEC_SGX),
                "its EXINFO (MADDR %#llx ERRCD %#x)", (unsigned long long)ssa.maddr, ssa.errcd);

    /* #PF: an ELRANGE address with no page table entry: an ordinary #PF */
    how = sgx_cmd(&C, TCS0, CMD_READ, NULL, 0xf010, 0, 0);
    TEST_ASSERT(how == SGX_BACK_AEX && sgx_events[0].vector == PF_VECTOR && sgx_events[0].error == PFEC_U &&
                    sgx_events[0].cr2 == BASE + 0xf000,
                "a read of an unmapped ELRANGE page: #PF U, CR2 the page (error %#llx cr2 %#llx)",
                (unsigned long long)sgx_events[0].error, (unsigned long long)sgx_events[0].cr2);
    rdx = handle_and_resume(TCS0);
    TEST_ASSERT(rdx == 0xabad && ssa.maddr == BASE + 0xf010 && ssa.errcd == PFEC_U && ssa.exitinfo == 0x8000030e,
                "its EXINFO (MADDR %#llx ERRCD %#x)", (unsigned long long)ssa.maddr, ssa.errcd);

    /* #GP inside: ENCLU[EENTER], a leaf that does not exist, EEXIT to a non-canonical address */
    static const struct { u64 cmd, arg; const char *what; } gps[] = {
        { CMD_ENCLU, EENTER, "ENCLU[EENTER] inside an enclave" },
        { CMD_ENCLU, ERESUME, "ENCLU[ERESUME] inside an enclave" },
        { CMD_ENCLU, 0x3f, "ENCLU with leaf 3Fh" },
        { CMD_EEXIT_BAD, 0x8000000000000000ull, "EEXIT to a non-canonical RBX" },
    };
    for (unsigned i = 0; i < ARRAY_SIZE(gps); i++) {
        how = sgx_cmd(&C, TCS0, gps[i].cmd, NULL, gps[i].arg, 0, 0);
        bool aex = how == SGX_BACK_AEX && sgx_nevents == 1 && aex_event_ok(0, GP_VECTOR, TCS0, 0) &&
                   sgx_events[0].error == 0;
        rdx = how == SGX_BACK_AEX ? handle_and_resume(TCS0) : 0;
        TEST_ASSERT(aex && rdx == 0xabad && ssa.exitinfo == 0x8000030d && ssa.maddr == 0 && ssa.errcd == 0,
                    "%s: #GP(0) through an AEX, EXITINFO 8000030Dh, EXINFO cleared (how %llu vector %d "
                    "exitinfo %#x)", gps[i].what, (unsigned long long)how, sgx_events[0].vector, ssa.exitinfo);
    }
}

/* ---------------------------------------------------------------- x87/SSE state and AEX */
static void aex_xsave(void)
{
    const u64 v = 0x0123456776543210ull;
    u64 how = sgx_cmd(&C, TCS0, CMD_XMM, NULL, v, 0, 0);
    TEST_ASSERT(how == SGX_BACK_AEX && sgx_events[0].vector == UD_VECTOR, "XMM0 set, then UD2: an AEX");
    TEST_EQ(sgx_events[0].xmm0, 0, "synthetic state: XMM0 in its INIT state (0) at the event (SDM Table 40-1)");
    u64 ssa_page = sgx_epc_of(&E, ENCL_SSA0);
    TEST_EQ(edbgrd(ssa_page + 160), v, "the SSA's XSAVE area holds the enclave's XMM0 (64-bit FXSAVE layout)");
    TEST_EQ(edbgrd(ssa_page + 24) & 0xffffffffull, 0x1f80, "and its MXCSR");
    TEST_EQ(edbgrd(ssa_page + 0) & 0xffff, 0x37f, "and its FCW");
    TEST_EQ(edbgrd(ssa_page + 512) & 2, 2, "XSTATE_BV: SSE state saved");
    u64 rdx = handle_and_resume(TCS0);
    TEST_ASSERT(rdx == 0xabad && C.out.r[G9] == v, "ERESUME restores XMM0 from the SSA (%#llx)",
                (unsigned long long)C.out.r[G9]);
}

/* ---------------------------------------------------------------- illegal instructions */
static void illegal(void)
{
    static const struct { const char *name; u8 offset; int vector; } ins[] = {
        { "CPUID", 0, UD_VECTOR }, { "IN imm", 0, UD_VECTOR }, { "OUT imm", 0, UD_VECTOR },
        { "SYSCALL", 0, UD_VECTOR }, { "MOV DS", 0, UD_VECTOR }, { "INT 80h", 0, UD_VECTOR },
        { "SGDT", 0, UD_VECTOR }, { "RDPMC", 0, UD_VECTOR }, { "VMCALL", 0, UD_VECTOR },
        { "IRETQ", 0, UD_VECTOR }, { "far RET", 0, UD_VECTOR }, { "POP FS", 2, UD_VECTOR },
        { "INT3 (opt-out entry)", 0, UD_VECTOR }, { "STR", 0, UD_VECTOR }, { "SIDT", 0, UD_VECTOR },
        { "SLDT", 0, UD_VECTOR }, { "SYSENTER", 0, UD_VECTOR }, { "far JMP", 0, UD_VECTOR },
        { "INSB", 10, UD_VECTOR }, { "OUTSB", 10, UD_VECTOR }, { "RDTSC", 0, -1 },
        { "GETSEC", 0, UD_VECTOR }, { "far CALL", 0, UD_VECTOR }, { "MOV SS", 3, UD_VECTOR },
        { "POP GS", 2, UD_VECTOR }, { "UD2", 0, UD_VECTOR }, { "DIV by 0", 2, DE_VECTOR },
        { "MOV FS", 2, UD_VECTOR },
    };
    bool sgx2 = cpuid2(0x12, 0).a & 2;
    for (unsigned i = 0; i < ARRAY_SIZE(ins); i++) {
        u64 how = sgx_cmd(&C, TCS0, CMD_ILLEGAL, NULL, i, 0, 0);
        if (ins[i].vector < 0) {
            /* RDTSC: legal in an enclave with SGX2, #UD with SGX1 only (SDM 39.6.1) */
            if (sgx2)
                TEST_ASSERT(how == SGX_BACK_EEXIT && C.out.r[GDX] == 0x600d,
                            "RDTSC inside an enclave runs (SGX2)");
            else
                TEST_ASSERT(how == SGX_BACK_AEX && sgx_events[0].vector == UD_VECTOR,
                            "RDTSC inside an enclave: #UD (SGX1 only)");
            if (how == SGX_BACK_AEX)
                handle_and_resume(TCS0);
            continue;
        }
        bool aex = how == SGX_BACK_AEX && sgx_nevents == 1 && aex_event_ok(0, ins[i].vector, TCS0, 0);
        int vector = sgx_events[0].vector;
        u64 rdx = how == SGX_BACK_AEX ? handle_and_resume(TCS0) : C.out.r[GDX];
        u32 want = 0x80000300u | (u32)ins[i].vector;
        TEST_ASSERT(aex && rdx == 0xabad && ssa.exitinfo == want && ssa.rip == ssa.gpr[G13] + ins[i].offset,
                    "%s inside an enclave: vector %d through an AEX, EXITINFO %08Xh, SSA RIP at it "
                    "(how %llu vector %d exitinfo %#x rip %lld)",
                    ins[i].name, ins[i].vector, want, (unsigned long long)how, vector, ssa.exitinfo,
                    (long long)(ssa.rip - ssa.gpr[G13]));
    }
}

/* ---------------------------------------------------------------- AEX on interrupts */
static u64 lcg(u64 x, u64 n)
{
    while (n--)
        x = x * 6364136223846793005ull + 1442695040888963407ull;
    return x;
}

static void timer_start(u32 count)
{
    apic_write(APIC_TDCR, 0xb);
    apic_write(APIC_LVTT, TIMER_VECTOR | APIC_TIMER_PERIODIC);
    apic_write(APIC_TMICT, count);
}

static void timer_stop(void)
{
    apic_write(APIC_LVTT, APIC_LVT_MASKED);
    apic_write(APIC_TMICT, 0);
}

static void aex_interrupt(void)
{
    apic_enable();
    sgx_timer_vector = TIMER_VECTOR;
    const u64 n = 300000;
    u64 want = lcg(7, n);

    /* auto-resume at the AEP: the command completes whatever the interrupts */
    sgx_aep_resume = 1;
    sgx_aep_count = 0;
    timer_start(20000);
    u64 how = sgx_cmd(&C, TCS0, CMD_SPIN, NULL, n, 7, 0);
    timer_stop();
    sgx_aep_resume = 0;
    unsigned aex = 0, bad = 0;
    for (unsigned k = 0; k < sgx_nevents && k < SGX_MAX_EVENTS; k++)
        if (sgx_events[k].ip == (ulong)sgx_aep) {
            aex++;
            if (!aex_event_ok(k, TIMER_VECTOR, TCS0, 0))
                bad++;
        }
    TEST_ASSERT(how == SGX_BACK_EEXIT && C.out.r[GDX] == want,
                "a computation interrupted by the LAPIC timer completes exactly (%llu AEXs resumed)",
                (unsigned long long)sgx_aep_count);
    TEST_ASSERT(aex > 0 && bad == 0, "timer interrupts inside: delivered at the AEP with the synthetic state "
                                     "(%u seen, %u wrong)", aex, bad);
    how = sgx_cmd(&C, TCS0, CMD_DUMPSSA, &ssa, 0, 0, 0);
    TEST_ASSERT(how == SGX_BACK_EEXIT && ssa.exitinfo == 0 && ssa.rip - BASE < 0x4000 && ssa.rip >= BASE,
                "the SSA of an interrupt: EXITINFO 0, RIP in the enclave's code (%#x %#llx)", ssa.exitinfo,
                (unsigned long long)ssa.rip);

    /* TCS1 has one SSA frame: after an AEX, EENTER finds CSSA = NSSA */
    timer_start(20000);
    how = sgx_cmd(&C, TCS1, CMD_SPIN, NULL, n, 9, 0);
    timer_stop();
    TEST_EQ(how, SGX_BACK_AEX, "TCS1 interrupted: back at the AEP");
    TEST_EQ(tcs_cssa(ENCL_TCS1), 1, "TCS1.CSSA = 1 = NSSA");
    how = sgx_cmd(&C, TCS1, CMD_ECHO, NULL, 0, 0, 0);
    TEST_ASSERT(how == SGX_BACK_FAULT && sgx_events[0].vector == GP_VECTOR && sgx_events[0].error == 0,
                "EENTER with CSSA = NSSA: #GP(0)");
    sgx_aep_resume = 1;
    timer_start(20000);
    memset(&C.in, 0, sizeof(C.in));
    how = sgx_call(&C, ERESUME, TCS1);
    timer_stop();
    sgx_aep_resume = 0;
    TEST_ASSERT(how == SGX_BACK_EEXIT && C.out.r[GDX] == lcg(9, n), "ERESUME of TCS1 completes its computation");
    TEST_EQ(tcs_cssa(ENCL_TCS1), 0, "TCS1.CSSA back to 0");
}

/* ---------------------------------------------------------------- EENTER/ERESUME checks */
static void entry_checks(void)
{
    u64 how = sgx_cmd(&C, TCS0 + 8, CMD_ECHO, NULL, 0, 0, 0);
    TEST_ASSERT(how == SGX_BACK_FAULT && sgx_events[0].vector == GP_VECTOR, "EENTER with RBX not page aligned: #GP");
    how = sgx_cmd(&C, BASE + ENCL_DATA, CMD_ECHO, NULL, 0, 0, 0);
    TEST_ASSERT(how == SGX_BACK_FAULT && sgx_events[0].vector == PF_VECTOR && sgx_events[0].cr2 == BASE + ENCL_DATA,
                "EENTER with RBX at a regular page: #PF at it");
    how = sgx_cmd(&C, (ulong)sgx_zero_page, CMD_ECHO, NULL, 0, 0, 0);
    TEST_ASSERT(how == SGX_BACK_FAULT && sgx_events[0].vector == PF_VECTOR, "EENTER with RBX at ordinary memory: #PF");
    memset(&C.in, 0, sizeof(C.in));
    how = sgx_call(&C, ERESUME, TCS1);
    TEST_ASSERT(how == SGX_BACK_FAULT && sgx_events[0].vector == GP_VECTOR, "ERESUME of a TCS with CSSA 0: #GP");
    memset(&C.in, 0, sizeof(C.in));
    how = sgx_call(&C, EEXIT, 0);
    TEST_ASSERT(how == SGX_BACK_FAULT && sgx_events[0].vector == GP_VECTOR, "EEXIT outside an enclave: #GP");
    how = sgx_call(&C, EREPORT, 0);
    TEST_ASSERT(how == SGX_BACK_FAULT && sgx_events[0].vector == GP_VECTOR, "EREPORT outside an enclave: #GP");
    how = sgx_call(&C, EGETKEY, 0);
    TEST_ASSERT(how == SGX_BACK_FAULT && sgx_events[0].vector == GP_VECTOR, "EGETKEY outside an enclave: #GP");
    how = sgx_call(&C, 0x3f, 0);
    TEST_ASSERT(how == SGX_BACK_FAULT && sgx_events[0].vector == GP_VECTOR, "ENCLU leaf 3Fh: #GP");
    ulong cr4 = read_cr4();
    write_cr4(cr4 & ~CR4_OSFXSR);
    how = sgx_cmd(&C, TCS0, CMD_ECHO, NULL, 0, 0, 0);
    write_cr4(cr4);
    TEST_ASSERT(how == SGX_BACK_FAULT && sgx_events[0].vector == GP_VECTOR, "EENTER with CR4.OSFXSR 0: #GP");
    ulong cr0 = read_cr0();
    write_cr0(cr0 & ~CR0_NE);
    how = sgx_cmd(&C, TCS0, CMD_ECHO, NULL, 0, 0, 0);
    write_cr0(cr0);
    TEST_ASSERT(how == SGX_BACK_FAULT && sgx_events[0].vector == GP_VECTOR, "ENCLU with CR0.NE 0: #GP");
    write_cr0(cr0 | CR0_TS);
    how = sgx_cmd(&C, TCS0, CMD_ECHO, NULL, 0, 0, 0);
    write_cr0(cr0);
    TEST_ASSERT(how == SGX_BACK_FAULT && sgx_events[0].vector == NM_VECTOR, "ENCLU with CR0.TS 1: #NM");
    asm volatile(ASM_TRY("1f") "mov $2, %%eax\n\t.byte 0x0f, 0x01, 0xd7\n1:" ::: "rax", "rbx", "rcx", "memory");
    TEST_EQ(exc_vector(), UD_VECTOR, "ENCLU at CPL 0: #UD");
    how = sgx_cmd(&C, TCS0, CMD_ECHO, NULL, 0, 0, 0);
    TEST_ASSERT(how == SGX_BACK_EEXIT && C.out.r[GDX] == 0x600df00d, "the enclave still works after all that");
}

/* ---------------------------------------------------------------- EREPORT, EGETKEY */
static struct { u8 ti[512]; u8 reportdata[64]; u8 pad[448]; u8 report[432]; } rep ALIGNED(512);
static struct { u8 kr[512]; u8 key[16]; } kb ALIGNED(512);

static bool ereport(const u8 *ti, u8 fill, u8 *out)
{
    memset(&rep, 0, sizeof(rep));
    if (ti)
        memcpy(rep.ti, ti, 512);
    memset(rep.reportdata, fill, 64);
    u64 how = sgx_cmd(&C, TCS0, CMD_EREPORT, &rep, 0, 0, 0);
    memcpy(out, rep.report, 432);
    return how == SGX_BACK_EEXIT && C.out.r[GDX] == 0x600d;
}

/* EGETKEY: returns RAX (~0 if the call went wrong), the key in key, ZF in *zf */
static u64 egetkey(u16 name, u16 policy, u16 isvsvn, u8 keyid_fill, u8 *key, bool *zf)
{
    memset(&kb, 0, sizeof(kb));
    memcpy(kb.kr + KR_KEYNAME, &name, 2);
    memcpy(kb.kr + KR_KEYPOLICY, &policy, 2);
    memcpy(kb.kr + KR_ISVSVN, &isvsvn, 2);
    memset(kb.kr + KR_KEYID, keyid_fill, 32);
    u64 how = sgx_cmd(&C, TCS0, CMD_EGETKEY, &kb, 0, 0, 0);
    memcpy(key, kb.key, 16);
    if (zf)
        *zf = C.out.r[G8] & FL_ZF;
    return how == SGX_BACK_EEXIT ? C.out.r[GDX] : ~0ull;
}

static void aes_selftest(void)
{
    u8 k[16], p[16], c[16], want[16];
    for (int i = 0; i < 16; i++) {
        k[i] = (u8)i;
        p[i] = (u8)(i * 0x11);
    }
    aes128_encrypt(k, p, c);
    sgx_parse_hex((const u8 *)"69c4e0d86a7b0430d8cdb78070b4c55a", want, 16);
    bool ok = !memcmp(c, want, 16);
    sgx_parse_hex((const u8 *)"2b7e151628aed2a6abf7158809cf4f3c", k, 16);
    sgx_parse_hex((const u8 *)"6bc1bee22e409f96e93d7e117393172a", p, 16);
    aes_cmac(k, p, 16, c);
    sgx_parse_hex((const u8 *)"070a16b46b4d4144f79bdd9dd04a287c", want, 16);
    ok = ok && !memcmp(c, want, 16);
    aes_cmac(k, p, 0, c);
    sgx_parse_hex((const u8 *)"bb1d6929e95937287fa37d129b756746", want, 16);
    ok = ok && !memcmp(c, want, 16);
    TEST_ASSERT(ok, "the test's own AES-128 (FIPS-197) and AES-CMAC (RFC 4493)");
}

static void reports_and_keys(void)
{
    static u8 r1[432], r2[432], r3[432], r4[432], ti[512];
    aes_selftest();
    bool ok = ereport(NULL, 0x5a, r1);
    TEST_ASSERT(ok, "EREPORT inside the enclave");
    u64 attr, xfrm;
    u32 misc;
    u16 prodid, svn;
    memcpy(&attr, r1 + REPORT_ATTRIBUTES, 8);
    memcpy(&xfrm, r1 + REPORT_ATTRIBUTES + 8, 8);
    memcpy(&misc, r1 + REPORT_MISCSELECT, 4);
    memcpy(&prodid, r1 + REPORT_ISVPRODID, 2);
    memcpy(&svn, r1 + REPORT_ISVSVN, 2);
    TEST_ASSERT(!memcmp(r1 + REPORT_MRENCLAVE, mrenclave, 32), "REPORT.MRENCLAVE = what sgx_sign measured");
    TEST_ASSERT(!memcmp(r1 + REPORT_MRSIGNER, mrsigner, 32), "REPORT.MRSIGNER = SHA-256 of the signer's modulus");
    TEST_EQ(attr, ATTRS | ATTR_INIT, "REPORT.ATTRIBUTES: INIT, DEBUG, MODE64BIT");
    TEST_EQ(xfrm, 3, "REPORT.ATTRIBUTES.XFRM");
    TEST_EQ(misc, 1, "REPORT.MISCSELECT");
    TEST_ASSERT(prodid == 0x1234 && svn == 7, "REPORT.ISVPRODID and ISVSVN from the SIGSTRUCT");
    bool data = true;
    for (int i = 0; i < 64; i++)
        data = data && r1[REPORT_REPORTDATA + i] == 0x5a;
    TEST_ASSERT(data, "REPORT.REPORTDATA");

    /* a report for itself, twice, and with other data */
    memset(ti, 0, sizeof(ti));
    memcpy(ti + TI_MEASUREMENT, r1 + REPORT_MRENCLAVE, 32);
    memcpy(ti + TI_ATTRIBUTES, r1 + REPORT_ATTRIBUTES, 16);
    memcpy(ti + TI_MISCSELECT, r1 + REPORT_MISCSELECT, 4);
    ok = ereport(ti, 0x5a, r2) && ereport(ti, 0x5a, r3) && ereport(ti, 0x5b, r4);
    TEST_ASSERT(ok && !memcmp(r2, r1, 384), "a report's body does not depend on the target");
    TEST_ASSERT(!memcmp(r2 + REPORT_MAC, r3 + REPORT_MAC, 16), "two reports of the same data: the same MAC");
    TEST_ASSERT(memcmp(r2 + REPORT_MAC, r4 + REPORT_MAC, 16), "other REPORTDATA: another MAC");
    TEST_ASSERT(!memcmp(r1 + REPORT_KEYID, r2 + REPORT_KEYID, 32), "REPORT.KEYID is the same in every report");

    /* the report key: the enclave's own, for the report's KEYID */
    u8 key[16], mac[16];
    bool zf = true;
    memset(&kb, 0, sizeof(kb));
    u16 name = KEY_REPORT;
    memcpy(kb.kr + KR_KEYNAME, &name, 2);
    memcpy(kb.kr + KR_KEYID, r2 + REPORT_KEYID, 32);
    u64 how = sgx_cmd(&C, TCS0, CMD_EGETKEY, &kb, 0, 0, 0);
    memcpy(key, kb.key, 16);
    TEST_ASSERT(how == SGX_BACK_EEXIT && C.out.r[GDX] == 0 && !(C.out.r[G8] & FL_ZF), "EGETKEY(REPORT_KEY)");
    aes_cmac(key, r2, 384, mac);
    TEST_ASSERT(!memcmp(mac, r2 + REPORT_MAC, 16), "the report for itself verifies: AES-CMAC of its body under the report key");
    aes_cmac(key, r4, 384, mac);
    TEST_ASSERT(!memcmp(mac, r4 + REPORT_MAC, 16), "so does the one with other data");
    aes_cmac(key, r1, 384, mac);
    TEST_ASSERT(memcmp(mac, r1 + REPORT_MAC, 16), "the report for another target does not verify with it");

    /* seal keys */
    u8 k1[16], k2[16], k3[16], k4[16];
    u64 s1 = egetkey(KEY_SEAL, POLICY_MRENCLAVE, 0, 1, k1, &zf);
    u64 s2 = egetkey(KEY_SEAL, POLICY_MRENCLAVE, 0, 1, k2, NULL);
    u64 s3 = egetkey(KEY_SEAL, POLICY_MRENCLAVE, 0, 2, k3, NULL);
    u64 s4 = egetkey(KEY_SEAL, POLICY_MRSIGNER, 0, 1, k4, NULL);
    static const u8 zero[16];
    TEST_ASSERT(s1 == 0 && s2 == 0 && s3 == 0 && s4 == 0 && !zf, "EGETKEY(SEAL_KEY): RAX 0, ZF 0");
    TEST_ASSERT(!memcmp(k1, k2, 16) && memcmp(k1, zero, 16), "the seal key is the same for the same request");
    TEST_ASSERT(memcmp(k1, k3, 16), "another KEYID: another seal key");
    TEST_ASSERT(memcmp(k1, k4, 16), "MRSIGNER policy: another seal key than MRENCLAVE's");
    u64 st = egetkey(KEY_SEAL, POLICY_MRENCLAVE, 7, 1, k2, NULL);
    TEST_ASSERT(st == 0 && memcmp(k1, k2, 16), "ISVSVN 7 (the enclave's): RAX 0, another key than ISVSVN 0's");
    st = egetkey(KEY_SEAL, POLICY_MRENCLAVE, 8, 1, k2, &zf);
    TEST_ASSERT(st == SGX_INVALID_ISVSVN && zf && !memcmp(k2, zero, 16),
                "ISVSVN above the enclave's: SGX_INVALID_ISVSVN, ZF 1, no key (RAX %llu)", (unsigned long long)st);
    st = egetkey(KEY_PROVISION, POLICY_MRSIGNER, 0, 0, k2, &zf);
    TEST_ASSERT(st == SGX_INVALID_ATTRIBUTE && zf && !memcmp(k2, zero, 16),
                "PROVISION_KEY without ATTRIBUTES.PROVISIONKEY: SGX_INVALID_ATTRIBUTE (RAX %llu)", (unsigned long long)st);
    st = egetkey(KEY_PROVISION_SEAL, POLICY_MRSIGNER, 0, 0, k2, &zf);
    TEST_ASSERT(st == SGX_INVALID_ATTRIBUTE && zf, "PROVISION_SEAL_KEY without it: SGX_INVALID_ATTRIBUTE (RAX %llu)",
                (unsigned long long)st);
    st = egetkey(KEY_EINITTOKEN, 0, 0, 0, k2, &zf);
    TEST_ASSERT(st == SGX_INVALID_ATTRIBUTE && zf, "EINITTOKEN_KEY without ATTRIBUTES.EINITTOKEN_KEY: "
                "SGX_INVALID_ATTRIBUTE (RAX %llu)", (unsigned long long)st);
    st = egetkey(5, 0, 0, 0, k2, &zf);
    TEST_ASSERT(st == SGX_INVALID_KEYNAME && zf, "KEYNAME 5: SGX_INVALID_KEYNAME (RAX %llu)", (unsigned long long)st);
    memset(&kb, 0, sizeof(kb));
    name = KEY_SEAL;
    memcpy(kb.kr + KR_KEYNAME, &name, 2);
    memset(kb.kr + KR_CPUSVN, 0xff, 16);
    how = sgx_cmd(&C, TCS0, CMD_EGETKEY, &kb, 0, 0, 0);
    TEST_ASSERT(how == SGX_BACK_EEXIT && C.out.r[GDX] == SGX_INVALID_CPUSVN && (C.out.r[G8] & FL_ZF),
                "CPUSVN above the processor's: SGX_INVALID_CPUSVN (RAX %llu)", (unsigned long long)C.out.r[GDX]);

    /* #GP: a reserved KEYPOLICY bit, a reserved byte, misaligned and outside operands */
    static const struct { u16 policy; u16 reserved_at; u64 flags; int cmd; const char *what; } gp[] = {
        { 0x8000, 0, 0, CMD_EGETKEY, "EGETKEY with a reserved KEYPOLICY bit" },
        { POLICY_MRENCLAVE, 100, 0, CMD_EGETKEY, "EGETKEY with a reserved KEYREQUEST byte set" },
        { POLICY_MRENCLAVE, 0, 1, CMD_EGETKEY, "EGETKEY with a KEYREQUEST not 512-byte aligned" },
        { POLICY_MRENCLAVE, 0, 2, CMD_EGETKEY, "EGETKEY with the key's buffer not 16-byte aligned" },
        { POLICY_MRENCLAVE, 0, 4, CMD_EGETKEY, "EGETKEY with a KEYREQUEST outside the enclave" },
        { 0, 0, 1, CMD_EREPORT, "EREPORT with a TARGETINFO not 512-byte aligned" },
        { 0, 0, 2, CMD_EREPORT, "EREPORT with a TARGETINFO outside the enclave" },
        { 0, 0, 4, CMD_EREPORT, "EREPORT with REPORTDATA not 128-byte aligned" },
        { 0, 0, 8, CMD_EREPORT, "EREPORT with the REPORT not 512-byte aligned" },
    };
    for (unsigned i = 0; i < ARRAY_SIZE(gp); i++) {
        memset(&kb, 0, sizeof(kb));
        memset(&rep, 0, sizeof(rep));
        name = KEY_SEAL;
        memcpy(kb.kr + KR_KEYNAME, &name, 2);
        memcpy(kb.kr + KR_KEYPOLICY, &gp[i].policy, 2);
        if (gp[i].reserved_at)
            kb.kr[gp[i].reserved_at] = 1;
        how = sgx_cmd(&C, TCS0, (u64)gp[i].cmd, gp[i].cmd == CMD_EGETKEY ? (void *)&kb : (void *)&rep,
                      gp[i].flags, 0, 0);
        bool aex = how == SGX_BACK_AEX && sgx_events[0].vector == GP_VECTOR && sgx_events[0].error == 0;
        u64 rdx = how == SGX_BACK_AEX ? handle_and_resume(TCS0) : 0;
        TEST_ASSERT(aex && rdx == 0xabad, "%s: #GP(0) (how %llu vector %d)", gp[i].what, (unsigned long long)how,
                    sgx_events[0].vector);
    }
}

/* ---------------------------------------------------------------- debug opt-in: INT3 */
static void opt_in(void)
{
    /* a debugger opts the thread in through EDBGWR of TCS.FLAGS (DBGOPTIN) */
    struct encls_res r = encls(EDBGWR, 1, sgx_epc_of(&E, ENCL_TCS0) + 8, 0);
    TEST_ASSERT(r.vector == NO_EXCEPTION && r.rax == 0, "EDBGWR of TCS.FLAGS.DBGOPTIN in a debug enclave");
    u64 how = sgx_cmd(&C, TCS0, CMD_ILLEGAL, NULL, 12, 0, 0);
    bool aex = how == SGX_BACK_AEX && sgx_events[0].vector == BP_VECTOR;
    int vector = sgx_events[0].vector;
    u64 rdx = how == SGX_BACK_AEX ? handle_and_resume(TCS0) : 0;
    /* EXIT_TYPE: INT3 is a software exception (6) outside; inside an enclave it is
     * fault-like and VMMs are told to report it as type 3 (SDM 43.4): either is taken */
    u32 type = (ssa.exitinfo >> 8) & 7;
    TEST_ASSERT(aex && rdx == 0xabad && (ssa.exitinfo & 0x800000ff) == 0x80000003 && (type == 6 || type == 3) &&
                    ssa.rip == ssa.gpr[G13],
                "INT3 after an opt-in entry: #BP through an AEX (SDM 43.4.1), EXITINFO valid vector 3, SSA RIP "
                "at the INT3 (fault-like) (how %llu vector %d exitinfo %#x)",
                (unsigned long long)how, vector, ssa.exitinfo);
    encls(EDBGWR, 0, sgx_epc_of(&E, ENCL_TCS0) + 8, 0);
}

void test_main(void)
{
    if (!sgx_test_setup(mrsigner))
        return;
    sgx_parse_hex(encl_meas, mrenclave, 32);
    build();
    enter_exit();
    aex_exception();
    aex_xsave();
    illegal();
    aex_interrupt();
    entry_checks();
    reports_and_keys();
    opt_in();
}
