/* Kernel loading: reads the kernel and initrd files, recognises the image format and
 * hands it to its loader; also the pieces every loader shares (placement of boot data in
 * guest RAM, the boot GDT, the identity page tables and the entry state of the BSP). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "boot/boot_internal.h"
#include "machine/machine.h"

/* ---- files ---- */

/* Reads a whole file into a fresh buffer; a file larger than `limit` bytes cannot fit in
 * guest RAM and is refused before it is read. Returns 0, or -1 with a message. */
static int read_file(const char *path, const char *what, u64 limit, struct boot_image *out,
                     u8 **owned)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        nestor_log("cannot open %s '%s': %s", what, path, strerror(errno));
        return -1;
    }
    size_t cap = 64 * KiB, len = 0;
    u8 *buf = malloc(cap);
    int rc = -1;
    if (!buf) {
        nestor_log("%s '%s': out of host memory", what, path);
        goto out;
    }
    for (;;) {
        if (len == cap) {
            if (cap > limit) {
                nestor_log("%s '%s' is larger than guest RAM (%llu MiB)", what, path,
                           (unsigned long long)(limit / MiB));
                goto out;
            }
            u8 *bigger = realloc(buf, cap * 2);
            if (!bigger) {
                nestor_log("%s '%s': out of host memory", what, path);
                goto out;
            }
            buf = bigger;
            cap *= 2;
        }
        size_t n = fread(buf + len, 1, cap - len, f);
        len += n;
        if (n == 0) {
            if (ferror(f)) {
                nestor_log("cannot read %s '%s': %s", what, path, strerror(errno));
                goto out;
            }
            break;
        }
    }
    if (len > limit) {
        nestor_log("%s '%s' is larger than guest RAM (%llu MiB)", what, path,
                   (unsigned long long)(limit / MiB));
        goto out;
    }
    out->data = buf;
    out->size = len;
    out->path = path;
    *owned = buf;
    buf = NULL;
    rc = 0;
out:
    free(buf);
    fclose(f);
    return rc;
}

/* ---- multiboot module lists ---- */

/* QEMU's -initrd syntax for multiboot: "file1 args,file2 args,...", where ",," stands
 * for a literal comma. Each element is one module; its file name ends at the first space
 * and the whole element is the module's string. */
#define BOOT_MAX_MODULES 64

struct module_list {
    struct boot_module mod[BOOT_MAX_MODULES];
    char *string[BOOT_MAX_MODULES]; /* owned: module strings */
    char *file[BOOT_MAX_MODULES];   /* owned: file names */
    u8 *data[BOOT_MAX_MODULES];     /* owned: contents */
    int n;
};

static void module_list_free(struct module_list *l)
{
    for (int i = 0; i < l->n; i++) {
        free(l->string[i]);
        free(l->file[i]);
        free(l->data[i]);
    }
    l->n = 0;
}

static int module_list_read(struct module_list *l, const char *spec, u64 limit)
{
    l->n = 0;
    const char *p = spec;
    for (;;) {
        if (l->n == BOOT_MAX_MODULES) {
            nestor_log("-initrd: more than %d multiboot modules", BOOT_MAX_MODULES);
            return -1;
        }
        /* one element, with ",," unescaped */
        size_t cap = strlen(p) + 1, len = 0;
        char *s = malloc(cap);
        if (!s) {
            nestor_log("-initrd: out of host memory");
            return -1;
        }
        while (*p) {
            if (p[0] == ',' && p[1] != ',')
                break;
            if (p[0] == ',')
                p++; /* ",," */
            s[len++] = *p++;
        }
        s[len] = 0;
        int i = l->n++;
        l->string[i] = s;
        l->file[i] = NULL;
        l->data[i] = NULL;
        size_t name_len = strcspn(s, " ");
        if (name_len == 0) {
            nestor_log("-initrd: empty multiboot module file name in '%s'", spec);
            return -1;
        }
        l->file[i] = strndup(s, name_len);
        if (!l->file[i]) {
            nestor_log("-initrd: out of host memory");
            return -1;
        }
        if (read_file(l->file[i], "multiboot module", limit, &l->mod[i].image, &l->data[i]))
            return -1;
        l->mod[i].string = s;
        if (*p == 0)
            return 0;
        p++; /* the separating comma */
    }
}

