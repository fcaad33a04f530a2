/* Page-table building for every paging format: 32-bit (4K, 4M with PSE), PAE (4K, 2M),
 * 4-level and 5-level (4K, 2M, 1G). Tables come from a pool inside the image, which is
 * identity-mapped, so a table's address is its physical address. */
#include "rt.h"

#define POOL_PAGES 768
static u8 pool[POOL_PAGES][4096] ALIGNED(4096);
static unsigned pool_used;

void *page_alloc(void)
{
    if (pool_used >= POOL_PAGES)
        panic("page_alloc: pool of %u pages exhausted", POOL_PAGES);
    void *p = pool[pool_used++];
    memset(p, 0, 4096);
    return p;
}

/* Per format: levels, index bits per level, entry size, top-level index bits. */
static const struct pt_shape {
    int levels;
    int bits;      /* index bits of the levels below the top */
    int top_bits;  /* index bits of the top level */
    int entry_size;
} shapes[] = {
    [PT_32BIT] = {2, 10, 10, 4},
    [PT_PAE] = {3, 9, 2, 8},
    [PT_4LEVEL] = {4, 9, 9, 8},
    [PT_5LEVEL] = {5, 9, 9, 8},
};

int pt_levels(enum pt_format f) { return shapes[f].levels; }

static unsigned pt_index(enum pt_format f, u64 va, int level)
{
    const struct pt_shape *s = &shapes[f];
    int shift = 12 + s->bits * (level - 1);
    int bits = level == s->levels ? s->top_bits : s->bits;
    return (unsigned)(va >> shift) & ((1u << bits) - 1);
}

u64 pte_get(struct page_table *pt, void *e)
{
    return shapes[pt->format].entry_size == 4 ? *(volatile u32 *)e : *(volatile u64 *)e;
}

void pte_set(struct page_table *pt, void *e, u64 v)
{
    if (shapes[pt->format].entry_size == 4)
        *(volatile u32 *)e = (u32)v;
    else
        *(volatile u64 *)e = v;
}

static void *entry_at(struct page_table *pt, u64 table, u64 va, int level)
{
    return (u8 *)(ulong)table + pt_index(pt->format, va, level) * shapes[pt->format].entry_size;
}

static u64 entry_addr(struct page_table *pt, u64 e)
{
    return shapes[pt->format].entry_size == 4 ? (e & 0xfffff000u) : (e & 0x000ffffffffff000ull);
}

void pt_init(struct page_table *pt, enum pt_format format)
{
    pt->format = format;
    pt->root = (ulong)page_alloc();
}

/* Does entry v at this level map a page (PS) rather than point to a table? */
static bool is_large(struct page_table *pt, int level, u64 v)
{
    if (!(v & PTE_PS) || level < 2)
        return false;
    return pt->format == PT_32BIT || pt->format == PT_PAE ? level == 2 : level <= 3;
}

/* Flags of a table-pointing (non-leaf) entry: PAE's PDPTEs allow only P (and caching). */
static u64 table_flags(struct page_table *pt, int level)
{
    if (pt->format == PT_PAE && level == 3)
        return PTE_P;
    return PTE_P | PTE_W | PTE_U;
}

void pt_map(struct page_table *pt, u64 va, u64 pa, u64 size, u64 page_size, u64 flags)
{
    int leaf = page_size == 4096 ? 1 : page_size >= (1ull << 30) ? 3 : 2;
    for (u64 off = 0; off < size; off += page_size) {
        u64 table = pt->root;
        for (int level = pt_levels(pt->format); level > leaf; level--) {
            void *e = entry_at(pt, table, va + off, level);
            u64 v = pte_get(pt, e);
            /* a missing table, or a large page where a table must go, gets a new table */
            if (!(v & PTE_P) || is_large(pt, level, v)) {
                v = (ulong)page_alloc() | table_flags(pt, level);
                pte_set(pt, e, v);
            }
            table = entry_addr(pt, v);
        }
        u64 leaf_v = (pa + off) | flags | PTE_P | (leaf > 1 ? PTE_PS : 0);
        pte_set(pt, entry_at(pt, table, va + off, leaf), leaf_v);
    }
}

void pt_map_identity(struct page_table *pt, u64 flags)
{
    u64 big = pt->format == PT_32BIT ? 4 << 20 : 2 << 20;
    pt_map(pt, 0, 0, 4ull << 30, big, flags);
}

void *pt_entry(struct page_table *pt, u64 va, int level)
{
    u64 table = pt->root;
    for (int l = pt_levels(pt->format); l > level; l--) {
        u64 v = pte_get(pt, entry_at(pt, table, va, l));
        if (!(v & PTE_P) || is_large(pt, l, v))
            return NULL;
        table = entry_addr(pt, v);
    }
    return entry_at(pt, table, va, level);
}

void *pt_leaf(struct page_table *pt, u64 va, int *level)
{
    u64 table = pt->root;
    for (int l = pt_levels(pt->format);; l--) {
        void *e = entry_at(pt, table, va, l);
        u64 v = pte_get(pt, e);
        if (!(v & PTE_P))
            return NULL;
        if (l == 1 || is_large(pt, l, v)) {
            if (level)
                *level = l;
            return e;
        }
        table = entry_addr(pt, v);
    }
}

void pt_activate(struct page_table *pt, ulong cr3_flags)
{
#ifdef __x86_64__
    if (pt_levels(pt->format) != (int)rt_paging_levels)
        panic("pt_activate: %d-level table in %u-level long mode", pt_levels(pt->format),
              rt_paging_levels);
    write_cr3((ulong)pt->root | cr3_flags);
#else
    paging_off();
    ulong cr4 = read_cr4() & ~(CR4_PAE | CR4_PSE);
    cr4 |= pt->format == PT_PAE ? CR4_PAE : CR4_PSE;
    write_cr4(cr4);
    write_cr3((ulong)pt->root | cr3_flags);
    write_cr0(read_cr0() | CR0_PG);
#endif
}

void paging_off(void)
{
#ifdef __x86_64__
    panic("paging_off: long mode needs paging");
#else
    write_cr0(read_cr0() & ~CR0_PG);
    write_cr4(read_cr4() & ~(CR4_PAE | CR4_PSE | CR4_PGE | CR4_SMEP | CR4_SMAP | CR4_PCIDE));
#endif
}
