/* General-purpose instruction forms of the differential test: the form table is generated
 * (gp_forms.inc, from gen_gp_forms.py); this file holds the input constraints and the
 * per-input defined-flags rules the table refers to. */
#include <stdbool.h>
#include <string.h>

#include "harness.h"

static uint64_t sext(uint64_t v, unsigned bytes) {
    unsigned sh = 64 - bytes * 8;
    return (uint64_t)((int64_t)(v << sh) >> sh);
}

static uint64_t mask_of(unsigned bytes) { return bytes >= 8 ? ~0ull : (1ull << (bytes * 8)) - 1; }

static uint64_t mem_get(uint64_t addr, unsigned n) {
    uint64_t v = 0;
    memcpy(&v, DIFF_DATA_AT(addr), n);
    return v;
}
static void mem_put(uint64_t addr, unsigned n, uint64_t v) { memcpy(DIFF_DATA_AT(addr), &v, n); }

/* Displacements of the generator's memory operands by size (M[] in gen_gp_forms.py). */
static int64_t mem_disp(unsigned bytes) {
    switch (bytes) {
    case 1: return 0x10;
    case 2: return -7;
    case 4: return 0;
    default: return 0x21;
    }
}

/* Shifts/rotates (arg: op | bytes << 4 | count << 8, count 0xff = CL). Flags that the SDM
 * leaves undefined for this count are not compared. ops: rol ror rcl rcr shl shr sar
 * shld shrd. */
static uint32_t flags_shift(const struct diff_state *in, const struct diff_form *f) {
    unsigned op = f->arg & 0xf, bytes = (f->arg >> 4) & 0xf, cnt = (f->arg >> 8) & 0xff;
    if (cnt == 0xff)
        cnt = in->gpr[D_RCX] & 0xff;
    cnt &= bytes == 8 ? 63 : 31;
    if (cnt == 0)
        return DF_ALL;
    uint32_t undef = cnt != 1 ? DF_OF : 0;
    if (op >= 4)
        undef |= DF_AF;
    if ((op == 4 || op == 5) && cnt >= bytes * 8)
        undef |= DF_CF;
    return DF_ALL & ~undef;
}

/* SHLD/SHRD with 16-bit operands: counts above 16 give undefined results. */
static void setup_shld16(struct diff_state *in, struct diff_rng *r, const struct diff_form *f) {
    (void)f;
    uint64_t x = diff_rand(r);
    in->gpr[D_RCX] = (in->gpr[D_RCX] & ~0xffull) | (x % 17) | ((x >> 8) & 0xe0);
}

/* DIV/IDIV (arg: bytes | signed << 8 | divisor << 12; divisor 1 = rCX, 0xe = BH,
 * 0xf = memory operand). Mostly inputs whose quotient fits; sometimes not, or zero. */
static void setup_div(struct diff_state *in, struct diff_rng *r, const struct diff_form *f) {
    unsigned n = f->arg & 0xf, sign = (f->arg >> 8) & 1, where = (f->arg >> 12) & 0xf;
    uint64_t m = mask_of(n), x = diff_rand(r);
    uint64_t d;
    uint64_t addr = in->gpr[D_RBX] + (uint64_t)mem_disp(n);
    if (where == 1)
        d = in->gpr[D_RCX] & m;
    else if (where == 0xe)
        d = (in->gpr[D_RBX] >> 8) & 0xff;
    else
        d = mem_get(addr, n);
    if (d == 0 && (x & 15) != 0)
        d = 1 + ((x >> 8) & 0x7f);
    if (where == 1)
        in->gpr[D_RCX] = (in->gpr[D_RCX] & ~m) | d;
    else if (where == 0xe)
        in->gpr[D_RBX] = (in->gpr[D_RBX] & ~0xff00ull) | (d << 8);
    else
        mem_put(addr, n, d);
    if ((x >> 4) & 7) { /* make the quotient fit */
        uint64_t lo = n == 1 ? in->gpr[D_RAX] & 0xff : in->gpr[D_RAX] & m;
        uint64_t hi;
        if (sign) {
            hi = (lo >> (n * 8 - 1)) & 1 ? m : 0;
            if (d == m && lo == (1ull << (n * 8 - 1))) /* MIN / -1 */
                lo = 0;
        } else {
            hi = d ? diff_rand(r) % d : 0;
        }
        if (n == 1)
            in->gpr[D_RAX] = (in->gpr[D_RAX] & ~0xffffull) | (hi << 8) | lo;
        else {
            in->gpr[D_RAX] = (in->gpr[D_RAX] & ~m) | lo;
            in->gpr[D_RDX] = (in->gpr[D_RDX] & ~m) | hi;
        }
    }
}

/* MOV Sreg forms: load the null selector (the guest has no GDT). */
static void setup_zero_reg(struct diff_state *in, struct diff_rng *r, const struct diff_form *f) {
    (void)r;
    in->gpr[f->arg] &= ~0xffffull;
}
static void setup_zero_mem16(struct diff_state *in, struct diff_rng *r, const struct diff_form *f) {
    (void)r;
    mem_put(in->gpr[D_RBX] + (uint64_t)f->arg, 2, 0);
}
static void setup_stack_zero(struct diff_state *in, struct diff_rng *r, const struct diff_form *f) {
    (void)r;
    (void)f;
    mem_put(in->gpr[D_RSP] & 0xffffffffull, 4, 0);
}

