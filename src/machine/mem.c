/* Guest RAM as a PC lays it out, and the only code that turns a guest physical address
 * into a host pointer. */
#include "machine/mem.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "common.h"

static int add_region(struct guest_mem *m, u64 gpa, u64 size, enum mem_region_kind kind)
{
    if (m->nregions >= MEM_MAX_REGIONS)
        nestor_panic("too many memory regions");
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
        nestor_log("cannot reserve %llu MiB of host memory for the guest",
                   (unsigned long long)(size / MiB));
        return -1;
    }
    void *g = mmap(NULL, size / 4096 * sizeof(u32), PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (g == MAP_FAILED) {
        munmap(p, size);
        nestor_log("cannot reserve host memory for the guest's page table");
        return -1;
    }
    m->region[m->nregions++] = (struct mem_region){ gpa, size, p, kind, g };
    return 0;
}

static void add_e820(struct guest_mem *m, u64 addr, u64 size, u32 type)
{
    if (size == 0)
        return;
    if (m->ne820 >= MEM_MAX_E820)
        nestor_panic("e820 map full");
    m->e820[m->ne820++] = (struct e820_entry){ addr, size, type };
}

u64 mem_ram_end(u64 ram_size)
{
    return ram_size > MEM_PCI_HOLE_START ? MEM_4G + (ram_size - MEM_PCI_HOLE_START) : ram_size;
}

int mem_init(struct guest_mem *m, u64 ram_size)
{
    memset(m, 0, sizeof(*m));
    if (ram_size < 2 * MiB) {
        nestor_log("guest RAM of %llu bytes is too small (at least 2M)", (unsigned long long)ram_size);
        return -1;
    }
    if (ram_size > 1024 * GiB) {
        nestor_log("guest RAM of %llu GiB is too large (at most 1T)", (unsigned long long)(ram_size / GiB));
        return -1;
    }
    m->ram_size = ram_size;
    /* Low memory: conventional RAM, then the VGA hole (0xA0000-0xBFFFF, unbacked), then
     * the BIOS area 0xE0000-0xFFFFF (RAM holding ACPI/RSDP, reserved in e820). One host
     * mapping covers [0, 1M) so low-memory pointers are simple; the VGA hole is left out
     * of the region list so it is not RAM for the guest. */
    u64 below4g = ram_size < MEM_PCI_HOLE_START ? ram_size : MEM_PCI_HOLE_START;
    if (add_region(m, 0, MEM_LOW_END, MEM_RAM) < 0)
        return -1;
    if (add_region(m, MEM_BIOS_START, MEM_HIGH_START - MEM_BIOS_START, MEM_RAM) < 0)
        goto fail;
    if (add_region(m, MEM_HIGH_START, below4g - MEM_HIGH_START, MEM_RAM) < 0)
        goto fail;
    if (ram_size > MEM_PCI_HOLE_START &&
        add_region(m, MEM_4G, ram_size - MEM_PCI_HOLE_START, MEM_RAM) < 0)
        goto fail;

    add_e820(m, 0, 0x9fc00, E820_RAM);
    add_e820(m, 0x9fc00, MEM_LOW_END - 0x9fc00, E820_RESERVED); /* EBDA */
    add_e820(m, MEM_BIOS_START, MEM_HIGH_START - MEM_BIOS_START, E820_RESERVED);
    add_e820(m, MEM_HIGH_START, below4g - MEM_HIGH_START, E820_RAM);
    if (ram_size > MEM_PCI_HOLE_START)
        add_e820(m, MEM_4G, ram_size - MEM_PCI_HOLE_START, E820_RAM);
    return 0;
fail:
    mem_destroy(m);
    return -1;
}

void mem_destroy(struct guest_mem *m)
{
    for (int i = 0; i < m->nregions; i++) {
        munmap(m->region[i].host, m->region[i].size);
        munmap(m->region[i].page_gen, m->region[i].size / 4096 * sizeof(u32));
    }
    m->nregions = 0;
}

