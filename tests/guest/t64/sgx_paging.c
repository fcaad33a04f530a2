/* SGX paging and SGX2 page management (SDM Vol. 3D ch. 40-41) on the test enclave
 * (t64/sgx_encl.S, signed at build time), built, initialised and entered from ring 3:
 * EPA, EBLOCK, ETRACK, EWB and ELDU/ELDB round trips (the blob, its PCMD, the VA slot's
 * version, MAC failures of a changed blob, address or version, each leaf's error codes),
 * then EAUG and EACCEPT, EACCEPTCOPY, EMODPR/EACCEPT, EMODPE, EMODT to PT_TRIM/EACCEPT
 * and EREMOVE, with the enclave's own accesses faulting (#PF with PFEC.SGX) where the EPCM
 * says so.
 * guest: cpu=max epc=8M name=sgx-paging timeout=60 */
#include "sgx.h"

#define BASE 0x8000000000ull /* 512 GiB: ELRANGE, 64 KiB */
#define TCS0 (BASE + ENCL_TCS0)
#define ATTRS (ATTR_MODE64BIT | ATTR_DEBUG)

enum { ELDB = 7, ELDU = 8, EBLOCK = 9, EPA = 0xa, EWB = 0xb, ETRACK = 0xc, EAUG = 0xd, EMODPR = 0xe, EMODT = 0xf };
enum { EACCEPT = 5, EMODPE = 6, EACCEPTCOPY = 7 };
enum {
    SGX_BLKSTATE = 3, SGX_NOTBLOCKABLE = 5, SGX_PG_INVLD = 6, SGX_MAC_COMPARE_FAIL = 9,
    SGX_PAGE_NOT_BLOCKED = 10, SGX_NOT_TRACKED = 11, SGX_VA_SLOT_OCCUPIED = 12, SGX_PG_IS_SECS = 18,
    SGX_PAGE_ATTRIBUTES_MISMATCH = 19, SGX_PAGE_NOT_MODIFIABLE = 20,
};
#define SI_PENDING BIT(3)
#define SI_MODIFIED BIT(4)
#define SI_PR BIT(5)
#define PT_TRIM 4

#define PG_D 0xd000   /* the spare page: paged out and in */
#define PG_C 0xc000   /* EREPORT's buffers (unused here): lost to the occupied slot */
#define PG_AUG 0xe000 /* not in the layout: EAUG'd */
#define PG_AUG2 0xf000

static struct enclave E;
static u8 mrsigner[32];
static struct sgx_call C;
static struct ssa_tail ssa;
static u8 blob[4096] ALIGNED(4096), blob2[4096] ALIGNED(4096), plain[4096] ALIGNED(4096);
static u8 pcmd[128] ALIGNED(128), pcmd2[128] ALIGNED(128);
static struct pageinfo pinfo ALIGNED(32);
static struct secinfo hsi ALIGNED(64);
static struct secinfo esi ALIGNED(64);

static u64 pattern(unsigned i) { return 0x5eed000000000000ull | (u64)i * 0x10001ull; }

/* ---------------------------------------------------------------- helpers */
static struct encls_res ewb(u64 epc, u64 slot, u8 *out, u8 *pc)
{
    pinfo = (struct pageinfo){ 0, (ulong)out, (ulong)pc, 0 };
    return encls(EWB, (ulong)&pinfo, epc, slot);
}

static struct encls_res eld(u64 leaf, u64 epc, u64 slot, u64 lin, u8 *in, u8 *pc)
{
    pinfo = (struct pageinfo){ lin, (ulong)in, (ulong)pc, E.secs };
    return encls(leaf, (ulong)&pinfo, epc, slot);
}

static struct encls_res eblock(u64 epc) { return encls(EBLOCK, 0, epc, 0); }
static struct encls_res etrack(void) { return encls(ETRACK, 0, E.secs, 0); }

/* the leaf completed with RAX = code, ZF set for an error and clear for success */
static bool status(struct encls_res r, u64 code)
{
    bool ok = r.vector == NO_EXCEPTION && r.rax == code && !!(r.flags & FL_ZF) == !!code;
    if (!ok)
        printf("  vector %d error %#llx RAX %llu RFLAGS %#lx (want RAX %llu)\n", r.vector,
               (unsigned long long)r.error, (unsigned long long)r.rax, r.flags, (unsigned long long)code);
    return ok;
}

