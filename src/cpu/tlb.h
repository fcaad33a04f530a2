/* Software TLB: caches linear-to-physical translations, and for RAM the host pointer, so
 * that the fast path of a guest memory access is one compare. Filled only by the page
 * walker's result; flushed by the architectural flush rules (MOV CR3/CR4/CR0, INVLPG,
 * INVPCID) and whenever state its entries depend on changes. */
#ifndef NESTOR_CPU_TLB_H
#define NESTOR_CPU_TLB_H

#include "common.h"

#define TLB_BITS 10
#define TLB_SIZE (1u << TLB_BITS)
#define TLB_INVALID (~0ull)

/* One entry per linear page and privilege class. A tag equals the linear page number
 * (addr >> 12) if that kind of access is allowed without another walk. */
struct tlb_entry {
    u64 tag_read, tag_write, tag_exec;
    u8 *host;      /* host address of the page, or NULL for MMIO */
    u32 *page_gen; /* the page's code generation word (RAM only), see mem.h */
    u64 gpa;       /* guest physical page address */
    u16 pcid;
    bool global;
    bool listed;   /* in struct tlb's live list */
};

/* Translation contexts (VMX): a tag is the page number ORed with the context it was
 * filled in, so that L1's and the running L2's translations live side by side. Page
 * numbers use bits 51:0 at most. */
#define TLB_CTX_L1 0ull
#define TLB_CTX_L2 (1ull << 52)
#define TLB_CTX_MASK (~0ull << 52)

struct tlb {
    /* [0] = supervisor accesses, [1] = user accesses (CPL 3 or explicit user) */
    struct tlb_entry e[2][TLB_SIZE];
    u64 ctx; /* the context lookups and fills use now (TLB_CTX_*) */
    /* Bumped by every flush: a translation checked under one epoch still holds while
     * the epoch is unchanged (decoded blocks skip the fetch check while it is). */
    u64 epoch;
    /* Every flush also sets notify_bits in *notify (when set): the engine's exit word, so
     * that a decoded block stops after an instruction that changed translations. */
    u32 *notify;
    u32 notify_bits;
    /* The slots ([class * TLB_SIZE + index]) filled since a flush last emptied them:
     * flushes visit only these, so a MOV CR3 costs what the address space used, not
     * the whole array. */
    u16 live[2 * TLB_SIZE];
    unsigned nlive;
};

/* Every flush invalidates by setting all three tags of an entry to TLB_INVALID, in both
 * privilege classes. A zero-filled struct tlb is NOT empty: call tlb_init first. */
void tlb_init(struct tlb *t);
/* The entry for linear page vpn in class cls (0 supervisor, 1 user), about to be filled
 * by a walk's result: every fill goes through here so that flushes find it. */
struct tlb_entry *tlb_entry_for_fill(struct tlb *t, unsigned cls, u64 vpn);
void tlb_flush_all(struct tlb *t);
/* Withdraws direct write access to guest physical page gpa_page (it now holds code). */
void tlb_drop_write(struct tlb *t, u64 gpa_page);
/* Forgets every entry's write permission (dirty logging: the next write to each page
 * fills again and is seen); translations stay. */
void tlb_drop_all_writes(struct tlb *t);
/* All entries whose global flag is clear (MOV CR3 without PCIDs). */
void tlb_flush_nonglobal(struct tlb *t);
/* The entries of the one 4K linear page containing linear, global or not, whatever
 * their PCID (INVLPG, INVPCID type 0). Entries are per 4K page even when the translation
 * came from a 2M/4M/1G page, so this does NOT drop the other 4K pieces of a large page:
 * when the invalidated address may lie in a large page (the engine remembers whether
 * any large-page translation was filled), the engine must call tlb_flush_all instead. */
void tlb_flush_page(struct tlb *t, u64 linear);
/* The entries tagged with pcid; global ones too unless keep_global (INVPCID type 1 and
 * MOV CR3 with PCIDs keep them). */
void tlb_flush_pcid(struct tlb *t, u16 pcid, bool keep_global);
/* The entries of one context (TLB_CTX_*), and a switch of context (no entry dropped;
 * the epoch moves on, so decoded blocks check their translation again). */
void tlb_flush_context(struct tlb *t, u64 ctx);
void tlb_switch_context(struct tlb *t, u64 ctx);

#endif
