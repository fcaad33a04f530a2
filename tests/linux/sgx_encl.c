/* The Linux SGX test's enclave: the commands of tests/linux/sgx_encl.h, run inside the
 * enclave on the loader's argument blocks (outside memory, which enclave code may read
 * and write). Freestanding: no libc, general registers only (the loop of sgx_encl.S is
 * the one user of SSE), position independent. Built by tests/linux/linux.mk with
 * tests/linux/sgx_encl.S and sgx_encl.lds into a flat image. */
#include <stddef.h>
#include <stdint.h>

#include "sgx_encl.h"

typedef uint8_t u8;
typedef uint64_t u64;

/* gcc may call these for struct copies even when freestanding */
void *memcpy(void *d, const void *s, size_t n);
void *memset(void *d, int c, size_t n);
int memcmp(const void *a, const void *b, size_t n);

void *memcpy(void *d, const void *s, size_t n)
{
    u8 *dp = d;
    const u8 *sp = s;
    while (n--)
        *dp++ = *sp++;
    return d;
}

void *memset(void *d, int c, size_t n)
{
    u8 *dp = d;
    while (n--)
        *dp++ = (u8)c;
    return d;
}

int memcmp(const void *a, const void *b, size_t n)
{
    const u8 *x = a, *y = b;
    for (; n; n--, x++, y++)
        if (*x != *y)
            return *x < *y ? -1 : 1;
    return 0;
}

extern const u8 __encl_base[], encl_exit[];
void encl_spin(struct cmd_spin *s, volatile u64 *ssa_rip);
u64 encl_main(u64 cmd, void *arg);
void encl_handler(u64 cssa, u64 cmd, struct handler_info *info);

/* the entering thread's block (FS base) */
static u64 tls_field(unsigned off)
{
    u64 v;
    __asm__ volatile("mov %%fs:(%1), %0" : "=r"(v) : "r"((u64)off));
    return v;
}

static u8 *ssa_frame(unsigned n)
{
    return (u8 *)__encl_base + tls_field(TLS_SSA) + (u64)n * ENCL_SSA_FRAME;
}

static u8 *gprsgx(unsigned frame) { return ssa_frame(frame) + ENCL_SSA_FRAME - GPRSGX_SIZE; }

/* ---- ENCLU leaves ---- */
static void ereport(const void *targetinfo, const void *reportdata, void *report)
{
    __asm__ volatile("enclu" : : "a"(0ul), "b"(targetinfo), "c"(reportdata), "d"(report)
                     : "memory");
}

static u64 egetkey(const void *keyrequest, void *key)
{
    u64 rax = 1;
    __asm__ volatile("enclu" : "+a"(rax) : "b"(keyrequest), "c"(key) : "memory", "cc");
    return rax;
}

/* SECINFO (SDM Vol. 3D 35.11) */
struct secinfo {
    u64 flags;
    u8 reserved[56];
} __attribute__((aligned(64)));
#define SI_R 0x1
#define SI_W 0x2
#define SI_PENDING 0x8
#define SI_MODIFIED 0x10
#define SI_PR 0x20
#define SI_REG (2u << 8)
#define SI_TRIM (4u << 8)
static struct secinfo secinfo;

/* EACCEPT (5) and EMODPE (6): SECINFO and the page; EACCEPT's status (EMODPE has none) */
static u64 enclu_secinfo(u64 leaf, u64 flags, void *page)
{
    u64 rax = leaf;
    secinfo.flags = flags;
    __asm__ volatile("enclu" : "+a"(rax) : "b"(&secinfo), "c"(page) : "memory", "cc");
    return rax;
}
static u64 eaccept(u64 flags, void *page) { return enclu_secinfo(5, flags, page); }
static u64 emodpe(u64 flags, void *page) { return enclu_secinfo(6, flags, page); }

/* ---- AES-128 and AES-CMAC (FIPS 197, RFC 4493), to check a report's MAC ---- */
static u8 sbox[256];

static u8 rotl8(u8 x, unsigned n) { return (u8)(x << n | x >> (8 - n)); }
static u8 xtime(u8 x) { return (u8)(x << 1 ^ (x & 0x80 ? 0x1b : 0)); }