/* RAX = code only (the codes the SDM reports with CF rather than ZF: see the report) */
static bool code_is(struct encls_res r, u64 code)
{
    bool ok = r.vector == NO_EXCEPTION && r.rax == code;
    if (!ok)
        printf("  vector %d error %#llx RAX %llu RFLAGS %#lx (want RAX %llu)\n", r.vector,
               (unsigned long long)r.error, (unsigned long long)r.rax, r.flags, (unsigned long long)code);
    return ok;
}

/* After an AEX on TCS0: enter the handler (CSSA 1), which abandons the command, and
 * ERESUME; true if both went as planned */
static bool handle_and_resume(void)
{
    u64 how = sgx_cmd(&C, TCS0, 0, &ssa, 1, 0, 0);
    if (how != SGX_BACK_EEXIT || C.out.r[GDX] != 1)
        return false;
    memset(&C.in, 0, sizeof(C.in));
    how = sgx_call(&C, ERESUME, TCS0);
    return how == SGX_BACK_EEXIT && C.out.r[GDX] == 0xabad;
}

struct access {
    int vector; /* NO_EXCEPTION, the AEX's vector, or -1 if something else went wrong */
    u64 value, error, cr2;
};

/* After an EENTER of a command: how it ended */
static struct access ended(u64 how)
{
    struct access a = { -1, 0, 0, 0 };
    if (how == SGX_BACK_EEXIT) {
        a.vector = NO_EXCEPTION;
        a.value = C.out.r[GDX];
        a.error = C.out.r[G8];
        return a;
    }
    if (how != SGX_BACK_AEX || sgx_nevents < 1)
        return a;
    a.vector = sgx_events[0].vector;
    a.error = sgx_events[0].error;
    a.cr2 = sgx_events[0].cr2;
    if (!handle_and_resume())
        a.vector = -1;
    return a;
}

static struct access encl_read(u64 off) { return ended(sgx_cmd(&C, TCS0, CMD_READ, NULL, off, 0, 0)); }
static struct access encl_write(u64 off, u64 v) { return ended(sgx_cmd(&C, TCS0, CMD_WRITE, NULL, off, v, 0)); }

/* ENCLU[leaf] inside with SECINFO flags, RCX = page, RDX = src (enclave offsets):
 * value = RAX after it, error = RFLAGS */
static struct access encl_enclu(u64 leaf, u64 flags, u64 page, u64 src)
{
    memset(&esi, 0, sizeof(esi));
    esi.flags = flags;
    return ended(sgx_cmd(&C, TCS0, CMD_ENCLU_SI, &esi, leaf, page, src));
}

/* an enclave access that must #PF with PFEC.SGX at the page off (plus extra PFEC bits) */
static bool epcm_pf(struct access a, u64 off, u64 pfec)
{
    u64 want = PFEC_SGX | PFEC_P | PFEC_U | pfec;
    bool ok = a.vector == PF_VECTOR && (a.error & want) == want && (a.cr2 & ~0xfffull) == BASE + off;
    if (!ok)
        printf("  vector %d error %#llx cr2 %#llx value %#llx\n", a.vector, (unsigned long long)a.error,
               (unsigned long long)a.cr2, (unsigned long long)a.value);
    return ok;
}

static bool leaf_ok(struct access a, u64 code)
{
    bool ok = a.vector == NO_EXCEPTION && a.value == code && !!(a.error & FL_ZF) == !!code;
    if (!ok)
        printf("  vector %d RAX %llu RFLAGS %#llx cr2 %#llx (want RAX %llu)\n", a.vector,
               (unsigned long long)a.value, (unsigned long long)a.error, (unsigned long long)a.cr2,
               (unsigned long long)code);
    return ok;
}

/* the enclave reads the patterns of page off */
static bool patterns_read(u64 off)
{
    for (unsigned i = 0; i < 4; i++) {
        u64 o = i == 3 ? 0xff8 : 8 * i;
        struct access a = encl_read(off + o);
        if (a.vector != NO_EXCEPTION || a.value != pattern(i)) {
            printf("  offset %#llx: vector %d value %#llx\n", (unsigned long long)(off + o), a.vector,
                   (unsigned long long)a.value);
            return false;
        }
    }
    return true;
}

