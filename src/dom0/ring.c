/* The back end of a shared ring (see ring.h). */
#include "dom0/ring.h"

#include <string.h>

enum { REQ_PROD = 0, REQ_EVENT = 4, RSP_PROD = 8, RSP_EVENT = 12 };

static u32 *idx(struct backring *r, u32 off)
{
    return (u32 *)(void *)(r->page[0] + off);
}

u32 backring_entries(u32 npages, u32 entry)
{
    u32 n = (npages * 4096u - BACKRING_HEADER) / entry, p = 1;
    while (p * 2 <= n)
        p *= 2;
    return p;
}

void backring_attach(struct backring *r, u8 *const *pages, u32 npages, u32 entry)
{
    memset(r, 0, sizeof(*r));
    for (u32 i = 0; i < npages && i < BACKRING_MAX_PAGES; i++)
        r->page[i] = pages[i];
    r->npages = npages;
    r->entry = entry;
    r->nr_ents = backring_entries(npages, entry);
    r->req_cons = r->rsp_prod_pvt = __atomic_load_n(idx(r, RSP_PROD), __ATOMIC_RELAXED);
}

/* Byte off of the ring's pages (after the header), len bytes in or out */
static void copy(struct backring *r, u32 slot, u8 *buf, u32 len, bool out)
{
    u32 off = BACKRING_HEADER + (slot & (r->nr_ents - 1)) * r->entry;
    while (len) {
        u32 page = off / 4096, in = off % 4096, n = 4096 - in < len ? 4096 - in : len;
        if (out)
            memcpy(buf, r->page[page] + in, n);
        else
            memcpy(r->page[page] + in, buf, n);
        buf += n, off += n, len -= n;
    }
}

long backring_pending(struct backring *r)
{
    u32 rp = __atomic_load_n(idx(r, REQ_PROD), __ATOMIC_ACQUIRE);
    if (rp - r->rsp_prod_pvt > r->nr_ents)
        return -1;
    return (long)(rp - r->req_cons);
}

void backring_take(struct backring *r, void *buf)
{
    copy(r, r->req_cons++, buf, r->entry, true);
}

void backring_respond(struct backring *r, const void *rsp, u32 len)
{
    copy(r, r->rsp_prod_pvt++, (u8 *)(uintptr_t)rsp, len < r->entry ? len : r->entry, false);
}

bool backring_push(struct backring *r)
{
    u32 old = __atomic_load_n(idx(r, RSP_PROD), __ATOMIC_RELAXED), new = r->rsp_prod_pvt;
    if (old == new)
        return false;
    __atomic_store_n(idx(r, RSP_PROD), new, __ATOMIC_RELEASE);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    u32 event = __atomic_load_n(idx(r, RSP_EVENT), __ATOMIC_RELAXED);
    return (u32)(new - event) < (u32)(new - old);
}

bool backring_final_check(struct backring *r)
{
    __atomic_store_n(idx(r, REQ_EVENT), r->req_cons + 1, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    return __atomic_load_n(idx(r, REQ_PROD), __ATOMIC_ACQUIRE) != r->req_cons;
}
