/* SGX1's ENCLS leaves (SDM Vol. 3D ch. 40-41): ECREATE, EADD, EEXTEND, EINIT, EREMOVE,
 * EDBGRD and EDBGWR, their success and the errors each can be made to give - #GP(0) for
 * misaligned operands, reserved bits and bad SECS/SECINFO/TCS contents, #PF (CR2 the
 * operand) for operands that are not EPC pages or are in the wrong EPCM state, and the
 * EAX/ZF codes of EINIT and EREMOVE - on the test enclave of sgx_enclave (t64/sgx_encl.S),
 * signed at build time by tests/sgx/sgx_sign with two keys.
 * guest: cpu=max epc=8M name=sgx-leaves timeout=60 */
#include "sgx.h"

#define BASE(k) (0x8000000000ull + (u64)(k) * 0x100000) /* one 1 MiB slot per enclave */
#define ATTRS (ATTR_MODE64BIT | ATTR_DEBUG)

static u8 mrsigner1[32], mrsigner2[32];
static int slot;
static u8 scratch[3 * 4096] ALIGNED(4096);
static struct pageinfo pinfo ALIGNED(32);
static struct secinfo sinfo ALIGNED(64);
static struct secs secs_src ALIGNED(4096);
static u8 page_src[4096] ALIGNED(4096);

static bool is_gp(struct encls_res r) { return r.vector == GP_VECTOR && r.error == 0; }
/* #PF at a: CR2 the operand, error code P and SGX (bit 15: an SGX access-control violation,
 * SDM 4.7) */
static bool is_pf_at(struct encls_res r, u64 a)
{
    return r.vector == PF_VECTOR && r.cr2 == a && (r.error & (PFEC_P | PFEC_SGX)) == (PFEC_P | PFEC_SGX);
}
static bool is_status(struct encls_res r, u64 code)
{
    return r.vector == NO_EXCEPTION && r.rax == code && !!(r.flags & FL_ZF) == !!code;
}
static void show(struct encls_res r)
{
    printf("  vector %d error %#llx cr2 %#llx rax %#llx flags %#lx\n", r.vector, (unsigned long long)r.error,
           (unsigned long long)r.cr2, (unsigned long long)r.rax, r.flags);
}
#define EXPECT_GP(r, ...) do { struct encls_res r_ = (r); if (!is_gp(r_)) show(r_); TEST_ASSERT(is_gp(r_), __VA_ARGS__); } while (0)
#define EXPECT_PF(r, a, ...) do { struct encls_res r_ = (r); if (!is_pf_at(r_, a)) show(r_); TEST_ASSERT(is_pf_at(r_, a), __VA_ARGS__); } while (0)
#define EXPECT_OK(r, ...) do { struct encls_res r_ = (r); if (r_.vector != NO_EXCEPTION) show(r_); TEST_ASSERT(r_.vector == NO_EXCEPTION, __VA_ARGS__); } while (0)
#define EXPECT_STATUS(r, c, ...) do { struct encls_res r_ = (r); if (!is_status(r_, c)) show(r_); TEST_ASSERT(is_status(r_, c), __VA_ARGS__); } while (0)

/* ---------------------------------------------------------------- ECREATE */
static void default_secs(struct secs *s, u64 base) { sgx_secs_init(s, base, ATTRS, 1); }

/* ECREATE of s into a fresh EPC page, the rest as given */
static struct encls_res ecreate_secs(const struct secs *s)
{
    return sgx_ecreate_raw(epc_alloc(), s);
}

static struct encls_res ecreate_pageinfo(u64 pageinfo, u64 rcx)
{
    return encls(ECREATE, pageinfo, rcx, 0);
}

