/* The one page walker: every paging format is described by a row of data (levels, index
 * width, entry size, which rules apply) and walked by the same loop. References are to
 * the Intel SDM Vol. 3A: 4.3 (32-bit), 4.4 (PAE), 4.5 (4/5-level), 4.6 (access rights),
 * 4.7 (#PF error code), 4.8 (A/D), and Vol. 3C 29.3 (EPT). */
#include <string.h>

#include "cpu/paging.h"

#include "cpu/cpu.h"

/* Bits of ordinary paging entries. */
#define PTE_P BIT(0)
#define PTE_RW BIT(1)
#define PTE_US BIT(2)
#define PTE_A BIT(5)
#define PTE_D BIT(6)
#define PTE_PS BIT(7) /* page size, at the same place in EPT entries */
#define PTE_G BIT(8)
#define PTE_XD BIT(63)

/* Bits of EPT entries. */
#define EPT_R BIT(0)
#define EPT_W BIT(1)
#define EPT_X BIT(2)
#define EPT_RWX (EPT_R | EPT_W | EPT_X)
#define EPT_MEMTYPE_SHIFT 3
#define EPT_IPAT BIT(6)
#define EPT_A BIT(8)
#define EPT_D BIT(9)

/* bits hi:lo of a 64-bit value */
#define BITS(hi, lo) (MASK((hi) + 1) & ~MASK(lo))

enum entry_kind {
    KIND_LEGACY, /* 32-bit paging: 4-byte entries, no XD */
    KIND_PAE,    /* PAE: top level in PDPTE registers, reserved bits up to 62 */
    KIND_LONG,   /* 4/5-level paging */
    KIND_EPT,    /* EPT: R/W/X instead of P, R/W, U/S, XD */
};

struct walk_format {
    enum entry_kind kind;
    u8 levels;        /* level 1 = page table ... levels = top */
    u8 index_bits;    /* linear-address bits consumed per level */
    u8 entry_bytes;
    u8 addr_bits;     /* width of the address translated */
};

static const struct walk_format formats[] = {
    [PG_32] = { KIND_LEGACY, 2, 10, 4, 32 },
    [PG_PAE] = { KIND_PAE, 3, 9, 8, 32 },
    [PG_LONG4] = { KIND_LONG, 4, 9, 8, 48 },
    [PG_LONG5] = { KIND_LONG, 5, 9, 8, 57 },
    [PG_EPT4] = { KIND_EPT, 4, 9, 8, 48 },
    [PG_EPT5] = { KIND_EPT, 5, 9, 8, 57 },
};

/* Accessed and dirty flag positions by kind (EPT: only with ctx->ept_ad). */
static u64 accessed_bit(enum entry_kind k) { return k == KIND_EPT ? EPT_A : PTE_A; }
static u64 dirty_bit(enum entry_kind k) { return k == KIND_EPT ? EPT_D : PTE_D; }

static unsigned phys_bits(const struct paging_ctx *ctx)
{
    unsigned m = ctx->maxphyaddr;
    return m < 32 ? 32 : m > 52 ? 52 : m;
}

static unsigned level_shift(const struct walk_format *f, unsigned level)
{
    return 12 + f->index_bits * (level - 1);
}

/* Whether bit 7 of an entry at this level (>= 2) selects a page rather than a table. */
static bool large_page_allowed(const struct paging_ctx *ctx, const struct walk_format *f,
                               unsigned level)
{
    switch (level) {
    case 2: return f->kind != KIND_LEGACY || ctx->pse;
    case 3: return (f->kind == KIND_LONG || f->kind == KIND_EPT) && ctx->pdpe1gb;
    default: return false;
    }
}

