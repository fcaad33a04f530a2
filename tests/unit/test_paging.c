/* Unit tests of the page walker: page tables are built in a small fake physical memory
 * and every format's translations, faults, error codes and A/D updates are checked
 * against the Intel SDM rules. */
#include <criterion/criterion.h>
#include <string.h>

#include "cpu/cpu.h"
#include "cpu/paging.h"

/* ---- fake physical memory ---- */

#define MEM_SIZE 0x40000u
#define TABLES_START 0x10000u

static struct {
    u8 buf[MEM_SIZE];
    u64 next_table;
    unsigned cmpxchg_calls;
    /* When race_armed, the next cmpxchg reports a concurrent change after storing
     * race_val at race_pa (as if another CPU wrote it first). */
    bool race_armed;
    u64 race_pa, race_val;
} mem;

static int fake_read(void *opaque, u64 pa, unsigned size, u64 *val)
{
    (void)opaque;
    if (pa > MEM_SIZE - size)
        return -1;
    u64 v = 0;
    memcpy(&v, mem.buf + pa, size);
    *val = v;
    return 0;
}

static int fake_cmpxchg(void *opaque, u64 pa, unsigned size, u64 old, u64 newv)
{
    (void)opaque;
    mem.cmpxchg_calls++;
    if (pa > MEM_SIZE - size)
        return -1;
    if (mem.race_armed) {
        mem.race_armed = false;
        memcpy(mem.buf + mem.race_pa, &mem.race_val, 8);
    }
    u64 cur = 0;
    memcpy(&cur, mem.buf + pa, size);
    if (cur != old)
        return 1;
    memcpy(mem.buf + pa, &newv, size);
    return 0;
}

static void put(u64 pa, unsigned size, u64 v)
{
    cr_assert(pa <= MEM_SIZE - size);
    memcpy(mem.buf + pa, &v, size);
}

static u64 get(u64 pa, unsigned size)
{
    u64 v = 0;
    cr_assert(pa <= MEM_SIZE - size);
    memcpy(&v, mem.buf + pa, size);
    return v;
}

/* ---- entry bits ---- */
#define P BIT(0)
#define RW BIT(1)
#define US BIT(2)
#define A BIT(5)
#define D BIT(6)
#define PS BIT(7)
#define G BIT(8)
#define XD BIT(63)
#define PRW (P | RW)
#define PRWU (P | RW | US)

#define ER BIT(0)
#define EW BIT(1)
#define EX BIT(2)
#define ERWX (ER | EW | EX)
#define EMT(t) ((u64)(t) << 3)
#define EIPAT BIT(6)
#define EA BIT(8)
#define ED BIT(9)

static unsigned levels_of(enum paging_format fmt)
{
    switch (fmt) {
    case PG_32: return 2;
    case PG_PAE: return 3;
    case PG_LONG4: case PG_EPT4: return 4;
    case PG_LONG5: case PG_EPT5: return 5;
    default: return 0;
    }
}

static unsigned shift_of(enum paging_format fmt, unsigned level)
{
    return 12 + (fmt == PG_32 ? 10 : 9) * (level - 1);
}

static u64 alloc_table(void)
{
    u64 t = mem.next_table;
    cr_assert(t + 4096 <= MEM_SIZE, "fake memory full");
    mem.next_table += 4096;
    return t;
}

static struct paging_ctx ctx;

static struct paging_ctx make_ctx(enum paging_format fmt)
{
    memset(&mem, 0, sizeof(mem));
    mem.next_table = TABLES_START;
    struct paging_ctx c = {
        .fmt = fmt,
        .root = fmt == PG_PAE || fmt == PG_NONE ? 0 : alloc_table(),
        .maxphyaddr = 46,
        .wp = true,
        .pse = true,
        .nxe = true,
        .pdpe1gb = true,
        .ops = { fake_read, fake_cmpxchg, NULL },
    };
    return c;
}

static unsigned entry_bytes(void) { return ctx.fmt == PG_32 ? 4 : 8; }
static bool pdpte_register(unsigned level) { return ctx.fmt == PG_PAE && level == 3; }
/* Address of the table an entry points to (the fake tables all lie below 4G). */
static u64 table_of(u64 e) { return e & 0xfffff000ull; }

/* Physical address of the entry that translates addr at level, following the tables
 * already built from the top (not for PAE PDPTEs, which are registers). */
static u64 slot(unsigned level, u64 addr)
{
    u64 table = ctx.root & ~0xfffull;
    for (unsigned l = levels_of(ctx.fmt);; l--) {
        u64 index = (addr >> shift_of(ctx.fmt, l)) & (ctx.fmt == PG_32 ? 0x3ff : 0x1ff);
        u64 e;
        if (pdpte_register(l)) {
            e = ctx.pdpte[index & 3];
        } else {
            if (l == level)
                return table + index * entry_bytes();
            e = get(table + index * entry_bytes(), entry_bytes());
        }
        table = table_of(e);
        cr_assert(table >= TABLES_START, "no table at level %u", l - 1);
    }
}

static u64 entry(unsigned level, u64 addr)
{
    if (pdpte_register(level))
        return ctx.pdpte[(addr >> 30) & 3];
    return get(slot(level, addr), entry_bytes());
}

static void set_entry(unsigned level, u64 addr, u64 v)
{
    if (pdpte_register(level))
        ctx.pdpte[(addr >> 30) & 3] = v;
    else
        put(slot(level, addr), entry_bytes(), v);
}

/* The entry with its flag bits replaced (the address kept). */
static u64 with_flags(unsigned level, u64 addr, u64 flags)
{
    return table_of(entry(level, addr)) | flags;
}

/* Maps addr: table entries from the top down to leaf_level use table_flags (tables are
 * allocated when missing), the leaf points at page with leaf_flags. For PAE the top
 * level is ctx.pdpte[] and always just present. */