static void test_ecreate(void)
{
    struct secs s;
    u64 base = BASE(slot++);
    default_secs(&s, base);
    u64 secs_page = epc_alloc();
    EXPECT_OK(sgx_ecreate_raw(secs_page, &s), "ECREATE of a good SECS");
    EXPECT_PF(sgx_ecreate_raw(secs_page, &s), secs_page, "ECREATE onto a valid EPC page: #PF at it");
    u64 ram = (ulong)page_src;
    EXPECT_PF(sgx_ecreate_raw(ram, &s), ram, "ECREATE to a page outside the EPC: #PF at it");
    EXPECT_GP(sgx_ecreate_raw(epc_alloc() + 0x800, &s), "ECREATE with RCX not page aligned: #GP(0)");

    /* PAGEINFO and SECINFO */
    memcpy(&secs_src, &s, sizeof(s));
    memset(&sinfo, 0, sizeof(sinfo));
    struct pageinfo good = { 0, (ulong)&secs_src, (ulong)&sinfo, 0 };
    memcpy(scratch + 8, &good, sizeof(good));
    EXPECT_GP(ecreate_pageinfo((ulong)scratch + 8, epc_alloc()), "ECREATE with PAGEINFO not 32-byte aligned: #GP(0)");
    pinfo = good;
    pinfo.srcpge = (ulong)scratch + 0x100;
    EXPECT_GP(ecreate_pageinfo((ulong)&pinfo, epc_alloc()), "ECREATE with SRCPGE not page aligned: #GP(0)");
    pinfo = good;
    memset(scratch, 0, 128);
    pinfo.secinfo = (ulong)scratch + 32;
    EXPECT_GP(ecreate_pageinfo((ulong)&pinfo, epc_alloc()), "ECREATE with SECINFO not 64-byte aligned: #GP(0)");
    pinfo = good;
    pinfo.linaddr = base;
    EXPECT_GP(ecreate_pageinfo((ulong)&pinfo, epc_alloc()), "ECREATE with PAGEINFO.LINADDR not 0: #GP(0)");
    pinfo = good;
    pinfo.secs = epc_base;
    EXPECT_GP(ecreate_pageinfo((ulong)&pinfo, epc_alloc()), "ECREATE with PAGEINFO.SECS not 0: #GP(0)");
    pinfo = good;
    sinfo.flags = SI_PT(PT_REG) | SI_R;
    EXPECT_GP(ecreate_pageinfo((ulong)&pinfo, epc_alloc()), "ECREATE with SECINFO type PT_REG: #GP(0)");
    sinfo.flags = BIT(16);
    EXPECT_GP(ecreate_pageinfo((ulong)&pinfo, epc_alloc()), "ECREATE with a reserved SECINFO.FLAGS bit: #GP(0)");
    sinfo.flags = 0;
    sinfo.reserved[0] = 1;
    EXPECT_GP(ecreate_pageinfo((ulong)&pinfo, epc_alloc()), "ECREATE with a reserved SECINFO byte: #GP(0)");
    sinfo.reserved[0] = 0;
    pinfo.srcpge = (ulong)(4ull << 30) + 0x100000000ull * 64; /* nothing mapped there */
    struct encls_res r = ecreate_pageinfo((ulong)&pinfo, epc_alloc());
    TEST_ASSERT(r.vector == PF_VECTOR && r.cr2 == pinfo.srcpge, "ECREATE with an unmapped SRCPGE: #PF at it");

    /* the SECS */
    static const char *const bad[] = {
        "SIZE not a power of 2", "SIZE of one page (less than 2)", "BASEADDR not aligned to SIZE",
        "BASEADDR not canonical (even with 57-bit addresses)", "SIZE above 2^(CPUID 12h.0:EDX[15:8]) (2^36)", "SSAFRAMESIZE 0",
        "a reserved ATTRIBUTES bit (3)", "a reserved ATTRIBUTES bit (63)", "ATTRIBUTES.INIT",
        "ATTRIBUTES.PROVISIONKEY without CPUID 12h.1:EAX[4]", "XFRM without SSE", "XFRM without x87",
        "XFRM with a bit CPUID 12h.1:ECX lacks (62)", "a reserved MISCSELECT bit",
        "a reserved SECS byte (24)", "a reserved SECS byte (100)", "a 32-bit enclave (MODE64BIT 0) past 4 GiB",
    };
    for (unsigned i = 0; i < ARRAY_SIZE(bad); i++) {
        default_secs(&s, base);
        switch (i) {
        case 0: s.size = 0x18000; break;
        case 1: s.size = 0x1000; break;
        case 2: s.baseaddr += 0x1000; break;
        case 3: s.baseaddr = 0x0100000000000000ull; break;
        case 4: s.size = 1ull << 37; s.baseaddr = 1ull << 37; break;
        case 5: s.ssaframesize = 0; break;
        case 6: s.attributes |= BIT(3); break;
        case 7: s.attributes |= BIT(63); break;
        case 8: s.attributes |= ATTR_INIT; break;
        case 9: s.attributes |= ATTR_PROVISIONKEY; break;
        case 10: s.xfrm = 1; break;
        case 11: s.xfrm = 2; break;
        case 12: s.xfrm |= BIT(62); break;
        case 13: s.miscselect |= BIT(1); break;
        case 14: s.reserved1[0] = 1; break;
        case 15: s.reserved2[4] = 1; break;
        case 16: s.attributes &= ~ATTR_MODE64BIT; break;
        }
        EXPECT_GP(ecreate_secs(&s), "ECREATE with %s: #GP(0)", bad[i]);
    }
    /* enclaves of 32-bit code are created by 64-bit kernels (Linux's driver, KVM's ECREATE
     * on behalf of a guest): MODE64BIT = 0 in 64-bit mode, below 4 GiB */
    default_secs(&s, 0x40000000);
    s.attributes &= ~ATTR_MODE64BIT;
    EXPECT_OK(ecreate_secs(&s), "ECREATE of a 32-bit enclave (MODE64BIT 0, below 4 GiB) in 64-bit mode");
    default_secs(&s, base);
    s.ssaframesize = 2;
    EXPECT_OK(ecreate_secs(&s), "ECREATE with SSAFRAMESIZE 2");
    default_secs(&s, 0x4000000000ull);
    s.size = 1ull << 36;
    EXPECT_OK(ecreate_secs(&s), "ECREATE of 2^36 bytes (the most CPUID 12h.0:EDX[15:8] allows)");
}

