/* The Xen platform PCI device (with -xen), as Xen's device model (QEMU's
 * hw/i386/xen/xen_platform.c) gives it to an HVM guest:
 *   PCI 5853:0001, subsystem 5853:0001, revision 1, class ff80 (other), INTA;
 *   BAR0  256 I/O ports: offset 0 the platform flags, offset 8 the debug log;
 *   BAR1  16 MiB of prefetchable memory where the guest maps Xen's pages (grant frames):
 *         what is not mapped there reads 0 and ignores writes, as QEMU's;
 *   ports 0x10-0x1f, the fixed I/O protocol of Xen's PV drivers:
 *     0x10 read word: the magic 0x49d2; write word: unplug emulated devices (logged);
 *          write dword: the PV driver's version; read/write byte: the platform flags
 *     0x12 read byte: the protocol version (1); write word: the PV product number;
 *          write byte: the debug log, one line at a time to nestor's console (what Xen
 *          test kernels without a PV console write to).
 * Guest accesses of any size are safe: only the device's own state changes. */
#include "dev/dev.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "machine/machine.h"

#define XEN_PLATFORM_PORT 0x10
#define XEN_PLATFORM_PORTS 16
#define XEN_PLATFORM_MAGIC 0x49d2
#define XEN_PLATFORM_PROTOCOL 1
#define XEN_PLATFORM_MMIO_SIZE (16 * MiB)
#define XEN_PLATFORM_BAR0_SIZE 256
#define PFFLAG_ROM_LOCK 1 /* the one platform flag the device keeps */

struct xen_platform {
    struct machine *m;
    struct pci_device *pci;
    int console_fd;
    u8 flags;
    u16 product;
    u32 driver_version;
    char log[256];
    unsigned log_len;
};

/* The debug log: a line at a time, prefixed so that it stands apart from the serial
 * console's output. */
static void log_byte(struct xen_platform *p, u8 c)
{
    if (c != '\n' && p->log_len < sizeof(p->log) - 1) {
        p->log[p->log_len++] = (char)c;
        return;
    }
    if (c != '\n')
        p->log[p->log_len++] = (char)c;
    if (p->console_fd >= 0) {
        char line[300];
        int n = snprintf(line, sizeof(line), "(xen platform) %.*s\n", (int)p->log_len, p->log);
        ssize_t w = write(p->console_fd, line, (size_t)n);
        (void)w; /* a closed console loses the log, as a serial line would */
    }
    p->log_len = 0;
}

static void unplug(u16 mask)
{
    static const char *const what[] = { "IDE disks", "NICs", "auxiliary IDE disks", "NVMe disks" };
    char list[128] = "";
    for (unsigned i = 0; i < 4; i++)
        if (mask & BIT(i))
            snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s", *list ? ", " : "", what[i]);
    /* nestor's PC has none of these emulated devices: there is nothing to take away */
    nestor_log("Xen platform: the guest unplugs emulated %s (mask %#x)", *list ? list : "nothing",
               mask);
}

static u64 fixed_read(void *opaque, u64 offset, unsigned size)
{
    struct xen_platform *p = opaque;
    if (offset == 0 && size == 2)
        return XEN_PLATFORM_MAGIC;
    if (offset == 0 && size == 1)
        return p->flags;
    if (offset == 2 && size == 1)
        return XEN_PLATFORM_PROTOCOL;
    return size >= 8 ? ~0ull : MASK(8 * size);
}

static void fixed_write(void *opaque, u64 offset, unsigned size, u64 value)
{
    struct xen_platform *p = opaque;
    if (offset == 0 && size == 2)
        unplug((u16)value);
    else if (offset == 0 && size == 4)
        p->driver_version = (u32)value;
    else if (offset == 0 && size == 1)
        p->flags = (u8)value & PFFLAG_ROM_LOCK;
    else if (offset == 2 && size == 2)
        p->product = (u16)value;
    else if (offset == 2 && size == 1)
        log_byte(p, (u8)value);
}

static u64 bar0_read(void *opaque, u64 offset, unsigned size)
{
    struct xen_platform *p = opaque;
    if (offset == 0 && size == 1)
        return p->flags;
    return size >= 8 ? ~0ull : MASK(8 * size);
}

