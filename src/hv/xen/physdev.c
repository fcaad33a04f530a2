/* physdev_op and the domain's pirqs, as Xen 4.17 has them for an HVM domU whose
 * interrupts are emulated (xen/arch/x86/hvm/hypercall.c hvm_physdev_op,
 * xen/arch/x86/physdev.c, xen/arch/x86/irq.c get_free_pirq / map_domain_emuirq_pirq /
 * unmap_domain_pirq_emuirq, xen/arch/x86/hvm/irq.c assert_gsi, xen/common/
 * event_channel.c evtchn_bind_pirq). libxl gives an HVM domain XEN_X86_EMU_USE_PIRQ
 * (has_pirq), a PVH one only the LAPIC.
 *
 * A GSI of the machine's I/O APIC that the guest maps to a pirq (PHYSDEVOP_map_pirq,
 * which needs the vector callback: Xen's is_hvm_pv_evtchn_domain) is delivered as the
 * pirq's event channel instead of through the I/O APIC input (assert_gsi): a rising edge
 * of the line signals the port. ISA lines keep reaching the 8259 (assert_irq). A line
 * at or above 16 is level-triggered: PHYSDEVOP_eoi signals again while it is still
 * asserted. Nothing in nestor sends MSIs (no device has the capability), so the emulated
 * MSI pirqs of Xen's hvm_inject_msi have no source here; map_pirq of MSI types is
 * -EINVAL for an HVM domain's own devices in Xen as well. */
#include <stdlib.h>
#include <string.h>

#include "hv/xen/xen_internal.h"

#include <xen/physdev.h>

/* Xen's extra_domU_irqs (xen/common/domain.c, the default of the extra_guest_irqs
 * option): a domU has nr_irqs_gsi + 32 pirqs. */
#define EXTRA_DOMU_PIRQS 32
/* Xen's IRQ_UNBOUND (asm/irq.h): a pirq mapped to no emulated GSI */
#define EMUIRQ_UNBOUND (-1)

/* The structure of PHYSDEVOP_map_pirq in the x86_32 ABI: the same fields, table_base
 * 4-aligned right after entry_nr (no padding before it). */
#define MAP_PIRQ_SIZE32 (offsetof(struct physdev_map_pirq, entry_nr) + sizeof(int) + sizeof(uint64_t))

/* One pirq: whether Xen's pirq_info() has it (its radix-tree entry exists while any
 * field differs from the default, and after get_free_pirq), arch.irq ==
 * PIRQ_ALLOCATED (PHYSDEVOP_get_free_pirq), the GSI it is mapped to (emuirq) and the
 * event channel bound to it. */
struct pirq {
    bool exists;
    bool allocated;
    int emuirq;
    u32 port;
};

struct xen_pirqs {
    u32 nr_pirqs;     /* d->nr_pirqs */
    u32 nr_gsis;      /* the I/O APIC's inputs: Xen's nr_irqs_gsi and the domain's GSIs */
    bool has_pirq;    /* an HVM domain (not PVH) */
    struct pirq *pirq;
    int *gsi_pirq;    /* emuirq -> pirq, -1: none */
    bool *gsi_level;  /* each line's level as the machine drives it */
};

int xen_pirq_create(struct xen *x)
{
    struct xen_pirqs *p = calloc(1, sizeof(*p));
    x->pirqs = p;
    if (!p)
        return -ENOMEM;
    p->nr_gsis = x->host.nr_gsis > 0 ? (u32)x->host.nr_gsis : 0;
    p->nr_pirqs = p->nr_gsis + EXTRA_DOMU_PIRQS;
    p->has_pirq = true;
    p->pirq = calloc(p->nr_pirqs, sizeof(*p->pirq));
    p->gsi_pirq = calloc(p->nr_gsis ? p->nr_gsis : 1, sizeof(*p->gsi_pirq));
    p->gsi_level = calloc(p->nr_gsis ? p->nr_gsis : 1, sizeof(*p->gsi_level));
    if (!p->pirq || !p->gsi_pirq || !p->gsi_level)
        return -ENOMEM;
    for (u32 i = 0; i < p->nr_pirqs; i++)
        p->pirq[i].emuirq = EMUIRQ_UNBOUND;
    for (u32 g = 0; g < p->nr_gsis; g++)
        p->gsi_pirq[g] = -1;
    return 0;
}

void xen_pirq_destroy(struct xen *x)
{
    struct xen_pirqs *p = x->pirqs;
    if (p) {
        free(p->pirq);
        free(p->gsi_pirq);
        free(p->gsi_level);
    }
    free(p);
    x->pirqs = NULL;
}