/* ---------------------------------------------------------------- EADD / EEXTEND */
static u8 tcs_page[4096] ALIGNED(4096);

static void make_tcs(u8 *t)
{
    memcpy(t, encl_image + ENCL_TCS0, 4096);
}

static struct encls_res eadd(u64 epc, u64 secs, u64 lin, const void *src, u64 flags)
{
    return sgx_eadd_raw(epc, secs, lin, src, flags);
}

static void test_eadd(void)
{
    struct secs s;
    u64 base = BASE(slot++);
    default_secs(&s, base);
    u64 secs = epc_alloc();
    sgx_ecreate_raw(secs, &s);
    u64 reg = epc_alloc();
    EXPECT_OK(eadd(reg, secs, base + 0x4000, encl_image + 0x4000, SI_PT(PT_REG) | SI_R | SI_W),
              "EADD of a regular page");
    EXPECT_PF(eadd(reg, secs, base + 0x5000, encl_image + 0x4000, SI_PT(PT_REG) | SI_R), reg,
              "EADD onto a valid EPC page: #PF at it");
    EXPECT_PF(eadd((ulong)page_src, secs, base + 0x5000, encl_image, SI_PT(PT_REG) | SI_R), (ulong)page_src,
              "EADD to a page outside the EPC: #PF at it");
    EXPECT_GP(eadd(epc_alloc() + 64, secs, base + 0x5000, encl_image, SI_PT(PT_REG) | SI_R),
              "EADD with RCX not page aligned: #GP(0)");
    EXPECT_GP(eadd(epc_alloc(), secs, base + 0x5010, encl_image, SI_PT(PT_REG) | SI_R),
              "EADD with LINADDR not page aligned: #GP(0)");
    EXPECT_GP(eadd(epc_alloc(), secs, base + 0x10000, encl_image, SI_PT(PT_REG) | SI_R),
              "EADD with LINADDR past ELRANGE: #GP(0)");
    EXPECT_GP(eadd(epc_alloc(), secs, base - 0x1000, encl_image, SI_PT(PT_REG) | SI_R),
              "EADD with LINADDR below ELRANGE: #GP(0)");
    EXPECT_GP(eadd(epc_alloc(), secs, base + 0x5000, encl_image, SI_PT(PT_REG) | SI_W),
              "EADD with SECINFO W without R: #GP(0)");
    EXPECT_GP(eadd(epc_alloc(), secs, base + 0x5000, encl_image, SI_PT(PT_SECS)),
              "EADD with SECINFO type PT_SECS: #GP(0)");
    EXPECT_GP(eadd(epc_alloc(), secs, base + 0x5000, encl_image, SI_PT(PT_VA)),
              "EADD with SECINFO type PT_VA: #GP(0)");
    EXPECT_GP(eadd(epc_alloc(), secs, base + 0x5000, encl_image, SI_PT(PT_REG) | SI_R | BIT(20)),
              "EADD with a reserved SECINFO.FLAGS bit: #GP(0)");
    EXPECT_GP(eadd(epc_alloc(), secs, base + 0x5000, encl_image, SI_PT(PT_REG) | SI_R | BIT(3)),
              "EADD with SECINFO.FLAGS.PENDING: #GP(0)");
    EXPECT_PF(eadd(epc_alloc(), reg, base + 0x5000, encl_image, SI_PT(PT_REG) | SI_R), reg,
              "EADD with PAGEINFO.SECS a regular page: #PF at it");
    EXPECT_PF(eadd(epc_alloc(), (ulong)page_src, base + 0x5000, encl_image, SI_PT(PT_REG) | SI_R),
              (ulong)page_src, "EADD with PAGEINFO.SECS outside the EPC: #PF at it");
    EXPECT_GP(eadd(epc_alloc(), secs + 8, base + 0x5000, encl_image, SI_PT(PT_REG) | SI_R),
              "EADD with PAGEINFO.SECS not page aligned: #GP(0)");

    /* misaligned PAGEINFO, SRCPGE and SECINFO */
    memset(&sinfo, 0, sizeof(sinfo));
    sinfo.flags = SI_PT(PT_REG) | SI_R;
    struct pageinfo good = { base + 0x5000, (ulong)page_src, (ulong)&sinfo, secs };
    memcpy(scratch + 16, &good, sizeof(good));
    EXPECT_GP(encls(EADD, (ulong)scratch + 16, epc_alloc(), 0), "EADD with PAGEINFO not 32-byte aligned: #GP(0)");
    pinfo = good;
    pinfo.srcpge += 8;
    EXPECT_GP(encls(EADD, (ulong)&pinfo, epc_alloc(), 0), "EADD with SRCPGE not page aligned: #GP(0)");
    pinfo = good;
    memcpy(scratch + 0x1020, &sinfo, sizeof(sinfo));
    pinfo.secinfo = (ulong)scratch + 0x1020;
    EXPECT_GP(encls(EADD, (ulong)&pinfo, epc_alloc(), 0), "EADD with SECINFO not 64-byte aligned: #GP(0)");

    /* TCS contents */
    struct { const char *what; unsigned off; u64 val; } tcs_bad[] = {
        { "OSSA not page aligned", 16, 0x6008 },
        { "OFSBASE not page aligned", 48, 0xa010 },
        { "OGSBASE not page aligned", 56, 0xb010 },
        { "a reserved byte (at 72)", 72, 1 },
        { "a reserved byte (at 4000)", 4000, 1 },
    };
    for (unsigned i = 0; i < ARRAY_SIZE(tcs_bad); i++) {
        make_tcs(tcs_page);
        memcpy(tcs_page + tcs_bad[i].off, &tcs_bad[i].val, 8);
        EXPECT_GP(eadd(epc_alloc(), secs, base + 0x1000, tcs_page, SI_PT(PT_TCS)), "EADD of a TCS with %s: #GP(0)",
                  tcs_bad[i].what);
    }
    make_tcs(tcs_page);
    u64 tcs = epc_alloc();
    EXPECT_OK(eadd(tcs, secs, base, tcs_page, SI_PT(PT_TCS)), "EADD of a good TCS");

    /* EEXTEND */
    EXPECT_OK(encls(EEXTEND, secs, reg + 0x100, 0), "EEXTEND of a 256-byte chunk of a regular page");
    EXPECT_OK(encls(EEXTEND, secs, tcs, 0), "EEXTEND of a TCS chunk");
    EXPECT_GP(encls(EEXTEND, secs, reg + 0x80, 0), "EEXTEND of a chunk not 256-byte aligned: #GP(0)");
    EXPECT_PF(encls(EEXTEND, secs, (ulong)page_src, 0), (ulong)page_src, "EEXTEND outside the EPC: #PF at it");
    u64 free_page = epc_alloc();
    EXPECT_PF(encls(EEXTEND, secs, free_page, 0), free_page, "EEXTEND of an invalid EPC page: #PF at it");
    EXPECT_PF(encls(EEXTEND, secs, secs, 0), secs, "EEXTEND of the SECS: #PF at it");
}