/* CMPXCHG with a register destination (arg: bytes | reg << 8): equal half the time. */
static void setup_cmpxchg_reg(struct diff_state *in, struct diff_rng *r, const struct diff_form *f) {
    unsigned n = f->arg & 0xf, reg = (f->arg >> 8) & 0xf;
    if (n && (diff_rand(r) & 1))
        in->gpr[D_RAX] = (in->gpr[D_RAX] & ~mask_of(n)) | (in->gpr[reg] & mask_of(n));
}

/* CMPXCHG/CMPXCHG8B/CMPXCHG16B with a memory destination (arg: bytes | 0x100 for 8B,
 * 0x200 for 16B | disp << 16 for 8B/16B): equal half the time; 16B aligned mostly. */
static void setup_cmpxchg_mem(struct diff_state *in, struct diff_rng *r, const struct diff_form *f) {
    unsigned kind = (f->arg >> 8) & 0xf, n = f->arg & 0xff;
    uint64_t x = diff_rand(r);
    if (kind == 2 && (x & 6))
        in->gpr[D_RBX] &= ~15ull;
    uint64_t addr = in->gpr[D_RBX] + (kind ? (uint64_t)(f->arg >> 16) : (uint64_t)mem_disp(n));
    if (!(x & 1))
        return;
    if (kind == 0) {
        in->gpr[D_RAX] = (in->gpr[D_RAX] & ~mask_of(n)) | mem_get(addr, n);
    } else if (kind == 1) {
        uint64_t v = mem_get(addr, 8);
        in->gpr[D_RAX] = (in->gpr[D_RAX] & ~0xffffffffull) | (v & 0xffffffffull);
        in->gpr[D_RDX] = (in->gpr[D_RDX] & ~0xffffffffull) | (v >> 32);
    } else {
        in->gpr[D_RAX] = mem_get(addr, 8);
        in->gpr[D_RDX] = mem_get(addr + 8, 8);
    }
}

/* BOUND (arg: bytes | reg << 8 | disp << 12): bounds around the index mostly. */
static void setup_bound(struct diff_state *in, struct diff_rng *r, const struct diff_form *f) {
    unsigned n = f->arg & 0xf, reg = (f->arg >> 8) & 0xf;
    uint64_t addr = (in->gpr[D_RBX] & 0xffffffffull) + (uint64_t)(f->arg >> 12);
    uint64_t x = diff_rand(r);
    int64_t idx = (int64_t)sext(in->gpr[reg], n);
    int64_t lo = idx - (int64_t)((x >> 8) & 0xff) + ((x & 3) == 0 ? 0x80 : 0);
    int64_t hi = idx + (int64_t)((x >> 16) & 0xff) - ((x & 3) == 1 ? 0x100 : 0);
    mem_put(addr, n, (uint64_t)lo);
    mem_put(addr + n, n, (uint64_t)hi);
}

/* BT* with a register bit offset into memory: offsets within the data buffer. */
static void setup_bitoff(struct diff_state *in, struct diff_rng *r, const struct diff_form *f) {
    in->gpr[f->arg] = (uint64_t)((int64_t)(diff_rand(r) % 2048) - 1024);
}

/* BEXTR/BZHI: control values with small start/length/index mostly. */
static void setup_bmi_ctl(struct diff_state *in, struct diff_rng *r, const struct diff_form *f) {
    (void)f;
    static const int regs[] = { D_RDX, D_R10, D_RSI };
    for (int k = 0; k < 3; k++) {
        uint64_t x = diff_rand(r);
        if (x & 3)
            in->gpr[regs[k]] = (in->gpr[regs[k]] & ~0xffffull) | ((x >> 8) % 72) | (((x >> 16) % 72) << 8);
    }
}

/* String instructions: small counts; runs of equal data so REPE/REPNE stop inside. */
static void setup_string(struct diff_state *in, struct diff_rng *r, const struct diff_form *f) {
    (void)f;
    uint64_t x = diff_rand(r);
    in->gpr[D_RCX] = (x & 7) == 0 ? 0 : (x >> 8) % 40;
    unsigned len = (unsigned)((x >> 16) % 200);
    bool down = in->rflags & DF_DF;
    uint64_t si = in->gpr[D_RSI], di = in->gpr[D_RDI];
    uint64_t src = down ? si + 8 - len : si, dst = down ? di + 8 - len : di;
    switch ((x >> 32) & 3) {
    case 0: /* equal runs for CMPS */
        memmove(DIFF_DATA_AT(dst), DIFF_DATA_AT(src), len);
        break;
    case 1: { /* a run of one byte for SCAS, with the accumulator made of it */
        uint8_t b = (uint8_t)(x >> 40);
        memset(DIFF_DATA_AT(dst), b, len);
        in->gpr[D_RAX] = 0x0101010101010101ull * b;
        break;
    }
    case 2: /* the accumulator found somewhere ahead */
        in->gpr[D_RAX] = mem_get(down ? di - 8 * ((x >> 40) % 8) : di + 8 * ((x >> 40) % 8), 8);
        break;
    default:
        break;
    }
}

static const struct diff_form gp_forms[] = {
#include "gp_forms.inc"
};
DIFF_SUITE(gp, gp_forms)
