/* QEMU's firmware configuration device (QEMU docs/specs/fw_cfg.rst), x86 I/O port
 * flavour:
 *   0x510  selector, 16-bit write: selects an item and rewinds its offset
 *   0x511  data, 8-bit read: the next byte of the item (0 past its end)
 *          (QEMU decodes 0x510-0x511 as one region: any 1-byte read returns data, any
 *          1-byte write is a data write, which QEMU has ignored since 2.4)
 *   0x514  DMA address, big-endian: high half at 0x514, low half at 0x518 (which starts
 *          the transfer); reading the region returns the signature "QEMU CFG"
 * Items: the fixed keys below, files from 0x20 listed in the directory at 0x19 (sorted
 * by name, as QEMU does). Items derived from the machine (RAM size, CPU counts,
 * etc/e820, the directory) are regenerated whenever the guest selects them, so they
 * are right whatever order the machine builds things in. Unknown keys read as 0. */
#include "dev/dev.h"

#include <stdio.h> /* machine.h uses FILE */
#include <stdlib.h>
#include <string.h>

#include "machine/machine.h"

enum {
    FW_CFG_SIGNATURE = 0x00,
    FW_CFG_ID = 0x01,
    FW_CFG_RAM_SIZE = 0x03,
    FW_CFG_NB_CPUS = 0x05,
    FW_CFG_MAX_CPUS = 0x0f,
    FW_CFG_FILE_DIR = 0x19,
    FW_CFG_FILE_FIRST = 0x20,
    FW_CFG_WRITE_CHANNEL = 0x4000,
};

#define FW_CFG_ID_TRADITIONAL BIT(0)
#define FW_CFG_ID_DMA BIT(1)

#define FW_CFG_PORT_SEL 0x510
#define FW_CFG_PORT_DMA 0x514
#define FW_CFG_DMA_SIGNATURE "QEMU CFG"

/* FWCfgDmaAccess.control bits */
enum { DMA_ERROR = 1 << 0, DMA_READ = 1 << 1, DMA_SKIP = 1 << 2, DMA_SELECT = 1 << 3,
       DMA_WRITE = 1 << 4 };

#define FILE_NAME_SIZE 56 /* FWCfgFile.name, NUL included */
#define FILE_DIR_ENTRY_SIZE (4 + 2 + 2 + FILE_NAME_SIZE)

struct fwcfg;
struct fwcfg_item;
/* Regenerates an item's contents from the machine. */
typedef void (*fwcfg_refresh_fn)(struct fwcfg *f, struct fwcfg_item *it);

struct fwcfg_item {
    u16 key;
    bool is_file;
    char name[FILE_NAME_SIZE];
    u8 *data;
    u32 len;
    fwcfg_refresh_fn refresh;
};

struct fwcfg {
    struct machine *m;
    struct fwcfg_item *items;
    int nitems, cap;
    struct fwcfg_item *cur; /* NULL: nothing selected, or an unknown key */
    u32 offset;
    u64 dma_addr;
};

/* ---- items ---- */

static struct fwcfg_item *find_key(struct fwcfg *f, u16 key)
{
    for (int i = 0; i < f->nitems; i++)
        if (f->items[i].key == key)
            return &f->items[i];
    return NULL;
}

static void set_data(struct fwcfg_item *it, const void *data, size_t len)
{
    if (len > UINT32_MAX)
        nestor_panic("fw_cfg item of %zu bytes is too large", len);
    u8 *copy = malloc(len ? len : 1);
    if (!copy)
        nestor_panic("out of memory for a fw_cfg item");
    if (len)
        memcpy(copy, data, len);
    free(it->data);
    it->data = copy;
    it->len = (u32)len;
}

static struct fwcfg_item *new_item(struct fwcfg *f)
{
    if (f->nitems == f->cap) {
        int cap = f->cap ? f->cap * 2 : 16;
        struct fwcfg_item *items = realloc(f->items, sizeof(*items) * (size_t)cap);
        if (!items)
            nestor_panic("out of memory for fw_cfg items");
        f->items = items;
        f->cap = cap;
    }
    struct fwcfg_item *it = &f->items[f->nitems++];
    memset(it, 0, sizeof(*it));
    return it;
}

