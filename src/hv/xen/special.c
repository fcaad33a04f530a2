/* libxenguest's special pages of an HVM/PVH domain (xg_dom_x86.c, not public):
 * X86_HVM_NR_SPECIAL_PAGES pages ending at X86_HVM_END_SPECIAL_REGION, which libxl
 * marks reserved in the guest's memory map. The toolstack puts the xenstore ring
 * (SPECIALPAGE_XENSTORE) and the console ring (SPECIALPAGE_CONSOLE) there, each with a
 * guest port allocated unbound for domain 0 (the store's daemon, xenconsoled), and names
 * them in HVM_PARAM_STORE_PFN/_EVTCHN and HVM_PARAM_CONSOLE_PFN/_EVTCHN. Here the pages
 * are the interface's own (a state file names them XEN_PAGE_SPECIAL + index) and nestor's
 * dom0 services bind the ports. */
#include <stdlib.h>

#include "hv/xen/xen_internal.h"

#define X86_HVM_END_SPECIAL_REGION 0xff000u

u64 xen_special_region(u64 *size)
{
    *size = (u64)XEN_NR_SPECIAL_PAGES << 12;
    return (u64)(X86_HVM_END_SPECIAL_REGION - XEN_NR_SPECIAL_PAGES) << 12;
}

u64 xen_special_pfn(unsigned index)
{
    return X86_HVM_END_SPECIAL_REGION - XEN_NR_SPECIAL_PAGES + index;
}

int xen_special_ring(struct xen *x, unsigned index, u32 pfn_param, u32 evtchn_param,
                     xen_host_notify_fn notify, void *opaque, u8 **page, u32 *host_port)
{
    if (index >= XEN_NR_SPECIAL_PAGES || x->special_page[index])
        return -EINVAL;
    if (!(x->special_page[index] = calloc(1, 4096)))
        return -ENOMEM;
    *page = x->special_page[index];
    struct guest_mem *m = x->host.ncpus > 0 && x->host.cpus ? x->host.cpus[0]->mem : NULL;
    if (!m)
        return 0; /* no physical map (a host-side test): the page alone */
    u64 pfn = xen_special_pfn(index);
    if (mem_frame_remove(m, pfn, NULL), mem_frame_place(m, pfn, *page, &x->special_gen[index]))
        return -ENOMEM;
    long guest_port = xen_evtchn_alloc_for_dom0(x);
    if (guest_port < 0)
        return guest_port == -ENOSPC ? -ENOMEM : (int)guest_port;
    int hp = xen_evtchn_host_bind(x, (u32)guest_port, notify, opaque);
    if (hp < 0)
        return -ENOMEM;
    *host_port = (u32)hp;
    x->hvm_param[pfn_param] = pfn;
    x->hvm_param[evtchn_param] = (u64)guest_port;
    return 0;
}

void xen_special_destroy(struct xen *x)
{
    struct guest_mem *m = x->host.ncpus > 0 && x->host.cpus ? x->host.cpus[0]->mem : NULL;
    for (unsigned i = 0; i < XEN_NR_SPECIAL_PAGES; i++) {
        if (!x->special_page[i])
            continue;
        u64 gfn = m ? mem_frame_of(m, x->special_page[i]) : MEM_NO_GFN;
        if (gfn != MEM_NO_GFN)
            mem_frame_remove(m, gfn, NULL);
        free(x->special_page[i]);
        x->special_page[i] = NULL;
    }
}