static void map(u64 addr, unsigned leaf_level, u64 table_flags, u64 page, u64 leaf_flags)
{
    for (unsigned level = levels_of(ctx.fmt); level >= leaf_level; level--) {
        if (level == leaf_level) {
            set_entry(level, addr, page | leaf_flags);
            break;
        }
        u64 table = table_of(entry(level, addr));
        if (table < TABLES_START)
            table = alloc_table();
        set_entry(level, addr, table | (pdpte_register(level) ? P : table_flags));
    }
}

static struct paging_result walk(u64 addr, unsigned access)
{
    struct paging_result r;
    paging_walk(&ctx, addr, access, &r);
    return r;
}

static void expect_pf(u64 addr, unsigned access, u32 pfec)
{
    struct paging_result r = walk(addr, access);
    cr_assert_eq(r.fault, PAGING_PF, "addr %#llx access %#x: fault %d, expected #PF",
                 (unsigned long long)addr, access, r.fault);
    cr_assert_eq(r.pfec, pfec, "addr %#llx access %#x: pfec %#x, expected %#x",
                 (unsigned long long)addr, access, r.pfec, pfec);
}

static void expect_ok(u64 addr, unsigned access, u64 pa)
{
    struct paging_result r = walk(addr, access);
    cr_assert_eq(r.fault, PAGING_OK, "addr %#llx access %#x: fault %d pfec %#x",
                 (unsigned long long)addr, access, r.fault, r.pfec);
    cr_assert_eq(r.pa, pa, "addr %#llx: pa %#llx, expected %#llx", (unsigned long long)addr,
                 (unsigned long long)r.pa, (unsigned long long)pa);
}

/* ---- no paging ---- */

Test(paging, none_is_identity)
{
    ctx = make_ctx(PG_NONE);
    struct paging_result r = walk(0x123456789ull, ACC_WRITE | ACC_USER);
    cr_assert_eq(r.fault, PAGING_OK);
    cr_assert_eq(r.pa, 0x123456789ull);
    cr_assert(r.user && r.writable && r.executable && r.dirty);
    cr_assert_eq(mem.cmpxchg_calls, 0);
}

/* ---- 32-bit paging ---- */

Test(paging, p32_4k_translation_sets_accessed)
{
    ctx = make_ctx(PG_32);
    u64 va = 0x80403123;
    map(va, 1, PRWU, 0x7654000, PRWU);
    struct paging_result r = walk(va, ACC_READ);
    cr_assert_eq(r.fault, PAGING_OK);
    cr_assert_eq(r.pa, 0x7654123);
    cr_assert_eq(r.page_size, 4 * KiB);
    cr_assert(r.user && r.writable && r.executable && !r.dirty);
    cr_assert_eq(entry(2, va), with_flags(2, va, PRWU | A));
    cr_assert_eq(entry(1, va), 0x7654000 | PRWU | A);
}

Test(paging, p32_4m_page_with_pse)
{
    ctx = make_ctx(PG_32);
    u64 va = 0xc0312345;
    map(va, 2, 0, 0x1c00000, PRW | PS | G);
    struct paging_result r = walk(va, ACC_WRITE);
    cr_assert_eq(r.fault, PAGING_OK);
    cr_assert_eq(r.pa, 0x1c00000 + 0x312345);
    cr_assert_eq(r.page_size, 4 * MiB);
    cr_assert(r.global && r.dirty);
    cr_assert_eq(entry(2, va), 0x1c00000 | PRW | PS | G | A | D);
}

Test(paging, p32_ps_ignored_without_pse)
{
    ctx = make_ctx(PG_32);
    ctx.pse = false;
    u64 va = 0x00402abc;
    map(va, 1, PRW | PS, 0x99000, PRW);
    /* bit 21 set would be reserved in a 4M PDE; without PSE the PDE is a table pointer */
    expect_ok(va, ACC_READ, 0x99abc);
    /* with PSE the same PDE maps a 4M page; table address bits 20:13 become PA 39:32 */
    ctx.pse = true;
    u64 pde = entry(2, va);
    expect_ok(va, ACC_READ, (pde & 0xffc00000) | ((pde >> 13) & 0xff) << 32 | 0x2abc);
}

Test(paging, p32_pse36_high_address_bits)
{
    ctx = make_ctx(PG_32);
    ctx.maxphyaddr = 40;
    u64 va = 0x00500004;
    /* PDE bits 20:13 = physical bits 39:32 = 0xa5 */
    map(va, 2, 0, 0x00400000 | (0xa5ull << 13), PRW | PS);
    struct paging_result r = walk(va, ACC_READ);
    cr_assert_eq(r.fault, PAGING_OK);
    cr_assert_eq(r.pa, 0xa5ull << 32 | 0x00500004);
}

Test(paging, p32_pse36_bits_above_maxphyaddr_reserved)
{
    ctx = make_ctx(PG_32);
    ctx.maxphyaddr = 36; /* PDE bits 16:13 hold physical 35:32, 20:17 are reserved */
    u64 va = 0x00400000;
    map(va, 2, 0, 0x00400000 | (0xfull << 13), PRW | PS);
    expect_ok(va, ACC_READ, 0xfull << 32 | 0x400000);
    set_entry(2, va, entry(2, va) | BIT(17));
    expect_pf(va, ACC_READ, PFEC_P | PFEC_RSVD);
    set_entry(2, va, 0x00400000 | PRW | PS | BIT(21));
    expect_pf(va, ACC_WRITE | ACC_USER, PFEC_P | PFEC_RSVD | PFEC_W | PFEC_U);
    /* with MAXPHYADDR >= 40 only bit 21 is reserved */
    ctx.maxphyaddr = 46;
    set_entry(2, va, 0x00400000 | PRW | PS | BIT(20));
    expect_ok(va, ACC_READ, 0x80ull << 32 | 0x400000);
}