/* Reserved bits of a present entry (SDM Vol. 3A tables 4-4..4-20, Vol. 3C 29.3.2). */
static u64 reserved_bits(const struct paging_ctx *ctx, const struct walk_format *f,
                         unsigned level, bool leaf)
{
    unsigned m = phys_bits(ctx);
    unsigned shift = level_shift(f, level);
    bool large = leaf && level > 1;
    u64 r = 0;

    switch (f->kind) {
    case KIND_LEGACY:
        /* Only a 4M PDE has reserved bits: bit 21 and the PSE-36 address bits (20:13 hold
         * physical bits 39:32) beyond MAXPHYADDR, which is at most 40 here. */
        if (large) {
            unsigned m40 = m > 40 ? 40 : m;
            r = BITS(21, m40 - 19);
        }
        return r;
    case KIND_PAE:
        if (level == 3) /* a PDPTE: bits 2:1, 8:5 and 63:M */
            return BITS(2, 1) | BITS(8, 5) | BITS(63, m);
        r = BITS(62, m) | (ctx->nxe ? 0 : PTE_XD);
        break;
    case KIND_LONG:
        r = (m < 52 ? BITS(51, m) : 0) | (ctx->nxe ? 0 : PTE_XD);
        break;
    case KIND_EPT:
        r = m < 52 ? BITS(51, m) : 0;
        if (!leaf)
            r |= BITS(7, 3); /* no memory type, ignore-PAT or page size in a table entry */
        break;
    }
    if (!leaf && level > 1)
        r |= PTE_PS; /* bit 7 set where no large page is allowed (PML4E, PML5E, 1G) */
    if (large) /* the page offset bits of the address field; bit 12 is PAT outside EPT */
        r |= BITS(shift - 1, f->kind == KIND_EPT ? 12 : 13);
    return r;
}

/* Physical address of the page or table an entry references (reserved bits above
 * MAXPHYADDR have been checked before, so only the architectural field is masked). */
static u64 entry_address(const struct walk_format *f, u64 e, unsigned shift, bool large)
{
    if (f->kind == KIND_LEGACY) {
        if (!large)
            return e & 0xfffff000ull;
        return (e & 0xffc00000ull) | (((e >> 13) & 0xff) << 32);
    }
    return e & BITS(51, shift);
}

/* EPT memory types 2, 3 and 7 are reserved (SDM Vol. 3C 29.3.3.1). */
static bool ept_memtype_reserved(unsigned type)
{
    return type == 2 || type == 3 || type == 7;
}

/* One paging-structure entry used by the walk, remembered for the A/D update. */
struct used_entry {
    u64 pa, val;
    bool in_memory; /* false for PAE PDPTE registers, which have no A bit */
};

enum walk_step { WALK_DONE, WALK_RESTART };

/* EPT violation qualification (SDM Vol. 3C 28.3.3.2 / 29.3.3.2): bits 0..2 describe the
 * access, bits 3..5 the R/W/X rights ANDed over the entries walked, so all clear when an
 * entry was not present. */
static void fail_ept_violation(struct paging_result *res, unsigned access, bool readable,
                               bool writable, bool executable)
{
    bool write = access & ACC_WRITE, exec = access & ACC_EXEC;
    res->fault = PAGING_EPT_VIOLATION;
    res->ept_qual = (write ? BIT(1) : exec ? BIT(2) : BIT(0)) | (readable ? BIT(3) : 0) |
                    (writable ? BIT(4) : 0) | (executable ? BIT(5) : 0);
}

static void fail_pf(struct paging_result *res, u32 pfec)
{
    res->fault = PAGING_PF;
    res->pfec = pfec;
}

/* #PF error code bits that describe the access (SDM 4.7); I only with SMEP or PAE+NXE. */
static u32 access_pfec(const struct paging_ctx *ctx, const struct walk_format *f,
                       unsigned access)
{
    u32 pfec = 0;
    if (access & ACC_WRITE)
        pfec |= PFEC_W;
    if (access & ACC_USER)
        pfec |= PFEC_U;
    if ((access & ACC_EXEC) && (ctx->smep || (ctx->nxe && f->kind != KIND_LEGACY)))
        pfec |= PFEC_I;
    return pfec;
}