/* ---- dispatch ---- */

typedef int (*boot_loader_fn)(struct machine *m, const struct boot_image *k,
                              const struct boot_image *initrd, const char *cmdline);

/* Formats after multiboot (which is recognised first because it takes a module list),
 * in the order they are tried: a PVH note wins over the bzImage header and plain ELF. */
static const boot_loader_fn boot_formats[] = { boot_pvh, boot_linux, boot_elf };

int boot_load_kernel(struct machine *m, const char *kernel, const char *initrd,
                     const char *cmdline)
{
    if (!kernel) {
        nestor_log("no kernel image given");
        return NESTOR_EXIT_USAGE;
    }
    u64 limit = m->mem.ram_size;
    struct boot_image k;
    u8 *kdata = NULL;
    if (read_file(kernel, "kernel", limit, &k, &kdata))
        return NESTOR_EXIT_USAGE;

    int rc = 1;
    struct multiboot_scan mb;
    multiboot_scan(&k, &mb);
    if (mb.found) {
        struct module_list *mods = calloc(1, sizeof *mods);
        if (!mods) {
            nestor_log("out of host memory");
            rc = NESTOR_EXIT_USAGE;
        } else {
            if (initrd && module_list_read(mods, initrd, limit))
                rc = NESTOR_EXIT_USAGE;
            else
                rc = multiboot_load(m, &k, mods->mod, mods->n, cmdline);
            module_list_free(mods);
            free(mods);
        }
    } else {
        struct boot_image rd, *rdp = NULL;
        u8 *rddata = NULL;
        if (initrd) {
            if (read_file(initrd, "initrd", limit, &rd, &rddata))
                rc = NESTOR_EXIT_USAGE;
            else
                rdp = &rd;
        }
        for (size_t i = 0; rc == 1 && i < ARRAY_SIZE(boot_formats); i++)
            rc = boot_formats[i](m, &k, rdp, cmdline);
        free(rddata);
    }
    if (rc == 1) {
        if (mb.bad_checksum)
            nestor_log("%s: unrecognised kernel image format (the multiboot magic at offset "
                       "0x%zx has a bad checksum)", kernel, mb.bad_offset);
        else
            nestor_log("%s: unrecognised kernel image format (not multiboot, PVH ELF, Linux "
                       "bzImage or ELF)", kernel);
        rc = NESTOR_EXIT_USAGE;
    }
    free(kdata);
    return rc;
}

/* ---- RAM and placement ---- */

static const struct e820_entry *e820_ram_at(struct machine *m, u64 addr)
{
    for (int i = 0; i < m->mem.ne820; i++) {
        const struct e820_entry *e = &m->mem.e820[i];
        if (e->type == E820_RAM && addr >= e->addr && addr - e->addr < e->size)
            return e;
    }
    return NULL;
}

u64 boot_ram_run_end(struct machine *m, u64 start)
{
    u64 pos = start;
    /* each step moves to the end of a different entry, so ne820 steps are enough */
    for (int step = 0; step <= m->mem.ne820; step++) {
        const struct e820_entry *e = e820_ram_at(m, pos);
        if (!e)
            break;
        pos = e->addr + e->size;
    }
    return pos;
}

bool boot_is_usable_ram(struct machine *m, u64 start, u64 size)
{
    u64 end;
    if (size == 0 || !boot_add(start, size, &end))
        return false;
    return boot_ram_run_end(m, start) >= end && mem_is_ram(&m->mem, start, size);
}

static bool ranges_overlap(u64 a0, u64 a1, u64 b0, u64 b1) { return a0 < b1 && b0 < a1; }

static const struct boot_range *layout_conflict(const struct boot_layout *l, u64 start, u64 end)
{
    for (int i = 0; i < l->nused; i++)
        if (ranges_overlap(start, end, l->used[i].start, l->used[i].end))
            return &l->used[i];
    return NULL;
}