static void build(void)
{
    struct encls_res r = sgx_build(&E, BASE, ATTRS, 1, NULL);
    TEST_ASSERT(r.vector == NO_EXCEPTION, "ECREATE, EADD and EEXTEND of the test enclave (vector %d error %#llx)",
                r.vector, (unsigned long long)r.error);
    r = sgx_einit_raw(E.secs, encl_sig);
    TEST_ASSERT(r.vector == NO_EXCEPTION && r.rax == 0 && !(r.flags & FL_ZF), "EINIT (vector %d, RAX %llu)",
                r.vector, (unsigned long long)r.rax);
}

/* ---------------------------------------------------------------- paging */
static void paging(void)
{
    u64 d_epc = sgx_epc_of(&E, PG_D), c_epc = sgx_epc_of(&E, PG_C);
    u64 va = epc_alloc();
    struct encls_res r;

    bool ok = true;
    for (unsigned i = 0; i < 4; i++)
        ok = ok && encl_write(PG_D + (i == 3 ? 0xff8 : 8 * i), pattern(i)).vector == NO_EXCEPTION;
    TEST_ASSERT(ok && patterns_read(PG_D), "the enclave writes and reads its page 0xd000");
    memset(plain, 0, sizeof(plain));
    for (unsigned i = 0; i < 4; i++)
        memcpy(plain + (i == 3 ? 0xff8 : 8 * i), &(u64){ pattern(i) }, 8);

    r = encls(EPA, PT_VA, va, 0);
    TEST_ASSERT(r.vector == NO_EXCEPTION, "EPA makes a VA page (vector %d)", r.vector);
    r = encls(EPA, PT_VA, va, 0);
    TEST_ASSERT(r.vector == PF_VECTOR, "EPA of a valid EPC page: #PF (vector %d)", r.vector);

    /* EBLOCK, EWB before ETRACK, ETRACK, EWB */
    TEST_ASSERT(status(eblock(d_epc), 0), "EBLOCK of a regular page: 0");
    r = eblock(d_epc);
    /* EBLOCK's "already blocked" and "not blockable" are reported with CF, not ZF */
    TEST_ASSERT(code_is(r, SGX_BLKSTATE) && (r.flags & 0x41) == 0x01,
                "EBLOCK again: SGX_BLKSTATE with CF=1, ZF=0 (RFLAGS %#lx)", r.flags);
    memset(blob, 0, sizeof(blob));
    memset(pcmd, 0, sizeof(pcmd));
    TEST_ASSERT(status(ewb(d_epc, va, blob, pcmd), SGX_NOT_TRACKED), "EWB before ETRACK: SGX_NOT_TRACKED");
    TEST_ASSERT(status(etrack(), 0), "ETRACK: 0");
    TEST_ASSERT(status(ewb(d_epc, va, blob, pcmd), 0), "EWB of the blocked, tracked page: 0");
    u64 flags;
    memcpy(&flags, pcmd, 8);
    TEST_EQ(flags, SI_PT(PT_REG) | SI_R | SI_W, "the PCMD's SECINFO: the page's type and permissions");
    TEST_ASSERT(memcmp(blob, plain, 4096) != 0 && memcmp(blob, sgx_zero_page, 4096) != 0,
                "the blob is neither the plaintext nor zeros");
    int same = 0;
    for (unsigned i = 0; i < 4; i++)
        same += memcmp(blob + (i == 3 ? 0xff8 : 8 * i), plain + (i == 3 ? 0xff8 : 8 * i), 8) == 0;
    TEST_EQ(same, 0, "no pattern quadword is left in clear in the blob");

    /* the EPC page is free now */
    TEST_ASSERT(status(eblock(d_epc), SGX_PG_INVLD), "EBLOCK of the page written out: SGX_PG_INVLD");
    TEST_ASSERT(epcm_pf(encl_read(PG_D), PG_D, 0), "the enclave reads the page written out: #PF with PFEC.SGX");
    TEST_ASSERT(status(encls(EREMOVE, 0, d_epc, 0), 0), "EREMOVE of the freed EPC page: 0");

    /* ELDU: changed blob, PCMD, address; then right */
    u64 d2 = epc_alloc();
    memcpy(blob2, blob, 4096);
    blob2[1234] ^= 0x10;
    TEST_ASSERT(status(eld(ELDU, d2, va, BASE + PG_D, blob2, pcmd), SGX_MAC_COMPARE_FAIL),
                "ELDU of a blob with a bit flipped: SGX_MAC_COMPARE_FAIL");
    TEST_ASSERT(status(eld(ELDU, d2, va, BASE + PG_C, blob, pcmd), SGX_MAC_COMPARE_FAIL),
                "ELDU at another LINADDR: SGX_MAC_COMPARE_FAIL");
    memcpy(pcmd2, pcmd, sizeof(pcmd));
    pcmd2[0] |= SI_X;
    TEST_ASSERT(status(eld(ELDU, d2, va, BASE + PG_D, blob, pcmd2), SGX_MAC_COMPARE_FAIL),
                "ELDU with X added to the PCMD's SECINFO: SGX_MAC_COMPARE_FAIL");
    memcpy(pcmd2, pcmd, sizeof(pcmd));
    pcmd2[120] ^= 1;
    TEST_ASSERT(status(eld(ELDU, d2, va, BASE + PG_D, blob, pcmd2), SGX_MAC_COMPARE_FAIL),
                "ELDU with the PCMD's MAC changed: SGX_MAC_COMPARE_FAIL");
    TEST_ASSERT(status(eld(ELDU, d2, va + 8, BASE + PG_D, blob, pcmd), SGX_MAC_COMPARE_FAIL),
                "ELDU with an empty VA slot (another version): SGX_MAC_COMPARE_FAIL");
    TEST_ASSERT(status(eld(ELDU, d2, va, BASE + PG_D, blob, pcmd), 0), "ELDU of the blob into another EPC page: 0");
    sgx_map_page(BASE + PG_D, d2);
    TEST_ASSERT(patterns_read(PG_D), "the enclave reads its data again");
    u64 d3 = epc_alloc();
    TEST_ASSERT(status(eld(ELDU, d3, va, BASE + PG_D, blob, pcmd), SGX_MAC_COMPARE_FAIL),
                "ELDU of the same blob again (the VA slot cleared): SGX_MAC_COMPARE_FAIL (no replay)");

    /* each leaf's errors */
    TEST_ASSERT(status(ewb(d2, va, blob2, pcmd2), SGX_PAGE_NOT_BLOCKED), "EWB of a page not blocked: SGX_PAGE_NOT_BLOCKED");
    TEST_ASSERT(status(ewb(E.secs, va + 8, blob2, pcmd2), SGX_CHILD_PRESENT), "EWB of a SECS with children: SGX_CHILD_PRESENT");
    TEST_ASSERT(code_is(eblock(E.secs), SGX_PG_IS_SECS), "EBLOCK of a SECS: SGX_PG_IS_SECS");
    TEST_ASSERT(code_is(eblock(va), SGX_NOTBLOCKABLE), "EBLOCK of a VA page: SGX_NOTBLOCKABLE");
    TEST_ASSERT(patterns_read(PG_D), "the page is untouched by them");

    /* an occupied slot: C goes to slot 1, then D over it */
    TEST_ASSERT(status(eblock(c_epc), 0) && status(eblock(d2), 0) && status(etrack(), 0),
                "EBLOCK of two pages, ETRACK");
    TEST_ASSERT(status(ewb(c_epc, va + 8, blob2, pcmd2), 0), "EWB of page 0xc000 into slot 1: 0");
    r = ewb(d2, va + 8, blob, pcmd);
    TEST_ASSERT(code_is(r, SGX_VA_SLOT_OCCUPIED) && (r.flags & 0x41) == 0x01,
                "EWB into the occupied slot: SGX_VA_SLOT_OCCUPIED, a warning with CF=1, ZF=0 (RFLAGS %#lx)", r.flags);
    TEST_ASSERT(status(eblock(d2), SGX_PG_INVLD), "the page was written out all the same");
    u64 d4 = epc_alloc();
    TEST_ASSERT(status(eld(ELDU, d4, va + 8, BASE + PG_C, blob2, pcmd2), SGX_MAC_COMPARE_FAIL),
                "the page whose version was overwritten: SGX_MAC_COMPARE_FAIL");
    TEST_ASSERT(status(eld(ELDU, d4, va + 8, BASE + PG_D, blob, pcmd), 0), "ELDU of the page written into the occupied slot: 0");
    sgx_map_page(BASE + PG_D, d4);
    TEST_ASSERT(patterns_read(PG_D), "its data came back");

    /* ELDB: loaded blocked */
    TEST_ASSERT(status(eblock(d4), 0) && status(etrack(), 0) && status(ewb(d4, va + 16, blob, pcmd), 0),
                "EBLOCK, ETRACK, EWB into slot 2");
    u64 d5 = epc_alloc();
    TEST_ASSERT(status(eld(ELDB, d5, va + 16, BASE + PG_D, blob, pcmd), 0), "ELDB: 0");
    sgx_map_page(BASE + PG_D, d5);
    TEST_ASSERT(epcm_pf(encl_read(PG_D), PG_D, 0), "the page ELDB loaded is blocked: an enclave read #PFs (PFEC.SGX)");
    TEST_ASSERT(code_is(eblock(d5), SGX_BLKSTATE), "EBLOCK of it: SGX_BLKSTATE");
    TEST_ASSERT(status(ewb(d5, va + 16, blob, pcmd), SGX_NOT_TRACKED), "EWB of it before an ETRACK: SGX_NOT_TRACKED");
    TEST_ASSERT(status(etrack(), 0) && status(ewb(d5, va + 16, blob, pcmd), 0), "after ETRACK, EWB of it: 0");
    u64 d6 = epc_alloc();
    TEST_ASSERT(status(eld(ELDU, d6, va + 16, BASE + PG_D, blob, pcmd), 0), "ELDU: 0");
    sgx_map_page(BASE + PG_D, d6);
    TEST_ASSERT(patterns_read(PG_D), "the data survived two more round trips");

    /* a VA page can be written out too (into another VA page) */
    u64 va2 = epc_alloc();
    TEST_ASSERT(encls(EPA, PT_VA, va2, 0).vector == NO_EXCEPTION, "EPA of a second VA page");
    r = ewb(va2, va, blob2, pcmd2);
    TEST_ASSERT(status(r, 0), "EWB of a VA page (no EBLOCK needed): 0");
    memcpy(&flags, pcmd2, 8);
    TEST_EQ(flags, SI_PT(PT_VA), "its PCMD's SECINFO: PT_VA");
}