Test(paging, p32_not_present_error_codes)
{
    ctx = make_ctx(PG_32);
    u64 va = 0x00801000;
    expect_pf(va, ACC_READ, 0);
    expect_pf(va, ACC_WRITE | ACC_USER, PFEC_W | PFEC_U);
    map(va, 1, PRWU, 0x5000, 0);
    expect_pf(va, ACC_WRITE, PFEC_W);
    /* nothing walked is marked accessed when the walk fails */
    cr_assert_eq(entry(2, va) & 0xfff, PRWU);
}

Test(paging, p32_fetch_sets_I_only_with_smep)
{
    ctx = make_ctx(PG_32); /* EFER.NXE alone does not set I with 32-bit paging */
    u64 va = 0x00801000;
    expect_pf(va, ACC_EXEC, 0);
    ctx.smep = true;
    expect_pf(va, ACC_EXEC, PFEC_I);
}

Test(paging, p32_no_execute_disable)
{
    ctx = make_ctx(PG_32);
    u64 va = 0x1000;
    map(va, 1, PRWU, 0x3000, PRWU);
    expect_ok(va, ACC_EXEC | ACC_USER, 0x3000);
    cr_assert(walk(va, ACC_READ).executable);
}

/* ---- PAE paging ---- */

Test(paging, pae_4k_and_2m)
{
    ctx = make_ctx(PG_PAE);
    u64 va4k = 0x40201abc, va2m = 0xc0612345;
    map(va4k, 1, PRWU, 0xfedcba000ull, PRWU);
    map(va2m, 2, PRWU, 0x12340000000ull, PRWU | PS);
    struct paging_result r = walk(va4k, ACC_READ);
    cr_assert_eq(r.fault, PAGING_OK);
    cr_assert_eq(r.pa, 0xfedcbaabcull);
    cr_assert_eq(r.page_size, 4 * KiB);
    r = walk(va2m, ACC_READ);
    cr_assert_eq(r.fault, PAGING_OK);
    cr_assert_eq(r.pa, 0x12340012345ull);
    cr_assert_eq(r.page_size, 2 * MiB);
    /* CR4.PSE does not matter with PAE */
    ctx.pse = false;
    expect_ok(va2m, ACC_READ, 0x12340012345ull);
}

Test(paging, pae_pdpte_not_present_and_reserved)
{
    ctx = make_ctx(PG_PAE);
    u64 va = 0x80001000;
    expect_pf(va, ACC_READ | ACC_USER, PFEC_U);
    map(va, 1, PRW, 0x5000, PRW);
    expect_ok(va, ACC_READ, 0x5000);
    const u64 bad[] = { BIT(1), BIT(2), BIT(5), BIT(7), BIT(8), BIT(46), BIT(63) };
    for (unsigned i = 0; i < ARRAY_SIZE(bad); i++) {
        ctx.pdpte[2] = with_flags(3, va, P | bad[i]);
        expect_pf(va, ACC_READ, PFEC_P | PFEC_RSVD);
    }
}

Test(paging, pae_reserved_bits_in_pde_and_pte)
{
    ctx = make_ctx(PG_PAE);
    u64 va = 0x00201000, va2m = 0x00400000;
    map(va, 1, PRW, 0x5000, PRW);
    map(va2m, 2, PRW, 0x800000, PRW | PS);
    /* bits 62:MAXPHYADDR are reserved in PAE entries (not only up to 51) */
    const u64 high[] = { BIT(46), BIT(51), BIT(52), BIT(62) };
    for (unsigned i = 0; i < ARRAY_SIZE(high); i++) {
        set_entry(1, va, 0x5000 | PRW | high[i]);
        expect_pf(va, ACC_WRITE, PFEC_P | PFEC_RSVD | PFEC_W);
        set_entry(1, va, 0x5000 | PRW);
        set_entry(2, va, with_flags(2, va, PRW | high[i]));
        expect_pf(va, ACC_READ, PFEC_P | PFEC_RSVD);
        set_entry(2, va, with_flags(2, va, PRW));
    }
    /* 2M PDE: bits 20:13 reserved, bit 12 is PAT */
    set_entry(2, va2m, 0x800000 | PRW | PS | BIT(12));
    expect_ok(va2m, ACC_READ, 0x800000);
    set_entry(2, va2m, 0x800000 | PRW | PS | BIT(13));
    expect_pf(va2m, ACC_READ, PFEC_P | PFEC_RSVD);
    set_entry(2, va2m, 0x800000 | PRW | PS | BIT(20));
    expect_pf(va2m, ACC_READ, PFEC_P | PFEC_RSVD);
}

Test(paging, pae_nx_with_and_without_nxe)
{
    ctx = make_ctx(PG_PAE);
    u64 va = 0x00201000;
    map(va, 1, PRW, 0x5000, PRW | XD);
    expect_pf(va, ACC_EXEC, PFEC_P | PFEC_I);
    expect_ok(va, ACC_READ, 0x5000);
    ctx.nxe = false; /* XD is then a reserved bit */
    expect_pf(va, ACC_READ, PFEC_P | PFEC_RSVD);
    expect_pf(va, ACC_EXEC, PFEC_P | PFEC_RSVD); /* no I without NXE or SMEP */
    set_entry(1, va, 0x5000 | PRW);
    expect_ok(va, ACC_EXEC, 0x5000);
}