void xen_set_pvh(struct xen *x)
{
    x->pirqs->has_pirq = false;
}

bool xen_has_pirqs(const struct xen *x)
{
    return x->pirqs->has_pirq;
}

/* ---- the pirq table (xen/arch/x86/irq.c) ---- */
static struct pirq *pirq_at(struct xen *x, s64 n)
{
    return n >= 0 && n < x->pirqs->nr_pirqs ? &x->pirqs->pirq[n] : NULL;
}

/* Xen's pirq_cleanup_check(): the entry goes once every field has its default */
static void cleanup(struct pirq *p)
{
    if (!p->port && !p->allocated && p->emuirq == EMUIRQ_UNBOUND)
        p->exists = false;
}

/* Xen's is_free_pirq(): no machine IRQ and no emulated GSI (a bound port does not count) */
static bool is_free(const struct pirq *p)
{
    return !p->exists || (!p->allocated && p->emuirq == EMUIRQ_UNBOUND);
}

/* Xen's get_free_pirq(): a GSI takes the lowest free pirq from 16 up among the GSI
 * numbers, anything else (and a GSI when those are taken) the highest free one above
 * them; the entry is created. */
static long get_free_pirq(struct xen *x, int type)
{
    struct xen_pirqs *ps = x->pirqs;
    if (type == MAP_PIRQ_TYPE_GSI)
        for (u32 i = 16; i < ps->nr_gsis; i++)
            if (is_free(&ps->pirq[i])) {
                ps->pirq[i].exists = true;
                return i;
            }
    for (u32 i = ps->nr_pirqs; i-- > ps->nr_gsis;)
        if (is_free(&ps->pirq[i])) {
            ps->pirq[i].exists = true;
            return i;
        }
    return -ENOSPC;
}

/* The I/O APIC input of a GSI: the line's level unless a pirq carries it */
static void drive_ioapic(struct xen *x, int gsi)
{
    struct xen_pirqs *ps = x->pirqs;
    x->host.ops->set_ioapic_input(x->host.opaque, gsi, ps->gsi_level[gsi] && ps->gsi_pirq[gsi] < 0);
}

/* Xen's map_domain_emuirq_pirq(): a pirq or a GSI already mapped elsewhere leaves
 * everything as it is and still succeeds. */
static long map_emuirq(struct xen *x, long pirq, int gsi)
{
    struct xen_pirqs *ps = x->pirqs;
    struct pirq *p = pirq_at(x, pirq);
    if (!p)
        return -EINVAL;
    if ((p->emuirq != EMUIRQ_UNBOUND && p->emuirq != gsi) ||
        (ps->gsi_pirq[gsi] >= 0 && ps->gsi_pirq[gsi] != pirq))
        return 0;
    p->exists = true;
    p->emuirq = gsi;
    ps->gsi_pirq[gsi] = (int)pirq;
    drive_ioapic(x, gsi);
    return 0;
}

/* Xen's unmap_domain_pirq_emuirq() for an HVM domain's own pirq */
static void unmap_emuirq(struct xen *x, struct pirq *p)
{
    int gsi = p->emuirq;
    p->emuirq = EMUIRQ_UNBOUND;
    cleanup(p);
    x->pirqs->gsi_pirq[gsi] = -1;
    drive_ioapic(x, gsi);
}

/* Xen's send_guest_pirq(): the bound port becomes pending; an unbound pirq drops it */
static void send_pirq(struct xen *x, const struct pirq *p)
{
    if (p->port)
        xen_evtchn_set_pending(x, p->port);
}

/* ---- between the parts: the event channel's side (evtchn_bind_pirq, close) ---- */
int xen_pirq_bind_check(struct xen *x, u32 pirq)
{
    struct pirq *p = pirq_at(x, pirq);
    if (!p)
        return -EINVAL;
    return p->port ? -EEXIST : 0;
}

int xen_pirq_bind(struct xen *x, u32 pirq, u32 port)
{
    long rc = xen_pirq_bind_check(x, pirq);
    if (rc)
        return (int)rc;
    struct pirq *p = pirq_at(x, pirq);
    p->exists = true;
    p->port = port;
    return 0;
}

void xen_pirq_unbind(struct xen *x, u32 pirq)
{
    struct pirq *p = pirq_at(x, pirq);
    if (p && p->exists) {
        p->port = 0;
        cleanup(p);
    }
}