static void make_sbox(void)
{
    /* p runs through the multiplicative group (times 3), q = 1/p (divided by 3) */
    u8 p = 1, q = 1;
    do {
        p = (u8)(p ^ xtime(p));
        q ^= (u8)(q << 1);
        q ^= (u8)(q << 2);
        q ^= (u8)(q << 4);
        if (q & 0x80)
            q ^= 0x09;
        sbox[p] = (u8)(q ^ rotl8(q, 1) ^ rotl8(q, 2) ^ rotl8(q, 3) ^ rotl8(q, 4) ^ 0x63);
    } while (p != 1);
    sbox[0] = 0x63;
}

static void aes128_expand(const u8 key[16], u8 rk[176])
{
    u8 rcon = 1;
    memcpy(rk, key, 16);
    for (unsigned i = 16; i < 176; i += 4) {
        u8 t[4] = {rk[i - 4], rk[i - 3], rk[i - 2], rk[i - 1]};
        if (i % 16 == 0) {
            u8 t0 = t[0];
            t[0] = sbox[t[1]] ^ rcon;
            t[1] = sbox[t[2]];
            t[2] = sbox[t[3]];
            t[3] = sbox[t0];
            rcon = xtime(rcon);
        }
        for (unsigned j = 0; j < 4; j++)
            rk[i + j] = rk[i - 16 + j] ^ t[j];
    }
}

static void aes128_encrypt(const u8 rk[176], const u8 in[16], u8 out[16])
{
    u8 s[16], t[16];
    for (unsigned i = 0; i < 16; i++)
        s[i] = in[i] ^ rk[i];
    for (unsigned round = 1; round <= 10; round++) {
        for (unsigned c = 0; c < 4; c++) /* SubBytes, ShiftRows */
            for (unsigned r = 0; r < 4; r++)
                t[4 * c + r] = sbox[s[4 * ((c + r) % 4) + r]];
        if (round < 10)
            for (unsigned c = 0; c < 4; c++) { /* MixColumns */
                u8 a0 = t[4 * c], a1 = t[4 * c + 1], a2 = t[4 * c + 2], a3 = t[4 * c + 3];
                u8 all = a0 ^ a1 ^ a2 ^ a3;
                t[4 * c] = a0 ^ all ^ xtime(a0 ^ a1);
                t[4 * c + 1] = a1 ^ all ^ xtime(a1 ^ a2);
                t[4 * c + 2] = a2 ^ all ^ xtime(a2 ^ a3);
                t[4 * c + 3] = a3 ^ all ^ xtime(a3 ^ a0);
            }
        for (unsigned i = 0; i < 16; i++)
            s[i] = t[i] ^ rk[16 * round + i];
    }
    memcpy(out, s, 16);
}

static void cmac_subkey(u8 k[16])
{
    u8 carry = k[0] >> 7;
    for (unsigned i = 0; i < 15; i++)
        k[i] = (u8)(k[i] << 1 | k[i + 1] >> 7);
    k[15] = (u8)(k[15] << 1 ^ (carry ? 0x87 : 0));
}

static void aes_cmac(const u8 key[16], const u8 *msg, size_t len, u8 mac[16])
{
    u8 rk[176], k[16] = {0}, x[16] = {0}, last[16];
    aes128_expand(key, rk);
    aes128_encrypt(rk, k, k);
    cmac_subkey(k); /* K1 */
    size_t n = (len + 15) / 16;
    int complete = n && len % 16 == 0;
    if (!n)
        n = 1;
    if (!complete)
        cmac_subkey(k); /* K2 */
    for (unsigned i = 0; i < 16; i++) {
        size_t at = (n - 1) * 16 + i;
        u8 b = at < len ? msg[at] : at == len ? 0x80 : 0;
        last[i] = b ^ k[i];
    }
    for (size_t b = 0; b + 1 < n; b++) {
        for (unsigned i = 0; i < 16; i++)
            x[i] ^= msg[16 * b + i];
        aes128_encrypt(rk, x, x);
    }
    for (unsigned i = 0; i < 16; i++)
        x[i] ^= last[i];
    aes128_encrypt(rk, x, mac);
}