static void bar0_write(void *opaque, u64 offset, unsigned size, u64 value)
{
    struct xen_platform *p = opaque;
    if (size != 1)
        return;
    if (offset == 0)
        p->flags = (u8)value & PFFLAG_ROM_LOCK;
    else if (offset == 8)
        log_byte(p, (u8)value);
}

static u64 mmio_read(void *opaque, u64 offset, unsigned size)
{
    (void)opaque, (void)offset, (void)size;
    return 0;
}

static void mmio_write(void *opaque, u64 offset, unsigned size, u64 value)
{
    (void)opaque, (void)offset, (void)size, (void)value;
}

struct xen_platform *xen_platform_create(struct machine *m, int console_fd)
{
    struct xen_platform *p = calloc(1, sizeof(*p));
    if (!p)
        nestor_panic("out of memory");
    p->m = m;
    p->console_fd = console_fd;
    int slot = pci_free_slot(m->pci);
    if (slot < 0)
        nestor_panic("Xen platform device: no free PCI slot");
    struct pci_device *d = pci_register_device(m->pci, PCI_DEVFN(slot, 0), NULL, p);
    p->pci = d;
    static const u8 ids[] = { 0x53, 0x58, 0x01, 0x00 }; /* XenSource, platform device */
    memcpy(d->config, ids, sizeof(ids));
    memcpy(d->config + 0x2c, ids, sizeof(ids));          /* the same as subsystem ids */
    d->config[0x08] = 1;    /* revision */
    d->config[0x0a] = 0x80; /* class ff80: other */
    d->config[0x0b] = 0xff;
    d->config[0x3d] = 1;    /* INTA */
    d->wmask[0x04] = 0x47;  /* command: I/O, memory, bus master, parity, SERR, INTx disable */
    d->wmask[0x05] = 0x05;
    d->w1cmask[0x07] = 0xf9;
    d->wmask[0x0c] = 0xff;
    d->wmask[0x0d] = 0xff;
    d->wmask[0x3c] = 0xff;  /* interrupt line */
    pci_device_add_bar(d, 0, PCI_BAR_IO, XEN_PLATFORM_BAR0_SIZE, bar0_read, bar0_write, p, "xen-pci");
    pci_device_add_bar(d, 1, PCI_BAR_MEM32, XEN_PLATFORM_MMIO_SIZE, mmio_read, mmio_write, p,
                       "xen-mmio");
    d->config[0x14] |= 0x08; /* prefetchable, as Xen's device model has it */
    bus_register(&m->io, XEN_PLATFORM_PORT, XEN_PLATFORM_PORTS, fixed_read, fixed_write, p,
                 "xen-platform");
    return p;
}

u8 xen_platform_devfn(const struct xen_platform *p)
{
    return p->pci->devfn;
}

void xen_platform_destroy(struct xen_platform *p)
{
    free(p);
}

void xen_platform_remove(struct xen_platform *p)
{
    bus_unregister(&p->m->io, XEN_PLATFORM_PORT, p);
    pci_unregister_device(p->pci);
    free(p);
}

/* ---- state ---- */
#define F(m) STATE_FIELD(struct xen_platform, m)
static const struct state_field xen_platform_fields[] = {
    STATE_NOT_STATE(struct xen_platform, m), STATE_NOT_STATE(struct xen_platform, pci),
    STATE_NOT_STATE(struct xen_platform, console_fd), F(flags), F(product), F(driver_version),
    F(log), F(log_len),
};
#undef F

static int xen_platform_post_load(void *obj, char *err, size_t errlen)
{
    struct xen_platform *p = obj;
    if (p->log_len >= sizeof(p->log)) {
        return nestor_err(err, errlen, "log line out of range");
    }
    return 0;
}

static const struct state_desc xen_platform_state_desc =
    STATE_DESC("xen-platform", 1, struct xen_platform, xen_platform_fields,
               .post_load = xen_platform_post_load);

void xen_platform_state_register(struct xen_platform *p, struct state_registry *r)
{
    state_register(r, &xen_platform_state_desc, 0, p);
}