Test(paging, pae_load_pdptes)
{
    ctx = make_ctx(PG_PAE);
    u64 cr3 = 0x3020; /* 32-byte aligned: bits 4:0 ignored */
    u64 pd[4] = { 0x4000 | P, 0, 0x6000 | P | BIT(3) | BIT(4) | BIT(9) | BIT(11), 0x7000 };
    for (unsigned i = 0; i < 4; i++)
        put(0x3020 + 8 * i, 8, pd[i]);
    u64 out[4] = { 0 };
    cr_assert(paging_load_pdptes(&ctx, cr3 | 0x1f, out));
    for (unsigned i = 0; i < 4; i++)
        cr_assert_eq(out[i], pd[i]);
    /* reserved bits only matter in present PDPTEs */
    put(0x3028, 8, BIT(63) | BIT(1));
    cr_assert(paging_load_pdptes(&ctx, cr3, out));
    const u64 bad[] = { BIT(1), BIT(2), BIT(5), BIT(6), BIT(7), BIT(8), BIT(46), BIT(63) };
    for (unsigned i = 0; i < ARRAY_SIZE(bad); i++) {
        u64 keep[4] = { 1, 2, 3, 4 };
        put(0x3038, 8, 0x7000 | P | bad[i]);
        cr_assert(!paging_load_pdptes(&ctx, cr3, keep), "bit %#llx", (unsigned long long)bad[i]);
        cr_assert_eq(keep[0], 1, "registers untouched on failure");
    }
    /* a PDPT outside memory reads as all-ones: present with reserved bits */
    cr_assert(!paging_load_pdptes(&ctx, 0xfffff000, out));
}

/* ---- 4-level and 5-level paging ---- */

Test(paging, long4_4k_2m_1g)
{
    ctx = make_ctx(PG_LONG4);
    u64 va4k = 0x00007f1234567abcull, va2m = 0xffff800000412345ull, va1g = 0x0000004087654321ull;
    map(va4k, 1, PRWU, 0x3456789000ull, PRWU);
    map(va2m, 2, PRWU, 0x200000000ull, PRWU | PS);
    map(va1g, 3, PRWU, 0x3fc0000000ull, PRWU | PS);
    struct paging_result r = walk(va4k, ACC_READ);
    cr_assert_eq(r.fault, PAGING_OK);
    cr_assert_eq(r.pa, 0x3456789abcull);
    cr_assert_eq(r.page_size, 4 * KiB);
    r = walk(va2m, ACC_READ);
    cr_assert_eq(r.pa, 0x200012345ull);
    cr_assert_eq(r.page_size, 2 * MiB);
    r = walk(va1g, ACC_READ);
    cr_assert_eq(r.fault, PAGING_OK);
    cr_assert_eq(r.pa, 0x3fc7654321ull);
    cr_assert_eq(r.page_size, 1 * GiB);
}

Test(paging, long4_1g_needs_pdpe1gb)
{
    ctx = make_ctx(PG_LONG4);
    ctx.pdpe1gb = false;
    u64 va = 0x40000000;
    map(va, 3, PRWU, 0x40000000, PRWU | PS);
    expect_pf(va, ACC_READ, PFEC_P | PFEC_RSVD);
}

Test(paging, long_large_page_offset_bits_reserved)
{
    ctx = make_ctx(PG_LONG4);
    u64 va2m = 0x200000, va1g = 0x80000000;
    map(va2m, 2, PRW, 0x400000, PRW | PS);
    map(va1g, 3, PRW, 0x80000000, PRW | PS);
    set_entry(2, va2m, entry(2, va2m) | BIT(12)); /* PAT */
    set_entry(3, va1g, entry(3, va1g) | BIT(12));
    expect_ok(va2m, ACC_READ, 0x400000);
    expect_ok(va1g, ACC_READ, 0x80000000);
    set_entry(2, va2m, 0x400000 | PRW | PS | BIT(20));
    expect_pf(va2m, ACC_READ, PFEC_P | PFEC_RSVD);
    set_entry(3, va1g, 0x80000000 | PRW | PS | BIT(29));
    expect_pf(va1g, ACC_READ, PFEC_P | PFEC_RSVD);
    set_entry(3, va1g, 0x80000000 | PRW | PS | BIT(13));
    expect_pf(va1g, ACC_READ, PFEC_P | PFEC_RSVD);
}

Test(paging, long_ps_reserved_in_pml4e_and_pml5e)
{
    ctx = make_ctx(PG_LONG4);
    u64 va = 0x1000;
    map(va, 1, PRW, 0x5000, PRW);
    set_entry(4, va, entry(4, va) | PS);
    expect_pf(va, ACC_READ, PFEC_P | PFEC_RSVD);

    ctx = make_ctx(PG_LONG5);
    map(va, 1, PRW, 0x5000, PRW);
    expect_ok(va, ACC_READ, 0x5000);
    set_entry(5, va, entry(5, va) | PS);
    expect_pf(va, ACC_READ, PFEC_P | PFEC_RSVD);
}

Test(paging, long_reserved_above_maxphyaddr_every_level)
{
    for (unsigned level = 1; level <= 4; level++) {
        ctx = make_ctx(PG_LONG4);
        ctx.maxphyaddr = 40;
        u64 va = 0x1000;
        map(va, 1, PRW, 0x5000, PRW);
        set_entry(level, va, entry(level, va) | BIT(40));
        expect_pf(va, ACC_READ, PFEC_P | PFEC_RSVD);
        /* the failed walk set no accessed bit */
        for (unsigned l = 1; l <= 4; l++)
            cr_assert_eq(entry(l, va) & A, 0);
        set_entry(level, va, entry(level, va) & ~BIT(40));
        /* bits 62:52 are ignored (not reserved) in 4-level paging */
        set_entry(level, va, entry(level, va) | BIT(55) | BIT(62));
        expect_ok(va, ACC_READ, 0x5000);
        set_entry(level, va, entry(level, va) | BIT(51));
        expect_pf(va, ACC_WRITE | ACC_USER, PFEC_P | PFEC_RSVD | PFEC_W | PFEC_U);
    }
}