/* RFC 4493 section 4, examples 1 (empty) and 2 (16 bytes) */
static int cmac_selftest(void)
{
    static const u8 key[16] = {0x2b, 0x7e, 0x15, 0x16, 0x28, 0xae, 0xd2, 0xa6,
                               0xab, 0xf7, 0x15, 0x88, 0x09, 0xcf, 0x4f, 0x3c};
    static const u8 m[16] = {0x6b, 0xc1, 0xbe, 0xe2, 0x2e, 0x40, 0x9f, 0x96,
                             0xe9, 0x3d, 0x7e, 0x11, 0x73, 0x93, 0x17, 0x2a};
    static const u8 t0[16] = {0xbb, 0x1d, 0x69, 0x29, 0xe9, 0x59, 0x37, 0x28,
                              0x7f, 0xa3, 0x7d, 0x12, 0x9b, 0x75, 0x67, 0x46};
    static const u8 t1[16] = {0x07, 0x0a, 0x16, 0xb4, 0x6b, 0x4d, 0x41, 0x44,
                              0xf7, 0x9b, 0xdd, 0x9d, 0xd0, 0x4a, 0x28, 0x7c};
    u8 mac[16];
    aes_cmac(key, m, 0, mac);
    if (memcmp(mac, t0, 16))
        return 0;
    aes_cmac(key, m, 16, mac);
    return !memcmp(mac, t1, 16);
}

/* ---- the commands ---- */
static u64 counter __attribute__((section(".data.counter"), used)) = COUNT_START;
static u8 secret[TRANSFORM_MAX];  /* the input, inside the enclave */

static u64 transform(struct cmd_transform *a)
{
    u64 len = a->len;
    if (len > TRANSFORM_MAX)
        return ENCL_BAD_CMD;
    memcpy(secret, a->in, len);
    u64 h = 0xcbf29ce484222325ull;
    for (u64 i = 0; i < len; i++)
        h = (h ^ secret[i]) * 0x100000001b3ull;
    for (u64 i = 0; i < len; i++)
        a->out[i] = rotl8(secret[len - 1 - i], 3) ^ (u8)a->key;
    memset(secret, 0, len);
    a->sum = h;
    return ENCL_OK;
}

/* KEYREQUEST (SDM Vol. 3D 35.18) */
struct keyrequest {
    uint16_t keyname, keypolicy, isvsvn, reserved0;
    u8 cpusvn[16];
    u64 attributemask[2];
    u8 keyid[32];
    uint32_t miscmask;
    uint16_t configsvn;
    u8 reserved[434];
} __attribute__((aligned(512)));
_Static_assert(sizeof(struct keyrequest) == 512, "KEYREQUEST");

enum { KEY_REPORT = 3, KEY_SEAL = 4, POLICY_MRENCLAVE = 1, POLICY_MRSIGNER = 2 };

static struct keyrequest kreq;
static u8 keys[5][16] __attribute__((aligned(16)));

static u64 get_key(unsigned name, unsigned policy, unsigned isvsvn, u8 keyid0, u8 *out)
{
    memset(&kreq, 0, sizeof(kreq));
    kreq.keyname = (uint16_t)name;
    kreq.keypolicy = (uint16_t)policy;
    kreq.isvsvn = (uint16_t)isvsvn;
    kreq.attributemask[0] = 0xff0000000000000bull;
    kreq.keyid[0] = keyid0;
    return egetkey(&kreq, out);
}

static int all_zero(const u8 *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return 0;
    return 1;
}

static u64 keys_cmd(struct cmd_keys *a)
{
    a->egetkey_rax[0] = get_key(KEY_SEAL, POLICY_MRENCLAVE, ENCL_ISVSVN, 0, keys[0]);
    a->egetkey_rax[1] = get_key(KEY_SEAL, POLICY_MRENCLAVE, ENCL_ISVSVN, 0, keys[1]);
    a->egetkey_rax[2] = get_key(KEY_SEAL, POLICY_MRSIGNER, ENCL_ISVSVN, 0, keys[2]);
    a->egetkey_rax[3] = get_key(KEY_SEAL, POLICY_MRENCLAVE, ENCL_ISVSVN, 1, keys[3]);
    a->seal_same = !memcmp(keys[0], keys[1], 16);
    a->signer_differs = !!memcmp(keys[0], keys[2], 16);
    a->keyid_differs = !!memcmp(keys[0], keys[3], 16);
    a->nonzero = !all_zero(keys[0], 16) && !all_zero(keys[2], 16) && !all_zero(keys[3], 16);
    a->bad_svn_rax = get_key(KEY_SEAL, POLICY_MRENCLAVE, ENCL_ISVSVN + 1, 0, keys[4]);
    memset(keys, 0, sizeof(keys));
    return ENCL_OK;
}

