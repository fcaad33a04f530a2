/* What a Xen toolstack writes into xenstore for an HVM or PVH domU before it starts
 * (libxl's libxl__domain_make and its build steps, Xen 4.17): the domain's directory,
 * readable by the domain and owned by domain 0; the keys the guest may write (control/
 * shutdown and the feature flags, data, drivers, attr, error...), owned by the domain;
 * its name, vm path, memory and vCPUs; where its xenstore ring and console are. */
#include <stdio.h>

#include "dom0/xenstore.h"

int xenstore_write_domain(struct xenstore *s, const struct xenstore_domain *d)
{
    u16 domid = xenstore_domid(s);
    char dom[48], p[160], uuid[40], ro[8], rw[8];
    int rc;
    /* a UUID per domain, fixed so that runs stay alike */
    snprintf(dom, sizeof(dom), "/local/domain/%u", domid);
    snprintf(uuid, sizeof(uuid), "00000000-0000-0000-0000-%012x", domid);
    snprintf(ro, sizeof(ro), "r%u", domid);
    snprintf(rw, sizeof(rw), "n%u", domid);
    const char *roperm[] = { "n0", ro }, *rwperm[] = { rw }, *noperm[] = { "n0" };
#define TRY(x) do { if ((rc = (x))) return rc; } while (0)
#define AT(fmt, ...) (snprintf(p, sizeof(p), fmt, __VA_ARGS__), p)
    TRY(xenstore_mkdir(s, dom));
    TRY(xenstore_set_perms(s, dom, roperm, 2));
    TRY(xenstore_printf(s, AT("/vm/%s/uuid", uuid), "%s", uuid));
    TRY(xenstore_printf(s, AT("/vm/%s/name", uuid), "%s", d->name));
    TRY(xenstore_set_perms(s, AT("/vm/%s", uuid), roperm, 2));
    TRY(xenstore_set_perms(s, "/vm", noperm, 1));
    TRY(xenstore_printf(s, AT("/libxl/%u/type", domid), "%s", d->pvh ? "pvh" : "hvm"));
    TRY(xenstore_set_perms(s, "/libxl", noperm, 1));
    TRY(xenstore_printf(s, AT("%s/vm", dom), "/vm/%s", uuid));
    TRY(xenstore_printf(s, AT("%s/name", dom), "%s", d->name));
    TRY(xenstore_printf(s, AT("%s/domid", dom), "%u", domid));
    /* the directories the guest writes into */
    static const char *const guest_dirs[] = {
        "control/shutdown", "control/feature-poweroff", "control/feature-reboot",
        "control/feature-suspend", "control/sysrq", "data", "drivers", "feature", "attr", "error",
        "device/suspend/event-channel",
    };
    TRY(xenstore_mkdir(s, AT("%s/device", dom)));
    TRY(xenstore_mkdir(s, AT("%s/control", dom)));
    for (size_t i = 0; i < sizeof(guest_dirs) / sizeof(guest_dirs[0]); i++) {
        TRY(xenstore_mkdir(s, AT("%s/%s", dom, guest_dirs[i])));
        TRY(xenstore_set_perms(s, p, rwperm, 1));
    }
    TRY(xenstore_printf(s, AT("%s/control/platform-feature-multiprocessor-suspend", dom), "1"));
    TRY(xenstore_printf(s, AT("%s/control/platform-feature-xs_reset_watches", dom), "1"));
    u64 kib = d->ram_bytes >> 10;
    TRY(xenstore_printf(s, AT("%s/memory/static-max", dom), "%llu", (unsigned long long)kib));
    TRY(xenstore_printf(s, AT("%s/memory/target", dom), "%llu", (unsigned long long)kib));
    for (int i = 0; i < d->ncpus; i++)
        TRY(xenstore_printf(s, AT("%s/cpu/%d/availability", dom, i), "online"));
    TRY(xenstore_printf(s, AT("%s/store/port", dom), "%u", d->store_port));
    TRY(xenstore_printf(s, AT("%s/store/ring-ref", dom), "%u", d->store_pfn));
    if (d->console_pfn) {
        TRY(xenstore_printf(s, AT("%s/console/port", dom), "%u", d->console_port));
        TRY(xenstore_printf(s, AT("%s/console/ring-ref", dom), "%u", d->console_pfn));
        TRY(xenstore_printf(s, AT("%s/console/limit", dom), "1048576"));
        TRY(xenstore_printf(s, AT("%s/console/type", dom), "xenconsoled"));
        TRY(xenstore_printf(s, AT("%s/console/output", dom), "pty"));
    }
#undef AT
#undef TRY
    return 0;
}