/* ---- the machine's lines (Xen's assert_gsi / deassert) ---- */
bool xen_gsi_set(struct xen *x, int gsi, bool level)
{
    struct xen_pirqs *ps = x->pirqs;
    if (gsi < 0 || (u32)gsi >= ps->nr_gsis)
        return false;
    bool rising = level && !ps->gsi_level[gsi];
    ps->gsi_level[gsi] = level;
    int pirq = ps->gsi_pirq[gsi];
    if (pirq < 0)
        return false;
    if (rising)
        send_pirq(x, &ps->pirq[pirq]);
    return true;
}

/* ---- physdev_op ---- */
static long map_pirq(struct xcall *k)
{
    struct xen *x = k->x;
    struct physdev_map_pirq m;
    size_t size = k->compat ? MAP_PIRQ_SIZE32 : sizeof(m);
    u8 raw[sizeof(m)];
    memset(&m, 0, sizeof(m));
    if (xen_copy_from(k, k->arg[1], raw, size))
        return -EFAULT;
    memcpy(&m, raw, offsetof(struct physdev_map_pirq, entry_nr) + sizeof(int));
    memcpy(&m.table_base, raw + size - sizeof(uint64_t), sizeof(uint64_t));
    long rc;
    if (m.type == MAP_PIRQ_TYPE_MSI_SEG)
        m.type = MAP_PIRQ_TYPE_MSI;
    else if (m.type == MAP_PIRQ_TYPE_MULTI_MSI && m.table_base)
        return -EINVAL;
    if ((rc = xen_own_domain(x, m.domid)) == -ESRCH)
        return rc;
    if (rc) {
        /* dom0's pirqs: XSM's device-model privilege, which a domU lacks */
    } else if (!x->pirqs->has_pirq) {
        rc = -EPERM; /* the same check for a domain without pirqs */
    } else if (!xen_evtchn_vector_callback(x)) {
        rc = -EINVAL; /* only with the vector callback (physdev_map_pirq) */
    } else if (m.type != MAP_PIRQ_TYPE_GSI) {
        rc = -EINVAL; /* physdev_hvm_map_pirq maps emulated GSIs only */
    } else if (m.index < 0 || (u32)m.index >= x->pirqs->nr_gsis) {
        rc = -EINVAL;
    } else {
        if (m.pirq < 0)
            m.pirq = (int)get_free_pirq(x, MAP_PIRQ_TYPE_GSI);
        rc = map_emuirq(x, m.pirq, m.index);
    }
    /* the structure goes back whatever the outcome (the pirq chosen, MSI_SEG as MSI) */
    memcpy(raw, &m, offsetof(struct physdev_map_pirq, entry_nr) + sizeof(int));
    memcpy(raw + size - sizeof(uint64_t), &m.table_base, sizeof(uint64_t));
    if (xen_copy_to(k, k->arg[1], raw, size))
        return -EFAULT;
    return rc;
}

static long unmap_pirq(struct xcall *k)
{
    struct xen *x = k->x;
    struct physdev_unmap_pirq u;
    if (xen_copy_from(k, k->arg[1], &u, sizeof(u)))
        return -EFAULT;
    long rc = xen_own_domain(x, u.domid);
    if (rc)
        return rc;
    if (!x->pirqs->has_pirq)
        return -EPERM;
    /* a pirq not mapped to a GSI (any number) is left alone: success for the domain's
     * own, as in physdev_unmap_pirq */
    struct pirq *p = pirq_at(x, u.pirq);
    if (p && p->exists && p->emuirq != EMUIRQ_UNBOUND)
        unmap_emuirq(x, p);
    return 0;
}

/* PHYSDEVOP_eoi: a level GSI (16 and up; ISA lines are edge-triggered to Xen) still
 * asserted signals the pirq again. */
static long eoi(struct xcall *k)
{
    struct xen *x = k->x;
    struct physdev_eoi e;
    if (xen_copy_from(k, k->arg[1], &e, sizeof(e)))
        return -EFAULT;
    struct pirq *p = pirq_at(x, e.irq);
    if (!p || !p->exists)
        return -EINVAL;
    if (p->emuirq >= 16 && x->pirqs->gsi_level[p->emuirq])
        send_pirq(x, p);
    return 0;
}

/* PHYSDEVOP_irq_status_query: a mapped pirq always needs its EOI (Xen's answer for
 * every pirq); an emulated one is never shared. */
static long irq_status_query(struct xcall *k)
{
    struct physdev_irq_status_query q;
    if (xen_copy_from(k, k->arg[1], &q, sizeof(q)))
        return -EFAULT;
    struct pirq *p = pirq_at(k->x, (s32)q.irq);
    if (!p || !p->exists || p->emuirq == EMUIRQ_UNBOUND)
        return -EINVAL;
    q.flags = XENIRQSTAT_needs_eoi;
    return xen_copy_to(k, k->arg[1], &q, sizeof(q));
}

