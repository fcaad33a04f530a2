/* The guest's PV console, output half: what xl gives every HVM/PVH domU before it
 * starts (libxenguest's alloc_magic_pages_hvm): a page of struct xencons_interface at
 * the special pfn SPECIALPAGE_CONSOLE, a guest port allocated unbound for dom0 that dom0
 * (xenconsoled, here nestor) binds, both named by HVM_PARAM_CONSOLE_PFN and
 * HVM_PARAM_CONSOLE_EVTCHN. The guest writes into out[] and signals its port; nestor
 * copies what is between out_cons and out_prod to its console and signals back.
 * Input is not served yet: in[] stays empty (in_prod == in_cons), so a guest reading
 * its console sees nothing to read. */
#include <stdlib.h>
#include <unistd.h>

#include "hv/xen/xen_internal.h"

#include <xen/io/console.h>

/* libxenguest's special region (xg_dom_x86.c, not public): X86_HVM_NR_SPECIAL_PAGES
 * pages ending at X86_HVM_END_SPECIAL_REGION, the console page the last of them
 * (SPECIALPAGE_CONSOLE 7). libxl marks the region reserved in the guest's memory map. */
#define X86_HVM_END_SPECIAL_REGION 0xff000u
#define X86_HVM_NR_SPECIAL_PAGES 8u
#define SPECIALPAGE_CONSOLE 7u
#define CONSOLE_PFN (X86_HVM_END_SPECIAL_REGION - X86_HVM_NR_SPECIAL_PAGES + SPECIALPAGE_CONSOLE)

struct xen_console {
    u8 *page;       /* the struct xencons_interface, a frame of the physical map */
    u32 gen;        /* its code-generation word */
    u32 host_port;  /* dom0's end of the console channel */
};

u64 xen_console_special_region(u64 *size)
{
    *size = (u64)X86_HVM_NR_SPECIAL_PAGES << 12;
    return (u64)(X86_HVM_END_SPECIAL_REGION - X86_HVM_NR_SPECIAL_PAGES) << 12;
}

static void write_all(int fd, const char *p, size_t n)
{
    while (n && fd >= 0) {
        ssize_t w = write(fd, p, n);
        if (w <= 0)
            return;
        p += w;
        n -= (size_t)w;
    }
}

/* The guest signalled its port: what it produced goes out, at most one ring's worth
 * (the indices are the guest's: whatever out_prod says, only out[] is read, and a
 * producer more than a ring ahead gets a ring's worth, as xenconsoled's buffer_append
 * bounds it). */
static void console_notify(void *opaque, u32 host_port)
{
    struct xen *x = opaque;
    struct xencons_interface *in = (struct xencons_interface *)x->console->page;
    XENCONS_RING_IDX cons = __atomic_load_n(&in->out_cons, __ATOMIC_RELAXED);
    /* the producer's index before the bytes it covers (Xen's rmb) */
    XENCONS_RING_IDX prod = __atomic_load_n(&in->out_prod, __ATOMIC_ACQUIRE);
    XENCONS_RING_IDX n = prod - cons;
    if (n > sizeof(in->out))
        n = sizeof(in->out);
    char buf[sizeof(in->out)];
    for (XENCONS_RING_IDX i = 0; i < n; i++)
        buf[i] = in->out[MASK_XENCONS_IDX(cons + i, in->out)];
    write_all(x->host.console_fd, buf, n);
    /* the bytes are read before the consumer index says so (Xen's mb) */
    __atomic_store_n(&in->out_cons, cons + n, __ATOMIC_RELEASE);
    xen_evtchn_host_notify(x, host_port);
}

int xen_console_create(struct xen *x)
{
    struct xen_console *con = calloc(1, sizeof(*con));
    if (!con || !(con->page = calloc(1, 4096))) {
        free(con);
        return -ENOMEM;
    }
    x->console = con;
    struct guest_mem *m = x->host.ncpus > 0 && x->host.cpus ? x->host.cpus[0]->mem : NULL;
    if (!m)
        return 0; /* no physical map (a host-side test): no console */
    if (mem_frame_place(m, CONSOLE_PFN, con->page, &con->gen))
        return -ENOMEM;
    long guest_port = xen_evtchn_alloc_for_dom0(x);
    if (guest_port < 0)
        return guest_port == -ENOSPC ? -ENOMEM : (int)guest_port;
    int hp = xen_evtchn_host_bind(x, (u32)guest_port, console_notify, x);
    if (hp < 0)
        return -ENOMEM;
    con->host_port = (u32)hp;
    x->hvm_param[HVM_PARAM_CONSOLE_PFN] = CONSOLE_PFN;
    x->hvm_param[HVM_PARAM_CONSOLE_EVTCHN] = (u64)guest_port;
    return 0;
}

void xen_console_destroy(struct xen *x)
{
    struct xen_console *con = x->console;
    if (!con)
        return;
    struct guest_mem *m = x->host.ncpus > 0 && x->host.cpus ? x->host.cpus[0]->mem : NULL;
    if (m && con->page) {
        u64 gfn = mem_frame_of(m, con->page);
        if (gfn != MEM_NO_GFN)
            mem_frame_remove(m, gfn, NULL);
    }
    free(con->page);
    free(con);
    x->console = NULL;
}

/* ---- state: the console page's bytes and dom0's port (the page stays this machine's:
 * the frame map names it as XEN_PAGE_CONSOLE) ---- */
#define F(x) STATE_FIELD(struct xen_console, x)
#define N(x) STATE_NOT_STATE(struct xen_console, x)
static const struct state_field console_fields[] = { N(page), N(gen), F(host_port) };
#undef F
#undef N

static void console_save(void *obj, struct state_buf *b)
{
    const struct xen_console *con = obj;
    state_put(b, con->page, 4096);
}

static int console_load(void *obj, struct state_cursor *c, char *err, size_t errlen)
{
    struct xen_console *con = obj;
    (void)err, (void)errlen;
    state_get(c, con->page, 4096);
    mem_code_write(&con->gen);
    return 0;
}

static const struct state_desc console_state_desc =
    STATE_DESC("xen.console", 1, struct xen_console, console_fields, .save = console_save,
               .load = console_load);

void xen_console_state_register(struct xen *x, struct state_registry *r)
{
    state_register(r, &console_state_desc, 0, x->console);
}

u8 *xen_console_page(const struct xen *x, u32 **gen)
{
    *gen = &x->console->gen;
    return x->console->page;
}