Test(paging, long_maxphyaddr_52_has_no_address_reserved_bits)
{
    ctx = make_ctx(PG_LONG4);
    ctx.maxphyaddr = 52;
    u64 va = 0x1000;
    map(va, 1, PRW, 0xf000000000000ull, PRW);
    expect_ok(va, ACC_READ, 0xf000000000000ull);
}

Test(paging, long_xd_reserved_without_nxe)
{
    for (unsigned level = 1; level <= 4; level++) {
        ctx = make_ctx(PG_LONG4);
        u64 va = 0x1000;
        map(va, 1, PRW, 0x5000, PRW);
        set_entry(level, va, entry(level, va) | XD);
        expect_pf(va, ACC_EXEC, PFEC_P | PFEC_I);
        expect_ok(va, ACC_READ, 0x5000);
        cr_assert(!walk(va, ACC_READ).executable);
        ctx.nxe = false;
        expect_pf(va, ACC_READ, PFEC_P | PFEC_RSVD);
    }
}

Test(paging, long5_uses_bits_56_48)
{
    ctx = make_ctx(PG_LONG5);
    u64 va_a = 0x0001000000001000ull, va_b = 0x00ff000000001000ull;
    map(va_a, 1, PRWU, 0xa000, PRWU);
    expect_ok(va_a, ACC_READ, 0xa000);
    /* a different PML5 index is not mapped */
    expect_pf(va_b, ACC_READ, 0);
    cr_assert_eq(slot(5, va_a), (ctx.root & ~0xfffull) + 8);
}

Test(paging, long_not_present_at_each_level)
{
    for (unsigned level = 1; level <= 4; level++) {
        ctx = make_ctx(PG_LONG4);
        u64 va = 0x7fff12345000ull;
        map(va, 1, PRWU, 0x5000, PRWU);
        set_entry(level, va, entry(level, va) & ~P);
        expect_pf(va, ACC_READ | ACC_USER, PFEC_U);
        expect_pf(va, ACC_EXEC, PFEC_I);
        for (unsigned l = 1; l <= 4; l++)
            cr_assert_eq(entry(l, va) & A, 0, "A set at level %u", l);
    }
}

Test(paging, not_present_precedes_reserved_below)
{
    ctx = make_ctx(PG_LONG4);
    u64 va = 0x1000;
    map(va, 1, PRW, 0x5000, PRW | BIT(50));
    set_entry(2, va, entry(2, va) & ~P);
    expect_pf(va, ACC_READ, 0);
    /* reserved bits of a not-present entry are ignored */
    set_entry(2, va, BIT(50) | BIT(7));
    expect_pf(va, ACC_READ, 0);
}

Test(paging, open_bus_table_faults_reserved)
{
    ctx = make_ctx(PG_LONG4);
    u64 va = 0x1000;
    map(va, 1, PRW, 0x5000, PRW);
    set_entry(3, va, 0x7ff000000ull | PRW); /* page directory outside memory */
    expect_pf(va, ACC_READ, PFEC_P | PFEC_RSVD);
}

/* ---- access rights ---- */

Test(paging, user_access_to_supervisor_page)
{
    ctx = make_ctx(PG_LONG4);
    u64 va = 0x1000;
    map(va, 1, PRWU, 0x5000, PRW);
    expect_pf(va, ACC_READ | ACC_USER, PFEC_P | PFEC_U);
    expect_pf(va, ACC_WRITE | ACC_USER, PFEC_P | PFEC_W | PFEC_U);
    expect_pf(va, ACC_EXEC | ACC_USER, PFEC_P | PFEC_U | PFEC_I);
    expect_ok(va, ACC_READ, 0x5000);
    /* U/S must be set at every level: a supervisor PDPTE over a user PTE */
    set_entry(1, va, 0x5000 | PRWU);
    set_entry(3, va, entry(3, va) & ~US);
    expect_pf(va, ACC_READ | ACC_USER, PFEC_P | PFEC_U);
    cr_assert(!walk(va, ACC_READ).user);
}

Test(paging, read_write_combined_over_levels)
{
    ctx = make_ctx(PG_LONG4);
    u64 va = 0x1000;
    map(va, 1, PRWU, 0x5000, PRWU);
    expect_ok(va, ACC_WRITE | ACC_USER, 0x5000);
    set_entry(2, va, entry(2, va) & ~RW);
    expect_pf(va, ACC_WRITE | ACC_USER, PFEC_P | PFEC_W | PFEC_U);
    expect_ok(va, ACC_READ | ACC_USER, 0x5000);
    cr_assert(!walk(va, ACC_READ).writable);
}

Test(paging, supervisor_write_and_cr0_wp)
{
    ctx = make_ctx(PG_LONG4);
    u64 sup = 0x1000, usr = 0x2000;
    map(sup, 1, PRWU, 0x5000, P);
    map(usr, 1, PRWU, 0x6000, P | US);
    ctx.wp = false;
    expect_ok(sup, ACC_WRITE, 0x5000);
    expect_ok(usr, ACC_WRITE, 0x6000);
    ctx.wp = true;
    expect_pf(sup, ACC_WRITE, PFEC_P | PFEC_W);
    expect_pf(usr, ACC_WRITE, PFEC_P | PFEC_W);
    /* WP does not matter for user writes: they always need R/W */
    ctx.wp = false;
    expect_pf(usr, ACC_WRITE | ACC_USER, PFEC_P | PFEC_W | PFEC_U);
}

Test(paging, nx_at_upper_level_only)
{
    ctx = make_ctx(PG_LONG4);
    u64 va = 0x1000;
    map(va, 1, PRWU, 0x5000, PRWU);
    expect_ok(va, ACC_EXEC | ACC_USER, 0x5000);
    set_entry(3, va, entry(3, va) | XD);
    expect_pf(va, ACC_EXEC | ACC_USER, PFEC_P | PFEC_U | PFEC_I);
    expect_pf(va, ACC_EXEC, PFEC_P | PFEC_I);
    expect_ok(va, ACC_WRITE | ACC_USER, 0x5000);
}