static int layout_add(struct boot_layout *l, u64 start, u64 end, const char *what)
{
    if (l->nused == BOOT_LAYOUT_MAX) {
        nestor_log("%s: too many boot areas to place (at most %d)", l->path, BOOT_LAYOUT_MAX);
        return -1;
    }
    struct boot_range *r = &l->used[l->nused++];
    *r = (struct boot_range){ .start = start, .end = end };
    snprintf(r->what, sizeof r->what, "%s", what);
    return 0;
}

void boot_layout_init(struct boot_layout *l, struct machine *m, const char *path)
{
    l->m = m;
    l->path = path;
    l->nused = 0;
    if (m->acpi_rsdp)
        layout_add(l, m->acpi_rsdp, m->acpi_rsdp + 36, "the ACPI RSDP"); /* ACPI 2.0 length */
}

/* What a PC has where there is no RAM, for messages. */
static const struct {
    u64 start, end;
    const char *what;
} pc_holes[] = {
    { MEM_LOW_END - 0x400, MEM_LOW_END, "the extended BIOS data area" },
    { MEM_LOW_END, 0xc0000, "the VGA window" },
    { 0xc0000, MEM_BIOS_START, "the option ROM area" },
    { MEM_BIOS_START, MEM_HIGH_START, "the BIOS area (ACPI tables)" },
    { MEM_PCI_HOLE_START, MEM_4G, "the PCI hole" },
};

/* Names what is at addr, which is not usable RAM. */
static void describe_non_ram(struct machine *m, u64 addr, char *buf, size_t n)
{
    for (size_t i = 0; i < ARRAY_SIZE(pc_holes); i++) {
        if (addr >= pc_holes[i].start && addr < pc_holes[i].end) {
            snprintf(buf, n, "in %s [0x%llx, 0x%llx)", pc_holes[i].what,
                     (unsigned long long)pc_holes[i].start, (unsigned long long)pc_holes[i].end);
            return;
        }
    }
    u64 top = 0;
    for (int i = 0; i < m->mem.ne820; i++)
        if (m->mem.e820[i].type == E820_RAM && m->mem.e820[i].addr + m->mem.e820[i].size > top)
            top = m->mem.e820[i].addr + m->mem.e820[i].size;
    if (addr >= top)
        snprintf(buf, n, "beyond the end of guest RAM (%llu MiB, see -m)",
                 (unsigned long long)(m->mem.ram_size / MiB));
    else
        snprintf(buf, n, "in a hole of the memory map");
}

int boot_layout_claim(struct boot_layout *l, u64 start, u64 end, const char *what)
{
    if (end <= start || !boot_is_usable_ram(l->m, start, end - start)) {
        /* the first address that is not RAM: the end of the RAM run from start */
        u64 bad = end <= start ? start : boot_ram_run_end(l->m, start);
        if (bad >= end && end > start)
            bad = start;
        char where[96];
        describe_non_ram(l->m, bad, where, sizeof where);
        nestor_log("%s: %s [0x%llx, 0x%llx) is not in guest RAM: 0x%llx is %s", l->path, what,
                   (unsigned long long)start, (unsigned long long)end, (unsigned long long)bad,
                   where);
        return -1;
    }
    const struct boot_range *r = layout_conflict(l, start, end);
    if (r) {
        nestor_log("%s: %s [0x%llx, 0x%llx) overlaps %s [0x%llx, 0x%llx)", l->path, what,
                   (unsigned long long)start, (unsigned long long)end, r->what,
                   (unsigned long long)r->start, (unsigned long long)r->end);
        return -1;
    }
    return layout_add(l, start, end, what);
}

static bool layout_fits(const struct boot_layout *l, u64 p, u64 size, u64 lo, u64 hi)
{
    u64 end;
    return p >= lo && boot_add(p, size, &end) && end <= hi && boot_is_usable_ram(l->m, p, size) &&
           !layout_conflict(l, p, end);
}

/* The best place is always aligned next to a boundary: lo/hi, the edge of a taken range
 * or the edge of an e820 RAM entry. Those few candidates are tried. */