/* ---------------------------------------------------------------- EINIT */
struct built { struct enclave e; u64 base; };

static struct encls_res build(struct built *b, u64 attributes, u32 misc, void (*modify)(u32, u8 *))
{
    b->base = BASE(slot++);
    return sgx_build(&b->e, b->base, attributes, misc, modify);
}

static void change_data(u32 off, u8 *page)
{
    if (off == ENCL_DATA)
        page[0x10] ^= 1;
}
static void change_unmeasured(u32 off, u8 *page)
{
    if (off == 0xc000)
        page[0x10] ^= 1;
}

static u8 sig_copy[4096] ALIGNED(4096);

static void test_einit(void)
{
    struct built b;
    EXPECT_OK(build(&b, ATTRS, 1, NULL), "the test enclave built (ECREATE, EADD, EEXTEND)");
    /* operands first */
    memcpy(sig_copy, encl_sig, 1808);
    EXPECT_GP(encls(EINIT, (ulong)scratch + 0x800, b.e.secs, (ulong)sgx_token), "EINIT with SIGSTRUCT not page aligned: #GP(0)");
    EXPECT_GP(encls(EINIT, (ulong)sig_copy, b.e.secs, (ulong)sgx_token + 0x100), "EINIT with EINITTOKEN not 512-byte aligned: #GP(0)");
    EXPECT_PF(encls(EINIT, (ulong)sig_copy, (ulong)page_src, (ulong)sgx_token), (ulong)page_src,
              "EINIT with RCX outside the EPC: #PF at it");
    u64 reg = sgx_epc_of(&b.e, ENCL_DATA);
    EXPECT_PF(encls(EINIT, (ulong)sig_copy, reg, (ulong)sgx_token), reg, "EINIT with RCX a regular page: #PF at it");

    /* EENTER before EINIT */
    struct sgx_call c;
    u64 how = sgx_cmd(&c, b.base, CMD_ECHO, NULL, 0, 0, 0);
    TEST_ASSERT(how == SGX_BACK_FAULT && sgx_events[0].vector == GP_VECTOR, "EENTER of an enclave not initialised: #GP");

    /* the SIGSTRUCT's errors */
    memcpy(sig_copy, encl_sig, 1808);
    sig_copy[516 + 100] ^= 0x40;
    EXPECT_STATUS(encls(EINIT, (ulong)sig_copy, b.e.secs, (ulong)sgx_token), SGX_INVALID_SIGNATURE,
                  "EINIT with a corrupted SIGNATURE: SGX_INVALID_SIGNATURE, ZF 1");
    memcpy(sig_copy, encl_sig, 1808);
    sig_copy[960] ^= 1; /* ENCLAVEHASH: the signature no longer matches */
    EXPECT_STATUS(encls(EINIT, (ulong)sig_copy, b.e.secs, (ulong)sgx_token), SGX_INVALID_SIGNATURE,
                  "EINIT with a changed signed field: SGX_INVALID_SIGNATURE");
    memcpy(sig_copy, encl_sig, 1808);
    sig_copy[128 + 7] ^= 1; /* MODULUS */
    EXPECT_STATUS(encls(EINIT, (ulong)sig_copy, b.e.secs, (ulong)sgx_token), SGX_INVALID_SIGNATURE,
                  "EINIT with a changed MODULUS: SGX_INVALID_SIGNATURE");
    memcpy(sig_copy, encl_sig, 1808);
    sig_copy[0] ^= 1; /* HEADER */
    EXPECT_STATUS(encls(EINIT, (ulong)sig_copy, b.e.secs, (ulong)sgx_token), SGX_INVALID_SIG_STRUCT,
                  "EINIT with a wrong HEADER: SGX_INVALID_SIG_STRUCT");
    memcpy(sig_copy, encl_sig, 1808);
    sig_copy[16] = 1; /* VENDOR: 0 or 8086h only */
    EXPECT_STATUS(encls(EINIT, (ulong)sig_copy, b.e.secs, (ulong)sgx_token), SGX_INVALID_SIG_STRUCT,
                  "EINIT with VENDOR 1: SGX_INVALID_SIG_STRUCT");
    /* a failed EINIT leaves the enclave as it was: the good SIGSTRUCT still works */
    EXPECT_STATUS(sgx_einit_raw(b.e.secs, encl_sig), 0, "EINIT after the failures: success, RAX 0, ZF 0");
    EXPECT_GP(sgx_einit_raw(b.e.secs, encl_sig), "EINIT of an initialised enclave: #GP(0)");
    how = sgx_cmd(&c, b.base, CMD_ECHO, NULL, 0, 0, 0);
    TEST_ASSERT(how == SGX_BACK_EEXIT && c.out.r[GDX] == 0x600df00d, "the enclave runs");

    /* after EINIT: no more EADD or EEXTEND */
    u64 page = epc_alloc();
    EXPECT_GP(eadd(page, b.e.secs, b.base + 0xe000, encl_image, SI_PT(PT_REG) | SI_R), "EADD after EINIT: #GP(0)");
    EXPECT_GP(encls(EEXTEND, b.e.secs, reg, 0), "EEXTEND after EINIT: #GP(0)");

    /* the measurement */
    EXPECT_OK(build(&b, ATTRS, 1, change_data), "an enclave with one measured byte changed, built");
    EXPECT_STATUS(sgx_einit_raw(b.e.secs, encl_sig), SGX_INVALID_MEASUREMENT,
                  "its EINIT: SGX_INVALID_MEASUREMENT");
    EXPECT_OK(build(&b, ATTRS, 1, change_unmeasured), "an enclave with a byte of an unmeasured page changed");
    EXPECT_STATUS(sgx_einit_raw(b.e.secs, encl_sig), 0, "its EINIT: success (EADD measures the page's "
                  "offset and SECINFO, not its bytes)");

    /* ATTRIBUTES and MISCSELECT under the SIGSTRUCT's masks */
    EXPECT_OK(build(&b, ATTRS, 1, NULL), "a debug enclave built");
    EXPECT_STATUS(sgx_einit_raw(b.e.secs, encl_prod_sig), SGX_INVALID_ATTRIBUTE,
                  "EINIT of a debug enclave with a SIGSTRUCT whose ATTRIBUTEMASK requires DEBUG 0: "
                  "SGX_INVALID_ATTRIBUTE");
    EXPECT_OK(build(&b, ATTR_MODE64BIT, 1, NULL), "a production enclave built");
    EXPECT_STATUS(sgx_einit_raw(b.e.secs, encl_prod_sig), 0, "its EINIT with that SIGSTRUCT: success");
    how = sgx_cmd(&c, b.base, CMD_ECHO, NULL, 0, 0, 0);
    TEST_ASSERT(how == SGX_BACK_EEXIT && c.out.r[GDX] == 0x600df00d, "the production enclave runs");
    struct encls_res r = encls(EDBGRD, 0, sgx_epc_of(&b.e, ENCL_DATA), 0);
    EXPECT_GP(r, "EDBGRD of a production enclave's page: #GP(0)");
    r = encls(EDBGWR, 0, sgx_epc_of(&b.e, ENCL_DATA), 0);
    EXPECT_GP(r, "EDBGWR to a production enclave's page: #GP(0)");
    EXPECT_OK(build(&b, ATTRS, 0, NULL), "an enclave with MISCSELECT 0 built");
    EXPECT_STATUS(sgx_einit_raw(b.e.secs, encl_sig), SGX_INVALID_ATTRIBUTE,
                  "its EINIT with a SIGSTRUCT whose MISCMASK requires EXINFO: SGX_INVALID_ATTRIBUTE");

    /* Launch Control: without a token, the hash MSRs must name the signer */
    EXPECT_OK(build(&b, ATTRS, 1, NULL), "an enclave built for the second signer");
    EXPECT_STATUS(sgx_einit_raw(b.e.secs, encl_key2_sig), SGX_INVALID_EINITTOKEN,
                  "EINIT of another signer's enclave, no token: SGX_INVALID_EINITTOKEN");
    sgx_set_lehash(mrsigner2);
    EXPECT_STATUS(sgx_einit_raw(b.e.secs, encl_key2_sig), 0,
                  "with the hash MSRs set to its MRSIGNER: success");
    sgx_set_lehash(mrsigner1);
    how = sgx_cmd(&c, b.base, CMD_ECHO, NULL, 0, 0, 0);
    TEST_ASSERT(how == SGX_BACK_EEXIT && c.out.r[GDX] == 0x600df00d, "it runs after the MSRs changed back");
    EXPECT_OK(build(&b, ATTRS | ATTR_EINITTOKEN_KEY, 1, NULL), "an enclave with ATTRIBUTES.EINITTOKEN_KEY built");
    sgx_set_lehash(mrsigner2);
    EXPECT_STATUS(sgx_einit_raw(b.e.secs, encl_sig), SGX_INVALID_EINITTOKEN,
                  "EINIT of a launch enclave whose signer the MSRs do not name: SGX_INVALID_EINITTOKEN");
    sgx_set_lehash(mrsigner1);
    EXPECT_STATUS(sgx_einit_raw(b.e.secs, encl_sig), 0, "a launch enclave of the signer they name: success");
}