static struct fwcfg_item *set_item(struct fwcfg *f, u16 key, const void *data, size_t len,
                                   fwcfg_refresh_fn refresh)
{
    f->cur = NULL; /* the array may move */
    struct fwcfg_item *it = find_key(f, key);
    if (!it) {
        it = new_item(f);
        it->key = key;
    }
    set_data(it, data, len);
    it->refresh = refresh;
    return it;
}

void fwcfg_set(struct fwcfg *f, u16 key, const void *data, size_t len)
{
    if (key >= FW_CFG_FILE_FIRST && key < FW_CFG_WRITE_CHANNEL)
        nestor_panic("fw_cfg key %#x is in the file range", key);
    set_item(f, key, data, len, NULL);
}

static int compare_files(const void *a, const void *b)
{
    const struct fwcfg_item *x = a, *y = b;
    if (x->is_file != y->is_file)
        return x->is_file ? 1 : -1;
    return x->is_file ? strcmp(x->name, y->name) : (int)x->key - (int)y->key;
}

/* Files get their keys in name order, from FW_CFG_FILE_FIRST. */
static void number_files(struct fwcfg *f)
{
    f->cur = NULL;
    qsort(f->items, (size_t)f->nitems, sizeof(f->items[0]), compare_files);
    u16 key = FW_CFG_FILE_FIRST;
    for (int i = 0; i < f->nitems; i++)
        if (f->items[i].is_file) {
            if (key >= FW_CFG_WRITE_CHANNEL)
                nestor_panic("too many fw_cfg files");
            f->items[i].key = key++;
        }
}

static struct fwcfg_item *add_file(struct fwcfg *f, const char *name, const void *data,
                                   size_t len, fwcfg_refresh_fn refresh)
{
    if (strlen(name) >= FILE_NAME_SIZE)
        nestor_panic("fw_cfg file name %s is too long", name);
    f->cur = NULL;
    struct fwcfg_item *it = NULL;
    for (int i = 0; i < f->nitems; i++)
        if (f->items[i].is_file && !strcmp(f->items[i].name, name))
            it = &f->items[i];
    if (!it) {
        it = new_item(f);
        it->is_file = true;
        strcpy(it->name, name);
    }
    set_data(it, data, len);
    it->refresh = refresh;
    number_files(f);
    return it;
}

void fwcfg_add_file(struct fwcfg *f, const char *name, const void *data, size_t len)
{
    add_file(f, name, data, len, NULL);
}

/* ---- items derived from the machine ---- */

static void put_le(u8 *p, u64 v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        p[i] = (u8)(v >> (8 * i));
}

static void put_be(u8 *p, u64 v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        p[i] = (u8)(v >> (8 * (bytes - 1 - i)));
}

static u64 get_be(const u8 *p, int bytes)
{
    u64 v = 0;
    for (int i = 0; i < bytes; i++)
        v = v << 8 | p[i];
    return v;
}

static int machine_cpus(const struct machine *m)
{
    return m->ncpus ? m->ncpus : m->cfg.ncpus;
}

static void refresh_ram_size(struct fwcfg *f, struct fwcfg_item *it)
{
    u8 v[8];
    put_le(v, f->m->mem.ram_size, 8);
    set_data(it, v, sizeof(v));
}

/* No CPU hotplug: the boot CPUs are all the CPUs there can be. */
static void refresh_cpus(struct fwcfg *f, struct fwcfg_item *it)
{
    u8 v[2];
    put_le(v, (u64)machine_cpus(f->m), 2);
    set_data(it, v, sizeof(v));
}

/* etc/e820: QEMU's packed { u64 address; u64 length; u32 type; }, little-endian. */
static void refresh_e820(struct fwcfg *f, struct fwcfg_item *it)
{
    const struct guest_mem *mem = &f->m->mem;
    u8 buf[MEM_MAX_E820 * 20];
    for (int i = 0; i < mem->ne820; i++) {
        put_le(buf + i * 20, mem->e820[i].addr, 8);
        put_le(buf + i * 20 + 8, mem->e820[i].size, 8);
        put_le(buf + i * 20 + 16, mem->e820[i].type, 4);
    }
    set_data(it, buf, (size_t)mem->ne820 * 20);
}