/* TARGETINFO and REPORT (SDM Vol. 3D 35.16, 35.17) */
struct targetinfo {
    u8 measurement[32];
    u64 attributes[2];
    u8 reserved0[4];
    uint32_t miscselect;
    u8 reserved1[456];
} __attribute__((aligned(512)));
_Static_assert(sizeof(struct targetinfo) == 512, "TARGETINFO");
#define REPORT_MISCSELECT 16
#define REPORT_ATTRIBUTES 48
#define REPORT_MRENCLAVE 64
#define REPORT_KEYID 384
#define REPORT_MAC 416

static struct targetinfo tinfo;
static u8 rdata[64] __attribute__((aligned(128)));
static u8 report[512] __attribute__((aligned(512)));
static u8 report_key[16] __attribute__((aligned(16)));

/* the report's MAC, checked with this enclave's report key for the report's KEYID */
static int mac_checks(u64 *key_rax)
{
    memset(&kreq, 0, sizeof(kreq));
    kreq.keyname = KEY_REPORT;
    memcpy(kreq.keyid, report + REPORT_KEYID, 32);
    *key_rax = egetkey(&kreq, report_key);
    u8 mac[16];
    aes_cmac(report_key, report, 384, mac);
    memset(report_key, 0, sizeof(report_key));
    return *key_rax == 0 && !memcmp(mac, report + REPORT_MAC, 16);
}

static u64 report_cmd(struct cmd_report *a)
{
    make_sbox();
    a->cmac_selftest = (u64)cmac_selftest();
    memcpy(rdata, a->reportdata, 64);
    /* who am I: a report for a zero target */
    memset(&tinfo, 0, sizeof(tinfo));
    ereport(&tinfo, rdata, report);
    /* for myself */
    memcpy(tinfo.measurement, report + REPORT_MRENCLAVE, 32);
    memcpy(tinfo.attributes, report + REPORT_ATTRIBUTES, 16);
    memcpy(&tinfo.miscselect, report + REPORT_MISCSELECT, 4);
    ereport(&tinfo, rdata, report);
    a->mac_ok = (u64)mac_checks(&a->key_rax);
    memcpy(a->report, report, sizeof(a->report));
    /* for another enclave: its MAC is not under my report key */
    tinfo.measurement[0] ^= 1;
    ereport(&tinfo, rdata, report);
    u64 rax;
    a->other_mac_bad = (u64)!mac_checks(&rax);
    return ENCL_OK;
}

/* the exception handler's findings (CSSA 1 entries) */
static volatile u64 handled, handler_exitinfo, handler_cssa;

void encl_handler(u64 cssa, u64 cmd, struct handler_info *info)
{
    if (cmd != CMD_HANDLER) {
        if (info)
            info->status = ENCL_NOT_HANDLER;
        return;
    }
    u8 *g = gprsgx((unsigned)cssa - 1);
    uint32_t exitinfo, errcd = 0;
    u64 rip, maddr = 0, action = 0;
    memcpy(&exitinfo, g + GPRSGX_EXITINFO, 4);
    memcpy(&rip, g + GPRSGX_RIP, 8);
    handler_exitinfo = exitinfo;
    handler_cssa = cssa;
    const u8 *insn = (const u8 *)rip;
    /* valid hardware exceptions (type 3) */
    if (exitinfo == (1u << 31 | 3u << 8 | 6) && rip - (u64)__encl_base < ENCL_SIZE &&
        insn[0] == 0x0f && insn[1] == 0x0b) {
        /* #UD at a ud2 of this enclave: skip it */
        rip += 2;
        memcpy(g + GPRSGX_RIP, &rip, 8);
        handled++;
        action = HANDLED_UD2;
    } else if (exitinfo == (1u << 31 | 3u << 8 | 14)) {
        /* #PF, with EXINFO below GPRSGX: a write to a page of ENCL_DYN that EMODPR made
         * read-only (PFEC: W and SGX) gets W back, and ERESUME retries it */
        memcpy(&maddr, g - 16, 8);
        memcpy(&errcd, g - 8, 4);
        u64 page = maddr & ~0xfffull;
        if (page - (u64)__encl_base - ENCL_DYN < ENCL_DYN_PAGES * 4096ull && (errcd & 0x8002) == 0x8002) {
            emodpe(SI_R | SI_W, (void *)page);
            action = HANDLED_EMODPE;
        }
    }
    if (!action) {
        /* abandon the command: its frame's stack back to what the entry pushed, RIP at
         * the way out */
        u64 rsp = (u64)__encl_base + tls_field(TLS_STACK_TOP) - 16, out = (u64)encl_exit;
        memcpy(g + GPRSGX_RSP, &rsp, 8);
        memcpy(g + GPRSGX_RIP, &out, 8);
        action = HANDLED_ABORT;
    }
    if (info) {
        info->action = action;
        info->exitinfo = exitinfo;
        info->maddr = maddr;
        info->errcd = errcd;
        info->status = ENCL_OK;
    }
}