/* ---------------------------------------------------------------- EREMOVE */
static void test_eremove(void)
{
    struct built b;
    EXPECT_OK(build(&b, ATTRS, 1, NULL), "an enclave to take apart, built");
    EXPECT_STATUS(encls(EREMOVE, 0, b.e.secs, 0), SGX_CHILD_PRESENT,
                  "EREMOVE of a SECS with pages: SGX_CHILD_PRESENT, ZF 1");
    EXPECT_GP(encls(EREMOVE, 0, b.e.secs + 0x10, 0), "EREMOVE with RCX not page aligned: #GP(0)");
    EXPECT_PF(encls(EREMOVE, 0, (ulong)page_src, 0), (ulong)page_src, "EREMOVE outside the EPC: #PF at it");
    u64 free_page = epc_alloc();
    EXPECT_STATUS(encls(EREMOVE, 0, free_page, 0), 0, "EREMOVE of an invalid EPC page: success");
    u64 data = sgx_epc_of(&b.e, ENCL_DATA);
    EXPECT_STATUS(encls(EREMOVE, 0, data, 0), 0, "EREMOVE of a regular page: success, RAX 0, ZF 0");
    EXPECT_PF(encls(EDBGRD, 0, data, 0), data, "EDBGRD of the removed page: #PF at it");
    EXPECT_OK(eadd(data, b.e.secs, b.base + ENCL_DATA, encl_image + ENCL_DATA, SI_PT(PT_REG) | SI_R | SI_W),
              "the removed page can be added again");
    bool all = true;
    for (int i = 0; i < encl_npages; i++) {
        struct encls_res r = encls(EREMOVE, 0, b.e.page[i], 0);
        all = all && is_status(r, 0);
    }
    TEST_ASSERT(all, "EREMOVE of every page (the TCSs too)");
    EXPECT_STATUS(encls(EREMOVE, 0, b.e.secs, 0), 0, "then EREMOVE of the SECS: success");
    EXPECT_OK(sgx_ecreate_raw(b.e.secs, &secs_src), "the SECS page is free for ECREATE");
}