/* The directory: big-endian count, then { be32 size; be16 select; u16 reserved;
 * char name[56]; } per file. */
static void refresh_dir(struct fwcfg *f, struct fwcfg_item *dir)
{
    u32 count = 0;
    for (int i = 0; i < f->nitems; i++)
        if (f->items[i].is_file) {
            if (f->items[i].refresh)
                f->items[i].refresh(f, &f->items[i]);
            count++;
        }
    size_t len = 4 + (size_t)count * FILE_DIR_ENTRY_SIZE;
    u8 *buf = calloc(1, len);
    if (!buf)
        nestor_panic("out of memory for the fw_cfg directory");
    put_be(buf, count, 4);
    u8 *p = buf + 4;
    for (int i = 0; i < f->nitems; i++) {
        const struct fwcfg_item *it = &f->items[i];
        if (!it->is_file)
            continue;
        put_be(p, it->len, 4);
        put_be(p + 4, it->key, 2);
        memcpy(p + 8, it->name, strlen(it->name));
        p += FILE_DIR_ENTRY_SIZE;
    }
    set_data(dir, buf, len);
    free(buf);
}

/* ---- guest interface ---- */

static void select_key(struct fwcfg *f, u16 key)
{
    f->cur = find_key(f, key & (u16)~FW_CFG_WRITE_CHANNEL);
    f->offset = 0;
    if (f->cur && f->cur->refresh)
        f->cur->refresh(f, f->cur);
}

static u8 read_data(struct fwcfg *f)
{
    if (!f->cur || f->offset >= f->cur->len)
        return 0;
    return f->cur->data[f->offset++];
}

static u64 sel_read(void *opaque, u64 offset, unsigned size)
{
    (void)offset;
    if (size != 1)
        return size >= 8 ? ~0ull : MASK(size * 8); /* not a valid access: unclaimed */
    return read_data(opaque);
}

static void sel_write(void *opaque, u64 offset, unsigned size, u64 value)
{
    if (offset == 0 && size == 2)
        select_key(opaque, (u16)value);
    /* 1-byte writes are data writes, which QEMU ignores; other widths are invalid. */
}

/* The DMA transfer described by the FWCfgDmaAccess at f->dma_addr:
 * { be32 control; be32 length; be64 address; }. Guest memory is reached only through
 * the bounds-checked accessors; on completion control is rewritten (0, or DMA_ERROR). */
static void dma_transfer(struct fwcfg *f)
{
    struct guest_mem *mem = &f->m->mem;
    u64 desc_addr = f->dma_addr;
    f->dma_addr = 0;
    u8 desc[16], status[4];
    if (mem_read(mem, desc_addr, desc, sizeof(desc)) < 0) {
        put_be(status, DMA_ERROR, 4);
        mem_write(mem, desc_addr, status, 4);
        return;
    }
    u32 control = (u32)get_be(desc, 4);
    u64 length = get_be(desc + 4, 4);
    u64 addr = get_be(desc + 8, 8);

    if (control & DMA_SELECT)
        select_key(f, (u16)(control >> 16));
    /* One operation, in this order of precedence (as QEMU decodes it). */
    u32 op = (control & DMA_READ) ? DMA_READ : (control & DMA_WRITE) ? DMA_WRITE
           : (control & DMA_SKIP) ? DMA_SKIP : 0;
    if (!op)
        length = 0;

    u32 result = 0;
    while (length && !result) {
        const struct fwcfg_item *it = f->cur;
        u64 avail = it && f->offset < it->len ? it->len - f->offset : 0;
        u64 n = avail && avail < length ? avail : length;
        if (op == DMA_WRITE) {
            result = DMA_ERROR; /* no item is writable */
        } else if (op == DMA_READ) {
            int rc = avail ? mem_write(mem, addr, it->data + f->offset, n)
                           : mem_fill(mem, addr, 0, n); /* past the end: zeros */
            if (rc < 0)
                result = DMA_ERROR;
        }
        if (avail)
            f->offset += (u32)n;
        addr += n;
        length -= n;
    }
    put_be(status, result, 4);
    mem_write(mem, desc_addr, status, 4);
}