/* Access rights of a valid translation (SDM 4.6): true if the access is allowed. */
static bool access_allowed(const struct paging_ctx *ctx, unsigned access, bool user_page,
                           bool writable, bool executable)
{
    bool write = access & ACC_WRITE, exec = access & ACC_EXEC;

    if (access & ACC_USER) {
        if (!user_page)
            return false;
        if (write)
            return writable;
        return !exec || executable;
    }
    if (exec)
        return executable && !(user_page && ctx->smep);
    /* Supervisor data access. SMAP blocks user pages unless explicit and EFLAGS.AC. */
    if (user_page && ctx->smap && ((access & ACC_IMPLICIT) || !ctx->ac))
        return false;
    return !write || writable || !ctx->wp;
}

static enum walk_step walk_once(const struct paging_ctx *ctx, const struct walk_format *f,
                                u64 addr, unsigned access, struct paging_result *res)
{
    bool ept = f->kind == KIND_EPT;
    unsigned m = phys_bits(ctx);
    struct used_entry used[5];
    unsigned n_used = 0;
    /* Rights ANDed over the levels: ordinary paging uses readable=1, user, writable,
     * executable; EPT uses readable, writable, executable from R/W/X. */
    bool readable = true, user_page = true, writable = true, executable = true;
    u64 table = 0, leaf = 0;
    unsigned shift = 12;

    if (f->kind == KIND_LEGACY)
        table = ctx->root & 0xfffff000ull;
    else if (f->kind != KIND_PAE)
        table = ctx->root & BITS(m - 1, 12);

    for (unsigned level = f->levels; level >= 1; level--) {
        shift = level_shift(f, level);
        u64 index = (addr >> shift) & MASK(f->index_bits);
        struct used_entry *u = &used[n_used++];

        if (f->kind == KIND_PAE && level == 3) {
            *u = (struct used_entry){ 0, ctx->pdpte[index & 3], false };
        } else {
            u->pa = table + index * f->entry_bytes;
            u->in_memory = true;
            if (ctx->ops.read(ctx->ops.opaque, u->pa, f->entry_bytes, &u->val) != 0)
                u->val = MASK(f->entry_bytes * 8); /* open bus */
        }
        u64 e = u->val;

        bool present = ept ? (e & EPT_RWX) != 0 : (e & PTE_P) != 0;
        if (ept) {
            readable = readable && (e & EPT_R);
            writable = writable && (e & EPT_W);
            executable = executable && (e & EPT_X);
        }
        if (!present) {
            if (ept)
                fail_ept_violation(res, access, false, false, false);
            else
                fail_pf(res, access_pfec(ctx, f, access));
            return WALK_DONE;
        }

        bool is_leaf = level == 1 ||
                       ((e & PTE_PS) && large_page_allowed(ctx, f, level));
        bool bad = (e & reserved_bits(ctx, f, level, is_leaf)) != 0;
        if (ept) {
            /* write without read is a misconfiguration; execute-only is supported */
            bad = bad || ((e & EPT_W) && !(e & EPT_R)) ||
                  (is_leaf && ept_memtype_reserved((e >> EPT_MEMTYPE_SHIFT) & 7));
        }
        if (bad) {
            if (ept)
                res->fault = PAGING_EPT_MISCONFIG;
            else
                fail_pf(res, access_pfec(ctx, f, access) | PFEC_P | PFEC_RSVD);
            return WALK_DONE;
        }

        /* PAE PDPTEs carry no access rights. */
        if (!ept && !(f->kind == KIND_PAE && level == 3)) {
            user_page = user_page && (e & PTE_US);
            writable = writable && (e & PTE_RW);
            if (ctx->nxe && f->kind != KIND_LEGACY)
                executable = executable && !(e & PTE_XD);
        }

        if (is_leaf) {
            leaf = e;
            break;
        }
        table = entry_address(f, e, 12, false);
    }

    bool write = access & ACC_WRITE, exec = access & ACC_EXEC;
    if (ept) {
        bool ok = write ? writable : exec ? executable : readable;
        if (!ok) {
            fail_ept_violation(res, access, readable, writable, executable);
            return WALK_DONE;
        }
    } else if (!access_allowed(ctx, access, user_page, writable, executable)) {
        fail_pf(res, access_pfec(ctx, f, access) | PFEC_P);
        return WALK_DONE;
    }

    /* Accessed/dirty flags (SDM 4.8, 29.3.5): set only once the access is known to
     * succeed, top level first, each by compare-and-exchange so that a concurrent change
     * of the entry restarts the walk. A faulting access leaves every entry unchanged. */
    bool ad = !(access & ACC_NO_AD) && (!ept || ctx->ept_ad);
    u64 a_bit = accessed_bit(f->kind), d_bit = dirty_bit(f->kind);
    if (ad) {
        for (unsigned i = 0; i < n_used; i++) {
            struct used_entry *u = &used[i];
            if (!u->in_memory)
                continue;
            u64 want = u->val | a_bit;
            if (i == n_used - 1 && write)
                want |= d_bit;
            if (want == u->val)
                continue;
            int rc = ctx->ops.cmpxchg(ctx->ops.opaque, u->pa, f->entry_bytes, u->val, want);
            if (rc == 1)
                return WALK_RESTART;
            if (rc == 0)
                u->val = want;
            /* rc < 0: the entry is not in memory; the update is lost like on open bus */
        }
        leaf = used[n_used - 1].val;
    }

    bool large = shift > 12;
    res->fault = PAGING_OK;
    res->page_size = BIT(shift);
    res->pa = entry_address(f, leaf, shift, large) | (addr & MASK(shift));
    res->readable = readable;
    res->user = user_page;
    res->writable = writable;
    res->executable = executable;
    res->global = !ept && (leaf & PTE_G);
    res->dirty = ept && !ctx->ept_ad ? true : (leaf & d_bit) != 0;
    if (ept) {
        res->memtype = (leaf >> EPT_MEMTYPE_SHIFT) & 7;
        res->ipat = leaf & EPT_IPAT;
    }
    return WALK_DONE;
}