/* PHYSDEVOP_get_free_pirq: the pirq stays allocated (Xen's PIRQ_ALLOCATED) */
static long get_free(struct xcall *k)
{
    struct physdev_get_free_pirq g;
    if (xen_copy_from(k, k->arg[1], &g, sizeof(g)))
        return -EFAULT;
    long rc = get_free_pirq(k->x, g.type);
    if (rc < 0)
        return rc;
    k->x->pirqs->pirq[rc].allocated = true;
    g.pirq = (u32)rc;
    return xen_copy_to(k, k->arg[1], &g, sizeof(g));
}

/* Xen's hvm_physdev_op(): map and unmap always reach physdev.c; eoi, irq_status_query
 * and get_free_pirq only with pirqs; everything else (pirq_eoi_gmfn, the I/O APIC,
 * IOPL and PCI management, which are PV's or dom0's) is -ENOSYS before its argument is
 * read. */
long xen_do_physdev_op(struct xcall *k)
{
    bool has_pirq = k->x->pirqs->has_pirq;
    switch ((int)k->arg[0]) {
    case PHYSDEVOP_map_pirq:
        return map_pirq(k);
    case PHYSDEVOP_unmap_pirq:
        return unmap_pirq(k);
    case PHYSDEVOP_eoi:
        return has_pirq ? eoi(k) : -ENOSYS;
    case PHYSDEVOP_irq_status_query:
        return has_pirq ? irq_status_query(k) : -ENOSYS;
    case PHYSDEVOP_get_free_pirq:
        return has_pirq ? get_free(k) : -ENOSYS;
    default:
        return -ENOSYS;
    }
}

/* ---- state: the pirqs, each GSI's pirq and the lines' levels as last driven ---- */
#define F(x) STATE_FIELD(struct pirq, x)
static const struct state_field pirq_fields[] = { F(exists), F(allocated), F(emuirq), F(port) };
#undef F
static const struct state_desc pirq_desc = STATE_DESC("xen.pirq", 1, struct pirq, pirq_fields);
#define F(x) STATE_FIELD(struct xen_pirqs, x)
#define N(x) STATE_NOT_STATE(struct xen_pirqs, x)
static const struct state_field pirqs_fields[] = {
    N(nr_pirqs), N(nr_gsis), F(has_pirq), N(pirq), N(gsi_pirq), N(gsi_level),
};
#undef F
#undef N

static void pirqs_save(void *obj, struct state_buf *b)
{
    const struct xen_pirqs *p = obj;
    for (u32 i = 0; i < p->nr_pirqs; i++)
        state_put_struct(b, &pirq_desc, &p->pirq[i]);
    for (u32 g = 0; g < p->nr_gsis; g++) {
        state_put_u32(b, (u32)p->gsi_pirq[g]);
        state_put_u8(b, p->gsi_level[g]);
    }
}

static int pirqs_load(void *obj, struct state_cursor *c, char *err, size_t errlen)
{
    struct xen_pirqs *p = obj;
    for (u32 i = 0; i < p->nr_pirqs; i++)
        state_get_struct(c, &pirq_desc, &p->pirq[i]);
    for (u32 g = 0; g < p->nr_gsis; g++) {
        p->gsi_pirq[g] = (int)state_get_u32(c);
        u8 level = state_get_u8(c);
        if (level > 1)
            return nestor_err(err, errlen, "an impossible line level");
        p->gsi_level[g] = level;
    }
    return 0;
}

static int pirqs_post_load(void *obj, char *err, size_t errlen)
{
    struct xen_pirqs *p = obj;
    bool ok = true;
    for (u32 i = 0; ok && i < p->nr_pirqs; i++)
        ok = (p->pirq[i].emuirq == EMUIRQ_UNBOUND ||
              (p->pirq[i].emuirq >= 0 && (u32)p->pirq[i].emuirq < p->nr_gsis));
    for (u32 g = 0; ok && g < p->nr_gsis; g++)
        ok = p->gsi_pirq[g] >= -1 && p->gsi_pirq[g] < (int)p->nr_pirqs;
    if (!ok)
        return nestor_err(err, errlen, "impossible pirq state");
    return 0;
}

static const struct state_desc pirqs_state_desc =
    STATE_DESC("xen.pirqs", 1, struct xen_pirqs, pirqs_fields, .save = pirqs_save,
               .load = pirqs_load, .post_load = pirqs_post_load);

void xen_pirq_state_register(struct xen *x, struct state_registry *r)
{
    state_register(r, &pirqs_state_desc, 0, x->pirqs);
}