/* ---------------------------------------------------------------- SGX2 */
static void sgx2(void)
{
    if (!(cpuid2(0x12, 0).a & 2)) {
        test_skip("no SGX2 in CPUID 12h.0");
        return;
    }
    struct encls_res r;
    struct access a;
    u64 aug = epc_alloc(), aug2 = epc_alloc();

    pinfo = (struct pageinfo){ BASE + PG_AUG, 0, 0, E.secs };
    r = encls(EAUG, (ulong)&pinfo, aug, 0);
    TEST_ASSERT(r.vector == NO_EXCEPTION, "EAUG of a page into the initialised enclave (vector %d)", r.vector);
    sgx_map_page(BASE + PG_AUG, aug);
    TEST_ASSERT(epcm_pf(encl_read(PG_AUG), PG_AUG, 0), "the enclave reads the pending page: #PF with PFEC.SGX");
    TEST_ASSERT(leaf_ok(encl_enclu(EACCEPT, SI_R | SI_W | SI_PT(PT_REG), PG_AUG, 0), SGX_PAGE_ATTRIBUTES_MISMATCH),
                "EACCEPT without PENDING: SGX_PAGE_ATTRIBUTES_MISMATCH");
    TEST_ASSERT(leaf_ok(encl_enclu(EACCEPT, SI_R | SI_PENDING | SI_PT(PT_REG), PG_AUG, 0), SGX_PAGE_ATTRIBUTES_MISMATCH),
                "EACCEPT with other permissions (R): SGX_PAGE_ATTRIBUTES_MISMATCH");
    TEST_ASSERT(leaf_ok(encl_enclu(EACCEPT, SI_R | SI_W | SI_PENDING | SI_PT(PT_TCS), PG_AUG, 0), SGX_PAGE_ATTRIBUTES_MISMATCH),
                "EACCEPT with another type (TCS): SGX_PAGE_ATTRIBUTES_MISMATCH");
    TEST_ASSERT(leaf_ok(encl_enclu(EACCEPT, SI_R | SI_W | SI_PENDING | SI_PT(PT_REG), PG_AUG, 0), 0),
                "EACCEPT with {R, W, PENDING, PT_REG}: 0");
    a = encl_read(PG_AUG + 0x100);
    TEST_ASSERT(a.vector == NO_EXCEPTION && a.value == 0, "the accepted page reads zeros");
    a = encl_write(PG_AUG + 0x100, 0x1234567890ull);
    struct access b = encl_read(PG_AUG + 0x100);
    TEST_ASSERT(a.vector == NO_EXCEPTION && b.vector == NO_EXCEPTION && b.value == 0x1234567890ull,
                "and is writable");
    TEST_ASSERT(leaf_ok(encl_enclu(EACCEPT, SI_R | SI_W | SI_PENDING | SI_PT(PT_REG), PG_AUG, 0), SGX_PAGE_ATTRIBUTES_MISMATCH),
                "EACCEPT again: SGX_PAGE_ATTRIBUTES_MISMATCH");

    /* a second page: EMODPR while pending, then EACCEPTCOPY of the read-only data */
    pinfo = (struct pageinfo){ BASE + PG_AUG2, 0, 0, E.secs };
    r = encls(EAUG, (ulong)&pinfo, aug2, 0);
    TEST_ASSERT(r.vector == NO_EXCEPTION, "EAUG of a second page");
    sgx_map_page(BASE + PG_AUG2, aug2);
    memset(&hsi, 0, sizeof(hsi));
    hsi.flags = SI_R;
    TEST_ASSERT(status(encls(EMODPR, (ulong)&hsi, aug2, 0), SGX_PAGE_NOT_MODIFIABLE), "EMODPR of a pending page: SGX_PAGE_NOT_MODIFIABLE");
    TEST_ASSERT(leaf_ok(encl_enclu(EACCEPTCOPY, SI_R | SI_PT(PT_REG), PG_AUG2, ENCL_RODATA), 0),
                "EACCEPTCOPY of the read-only data page with {R, PT_REG}: 0");
    a = encl_read(PG_AUG2);
    TEST_ASSERT(a.vector == NO_EXCEPTION && a.value == ENCL_RODATA_MARKER, "the page holds the copy (%#llx)",
                (unsigned long long)a.value);
    TEST_ASSERT(epcm_pf(encl_write(PG_AUG2, 1), PG_AUG2, PFEC_W), "and is read-only (EACCEPTCOPY's permissions): a write #PFs");
    TEST_ASSERT(leaf_ok(encl_enclu(EACCEPTCOPY, SI_R | SI_W | SI_PT(PT_REG), PG_AUG2, ENCL_RODATA), SGX_PAGE_ATTRIBUTES_MISMATCH),
                "EACCEPTCOPY of a page no longer pending: SGX_PAGE_ATTRIBUTES_MISMATCH");

    /* EMODPR, ETRACK, EACCEPT; EMODPE */
    hsi.flags = SI_R;
    TEST_ASSERT(status(encls(EMODPR, (ulong)&hsi, aug, 0), 0), "EMODPR of the first page to R: 0");
    TEST_ASSERT(epcm_pf(encl_write(PG_AUG + 0x100, 2), PG_AUG, PFEC_W), "a write from inside: #PF with PFEC.SGX");
    a = encl_read(PG_AUG + 0x100);
    TEST_ASSERT(a.vector == NO_EXCEPTION && a.value == 0x1234567890ull, "a read still works");
    /* accepting the restriction needs it tracked: an ETRACK since the EMODPR (SDM "EACCEPT") */
    TEST_ASSERT(leaf_ok(encl_enclu(EACCEPT, SI_R | SI_PR | SI_PT(PT_REG), PG_AUG, 0), SGX_NOT_TRACKED),
                "EACCEPT with {R, PR} before an ETRACK: SGX_NOT_TRACKED");
    TEST_ASSERT(status(etrack(), 0), "ETRACK");
    TEST_ASSERT(leaf_ok(encl_enclu(EACCEPT, SI_R | SI_W | SI_PR | SI_PT(PT_REG), PG_AUG, 0), SGX_PAGE_ATTRIBUTES_MISMATCH),
                "EACCEPT with {R, W, PR}: SGX_PAGE_ATTRIBUTES_MISMATCH");
    TEST_ASSERT(leaf_ok(encl_enclu(EACCEPT, SI_R | SI_PR | SI_PT(PT_REG), PG_AUG, 0), 0), "EACCEPT with {R, PR, PT_REG}: 0");
    TEST_ASSERT(epcm_pf(encl_write(PG_AUG + 0x100, 3), PG_AUG, PFEC_W), "still read-only");
    a = encl_enclu(EMODPE, SI_R | SI_W, PG_AUG, 0);
    TEST_EQ(a.vector, NO_EXCEPTION, "EMODPE {R, W} from inside");
    a = encl_write(PG_AUG + 0x100, 4);
    b = encl_read(PG_AUG + 0x100);
    TEST_ASSERT(a.vector == NO_EXCEPTION && b.vector == NO_EXCEPTION && b.value == 4, "the page is writable again");

    /* EMODT to PT_TRIM, EACCEPT, EREMOVE */
    hsi.flags = SI_PT(PT_TRIM);
    TEST_ASSERT(status(encls(EMODT, (ulong)&hsi, aug, 0), 0), "EMODT to PT_TRIM: 0");
    TEST_ASSERT(epcm_pf(encl_read(PG_AUG), PG_AUG, 0), "the trimmed page: a read #PFs with PFEC.SGX");
    hsi.flags = SI_R;
    TEST_ASSERT(status(encls(EMODPR, (ulong)&hsi, aug, 0), SGX_PAGE_NOT_MODIFIABLE),
                "EMODPR of a modified page: SGX_PAGE_NOT_MODIFIABLE");
    TEST_ASSERT(leaf_ok(encl_enclu(EACCEPT, SI_MODIFIED | SI_PT(PT_TRIM), PG_AUG, 0), SGX_NOT_TRACKED),
                "EACCEPT {MODIFIED, PT_TRIM} before an ETRACK: SGX_NOT_TRACKED");
    TEST_ASSERT(status(etrack(), 0), "ETRACK");
    TEST_ASSERT(leaf_ok(encl_enclu(EACCEPT, SI_MODIFIED | SI_PT(PT_REG), PG_AUG, 0), SGX_PAGE_ATTRIBUTES_MISMATCH),
                "EACCEPT {MODIFIED, PT_REG}: SGX_PAGE_ATTRIBUTES_MISMATCH");
    TEST_ASSERT(leaf_ok(encl_enclu(EACCEPT, SI_MODIFIED | SI_PT(PT_TRIM), PG_AUG, 0), 0), "EACCEPT {MODIFIED, PT_TRIM}: 0");
    TEST_ASSERT(status(encls(EREMOVE, 0, aug, 0), 0), "EREMOVE of the trimmed page: 0");
    TEST_ASSERT(epcm_pf(encl_read(PG_AUG), PG_AUG, 0), "the removed page: a read #PFs with PFEC.SGX");

    /* the address can be EAUG'd again */
    u64 aug3 = epc_alloc();
    pinfo = (struct pageinfo){ BASE + PG_AUG, 0, 0, E.secs };
    r = encls(EAUG, (ulong)&pinfo, aug3, 0);
    sgx_map_page(BASE + PG_AUG, aug3);
    a = encl_enclu(EACCEPT, SI_R | SI_W | SI_PENDING | SI_PT(PT_REG), PG_AUG, 0);
    b = encl_read(PG_AUG + 0x100);
    TEST_ASSERT(r.vector == NO_EXCEPTION && leaf_ok(a, 0) && b.vector == NO_EXCEPTION && b.value == 0,
                "EAUG and EACCEPT at the freed address again: a zero page");
}

void test_main(void)
{
    if (!sgx_test_setup(mrsigner))
        return;
    build();
    paging();
    sgx2();
}