static u64 ud2_cmd(struct cmd_ud2 *a)
{
    a->before = 1;
    __asm__ volatile("ud2" ::: "memory");
    a->after = 1;
    a->handled = handled;
    a->exitinfo = handler_exitinfo;
    a->handler_cssa = handler_cssa;
    return ENCL_OK;
}

static u64 spin_cmd(struct cmd_spin *a)
{
    struct cmd_spin s = *a;
    encl_spin(&s, (volatile u64 *)(gprsgx(0) + GPRSGX_RIP));
    a->iterations = s.iterations;
    a->x = s.x;
    a->lo = s.lo;
    a->hi = s.hi;
    a->aex_seen = s.aex_seen;
    a->rip_in_loop = s.rip_in_loop;
    return ENCL_OK;
}

static u64 dyn_cmd(struct cmd_dyn *a)
{
    u64 op = a->op, seed = a->seed, off = a->offset, n = a->npages;
    if (off < ENCL_END || off > ENCL_SIZE || n > (ENCL_SIZE - off) / 4096)
        return ENCL_BAD_CMD;
    u64 rax = 0, bad = 0, first_bad = 0, step = a->stride > 1 ? a->stride : 1;
    for (u64 i = 0; i < n; i += step, off += step * 4096) {
        volatile u64 *p = (volatile u64 *)(__encl_base + off);
        u64 want = encl_pattern(seed, off), r = 0;
        int ok = 1;
        switch (op) {
        case DYN_ACCEPT:
            r = eaccept(SI_REG | SI_R | SI_W | SI_PENDING, (void *)p);
            if (r)
                break;
            ok = p[0] == 0 && p[511] == 0;
            p[0] = want;
            p[511] = ~want;
            break;
        case DYN_ACCEPT_PR:
            r = eaccept(SI_REG | SI_R | SI_PR, (void *)p);
            ok = p[0] == want && p[511] == ~want;
            break;
        case DYN_CHECK:
            ok = p[0] == want && p[511] == ~want;
            break;
        case DYN_WRITE:
            p[0] = want;
            p[511] = ~want;
            break;
        case DYN_REWRITE:
            ok = p[0] == want && p[511] == ~want;
            want = encl_pattern(seed + 1, off);
            p[0] = want;
            p[511] = ~want;
            break;
        case DYN_ACCEPT_TRIM:
            r = eaccept(SI_TRIM | SI_MODIFIED, (void *)p);
            break;
        default:
            return ENCL_BAD_CMD;
        }
        if (r && !rax)
            rax = r;
        if (!ok && !bad++)
            first_bad = off;
    }
    a->rax = rax;
    a->bad = bad;
    a->first_bad = first_bad;
    return ENCL_OK;
}

u64 encl_main(u64 cmd, void *arg)
{
    u64 *status = arg;
    u64 r = ENCL_BAD_CMD;
    switch (cmd) {
    case CMD_TRANSFORM: r = transform(arg); break;
    case CMD_COUNT:
        ((struct cmd_count *)arg)->value = ++counter;
        r = ENCL_OK;
        break;
    case CMD_KEYS: r = keys_cmd(arg); break;
    case CMD_REPORT: r = report_cmd(arg); break;
    case CMD_UD2: r = ud2_cmd(arg); break;
    case CMD_SPIN: r = spin_cmd(arg); break;
    case CMD_DYN: r = dyn_cmd(arg); break;
    }
    *status = r;
    return r;
}