/* ---------------------------------------------------------------- EDBGRD / EDBGWR */
static void test_edbg(void)
{
    struct built b;
    EXPECT_OK(build(&b, ATTRS, 1, NULL), "a debug enclave built");
    EXPECT_STATUS(sgx_einit_raw(b.e.secs, encl_sig), 0, "and initialised");
    u64 data = sgx_epc_of(&b.e, ENCL_DATA);
    struct encls_res r = encls(EDBGRD, 0, data + 8, 0);
    TEST_ASSERT(is_status(r, 0) && r.rbx == 2 * 0x0101010101ull + 7,
                "EDBGRD of a debug enclave's page: RBX = its contents, RAX 0 (%#llx)", (unsigned long long)r.rbx);
    EXPECT_STATUS(encls(EDBGWR, 0x1234567887654321ull, data + 0x800, 0), 0, "EDBGWR to it: RAX 0");
    r = encls(EDBGRD, 0, data + 0x800, 0);
    TEST_EQ(r.rbx, 0x1234567887654321ull, "EDBGRD reads back what EDBGWR wrote");
    struct sgx_call c;
    u64 how = sgx_cmd(&c, b.base, CMD_READ, NULL, ENCL_DATA + 0x800, 0, 0);
    TEST_ASSERT(how == SGX_BACK_EEXIT && c.out.r[GDX] == 0x1234567887654321ull, "the enclave sees it too");
    r = encls(EDBGRD, 0, sgx_epc_of(&b.e, ENCL_RODATA), 0);
    TEST_ASSERT(is_status(r, 0) && r.rbx == ENCL_RODATA_MARKER, "EDBGRD of a read-only page");
    u64 code = sgx_epc_of(&b.e, 0x2000);
    r = encls(EDBGRD, 0, code, 0);
    u64 want;
    memcpy(&want, encl_image + 0x2000, 8);
    TEST_ASSERT(is_status(r, 0) && r.rbx == want, "EDBGRD of a code page (no R/W needed)");
    u64 tcs = sgx_epc_of(&b.e, ENCL_TCS0);
    r = encls(EDBGRD, 0, tcs + 16, 0);
    TEST_ASSERT(is_status(r, 0) && r.rbx == ENCL_SSA0, "EDBGRD of a TCS (OSSA)");
    EXPECT_GP(encls(EDBGRD, 0, data + 4, 0), "EDBGRD of an address not 8-byte aligned: #GP(0)");
    EXPECT_GP(encls(EDBGWR, 0, data + 4, 0), "EDBGWR to an address not 8-byte aligned: #GP(0)");
    EXPECT_PF(encls(EDBGRD, 0, (ulong)page_src, 0), (ulong)page_src, "EDBGRD outside the EPC: #PF at it");
    u64 free_page = epc_alloc();
    EXPECT_PF(encls(EDBGRD, 0, free_page, 0), free_page, "EDBGRD of an invalid EPC page: #PF at it");
    EXPECT_GP(encls(EDBGWR, 0, tcs + 16, 0), "EDBGWR to a TCS field other than FLAGS: #GP(0)");
    EXPECT_STATUS(encls(EDBGWR, 1, tcs + 8, 0), 0, "EDBGWR of TCS.FLAGS.DBGOPTIN");
    r = encls(EDBGRD, 0, tcs + 8, 0);
    TEST_ASSERT(is_status(r, 0) && r.rbx == 1, "EDBGRD reads it back");
    encls(EDBGWR, 0, tcs + 8, 0);
}