static const struct mem_region *find(const struct guest_mem *m, u64 gpa)
{
    if (m->noverlay && gpa - m->overlay_lo <= m->overlay_hi - m->overlay_lo)
        for (int i = 0; i < m->noverlay; i++)
            if (gpa - m->overlay[i].gpa < 4096)
                return &m->overlay[i];
    for (int i = 0; i < m->nregions; i++) {
        const struct mem_region *r = &m->region[i];
        if (gpa - r->gpa < r->size)
            return r;
    }
    return NULL;
}

static void overlay_bounds(struct guest_mem *m)
{
    m->overlay_lo = ~0ull;
    m->overlay_hi = 0;
    for (int i = 0; i < m->noverlay; i++) {
        if (m->overlay[i].gpa < m->overlay_lo)
            m->overlay_lo = m->overlay[i].gpa;
        if (m->overlay[i].gpa + 4095 > m->overlay_hi)
            m->overlay_hi = m->overlay[i].gpa + 4095;
    }
}

void mem_overlay_unmap(struct guest_mem *m, u8 *host)
{
    for (int i = 0; i < m->noverlay; i++) {
        if (m->overlay[i].host != host)
            continue;
        mem_code_write(m->overlay[i].page_gen); /* code decoded from it is gone */
        m->overlay[i] = m->overlay[--m->noverlay];
        overlay_bounds(m);
        return;
    }
}

int mem_overlay_map(struct guest_mem *m, u64 gpa, u8 *host, u32 *gen)
{
    if (gpa & 0xfff)
        return -1;
    mem_overlay_unmap(m, host);
    for (int i = 0; i < m->noverlay; i++) /* one page per frame: a new one replaces it */
        if (m->overlay[i].gpa == gpa)
            mem_overlay_unmap(m, m->overlay[i].host);
    if (m->noverlay >= MEM_MAX_OVERLAYS)
        return -1;
    /* code decoded from what was there is gone: the page now holds other bytes */
    u32 *old = mem_page_gen(m, gpa);
    if (old)
        mem_code_write(old);
    m->overlay[m->noverlay++] = (struct mem_region){ gpa, 4096, host, MEM_RAM, gen };
    overlay_bounds(m);
    return 0;
}

u8 *mem_ptr(struct guest_mem *m, u64 gpa, u64 len)
{
    const struct mem_region *r = find(m, gpa);
    if (!r || len > r->size - (gpa - r->gpa))
        return NULL;
    return r->host + (gpa - r->gpa);
}

bool mem_is_ram(const struct guest_mem *m, u64 gpa, u64 len)
{
    /* A range may span adjacent regions (e.g. 0xFFFFF..0x100000). */
    while (len) {
        const struct mem_region *r = find(m, gpa);
        if (!r)
            return false;
        u64 avail = r->size - (gpa - r->gpa);
        if (avail >= len)
            return true;
        gpa += avail;
        len -= avail;
    }
    return true;
}

u32 *mem_page_gen(struct guest_mem *m, u64 gpa)
{
    const struct mem_region *r = find(m, gpa);
    return r ? &r->page_gen[(gpa - r->gpa) >> 12] : NULL;
}

void mem_code_mark(struct guest_mem *m, u64 gpa)
{
    u32 *g = mem_page_gen(m, gpa);
    if (!g || (*g & PAGE_GEN_CODE))
        return;
    *g |= PAGE_GEN_CODE;
    for (int i = 0; i < m->ncode_watch; i++)
        m->code_watch[i](m->code_watch_opaque[i], gpa & ~0xfffull);
}

void mem_add_code_watcher(struct guest_mem *m, void (*fn)(void *opaque, u64 gpa_page), void *opaque)
{
    if (m->ncode_watch >= MEM_MAX_WATCHERS)
        nestor_panic("too many code watchers");
    m->code_watch[m->ncode_watch] = fn;
    m->code_watch_opaque[m->ncode_watch++] = opaque;
}