void paging_walk(const struct paging_ctx *ctx, u64 addr, unsigned access,
                 struct paging_result *res)
{
    *res = (struct paging_result){ 0 };

    if (ctx->fmt == PG_NONE || (unsigned)ctx->fmt >= ARRAY_SIZE(formats)) {
        res->fault = PAGING_OK;
        res->pa = addr;
        res->page_size = 4 * KiB;
        res->user = res->writable = res->executable = res->readable = true;
        res->dirty = true;
        return;
    }

    const struct walk_format *f = &formats[ctx->fmt];
    bool ept = f->kind == KIND_EPT;
    if (f->addr_bits == 32) {
        addr &= MASK(32);
    } else if (ept && (addr >> f->addr_bits) != 0) {
        /* A guest-physical address wider than the EPT translates has no translation. */
        fail_ept_violation(res, access, false, false, false);
        return;
    }

    while (walk_once(ctx, f, addr, access, res) == WALK_RESTART)
        *res = (struct paging_result){ 0 };
}

bool paging_load_pdptes(const struct paging_ctx *ctx, u64 cr3, u64 pdpte[4])
{
    const struct walk_format *pae = &formats[PG_PAE];
    u64 base = cr3 & 0xffffffe0ull; /* CR3[31:5] locates the PDPT */
    u64 loaded[4];

    for (unsigned i = 0; i < 4; i++) {
        if (ctx->ops.read(ctx->ops.opaque, base + 8 * i, 8, &loaded[i]) != 0)
            loaded[i] = ~0ull; /* open bus */
        if ((loaded[i] & PTE_P) && (loaded[i] & reserved_bits(ctx, pae, 3, false)))
            return false;
    }
    for (unsigned i = 0; i < 4; i++)
        pdpte[i] = loaded[i];
    return true;
}

bool paging_same_regime(const struct paging_ctx *a, const struct paging_ctx *b)
{
    return a->fmt == b->fmt && a->root == b->root && a->wp == b->wp && a->pse == b->pse &&
           a->nxe == b->nxe && a->smep == b->smep && a->smap == b->smap &&
           !memcmp(a->pdpte, b->pdpte, sizeof(a->pdpte));
}