/* EADD forces TCS.FLAGS.DBGOPTIN to 0 (SDM 43.1.2) and starts the thread at CSSA 0 */
static void dirty_tcs(u32 off, u8 *page)
{
    if (off == ENCL_TCS1) {
        page[8] = 1;  /* FLAGS.DBGOPTIN */
        page[24] = 1; /* CSSA */
    }
}

static void test_eadd_tcs_fields(void)
{
    struct built b;
    struct encls_res r = build(&b, ATTRS, 1, dirty_tcs);
    if (r.vector != NO_EXCEPTION)
        show(r);
    TEST_ASSERT(r.vector == NO_EXCEPTION, "EADD of a TCS with FLAGS.DBGOPTIN and CSSA set: accepted (SDM 43.1.2: "
                "DBGOPTIN is forced to 0 by EADD; FLAGS and CSSA are cleared by EADD)");
    if (r.vector != NO_EXCEPTION)
        return;
    u64 tcs = sgx_epc_of(&b.e, ENCL_TCS1);
    struct encls_res f = encls(EDBGRD, 0, tcs + 8, 0), c = encls(EDBGRD, 0, tcs + 24, 0);
    TEST_ASSERT(is_status(f, 0) && f.rbx == 0 && is_status(c, 0) && (u32)c.rbx == 0,
                "EDBGRD: the TCS has FLAGS 0 and CSSA 0 (%#llx %#llx)", (unsigned long long)f.rbx,
                (unsigned long long)c.rbx);
    EXPECT_STATUS(sgx_einit_raw(b.e.secs, encl_sig), 0, "EINIT: EEXTEND measured the cleared TCS");
}