Test(paging, smep)
{
    ctx = make_ctx(PG_LONG4);
    u64 usr = 0x1000, sup = 0x2000;
    map(usr, 1, PRWU, 0x5000, PRWU);
    map(sup, 1, PRWU, 0x6000, PRW);
    expect_ok(usr, ACC_EXEC, 0x5000);
    ctx.smep = true;
    expect_pf(usr, ACC_EXEC, PFEC_P | PFEC_I);
    expect_ok(sup, ACC_EXEC, 0x6000);
    expect_ok(usr, ACC_READ, 0x5000);        /* SMEP is about fetches only */
    expect_ok(usr, ACC_EXEC | ACC_USER, 0x5000);
    /* I is reported with SMEP even when NXE is off */
    ctx.nxe = false;
    expect_pf(usr, ACC_EXEC, PFEC_P | PFEC_I);
}

Test(paging, smap_ac_and_implicit)
{
    ctx = make_ctx(PG_LONG4);
    u64 usr = 0x1000, sup = 0x2000;
    map(usr, 1, PRWU, 0x5000, PRWU);
    map(sup, 1, PRWU, 0x6000, PRW);
    expect_ok(usr, ACC_READ, 0x5000);
    expect_ok(usr, ACC_READ | ACC_IMPLICIT, 0x5000);
    ctx.smap = true;
    expect_pf(usr, ACC_READ, PFEC_P);
    expect_pf(usr, ACC_WRITE, PFEC_P | PFEC_W);
    expect_pf(usr, ACC_READ | ACC_IMPLICIT, PFEC_P);
    ctx.ac = true;
    expect_ok(usr, ACC_READ, 0x5000);
    expect_ok(usr, ACC_WRITE, 0x5000);
    expect_pf(usr, ACC_READ | ACC_IMPLICIT, PFEC_P);       /* AC does not help */
    expect_pf(usr, ACC_WRITE | ACC_IMPLICIT, PFEC_P | PFEC_W);
    /* supervisor pages and user-mode accesses are not affected by SMAP */
    ctx.ac = false;
    expect_ok(sup, ACC_WRITE | ACC_IMPLICIT, 0x6000);
    expect_ok(usr, ACC_WRITE | ACC_USER, 0x5000);
    /* fetches are SMEP's business, not SMAP's */
    expect_ok(usr, ACC_EXEC, 0x5000);
}

Test(paging, smap_ac_write_still_obeys_wp)
{
    ctx = make_ctx(PG_LONG4);
    ctx.smap = ctx.ac = true;
    u64 usr = 0x1000;
    map(usr, 1, PRWU, 0x5000, P | US);
    expect_ok(usr, ACC_READ, 0x5000);
    expect_pf(usr, ACC_WRITE, PFEC_P | PFEC_W);
    ctx.wp = false;
    expect_ok(usr, ACC_WRITE, 0x5000);
}

/* ---- accessed and dirty flags ---- */

Test(paging, write_sets_dirty_on_leaf_only)
{
    ctx = make_ctx(PG_LONG4);
    u64 va = 0x1000;
    map(va, 1, PRW, 0x5000, PRW);
    struct paging_result r = walk(va, ACC_READ);
    cr_assert(!r.dirty);
    for (unsigned l = 1; l <= 4; l++)
        cr_assert_eq(entry(l, va) & (A | D), A, "level %u", l);
    r = walk(va, ACC_WRITE);
    cr_assert(r.dirty);
    cr_assert_eq(entry(1, va) & (A | D), A | D);
    for (unsigned l = 2; l <= 4; l++)
        cr_assert_eq(entry(l, va) & D, 0, "level %u", l);
    /* a second write finds everything set and writes nothing */
    unsigned calls = mem.cmpxchg_calls;
    walk(va, ACC_WRITE);
    cr_assert_eq(mem.cmpxchg_calls, calls);
}

Test(paging, large_page_dirty)
{
    ctx = make_ctx(PG_PAE);
    u64 va = 0x00400000;
    map(va, 2, PRW, 0x800000, PRW | PS);
    walk(va, ACC_WRITE);
    cr_assert_eq(entry(2, va), 0x800000 | PRW | PS | A | D);
}

Test(paging, no_ad_on_permission_fault)
{
    ctx = make_ctx(PG_LONG4);
    u64 va = 0x1000;
    map(va, 1, PRW, 0x5000, P);
    expect_pf(va, ACC_WRITE, PFEC_P | PFEC_W);
    for (unsigned l = 1; l <= 4; l++)
        cr_assert_eq(entry(l, va) & (A | D), 0, "level %u", l);
    cr_assert_eq(mem.cmpxchg_calls, 0);
}

Test(paging, no_ad_flag_suppresses_updates)
{
    ctx = make_ctx(PG_LONG4);
    u64 va = 0x1000;
    map(va, 1, PRW, 0x5000, PRW);
    struct paging_result r = walk(va, ACC_WRITE | ACC_NO_AD);
    cr_assert_eq(r.fault, PAGING_OK);
    cr_assert(!r.dirty);
    cr_assert_eq(mem.cmpxchg_calls, 0);
    for (unsigned l = 1; l <= 4; l++)
        cr_assert_eq(entry(l, va) & (A | D), 0);
}