bool boot_layout_find(const struct boot_layout *l, u64 size, u64 align, u64 lo, u64 hi,
                      bool highest, u64 *out)
{
    const struct guest_mem *mem = &l->m->mem;
    u64 edges[2 + 2 * BOOT_LAYOUT_MAX + 2 * MEM_MAX_E820];
    int n = 0;
    edges[n++] = lo;
    edges[n++] = hi;
    for (int i = 0; i < l->nused; i++) {
        edges[n++] = l->used[i].start;
        edges[n++] = l->used[i].end;
    }
    for (int i = 0; i < mem->ne820 && i < MEM_MAX_E820; i++) {
        if (mem->e820[i].type != E820_RAM)
            continue;
        edges[n++] = mem->e820[i].addr;
        edges[n++] = mem->e820[i].addr + mem->e820[i].size;
    }
    bool found = false;
    u64 best = 0;
    for (int i = 0; size && i < n; i++) {
        u64 p;
        if (highest) {
            if (edges[i] < size)
                continue;
            p = boot_align_down(edges[i] - size, align);
        } else {
            if (edges[i] > UINT64_MAX - align)
                continue;
            p = boot_align_up(edges[i], align);
        }
        if (layout_fits(l, p, size, lo, hi) && (!found || (highest ? p > best : p < best))) {
            best = p;
            found = true;
        }
    }
    if (found)
        *out = best;
    return found;
}

int boot_layout_alloc(struct boot_layout *l, u64 size, u64 align, u64 lo, u64 hi,
                      bool highest, const char *what, u64 *out)
{
    u64 p;
    if (!boot_layout_find(l, size, align, lo, hi, highest, &p)) {
        nestor_log("%s: no room in guest RAM for %s (%llu bytes in [0x%llx, 0x%llx))", l->path,
                   what, (unsigned long long)size, (unsigned long long)lo, (unsigned long long)hi);
        return -1;
    }
    if (layout_add(l, p, p + size, what))
        return -1;
    *out = p;
    return 0;
}

int boot_layout_alloc_prefer(struct boot_layout *l, u64 size, u64 align, u64 prefer_lo, u64 hi,
                             const char *what, u64 *out)
{
    u64 p;
    if (prefer_lo > BOOT_DATA_LOW && boot_layout_find(l, size, align, prefer_lo, hi, false, &p))
        return boot_layout_alloc(l, size, align, p, hi, false, what, out);
    return boot_layout_alloc(l, size, align, BOOT_DATA_LOW, hi, false, what, out);
}

/* ---- entry state ---- */

/* Attributes in the VMX access-rights layout of struct seg. */
#define ATTR_CODE32 (0xB | SEG_ATTR_S | SEG_ATTR_P | SEG_ATTR_DB | SEG_ATTR_G)
#define ATTR_CODE64 (0xB | SEG_ATTR_S | SEG_ATTR_P | SEG_ATTR_L | SEG_ATTR_G)
#define ATTR_DATA (0x3 | SEG_ATTR_S | SEG_ATTR_P | SEG_ATTR_DB | SEG_ATTR_G)
#define ATTR_TSS32_BUSY (0xB | SEG_ATTR_P)
#define TSS32_LIMIT 0x67

/* The GDT descriptor for a segment, from the same base/limit/attributes the vCPU's
 * hidden part gets, so the two always agree. */
static u64 gdt_descriptor(u32 base, u32 limit, u32 attr)
{
    u32 raw_limit = (attr & SEG_ATTR_G) ? limit >> 12 : limit;
    return (u64)(raw_limit & 0xffff) | (u64)(base & 0xffffff) << 16 | (u64)(attr & 0xff) << 40 |
           (u64)((raw_limit >> 16) & 0xf) << 48 | (u64)((attr >> 12) & 0xf) << 52 |
           (u64)(base >> 24) << 56;
}

/* Identity map of [0, 4 GiB) with 2 MiB pages: one PML4 entry, four PDPT entries, four
 * page directories, in the six pages at `tables`. */