/* ---------------------------------------------------------------- ENCLS itself */
static ulong encls_user(ulong leaf)
{
    u64 rax = leaf;
    asm volatile(ASM_TRY("1f") ".byte 0x0f, 0x01, 0xcf\n1:" : "+a"(rax) : "b"(0), "c"(0), "d"(0) : "memory");
    return (ulong)exc_vector();
}

static void test_encls(void)
{
    TEST_EQ(run_user(encls_user, ECREATE, 0), UD_VECTOR, "ENCLS at CPL 3: #UD");
    TEST_EQ(encls(0x3f, 0, 0, 0).vector, GP_VECTOR, "ENCLS leaf 3Fh: #GP");
    TEST_EQ(encls(0x80000000, 0, 0, 0).vector, GP_VECTOR, "ENCLS leaf 80000000h: #GP");
    /* ENCLS ignores RAX[63:32] in 64-bit mode (SDM 40.1): leaf EREMOVE of a free page */
    struct encls_res r = encls(0x100000000ull | EREMOVE, 0, epc_alloc(), 0);
    EXPECT_STATUS(r, 0, "ENCLS ignores RAX[63:32]: EREMOVE");
}

void test_main(void)
{
    if (!sgx_test_setup(mrsigner1))
        return;
    sgx_parse_hex(encl_key2_meas + 65, mrsigner2, 32);
    TEST_ASSERT(memcmp(mrsigner1, mrsigner2, 32), "the two signing keys differ");
    test_encls();
    test_ecreate();
    test_eadd();
    test_einit();
    test_eremove();
    test_edbg();
    test_eadd_tcs_fields();
}