Test(paging, concurrent_change_restarts_walk)
{
    ctx = make_ctx(PG_LONG4);
    u64 va = 0x1000, va2 = 0x2000;
    map(va, 1, PRW, 0x5000, PRW);
    map(va2, 1, PRW, 0x6000, PRW);
    /* another CPU marks the PML4E accessed between our read and our update */
    mem.race_armed = true;
    mem.race_pa = slot(4, va);
    mem.race_val = entry(4, va) | A;
    expect_ok(va, ACC_WRITE, 0x5000);
    cr_assert_eq(entry(1, va) & (A | D), A | D);
    /* another CPU remaps the page meanwhile: the restarted walk sees the new PTE */
    mem.race_armed = true;
    mem.race_pa = slot(1, va2);
    mem.race_val = 0x7000 | PRW;
    expect_ok(va2, ACC_READ, 0x7000);
    /* or unmaps it: the restarted walk faults and sets nothing more */
    set_entry(1, va2, 0x6000 | PRW);
    mem.race_armed = true;
    mem.race_val = 0;
    expect_pf(va2, ACC_READ, 0);
}

Test(paging, global_bit_reported)
{
    ctx = make_ctx(PG_LONG4);
    u64 va = 0x1000, va2 = 0x2000;
    map(va, 1, PRW | G, 0x5000, PRW); /* G in a table entry is ignored */
    map(va2, 1, PRW, 0x6000, PRW | G);
    cr_assert(!walk(va, ACC_READ).global);
    cr_assert(walk(va2, ACC_READ).global);
}

/* ---- EPT ---- */

static void expect_ept_violation(u64 gpa, unsigned access, u64 qual)
{
    struct paging_result r = walk(gpa, access);
    cr_assert_eq(r.fault, PAGING_EPT_VIOLATION, "gpa %#llx access %#x: fault %d",
                 (unsigned long long)gpa, access, r.fault);
    cr_assert_eq(r.ept_qual, qual, "gpa %#llx access %#x: qual %#llx, expected %#llx",
                 (unsigned long long)gpa, access, (unsigned long long)r.ept_qual,
                 (unsigned long long)qual);
}

static void expect_ept_misconfig(u64 gpa, unsigned access)
{
    struct paging_result r = walk(gpa, access);
    cr_assert_eq(r.fault, PAGING_EPT_MISCONFIG, "gpa %#llx: fault %d",
                 (unsigned long long)gpa, r.fault);
}

Test(paging, ept4_translations_and_memtype)
{
    ctx = make_ctx(PG_EPT4);
    ctx.root |= 6 | (3 << 3); /* EPTP: WB, 4-level */
    u64 g4k = 0x12345678, g2m = 0x40212345, g1g = 0xd2345678ull;
    map(g4k, 1, ERWX, 0xabcde000ull, ERWX | EMT(6) | EIPAT);
    map(g2m, 2, ERWX, 0x3400000000ull, ERWX | EMT(0) | PS);
    map(g1g, 3, ERWX, 0xc0000000ull, ER | EMT(4) | PS);
    struct paging_result r = walk(g4k, ACC_WRITE);
    cr_assert_eq(r.fault, PAGING_OK);
    cr_assert_eq(r.pa, 0xabcde678ull);
    cr_assert_eq(r.memtype, 6);
    cr_assert(r.ipat && r.readable && r.writable && r.executable && r.dirty);
    r = walk(g2m, ACC_EXEC);
    cr_assert_eq(r.pa, 0x3400012345ull);
    cr_assert_eq(r.page_size, 2 * MiB);
    cr_assert_eq(r.memtype, 0);
    r = walk(g1g, ACC_READ);
    cr_assert_eq(r.fault, PAGING_OK);
    cr_assert_eq(r.pa, 0xd2345678ull);
    cr_assert_eq(r.page_size, 1 * GiB);
    cr_assert(!r.writable && !r.executable);
    /* without A/D enabled nothing is written */
    cr_assert_eq(mem.cmpxchg_calls, 0);
}

Test(paging, ept_1g_needs_capability)
{
    ctx = make_ctx(PG_EPT4);
    ctx.pdpe1gb = false;
    u64 gpa = 0x40000000;
    map(gpa, 3, ERWX, 0x40000000, ERWX | EMT(6) | PS);
    expect_ept_misconfig(gpa, ACC_READ);
}

Test(paging, ept_not_present_qualification)
{
    ctx = make_ctx(PG_EPT4);
    u64 gpa = 0x1000;
    expect_ept_violation(gpa, ACC_READ, BIT(0));
    expect_ept_violation(gpa, ACC_WRITE, BIT(1));
    expect_ept_violation(gpa, ACC_EXEC, BIT(2));
    map(gpa, 1, ERWX, 0x5000, 0);
    expect_ept_violation(gpa, ACC_WRITE, BIT(1));
}

Test(paging, ept_permission_violation_qualification)
{
    ctx = make_ctx(PG_EPT4);
    u64 gpa = 0x1000;
    map(gpa, 1, ERWX, 0x5000, ER | EX | EMT(6));
    expect_ept_violation(gpa, ACC_WRITE, BIT(1) | BIT(3) | BIT(5));
    expect_ok(gpa, ACC_READ, 0x5000);
    expect_ok(gpa, ACC_EXEC, 0x5000);
    set_entry(1, gpa, 0x5000 | ER | EW | EMT(6));
    expect_ept_violation(gpa, ACC_EXEC, BIT(2) | BIT(3) | BIT(4));
    /* rights are ANDed over the levels: a PDPTE without W hides the leaf's W */
    set_entry(1, gpa, 0x5000 | ERWX | EMT(6));
    set_entry(3, gpa, with_flags(3, gpa, ER | EX));
    expect_ept_violation(gpa, ACC_WRITE, BIT(1) | BIT(3) | BIT(5));
    set_entry(4, gpa, with_flags(4, gpa, ER | EW));
    expect_ept_violation(gpa, ACC_EXEC, BIT(2) | BIT(3));
}