static void write_identity_map(struct machine *m, u64 tables)
{
    enum { PTE_P = 1, PTE_RW = 2, PTE_PS = 0x80 };
    u64 pml4 = tables, pdpt = tables + BOOT_PAGE, pd = tables + 2 * BOOT_PAGE;
    u8 page[BOOT_PAGE];
    memset(page, 0, sizeof page);
    boot_wr64(page, pdpt | PTE_P | PTE_RW);
    bool bad = mem_write(&m->mem, pml4, page, sizeof page) != 0;
    memset(page, 0, sizeof page);
    for (int i = 0; i < 4; i++)
        boot_wr64(page + 8 * i, (pd + i * BOOT_PAGE) | PTE_P | PTE_RW);
    bad |= mem_write(&m->mem, pdpt, page, sizeof page) != 0;
    for (u64 d = 0; d < 4; d++) {
        for (u64 i = 0; i < 512; i++)
            boot_wr64(page + 8 * i, ((d * 512 + i) << 21) | PTE_P | PTE_RW | PTE_PS);
        bad |= mem_write(&m->mem, pd + d * BOOT_PAGE, page, sizeof page) != 0;
    }
    if (bad)
        nestor_panic("boot: placed page tables at 0x%llx not writable", (unsigned long long)tables);
}

int boot_entry_place(struct boot_layout *l, enum boot_entry_mode mode, struct boot_entry *e)
{
    *e = (struct boot_entry){ .mode = mode };
    if (boot_layout_alloc(l, BOOT_PAGE, BOOT_PAGE, BOOT_DATA_LOW, MEM_4G, false, "the boot GDT",
                          &e->gdt))
        return -1;
    if (mode == BOOT_ENTRY_LONG64 &&
        boot_layout_alloc(l, BOOT_TABLE_PAGES * BOOT_PAGE, BOOT_PAGE, BOOT_DATA_LOW, MEM_4G, false,
                          "the boot page tables", &e->tables))
        return -1;
    return 0;
}

void boot_enter(struct machine *m, const struct boot_entry *e, u64 rip)
{
    struct cpu *c = m->cpu[0];
    if (!c)
        nestor_panic("boot: the machine has no boot vCPU");
    bool long64 = e->mode == BOOT_ENTRY_LONG64;
    u32 code_attr = long64 ? ATTR_CODE64 : ATTR_CODE32;

    u8 gdt[5 * 8];
    memset(gdt, 0, sizeof gdt);
    boot_wr64(gdt + BOOT_SEL_CODE, gdt_descriptor(0, 0xffffffff, code_attr));
    boot_wr64(gdt + BOOT_SEL_DATA, gdt_descriptor(0, 0xffffffff, ATTR_DATA));
    boot_wr64(gdt + BOOT_SEL_TSS, gdt_descriptor(0, TSS32_LIMIT, ATTR_TSS32_BUSY));
    if (mem_write(&m->mem, e->gdt, gdt, sizeof gdt))
        nestor_panic("boot: placed GDT at 0x%llx not writable", (unsigned long long)e->gdt);
    if (long64)
        write_identity_map(m, e->tables);

    memset(c->gpr, 0, sizeof c->gpr);
    c->rip = rip;
    c->rflags = FL_FIXED1;
    c->cr0 = CR0_PE | CR0_ET | (long64 ? CR0_PG : 0);
    c->cr3 = long64 ? e->tables : 0;
    c->cr4 = long64 ? CR4_PAE : 0;
    c->efer = long64 ? EFER_LME | EFER_LMA : 0;
    c->gdtr = (struct dtr){ .base = e->gdt, .limit = sizeof gdt - 1 };
    cpu_set_seg(c, SEG_CS, BOOT_SEL_CODE, 0, 0xffffffff, code_attr);
    static const int data_segs[] = { SEG_DS, SEG_ES, SEG_FS, SEG_GS, SEG_SS };
    for (size_t i = 0; i < ARRAY_SIZE(data_segs); i++)
        cpu_set_seg(c, data_segs[i], BOOT_SEL_DATA, 0, 0xffffffff, ATTR_DATA);
    c->tr = (struct seg){ .sel = BOOT_SEL_TSS, .base = 0, .limit = TSS32_LIMIT,
                          .attr = ATTR_TSS32_BUSY };
    cpu_update_mode(c);
}
