/* Software TLB flushes. Entries are direct-mapped by linear page number; an entry is
 * invalid when all three of its tags are TLB_INVALID, which no page number equals. */
#include "cpu/tlb.h"

static void invalidate(struct tlb_entry *e)
{
    e->tag_read = e->tag_write = e->tag_exec = TLB_INVALID;
}

/* What a flush selects: entries of one PCID, entries that are not global, or both. */
struct flush_filter {
    bool match_pcid;
    u16 pcid;
    bool keep_global;
    bool match_ctx;
    u64 ctx;
};

/* The context an entry was filled in (every valid tag carries it). */
static u64 entry_ctx(const struct tlb_entry *e)
{
    u64 tag = e->tag_read != TLB_INVALID ? e->tag_read :
              e->tag_write != TLB_INVALID ? e->tag_write : e->tag_exec;
    return tag & TLB_CTX_MASK;
}

static void flushed(struct tlb *t)
{
    t->epoch++;
    if (t->notify)
        *t->notify |= t->notify_bits;
}

static struct tlb_entry *live_entry(struct tlb *t, unsigned k)
{
    return &t->e[t->live[k] / TLB_SIZE][t->live[k] % TLB_SIZE];
}

void tlb_init(struct tlb *t)
{
    for (unsigned cls = 0; cls < 2; cls++)
        for (unsigned i = 0; i < TLB_SIZE; i++) {
            invalidate(&t->e[cls][i]);
            t->e[cls][i].listed = false;
        }
    t->nlive = 0;
    flushed(t);
}

struct tlb_entry *tlb_entry_for_fill(struct tlb *t, unsigned cls, u64 vpn)
{
    unsigned idx = (unsigned)(vpn & (TLB_SIZE - 1));
    struct tlb_entry *e = &t->e[cls][idx];
    if (!e->listed) {
        e->listed = true;
        t->live[t->nlive++] = (u16)(cls * TLB_SIZE + idx);
    }
    return e;
}

/* Only listed entries can be valid; the ones a flush empties leave the list. */
static void flush_where(struct tlb *t, struct flush_filter f)
{
    flushed(t);
    unsigned keep = 0;
    for (unsigned k = 0; k < t->nlive; k++) {
        struct tlb_entry *e = live_entry(t, k);
        if ((f.match_pcid && e->pcid != f.pcid) || (f.keep_global && e->global) ||
            (f.match_ctx && entry_ctx(e) != f.ctx)) {
            t->live[keep++] = t->live[k];
            continue;
        }
        invalidate(e);
        e->listed = false;
    }
    t->nlive = keep;
}

void tlb_flush_all(struct tlb *t)
{
    flush_where(t, (struct flush_filter){ .match_pcid = false, .keep_global = false });
}

void tlb_flush_nonglobal(struct tlb *t)
{
    flush_where(t, (struct flush_filter){ .match_pcid = false, .keep_global = true });
}

void tlb_flush_pcid(struct tlb *t, u16 pcid, bool keep_global)
{
    flush_where(t, (struct flush_filter){ .match_pcid = true, .pcid = pcid,
                                          .keep_global = keep_global });
}

void tlb_flush_context(struct tlb *t, u64 ctx)
{
    flush_where(t, (struct flush_filter){ .match_ctx = true, .ctx = ctx });
}

void tlb_switch_context(struct tlb *t, u64 ctx)
{
    t->ctx = ctx;
    flushed(t);
}

void tlb_flush_page(struct tlb *t, u64 linear)
{
    flushed(t);
    u64 page = (linear >> 12) | t->ctx;
    for (unsigned cls = 0; cls < 2; cls++) {
        struct tlb_entry *e = &t->e[cls][(linear >> 12) & (TLB_SIZE - 1)];
        if (e->tag_read == page || e->tag_write == page || e->tag_exec == page)
            invalidate(e);
    }
}

void tlb_drop_write(struct tlb *t, u64 gpa_page)
{
    for (unsigned k = 0; k < t->nlive; k++) {
        struct tlb_entry *e = live_entry(t, k);
        if (e->tag_write != TLB_INVALID && e->gpa == gpa_page)
            e->tag_write = TLB_INVALID;
    }
}

void tlb_drop_all_writes(struct tlb *t)
{
    for (unsigned k = 0; k < t->nlive; k++)
        live_entry(t, k)->tag_write = TLB_INVALID;
    /* decoded blocks holding a checked translation look again */
    flushed(t);
}