/* Invalidates decoded code in [gpa, gpa+len) (all of it RAM). */
static void code_written(struct guest_mem *m, u64 gpa, u64 len)
{
    for (u64 a = gpa & ~0xfffull; a < gpa + len; a += 4096) {
        u32 *g = mem_page_gen(m, a);
        if (g)
            mem_code_write(g);
    }
}

static int copy(struct guest_mem *m, u64 gpa, void *buf, const void *src, u64 len)
{
    if (!mem_is_ram(m, gpa, len))
        return -1;
    while (len) {
        const struct mem_region *r = find(m, gpa);
        u64 off = gpa - r->gpa, n = r->size - off;
        if (n > len)
            n = len;
        if (buf)
            memcpy(buf, r->host + off, n), buf = (u8 *)buf + n;
        else
            memcpy(r->host + off, src, n), src = (const u8 *)src + n;
        gpa += n;
        len -= n;
    }
    return 0;
}

int mem_read(struct guest_mem *m, u64 gpa, void *buf, u64 len)
{
    return len ? copy(m, gpa, buf, NULL, len) : 0;
}

int mem_write(struct guest_mem *m, u64 gpa, const void *buf, u64 len)
{
    if (!len)
        return 0;
    if (copy(m, gpa, NULL, buf, len) < 0)
        return -1;
    code_written(m, gpa, len);
    return 0;
}

int mem_fill(struct guest_mem *m, u64 gpa, u8 byte, u64 len)
{
    if (!mem_is_ram(m, gpa, len))
        return -1;
    code_written(m, gpa, len);
    while (len) {
        const struct mem_region *r = find(m, gpa);
        u64 off = gpa - r->gpa, n = r->size - off;
        if (n > len)
            n = len;
        memset(r->host + off, byte, n);
        gpa += n;
        len -= n;
    }
    return 0;
}

#define SCALAR(bits)                                                             \
    int mem_read_u##bits(struct guest_mem *m, u64 gpa, u##bits *v)               \
    {                                                                            \
        return mem_read(m, gpa, v, sizeof(*v));                                  \
    }                                                                            \
    int mem_write_u##bits(struct guest_mem *m, u64 gpa, u##bits v)               \
    {                                                                            \
        return mem_write(m, gpa, &v, sizeof(v));                                 \
    }
SCALAR(8)
SCALAR(16)
SCALAR(32)
SCALAR(64)

void mem_e820_mark(struct guest_mem *m, u64 addr, u64 size, u32 type)
{
    /* Split the entries that overlap [addr, addr+size) and insert the new range. */
    struct e820_entry out[MEM_MAX_E820];
    int n = 0;
    u64 end = addr + size;
    for (int i = 0; i < m->ne820; i++) {
        struct e820_entry e = m->e820[i];
        u64 eend = e.addr + e.size;
        if (eend <= addr || e.addr >= end) {
            if (n >= MEM_MAX_E820) nestor_panic("e820 map full");
            out[n++] = e;
            continue;
        }
        if (e.addr < addr) {
            if (n >= MEM_MAX_E820) nestor_panic("e820 map full");
            out[n++] = (struct e820_entry){ e.addr, addr - e.addr, e.type };
        }
        if (eend > end) {
            if (n >= MEM_MAX_E820) nestor_panic("e820 map full");
            out[n++] = (struct e820_entry){ end, eend - end, e.type };
        }
    }
    if (n >= MEM_MAX_E820)
        nestor_panic("e820 map full");
    out[n++] = (struct e820_entry){ addr, size, type };
    /* keep sorted by address */
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && out[j].addr < out[j - 1].addr; j--) {
            struct e820_entry t = out[j]; out[j] = out[j - 1]; out[j - 1] = t;
        }
    memcpy(m->e820, out, sizeof(out[0]) * n);
    m->ne820 = n;
}