Test(paging, ept_execute_only)
{
    ctx = make_ctx(PG_EPT4);
    u64 gpa = 0x1000;
    map(gpa, 1, ERWX, 0x5000, EX | EMT(6));
    expect_ok(gpa, ACC_EXEC, 0x5000);
    expect_ept_violation(gpa, ACC_READ, BIT(0) | BIT(5));
}

Test(paging, ept_misconfigurations)
{
    u64 gpa = 0x1000;
    /* write without read, at a leaf and at a table level */
    ctx = make_ctx(PG_EPT4);
    map(gpa, 1, ERWX, 0x5000, EW | EMT(6));
    expect_ept_misconfig(gpa, ACC_READ);
    set_entry(1, gpa, 0x5000 | ERWX | EMT(6));
    set_entry(2, gpa, with_flags(2, gpa, EW | EX));
    expect_ept_misconfig(gpa, ACC_EXEC);
    set_entry(2, gpa, with_flags(2, gpa, ERWX));
    expect_ok(gpa, ACC_READ, 0x5000);
    /* reserved memory types 2, 3, 7 in a leaf; 0,1,4,5,6 are fine */
    for (unsigned t = 0; t < 8; t++) {
        set_entry(1, gpa, 0x5000 | ERWX | EMT(t));
        struct paging_result r = walk(gpa, ACC_READ);
        bool bad = t == 2 || t == 3 || t == 7;
        cr_assert_eq(r.fault, bad ? PAGING_EPT_MISCONFIG : PAGING_OK, "memtype %u", t);
    }
    /* bits 7:3 of a table entry are reserved */
    set_entry(1, gpa, 0x5000 | ERWX | EMT(6));
    for (unsigned bit = 3; bit <= 7; bit++) {
        for (unsigned level = 2; level <= 4; level++) {
            u64 e = entry(level, gpa);
            set_entry(level, gpa, e | BIT(bit));
            expect_ept_misconfig(gpa, ACC_READ);
            set_entry(level, gpa, e);
        }
    }
    /* bits above MAXPHYADDR */
    ctx.maxphyaddr = 39;
    set_entry(1, gpa, 0x5000 | ERWX | EMT(6) | BIT(39));
    expect_ept_misconfig(gpa, ACC_READ);
    /* bits 63:52 are ignored */
    set_entry(1, gpa, 0x5000 | ERWX | EMT(6) | BIT(63) | BIT(52));
    expect_ok(gpa, ACC_READ, 0x5000);
    /* a misconfiguration below a not-present entry is never seen */
    set_entry(1, gpa, 0x5000 | EW);
    set_entry(2, gpa, with_flags(2, gpa, 0));
    expect_ept_violation(gpa, ACC_READ, BIT(0));
}

Test(paging, ept_large_page_reserved_bits)
{
    ctx = make_ctx(PG_EPT4);
    u64 g2m = 0x200000, g1g = 0x80000000;
    map(g2m, 2, ERWX, 0x400000, ERWX | EMT(6) | PS);
    map(g1g, 3, ERWX, 0x80000000, ERWX | EMT(6) | PS);
    expect_ok(g2m, ACC_READ, 0x400000);
    /* EPT has no PAT bit: bit 12 is reserved in a large leaf */
    set_entry(2, g2m, entry(2, g2m) | BIT(12));
    expect_ept_misconfig(g2m, ACC_READ);
    set_entry(3, g1g, entry(3, g1g) | BIT(29));
    expect_ept_misconfig(g1g, ACC_READ);
    /* PS in a PML4E is reserved */
    ctx = make_ctx(PG_EPT4);
    map(g2m, 2, ERWX, 0x400000, ERWX | EMT(6) | PS);
    set_entry(4, g2m, entry(4, g2m) | PS);
    expect_ept_misconfig(g2m, ACC_READ);
}

Test(paging, ept_accessed_dirty)
{
    ctx = make_ctx(PG_EPT4);
    ctx.ept_ad = true;
    u64 gpa = 0x1000;
    map(gpa, 1, ERWX, 0x5000, ERWX | EMT(6));
    struct paging_result r = walk(gpa, ACC_READ);
    cr_assert(!r.dirty);
    for (unsigned l = 1; l <= 4; l++)
        cr_assert_eq(entry(l, gpa) & (EA | ED), EA, "level %u", l);
    r = walk(gpa, ACC_WRITE);
    cr_assert(r.dirty);
    cr_assert_eq(entry(1, gpa) & (EA | ED), EA | ED);
    cr_assert_eq(entry(2, gpa) & ED, 0);
    /* no updates on a violation */
    u64 gpa2 = 0x2000;
    map(gpa2, 1, ERWX, 0x6000, ER | EMT(6));
    for (unsigned l = 1; l <= 3; l++)
        set_entry(l, gpa2, entry(l, gpa2) & ~EA);
    expect_ept_violation(gpa2, ACC_WRITE, BIT(1) | BIT(3));
    cr_assert_eq(entry(1, gpa2) & EA, 0);
    cr_assert_eq(entry(2, gpa2) & EA, 0);
}

Test(paging, ept5_translation)
{
    ctx = make_ctx(PG_EPT5);
    u64 gpa = 0x0003000000005000ull;
    ctx.maxphyaddr = 52;
    map(gpa, 1, ERWX, 0x9000, ER | EMT(6));
    expect_ok(gpa, ACC_READ, 0x9000);
    expect_ept_violation(gpa, ACC_WRITE, BIT(1) | BIT(3));
}

Test(paging, ept4_address_beyond_48_bits)
{
    ctx = make_ctx(PG_EPT4);
    ctx.maxphyaddr = 52;
    u64 gpa = 0x1000;
    map(gpa, 1, ERWX, 0x5000, ERWX | EMT(6));
    expect_ok(gpa, ACC_READ, 0x5000);
    expect_ept_violation(gpa | BIT(48), ACC_READ, BIT(0));
}
