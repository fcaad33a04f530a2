/* Unit tests of the software TLB flush rules. */
#include <criterion/criterion.h>
#include <stdlib.h>

#include "cpu/tlb.h"

static struct tlb *tlb;

static void setup(void)
{
    tlb = calloc(1, sizeof(*tlb));
    cr_assert(tlb);
    tlb_init(tlb);
}

static void teardown(void)
{
    free(tlb);
}

static struct tlb_entry *slot(unsigned cls, u64 linear)
{
    return &tlb->e[cls][(linear >> 12) & (TLB_SIZE - 1)];
}

/* Fills the entry for linear in class cls as the engine would after a walk. */
static void fill(unsigned cls, u64 linear, u16 pcid, bool global)
{
    struct tlb_entry *e = tlb_entry_for_fill(tlb, cls, linear >> 12);
    cr_assert_eq(e, slot(cls, linear));
    e->tag_read = e->tag_write = e->tag_exec = linear >> 12;
    e->pcid = pcid;
    e->global = global;
    e->gpa = 0x1000;
}

static bool cached(unsigned cls, u64 linear)
{
    const struct tlb_entry *e = slot(cls, linear);
    u64 page = linear >> 12;
    return e->tag_read == page || e->tag_write == page || e->tag_exec == page;
}

static bool empty(const struct tlb_entry *e)
{
    return e->tag_read == TLB_INVALID && e->tag_write == TLB_INVALID &&
           e->tag_exec == TLB_INVALID;
}

TestSuite(tlb, .init = setup, .fini = teardown);

Test(tlb, flush_all_invalidates_every_tag)
{
    for (unsigned cls = 0; cls < 2; cls++)
        for (unsigned i = 0; i < TLB_SIZE; i++)
            fill(cls, (u64)i << 12, (u16)i, i & 1);
    tlb_flush_all(tlb);
    for (unsigned cls = 0; cls < 2; cls++)
        for (unsigned i = 0; i < TLB_SIZE; i++)
            cr_assert(empty(&tlb->e[cls][i]), "class %u entry %u", cls, i);
}

Test(tlb, invalid_tag_never_matches_a_page)
{
    /* the highest linear page number (57-bit addresses) differs from TLB_INVALID */
    cr_assert_neq((~0ull) >> 12, TLB_INVALID);
    cr_assert(!cached(0, ~0ull));
    cr_assert(!cached(0, 0));
}

Test(tlb, flush_nonglobal_keeps_global)
{
    fill(0, 0x1000, 0, true);
    fill(0, 0x2000, 0, false);
    fill(1, 0x3000, 5, true);
    fill(1, 0x4000, 5, false);
    tlb_flush_nonglobal(tlb);
    cr_assert(cached(0, 0x1000));
    cr_assert(!cached(0, 0x2000));
    cr_assert(cached(1, 0x3000));
    cr_assert(!cached(1, 0x4000));
}

Test(tlb, flush_page_both_classes_and_global)
{
    u64 va = 0xffff800012345678ull;
    fill(0, va, 0, true);
    fill(1, va, 3, false);
    fill(0, va + 0x1000, 0, false);
    tlb_flush_page(tlb, va);
    cr_assert(!cached(0, va));
    cr_assert(!cached(1, va));
    cr_assert(empty(slot(0, va)) && empty(slot(1, va)));
    cr_assert(cached(0, va + 0x1000), "the next page stays");
}

Test(tlb, flush_page_leaves_aliasing_slot)
{
    /* another page that maps to the same direct-mapped slot is not the one flushed */
    u64 va = 0x5000, alias = va + ((u64)TLB_SIZE << 12);
    fill(0, alias, 0, false);
    tlb_flush_page(tlb, va);
    cr_assert(cached(0, alias));
    tlb_flush_page(tlb, alias + 0xfff);
    cr_assert(!cached(0, alias));
}

Test(tlb, flush_page_partial_tags)
{
    /* an entry that only allows reads is still flushed */
    u64 va = 0x7000;
    struct tlb_entry *e = slot(1, va);
    e->tag_read = va >> 12;
    tlb_flush_page(tlb, va);
    cr_assert(empty(e));
}

Test(tlb, flush_pcid)
{
    fill(0, 0x1000, 1, false);
    fill(0, 0x2000, 1, true);
    fill(1, 0x3000, 2, false);
    fill(1, 0x4000, 1, false);
    tlb_flush_pcid(tlb, 1, true);
    cr_assert(!cached(0, 0x1000));
    cr_assert(cached(0, 0x2000), "global kept");
    cr_assert(cached(1, 0x3000), "other PCID kept");
    cr_assert(!cached(1, 0x4000));
    tlb_flush_pcid(tlb, 1, false);
    cr_assert(!cached(0, 0x2000));
    cr_assert(cached(1, 0x3000));
}

/* Flushes visit only the slots filled since they were last emptied (the live list):
 * whatever a flush keeps must stay reachable by the next one, and refilled slots too. */
Test(tlb, kept_entries_stay_flushable)
{
    fill(0, 0x1000, 0, true);
    fill(0, 0x2000, 0, false);
    tlb_flush_nonglobal(tlb);
    cr_assert_eq(tlb->nlive, 1, "only the global entry is still listed");
    cr_assert(cached(0, 0x1000));
    tlb_flush_all(tlb);
    cr_assert(!cached(0, 0x1000), "the kept global entry is flushed later");
    cr_assert_eq(tlb->nlive, 0);
}

Test(tlb, refilled_slot_is_listed_again)
{
    fill(1, 0x9000, 0, false);
    tlb_flush_all(tlb);
    fill(1, 0x9000, 0, false);
    fill(1, 0x9000, 0, false); /* a second fill of a listed slot lists it once */
    cr_assert_eq(tlb->nlive, 1);
    tlb_flush_nonglobal(tlb);
    cr_assert(!cached(1, 0x9000));
}

Test(tlb, drop_write_reaches_listed_entries)
{
    fill(0, 0x3000, 0, false);             /* gpa 0x1000 */
    fill(1, 0x4000, 0, true);              /* gpa 0x1000 */
    struct tlb_entry *other = tlb_entry_for_fill(tlb, 0, 0x5);
    other->tag_write = 0x5;
    other->gpa = 0x2000;
    tlb_drop_write(tlb, 0x1000);
    cr_assert_eq(slot(0, 0x3000)->tag_write, TLB_INVALID);
    cr_assert_eq(slot(1, 0x4000)->tag_write, TLB_INVALID);
    cr_assert_eq(slot(0, 0x3000)->tag_read, 0x3, "reads still allowed");
    cr_assert_eq(other->tag_write, 0x5, "another frame keeps its write access");
}