static u32 bswap32(u32 v)
{
    return __builtin_bswap32(v);
}

/* The region reads as the bytes of "QEMU CFG" (a big-endian 64-bit signature). */
static u64 dma_read(void *opaque, u64 offset, unsigned size)
{
    (void)opaque;
    u64 v = 0;
    for (unsigned i = 0; i < size && offset + i < 8; i++)
        v |= (u64)(u8)FW_CFG_DMA_SIGNATURE[offset + i] << (8 * i);
    return v;
}

/* The register is big-endian: the bytes the guest writes, in order, are the address
 * from its most significant byte down. */
static void dma_write(void *opaque, u64 offset, unsigned size, u64 value)
{
    struct fwcfg *f = opaque;
    if (size == 4 && offset == 0) {
        f->dma_addr = (u64)bswap32((u32)value) << 32;
    } else if (size == 4 && offset == 4) {
        f->dma_addr |= bswap32((u32)value);
        dma_transfer(f);
    } else if (size == 8 && offset == 0) {
        f->dma_addr = __builtin_bswap64(value);
        dma_transfer(f);
    }
}

struct fwcfg *fwcfg_create(struct machine *m)
{
    struct fwcfg *f = calloc(1, sizeof(*f));
    if (!f)
        nestor_panic("out of memory for fw_cfg");
    f->m = m;
    u8 id[4];
    put_le(id, FW_CFG_ID_TRADITIONAL | FW_CFG_ID_DMA, 4);
    set_item(f, FW_CFG_SIGNATURE, "QEMU", 4, NULL);
    set_item(f, FW_CFG_ID, id, sizeof(id), NULL);
    set_item(f, FW_CFG_RAM_SIZE, NULL, 0, refresh_ram_size);
    set_item(f, FW_CFG_NB_CPUS, NULL, 0, refresh_cpus);
    set_item(f, FW_CFG_MAX_CPUS, NULL, 0, refresh_cpus);
    set_item(f, FW_CFG_FILE_DIR, NULL, 0, refresh_dir);
    add_file(f, "etc/e820", NULL, 0, refresh_e820);
    bus_register(&m->io, FW_CFG_PORT_SEL, 2, sel_read, sel_write, f, "fw_cfg");
    bus_register(&m->io, FW_CFG_PORT_DMA, 8, dma_read, dma_write, f, "fw_cfg-dma");
    return f;
}

void fwcfg_destroy(struct fwcfg *f)
{
    if (!f)
        return;
    for (int i = 0; i < f->nitems; i++)
        free(f->items[i].data);
    free(f->items);
    free(f);
}

/* ---- state: the selection (by key) and the position in the item; the items are the
 * configuration's ---- */
static const struct state_field fwcfg_fields[] = {
    STATE_NOT_STATE(struct fwcfg, m), STATE_NOT_STATE(struct fwcfg, items),
    STATE_NOT_STATE(struct fwcfg, nitems), STATE_NOT_STATE(struct fwcfg, cap),
    STATE_NOT_STATE(struct fwcfg, cur), STATE_FIELD(struct fwcfg, offset),
    STATE_FIELD(struct fwcfg, dma_addr),
};

static void fwcfg_save(void *obj, struct state_buf *b)
{
    struct fwcfg *f = obj;
    state_put_u8(b, f->cur != NULL);
    state_put_u32(b, f->cur ? f->cur->key : 0);
}

static int fwcfg_load(void *obj, struct state_cursor *c, char *err, size_t errlen)
{
    struct fwcfg *f = obj;
    bool selected = state_get_u8(c);
    u16 key = (u16)state_get_u32(c);
    f->cur = selected ? find_key(f, key) : NULL;
    if (selected && !f->cur) {
        return nestor_err(err, errlen, "item %#x is selected but this machine has none", key);
    }
    return 0;
}

static const struct state_desc fwcfg_state_desc =
    STATE_DESC("fw_cfg", 1, struct fwcfg, fwcfg_fields, .save = fwcfg_save, .load = fwcfg_load);

void fwcfg_state_register(struct fwcfg *f, struct state_registry *r)
{
    state_register(r, &fwcfg_state_desc, 0, f);
}
