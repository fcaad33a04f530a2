/* Kernel loaders: images built in memory (multiboot a.out kludge, multiboot ELF32/ELF64,
 * PVH ELF64, bzImage, plain ELF), checked through the BSP's registers and guest memory;
 * malformed variants must be refused with NESTOR_EXIT_USAGE, and randomly damaged images
 * must never crash a loader. */
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <elf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "boot/boot.h"
#include "cpu/cpu.h"
#include "machine/machine.h"

#define RAM (64 * MiB)
#define RSDP 0xf0000ull

static struct machine *m;
static struct cpu *bsp;
static const struct cpu_ops no_ops;

static void setup(void)
{
    m = calloc(1, sizeof *m);
    bsp = calloc(1, sizeof *bsp);
    cr_assert(m && bsp);
    char err[128];
    cr_assert_eq(cpuid_model_parse(&m->model, "max", err, sizeof err), 0, "%s", err);
    cr_assert_eq(mem_init(&m->mem, RAM), 0);
    cr_assert_eq(cpu_init(bsp, 0, &m->mem, &m->model, &no_ops, m), 0);
    m->cpu[0] = bsp;
    m->ncpus = 1;
    m->cfg.ram_size = RAM;
    m->cfg.ncpus = 1;
    m->acpi_rsdp = RSDP;
}

static char tmpdir[64];
static char created[16][128];
static int ncreated;

static void teardown(void)
{
    for (int i = 0; i < ncreated; i++)
        unlink(created[i]);
    if (tmpdir[0])
        rmdir(tmpdir);
    cpu_destroy(bsp);
    mem_destroy(&m->mem);
    free(bsp);
    free(m);
}

TestSuite(boot, .init = setup, .fini = teardown);

/* ---- little helpers ---- */

static void put16(u8 *p, u16 v) { p[0] = (u8)v; p[1] = (u8)(v >> 8); }
static void put32(u8 *p, u32 v) { put16(p, (u16)v); put16(p + 2, (u16)(v >> 16)); }
static void put64(u8 *p, u64 v) { put32(p, (u32)v); put32(p + 4, (u32)(v >> 32)); }

static u32 g32(u64 gpa)
{
    u32 v = 0;
    cr_assert_eq(mem_read_u32(&m->mem, gpa, &v), 0, "read at 0x%llx", (unsigned long long)gpa);
    return v;
}
static u64 g64(u64 gpa)
{
    u64 v = 0;
    cr_assert_eq(mem_read_u64(&m->mem, gpa, &v), 0, "read at 0x%llx", (unsigned long long)gpa);
    return v;
}
static u8 g8(u64 gpa)
{
    u8 v = 0;
    cr_assert_eq(mem_read_u8(&m->mem, gpa, &v), 0);
    return v;
}
static void expect_string(u64 gpa, const char *s)
{
    size_t n = strlen(s) + 1;
    const u8 *p = mem_ptr(&m->mem, gpa, n);
    cr_assert(p, "string at 0x%llx not in RAM", (unsigned long long)gpa);
    cr_assert_str_eq((const char *)p, s);
}
static void expect_bytes(u64 gpa, const u8 *data, size_t n)
{
    const u8 *p = mem_ptr(&m->mem, gpa, n);
    cr_assert(p, "0x%llx not in RAM", (unsigned long long)gpa);
    cr_assert_eq(memcmp(p, data, n), 0, "bytes at 0x%llx differ", (unsigned long long)gpa);
}

static struct boot_image img(const u8 *data, size_t size, const char *path)
{
    return (struct boot_image){ .data = data, .size = size, .path = path };
}

/* Segment state the loaders promise: flat 4G code 0x10 (32- or 64-bit), data 0x18. */
static void expect_flat_segments(bool long64)
{
    cr_assert_eq(bsp->seg[SEG_CS].sel, 0x10);
    cr_assert_eq(bsp->seg[SEG_CS].base, 0);
    cr_assert_eq(bsp->seg[SEG_CS].limit, 0xffffffffu);
    cr_assert_eq(SEG_ATTR_TYPE(bsp->seg[SEG_CS].attr), 0xb);
    cr_assert(bsp->seg[SEG_CS].attr & SEG_ATTR_P);
    cr_assert_eq(!!(bsp->seg[SEG_CS].attr & SEG_ATTR_L), long64);
    cr_assert_eq(!!(bsp->seg[SEG_CS].attr & SEG_ATTR_DB), !long64);
    static const int data[] = { SEG_DS, SEG_ES, SEG_SS, SEG_FS, SEG_GS };
    for (size_t i = 0; i < ARRAY_SIZE(data); i++) {
        const struct seg *s = &bsp->seg[data[i]];
        cr_assert_eq(s->sel, 0x18);
        cr_assert_eq(s->base, 0);
        cr_assert_eq(s->limit, 0xffffffffu);
        cr_assert_eq(SEG_ATTR_TYPE(s->attr), 0x3);
        cr_assert(s->attr & SEG_ATTR_DB);
    }
    cr_assert_eq(bsp->tr.sel, 0x20);
    cr_assert_eq(bsp->tr.base, 0);
    cr_assert_eq(bsp->tr.limit, 0x67);
    cr_assert_eq(SEG_ATTR_TYPE(bsp->tr.attr), 0xb);
    cr_assert_eq(bsp->rflags, 0x2);
    /* the GDT in guest memory says the same */
    cr_assert_eq(bsp->gdtr.limit, 0x27);
    u64 gdt = bsp->gdtr.base;
    cr_assert_eq(g64(gdt + 0x10), long64 ? 0x00af9b000000ffffull : 0x00cf9b000000ffffull);
    cr_assert_eq(g64(gdt + 0x18), 0x00cf93000000ffffull);
    cr_assert_eq(g64(gdt + 0x20), 0x00008b0000000067ull);
}

static void expect_prot32(u64 entry)
{
    cr_assert_eq(bsp->rip, entry, "rip 0x%llx", (unsigned long long)bsp->rip);
    cr_assert_eq(bsp->cr0, CR0_PE | CR0_ET);
    cr_assert_eq(bsp->cr4, 0);
    cr_assert_eq(bsp->efer, 0);
    cr_assert_eq(bsp->mode, MODE_PROT32);
    expect_flat_segments(false);
}

/* Walks the 4-level tables the way the MMU would, for a 2 MiB identity mapping. */
static void expect_identity_mapped(u64 va)
{
    u64 pml4e = g64((bsp->cr3 & ~0xfffull) + ((va >> 39) & 511) * 8);
    cr_assert(pml4e & 1);
    u64 pdpte = g64((pml4e & 0xffffffffff000ull) + ((va >> 30) & 511) * 8);
    cr_assert(pdpte & 1);
    u64 pde = g64((pdpte & 0xffffffffff000ull) + ((va >> 21) & 511) * 8);
    cr_assert((pde & 0x83) == 0x83, "pde 0x%llx", (unsigned long long)pde);
    cr_assert_eq(pde & 0xfffffffe00000ull, va & ~0x1fffffull);
}

static void expect_long64(u64 entry)
{
    cr_assert_eq(bsp->rip, entry);
    cr_assert_eq(bsp->cr0 & (CR0_PE | CR0_PG), CR0_PE | CR0_PG);
    cr_assert_eq(bsp->cr4, CR4_PAE);
    cr_assert_eq(bsp->efer, EFER_LME | EFER_LMA);
    cr_assert_eq(bsp->mode, MODE_LONG64);
    expect_flat_segments(true);
    expect_identity_mapped(0);
    expect_identity_mapped(entry);
    expect_identity_mapped(0xbfe00000ull);
    expect_identity_mapped(0xffe00000ull);
}

/* ---- image builders ---- */

#define MB_MAGIC 0x1BADB002u

static void mb_header(u8 *p, u32 flags)
{
    put32(p, MB_MAGIC);
    put32(p + 4, flags);
    put32(p + 8, (u32)-(MB_MAGIC + flags));
}

struct segspec {
    u64 paddr, vaddr;
    const u8 *data;
    u64 filesz, memsz;
};

/* ELF with the given PT_LOAD segments and an optional PT_NOTE; returns its size. */
static size_t make_elf(u8 *out, size_t cap, bool is64, u64 entry, const struct segspec *s, int n,
                       const u8 *note, size_t note_len)
{
    memset(out, 0, cap);
    size_t ehsz = is64 ? sizeof(Elf64_Ehdr) : sizeof(Elf32_Ehdr);
    size_t phsz = is64 ? sizeof(Elf64_Phdr) : sizeof(Elf32_Phdr);
    int nph = n + (note ? 1 : 0);
    size_t off = ehsz + nph * phsz;
    memcpy(out, ELFMAG, SELFMAG);
    out[EI_CLASS] = is64 ? ELFCLASS64 : ELFCLASS32;
    out[EI_DATA] = ELFDATA2LSB;
    out[EI_VERSION] = EV_CURRENT;
    put16(out + 16, ET_EXEC);
    put16(out + 18, is64 ? EM_X86_64 : EM_386);
    put32(out + 20, EV_CURRENT);
    if (is64) {
        put64(out + 24, entry);
        put64(out + 32, ehsz);
        put16(out + 52, (u16)ehsz);
        put16(out + 54, (u16)phsz);
        put16(out + 56, (u16)nph);
    } else {
        put32(out + 24, (u32)entry);
        put32(out + 28, (u32)ehsz);
        put16(out + 40, (u16)ehsz);
        put16(out + 42, (u16)phsz);
        put16(out + 44, (u16)nph);
    }
    for (int i = 0; i < nph; i++) {
        u8 *ph = out + ehsz + i * phsz;
        bool is_note = i == n;
        u64 filesz = is_note ? note_len : s[i].filesz;
        u64 memsz = is_note ? 0 : s[i].memsz;
        off = (off + 15) & ~15ull;
        cr_assert(off + filesz <= cap);
        memcpy(out + off, is_note ? note : s[i].data, filesz);
        u32 type = is_note ? PT_NOTE : PT_LOAD;
        u64 pa = is_note ? 0 : s[i].paddr, va = is_note ? 0 : s[i].vaddr;
        if (is64) {
            put32(ph, type);
            put64(ph + 8, off);
            put64(ph + 16, va);
            put64(ph + 24, pa);
            put64(ph + 32, filesz);
            put64(ph + 40, memsz);
            put64(ph + 48, 4);
        } else {
            put32(ph, type);
            put32(ph + 4, (u32)off);
            put32(ph + 8, (u32)va);
            put32(ph + 12, (u32)pa);
            put32(ph + 16, (u32)filesz);
            put32(ph + 20, (u32)memsz);
            put32(ph + 28, 4);
        }
        off += filesz;
    }
    return off;
}

static size_t make_note(u8 *out, const char *name, u32 type, const u8 *desc, u32 desc_len)
{
    u32 namesz = (u32)strlen(name) + 1;
    put32(out, namesz);
    put32(out + 4, desc_len);
    put32(out + 8, type);
    memset(out + 12, 0, (namesz + 3) & ~3u);
    memcpy(out + 12, name, namesz);
    size_t d = 12 + ((namesz + 3) & ~3u);
    memcpy(out + d, desc, desc_len);
    return d + ((desc_len + 3) & ~3u);
}

/* Multiboot a.out kludge image loaded at 0x100000: header at file offset 0x40. */
static size_t make_aout(u8 *out, size_t size, u32 bss_extra, u32 entry_off)
{
    for (size_t i = 0; i < size; i++)
        out[i] = (u8)(i * 7 + 1);
    u8 *h = out + 0x40;
    mb_header(h, BIT(16) | BIT(1) | BIT(0));
    put32(h + 12, 0x100040);                      /* header_addr */
    put32(h + 16, 0x100000);                      /* load_addr */
    put32(h + 20, (u32)(0x100000 + size));        /* load_end_addr */
    put32(h + 24, (u32)(0x100000 + size + bss_extra)); /* bss_end_addr */
    put32(h + 28, 0x100000 + entry_off);          /* entry_addr */
    return size;
}

/* ---- multiboot ---- */

static const char kargs[] = "console=ttyS0 quiet";

static void expect_mbi_common(u64 mbi, u64 kernel_end, const char *path, const char *args)
{
    cr_assert_eq(bsp->gpr[R_RAX], 0x2BADB002u);
    cr_assert_eq(bsp->gpr[R_RBX], mbi);
    cr_assert_geq(mbi, kernel_end, "MBI 0x%llx inside the kernel", (unsigned long long)mbi);
    cr_assert_eq(mbi & 0xfff, 0);
    u32 flags = g32(mbi);
    cr_assert_eq(flags & (BIT(0) | BIT(2) | BIT(3) | BIT(6) | BIT(9)),
                 BIT(0) | BIT(2) | BIT(3) | BIT(6) | BIT(9));
    cr_assert_eq(g32(mbi + 4), 0x9fc00 / 1024);       /* mem_lower */
    cr_assert_eq(g32(mbi + 8), (RAM - 1 * MiB) / 1024); /* mem_upper */
    char want[128];
    snprintf(want, sizeof want, "%s%s%s", path, args ? " " : "", args ? args : "");
    expect_string(g32(mbi + 16), want);
    expect_string(g32(mbi + 64), "nestor");
    u32 mmap_len = g32(mbi + 44), mmap = g32(mbi + 48);
    cr_assert_eq(mmap_len, (u32)m->mem.ne820 * 24);
    for (int i = 0; i < m->mem.ne820; i++) {
        u64 e = mmap + 24ull * i;
        cr_assert_eq(g32(e), 20);
        cr_assert_eq(g64(e + 4), m->mem.e820[i].addr);
        cr_assert_eq(g64(e + 12), m->mem.e820[i].size);
        cr_assert_eq(g32(e + 20), m->mem.e820[i].type);
    }
}

Test(boot, multiboot_aout_kludge)
{
    static u8 k[0x3000];
    size_t n = make_aout(k, sizeof k, 0x2000, 0x80);
    mem_fill(&m->mem, 0x100000, 0xaa, 0x10000);
    static u8 mod[5000];
    for (size_t i = 0; i < sizeof mod; i++)
        mod[i] = (u8)(i ^ 0x5a);
    struct boot_image ki = img(k, n, "kernel.bin"), rd = img(mod, sizeof mod, "mod.bin");
    cr_assert_eq(boot_multiboot(m, &ki, &rd, kargs), 0);
    expect_prot32(0x100080);
    expect_bytes(0x100000, k, n);
    for (u64 a = 0x100000 + n; a < 0x100000 + n + 0x2000; a += 0x100)
        cr_assert_eq(g8(a), 0, "bss not cleared at 0x%llx", (unsigned long long)a);
    u64 kernel_end = 0x100000 + n + 0x2000;
    u64 mbi = bsp->gpr[R_RBX];
    expect_mbi_common(mbi, kernel_end, "kernel.bin", kargs);
    cr_assert_eq(g32(mbi + 20), 1);
    u64 mods = g32(mbi + 24);
    u32 start = g32(mods), end = g32(mods + 4);
    cr_assert_eq(start & 0xfff, 0);
    cr_assert_geq(start, kernel_end);
    cr_assert_eq(end - start, sizeof mod);
    expect_bytes(start, mod, sizeof mod);
    expect_string(g32(mods + 8), "mod.bin");
    /* nothing placed over another: MBI block and module are disjoint */
    cr_assert(start >= mbi + 0x1000 || end <= mbi);
}

Test(boot, multiboot_elf32_virtual_entry)
{
    static u8 text[0x400], k[0x2000];
    memset(text, 0x90, sizeof text);
    mb_header(text + 0x10, BIT(1));
    struct segspec s = { 0x200000, 0xc0200000, text, sizeof text, 0x3000 };
    size_t n = make_elf(k, sizeof k, false, 0xc0200100, &s, 1, NULL, 0);
    mem_fill(&m->mem, 0x200000, 0xaa, 0x3000);
    struct boot_image ki = img(k, n, "mb32.elf");
    cr_assert_eq(boot_multiboot(m, &ki, NULL, NULL), 0);
    expect_prot32(0x200100); /* e_entry translated through the segment */
    expect_bytes(0x200000, text, sizeof text);
    cr_assert_eq(g8(0x200000 + 0x2fff), 0);
    expect_mbi_common(bsp->gpr[R_RBX], 0x203000, "mb32.elf", NULL);
    cr_assert_eq(g32(bsp->gpr[R_RBX] + 20), 0);
}

Test(boot, multiboot_elf64_physical)
{
    static u8 text[0x200], k[0x1000];
    memset(text, 0xc3, sizeof text);
    mb_header(text, 0);
    struct segspec s = { 0x300000, 0x300000, text, sizeof text, sizeof text };
    size_t n = make_elf(k, sizeof k, true, 0x300040, &s, 1, NULL, 0);
    struct boot_image ki = img(k, n, "mb64.elf");
    cr_assert_eq(boot_multiboot(m, &ki, NULL, ""), 0);
    expect_prot32(0x300040);
    expect_mbi_common(bsp->gpr[R_RBX], 0x300200, "mb64.elf", NULL);
}

/* A file in this test's own temporary folder (removed by teardown). */
static const char *tmpfile_with(const char *name, const void *data, size_t n)
{
    if (!tmpdir[0]) {
        strcpy(tmpdir, "/tmp/nestor-boot-XXXXXX");
        cr_assert(mkdtemp(tmpdir));
    }
    cr_assert_lt(ncreated, 16);
    char *p = created[ncreated++];
    snprintf(p, sizeof created[0], "%s/%s", tmpdir, name);
    FILE *f = fopen(p, "wb");
    cr_assert(f);
    cr_assert_eq(fwrite(data, 1, n, f), n);
    fclose(f);
    return p;
}

Test(boot, multiboot_module_list_from_files)
{
    static u8 k[0x2000];
    size_t n = make_aout(k, sizeof k, 0, 0);
    const char *kp = tmpfile_with("k.bin", k, n);
    const char *a = tmpfile_with("a.mod", "AAAA", 4);
    const char *b = tmpfile_with("b,c.mod", "BBBBBBBB", 8);
    char spec[512], bname[256];
    /* "b,c.mod" has a comma: written ",," in the list */
    snprintf(bname, sizeof bname, "%s", b);
    char *comma = strrchr(bname, ',');
    cr_assert(comma);
    *comma = 0;
    snprintf(spec, sizeof spec, "%s arg1 arg2,%s,,%s", a, bname, comma + 1);
    cr_assert_eq(boot_load_kernel(m, kp, spec, "x=1"), 0);
    u64 mbi = bsp->gpr[R_RBX];
    char want[256];
    snprintf(want, sizeof want, "%s x=1", kp);
    expect_string(g32(mbi + 16), want);
    cr_assert_eq(g32(mbi + 20), 2);
    u64 mods = g32(mbi + 24);
    snprintf(want, sizeof want, "%s arg1 arg2", a);
    expect_string(g32(mods + 8), want);
    expect_bytes(g32(mods), (const u8 *)"AAAA", 4);
    cr_assert_eq(g32(mods + 4) - g32(mods), 4);
    expect_string(g32(mods + 16 + 8), b);
    expect_bytes(g32(mods + 16), (const u8 *)"BBBBBBBB", 8);
    cr_assert_eq(g32(mods + 16 + 4) - g32(mods + 16), 8);
}

Test(boot, multiboot_malformed)
{
    static u8 k[0x3000];
    struct boot_image ki;
    struct {
        int field; /* header byte offset to overwrite, -1 for none */
        u32 value;
        const char *what;
    } cases[] = {
        { 16, 0x100080, "load_addr above header_addr" },
        { 12, 0x200000, "load_addr before the file start" },
        { 20, 0x100000 + 0x4000, "load_end beyond the file" },
        { 20, 0x0fffff, "load_end below load_addr" },
        { 24, 0x100010, "bss_end below load_end" },
        { 28, 0x900000, "entry outside the image" },
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        size_t n = make_aout(k, sizeof k, 0x1000, 0);
        put32(k + 0x40 + cases[i].field, cases[i].value);
        ki = img(k, n, "bad.bin");
        cr_assert_eq(boot_multiboot(m, &ki, NULL, NULL), NESTOR_EXIT_USAGE, "%s", cases[i].what);
    }
    /* a.out image placed where there is no RAM */
    size_t n = make_aout(k, sizeof k, 0, 0);
    put32(k + 0x40 + 12, 0x7fff0040);
    put32(k + 0x40 + 16, 0x7fff0000);
    put32(k + 0x40 + 20, 0);
    put32(k + 0x40 + 24, 0);
    put32(k + 0x40 + 28, 0x7fff0000);
    ki = img(k, n, "high.bin");
    cr_assert_eq(boot_multiboot(m, &ki, NULL, NULL), NESTOR_EXIT_USAGE);
    /* unknown required flag (bit 3) */
    n = make_aout(k, sizeof k, 0, 0);
    mb_header(k + 0x40, BIT(16) | BIT(3));
    cr_assert_eq(boot_multiboot(m, &ki, NULL, NULL), NESTOR_EXIT_USAGE);
    /* video mode requested: ignored, loads */
    n = make_aout(k, sizeof k, 0, 0);
    mb_header(k + 0x40, BIT(16) | BIT(2));
    cr_assert_eq(boot_multiboot(m, &ki, NULL, NULL), 0);
    /* a.out header cut off by the end of the file */
    n = make_aout(k, sizeof k, 0, 0);
    ki = img(k, 0x40 + 20, "cut.bin");
    cr_assert_eq(boot_multiboot(m, &ki, NULL, NULL), NESTOR_EXIT_USAGE);
    /* bad checksum: not a multiboot image at all */
    n = make_aout(k, sizeof k, 0, 0);
    put32(k + 0x48, 0x12345678);
    ki = img(k, n, "sum.bin");
    cr_assert_eq(boot_multiboot(m, &ki, NULL, NULL), 1);
    const char *p = tmpfile_with("sum.bin", k, n);
    cr_assert_eq(boot_load_kernel(m, p, NULL, NULL), NESTOR_EXIT_USAGE);
    /* header without the kludge and not ELF */
    n = make_aout(k, sizeof k, 0, 0);
    mb_header(k + 0x40, 0);
    ki = img(k, n, "raw.bin");
    cr_assert_eq(boot_multiboot(m, &ki, NULL, NULL), NESTOR_EXIT_USAGE);
    /* magic beyond the first 8 KiB is not looked at */
    static u8 big[0x4000];
    memset(big, 0, sizeof big);
    mb_header(big + 0x2000, BIT(16));
    ki = img(big, sizeof big, "far.bin");
    cr_assert_eq(boot_multiboot(m, &ki, NULL, NULL), 1);
    /* a module that cannot fit in RAM above the kernel */
    n = make_aout(k, sizeof k, 0, 0);
    ki = img(k, n, "k.bin");
    struct boot_image huge = img(k, RAM, "huge.mod"); /* size only: never read if refused */
    cr_assert_eq(boot_multiboot(m, &ki, &huge, NULL), NESTOR_EXIT_USAGE);
}

/* ---- kernels in low memory: the loader's own structures go where the image is not ---- */

/* An a.out-kludge image of `size` file bytes plus `bss` at `base`, header at offset 0x40. */
static size_t make_aout_at(u8 *out, size_t size, u32 base, u32 bss)
{
    size_t n = make_aout(out, size, bss, 0x80);
    u8 *h = out + 0x40;
    put32(h + 12, base + 0x40);
    put32(h + 16, base);
    put32(h + 20, (u32)(base + size));
    put32(h + 24, (u32)(base + size + bss));
    put32(h + 28, base + 0x80);
    return n;
}

static bool disjoint(u64 a, u64 alen, u64 b, u64 blen) { return a + alen <= b || b + blen <= a; }

Test(boot, multiboot_low_at_0x8000)
{
    static u8 k[0x3000];
    size_t n = make_aout_at(k, sizeof k, 0x8000, 0x5000); /* [0x8000, 0x10000) */
    static u8 mod[3000];
    memset(mod, 0x77, sizeof mod);
    struct boot_image ki = img(k, n, "realmode.flat"), rd = img(mod, sizeof mod, "m");
    cr_assert_eq(boot_multiboot(m, &ki, &rd, "x"), 0);
    expect_prot32(0x8080);
    expect_bytes(0x8000, k, n);
    for (u64 a = 0x8000 + n; a < 0x10000; a += 0x80)
        cr_assert_eq(g8(a), 0, "bss at 0x%llx", (unsigned long long)a);
    u64 mbi = bsp->gpr[R_RBX];
    expect_mbi_common(mbi, 0x10000, "realmode.flat", "x");
    u64 mods = g32(mbi + 24);
    expect_bytes(g32(mods), mod, sizeof mod);
    cr_assert(disjoint(bsp->gdtr.base, 0x28, 0x8000, 0x8000), "GDT at 0x%llx in the image",
              (unsigned long long)bsp->gdtr.base);
    cr_assert(disjoint(bsp->gdtr.base, 0x28, mbi, 0x1000));
}

Test(boot, multiboot_filling_low_memory)
{
    /* [0x1000, 0x9fc00): every byte of conventional RAM the loader used to keep for itself */
    static u8 k[0x9fc00 - 0x1000];
    size_t n = make_aout_at(k, sizeof k, 0x1000, 0);
    struct boot_image ki = img(k, n, "low.bin");
    cr_assert_eq(boot_multiboot(m, &ki, NULL, NULL), 0);
    expect_prot32(0x1080);
    expect_bytes(0x1000, k, n);
    cr_assert_geq(bsp->gdtr.base, 0x100000);
    cr_assert_geq(bsp->gpr[R_RBX], 0x100000);
    expect_mbi_common(bsp->gpr[R_RBX], 0x9fc00, "low.bin", NULL);
    /* at 0: allowed as well (the image's business), boot data still never in page 0 */
    n = make_aout_at(k, 0x2000, 0, 0x1000);
    ki = img(k, n, "zero.bin");
    cr_assert_eq(boot_multiboot(m, &ki, NULL, NULL), 0);
    expect_prot32(0x80);
    cr_assert_geq(bsp->gdtr.base, 0x3000);
}

Test(boot, multiboot_data_below_a_kernel_that_fills_high_ram)
{
    /* kernel from 1 MiB to the end of RAM: information and module go below it */
    static u8 k[0x1000];
    size_t n = make_aout_at(k, sizeof k, 0x100000, (u32)(RAM - 0x100000 - sizeof k));
    static u8 mod[100];
    struct boot_image ki = img(k, n, "big.bin"), rd = img(mod, sizeof mod, "m");
    cr_assert_eq(boot_multiboot(m, &ki, &rd, NULL), 0);
    u64 mbi = bsp->gpr[R_RBX];
    cr_assert_lt(mbi, 0xa0000);
    cr_assert_geq(mbi, 0x1000);
    cr_assert_lt(g32(g32(mbi + 24)), 0xa0000);
    /* one byte more and the module cannot fit anywhere */
    static u8 huge[0x9fc00];
    rd = img(huge, sizeof huge, "huge");
    cr_redirect_stderr();
    cr_assert_eq(boot_multiboot(m, &ki, &rd, NULL), NESTOR_EXIT_USAGE);
}

Test(boot, multiboot_refuses_what_is_not_ram)
{
    static u8 k[0x2000];
    static const u32 bases[] = { 0x9f000, 0xa0000, 0xc8000, 0xe0000, 0xf0000, RAM - 0x1000,
                                 0xc0000000u };
    cr_redirect_stderr();
    for (size_t i = 0; i < ARRAY_SIZE(bases); i++) {
        size_t n = make_aout_at(k, sizeof k, bases[i], 0);
        struct boot_image ki = img(k, n, "bad.bin");
        cr_assert_eq(boot_multiboot(m, &ki, NULL, NULL), NESTOR_EXIT_USAGE, "base 0x%x", bases[i]);
    }
}

Test(boot, plain_elf64_low_moves_the_page_tables)
{
    /* the image covers 0x1000-0x11000, where the GDT and page tables used to be fixed */
    static u8 text[0x100], k[0x1000];
    memset(text, 0x90, sizeof text);
    struct segspec s = { 0x1000, 0x1000, text, sizeof text, 0x10000 };
    size_t n = make_elf(k, sizeof k, true, 0x1010, &s, 1, NULL, 0);
    struct boot_image ki = img(k, n, "low64");
    cr_assert_eq(boot_elf(m, &ki, NULL, NULL), 0);
    expect_long64(0x1010);
    expect_bytes(0x1000, text, sizeof text);
    for (u64 a = 0x1000 + sizeof text; a < 0x11000; a += 0x100)
        cr_assert_eq(g8(a), 0);
    cr_assert(disjoint(bsp->cr3, 6 * 0x1000, 0x1000, 0x10000));
    cr_assert(disjoint(bsp->gdtr.base, 0x28, 0x1000, 0x10000));
    cr_assert(disjoint(bsp->gdtr.base, 0x28, bsp->cr3, 6 * 0x1000));
}

/* ---- PVH ---- */

static size_t make_pvh(u8 *k, size_t cap, const u8 *text, size_t text_len, u64 entry,
                       u32 desc_len)
{
    u8 note[64], desc[8];
    put64(desc, entry);
    size_t nl = make_note(note, "Xen", 18, desc, desc_len);
    /* a second, unrelated note first, to exercise the walk */
    u8 notes[128];
    size_t gl = make_note(notes, "GNU", 3, (const u8 *)"abcdefgh", 8);
    memcpy(notes + gl, note, nl);
    struct segspec s = { 0x1000000, 0xffffffff81000000ull, text, text_len, 0x10000 };
    return make_elf(k, cap, true, 0xffffffff81000000ull, &s, 1, notes, gl + nl);
}

Test(boot, pvh_elf64)
{
    static u8 text[0x800], k[0x2000];
    memset(text, 0xf4, sizeof text);
    size_t n = make_pvh(k, sizeof k, text, sizeof text, 0x1000040, 8);
    static u8 rd[10000];
    for (size_t i = 0; i < sizeof rd; i++)
        rd[i] = (u8)(i * 13);
    struct boot_image ki = img(k, n, "vmlinux"), ri = img(rd, sizeof rd, "initrd.img");
    cr_assert_eq(boot_pvh(m, &ki, &ri, "root=/dev/ram0"), 0);
    expect_prot32(0x1000040);
    expect_bytes(0x1000000, text, sizeof text);
    u64 si = bsp->gpr[R_RBX];
    cr_assert_geq(si, 0x1000);
    cr_assert(si >= bsp->gdtr.base + 0x1000 || si + 0x1000 <= bsp->gdtr.base, "start_info on the GDT");
    cr_assert_eq(g32(si), 0x336ec578);
    cr_assert_eq(g32(si + 4), 1);
    cr_assert_eq(g32(si + 8), 0);
    cr_assert_eq(g32(si + 12), 1);
    u64 modlist = g64(si + 16);
    cr_assert_eq(g64(modlist + 8), sizeof rd);
    u64 rd_at = g64(modlist);
    cr_assert_eq(rd_at & 0xfff, 0);
    cr_assert_leq(rd_at + sizeof rd, RAM);
    cr_assert_geq(rd_at + sizeof rd, RAM - 0x1000, "initrd not placed high");
    expect_bytes(rd_at, rd, sizeof rd);
    expect_string(g64(si + 24), "root=/dev/ram0");
    cr_assert_eq(g64(si + 32), RSDP);
    u64 map = g64(si + 40);
    cr_assert_eq(g32(si + 48), (u32)m->mem.ne820);
    for (int i = 0; i < m->mem.ne820; i++) {
        cr_assert_eq(g64(map + 24ull * i), m->mem.e820[i].addr);
        cr_assert_eq(g64(map + 24ull * i + 8), m->mem.e820[i].size);
        cr_assert_eq(g32(map + 24ull * i + 16), m->mem.e820[i].type);
    }
}

Test(boot, pvh_wins_over_plain_elf_and_32bit_note)
{
    static u8 text[0x100], k[0x1000];
    size_t n = make_pvh(k, sizeof k, text, sizeof text, 0x1000010, 4);
    const char *p = tmpfile_with("vmlinux", k, n);
    cr_assert_eq(boot_load_kernel(m, p, NULL, NULL), 0);
    expect_prot32(0x1000010);
    cr_assert_eq(g32(bsp->gpr[R_RBX]), 0x336ec578);
    cr_assert_eq(g32(bsp->gpr[R_RBX] + 12), 0);
    cr_assert_eq(g64(bsp->gpr[R_RBX] + 24), 0);
}

Test(boot, pvh_malformed)
{
    static u8 text[0x100], k[0x1000];
    size_t n = make_pvh(k, sizeof k, text, sizeof text, 0x1000010, 2);
    struct boot_image ki = img(k, n, "badnote");
    cr_assert_eq(boot_pvh(m, &ki, NULL, NULL), NESTOR_EXIT_USAGE);
    n = make_pvh(k, sizeof k, text, sizeof text, 0, 8);
    ki = img(k, n, "zero-entry");
    cr_assert_eq(boot_pvh(m, &ki, NULL, NULL), NESTOR_EXIT_USAGE);
    n = make_pvh(k, sizeof k, text, sizeof text, 0x100000000ull, 8);
    ki = img(k, n, "high-entry");
    cr_assert_eq(boot_pvh(m, &ki, NULL, NULL), NESTOR_EXIT_USAGE);
    /* note size that runs past its segment: the note is not found, the image is plain ELF */
    n = make_pvh(k, sizeof k, text, sizeof text, 0x1000010, 8);
    Elf64_Phdr ph;
    memcpy(&ph, k + sizeof(Elf64_Ehdr) + sizeof ph, sizeof ph);
    put32(k + ph.p_offset + 24 + 4, 0x7fffffff); /* descsz of the Xen note, after the GNU one */
    ki = img(k, n, "longnote");
    cr_assert_eq(boot_pvh(m, &ki, NULL, NULL), 1);
}

/* ---- Linux bzImage ---- */

struct bz {
    u16 version;
    bool kernel64, relocatable;
    u64 pref;
    u32 align, init_size, cmdline_size;
    u8 setup_sects;
};

static size_t make_bzimage(u8 *k, size_t cap, const struct bz *b, size_t kernel_len)
{
    memset(k, 0, cap);
    unsigned sects = b->setup_sects ? b->setup_sects : 4;
    size_t setup = (sects + 1) * 512;
    cr_assert(setup + kernel_len <= cap);
    k[0x1f1] = b->setup_sects;
    put16(k + 0x1fe, 0xaa55);
    k[0x200] = 0xeb;
    k[0x201] = 0x6a; /* header ends at 0x26c */
    memcpy(k + 0x202, "HdrS", 4);
    put16(k + 0x206, b->version);
    k[0x211] = 0x01; /* LOADED_HIGH */
    put32(k + 0x214, 0x100000);
    put32(k + 0x22c, 0x7fffffff);
    put32(k + 0x230, b->align);
    k[0x234] = b->relocatable;
    put16(k + 0x236, b->kernel64 ? 1 : 0);
    put32(k + 0x238, b->cmdline_size);
    put64(k + 0x258, b->pref);
    put32(k + 0x260, b->init_size);
    for (size_t i = 0; i < kernel_len; i++)
        k[setup + i] = (u8)(i * 3 + 7);
    return setup + kernel_len;
}

/* boot_params: the loader puts it in the first free page after its GDT and page tables,
 * 0x8000 with a kernel at 1 MiB and a 64-bit entry; tests read it through RSI. */
static u64 BP;

Test(boot, linux_bzimage_64bit)
{
    static u8 k[0x4000];
    struct bz b = { .version = 0x020f, .kernel64 = true, .relocatable = true, .pref = 0x1000000,
                    .align = 0x200000, .init_size = 0x400000, .cmdline_size = 2048 };
    size_t n = make_bzimage(k, sizeof k, &b, 0x1800);
    static u8 rd[5000];
    memset(rd, 0x42, sizeof rd);
    struct boot_image ki = img(k, n, "bzImage"), ri = img(rd, sizeof rd, "initrd");
    cr_assert_eq(boot_linux(m, &ki, &ri, "console=ttyS0"), 0);
    expect_long64(0x1000000 + 0x200);
    BP = bsp->gpr[R_RSI];
    cr_assert_eq(BP, 0x8000);
    expect_identity_mapped(BP);
    expect_bytes(0x1000000, k + 5 * 512, 0x1800);
    /* the kernel's header copied, then the loader's fields */
    expect_bytes(BP + 0x1f1, k + 0x1f1, 0x210 - 0x1f1);
    cr_assert_eq(g8(BP + 0x210), 0xff);
    cr_assert_eq(g8(BP + 0x211), 0x81);
    cr_assert_eq(g32(BP + 0x214), 0x1000000);
    expect_string(g32(BP + 0x228), "console=ttyS0");
    cr_assert_lt(g32(BP + 0x228), 0xa0000);
    cr_assert_eq(g32(BP + 0xc8), 0);
    u32 rd_at = g32(BP + 0x218);
    cr_assert_eq(g32(BP + 0x21c), sizeof rd);
    cr_assert_eq(rd_at & 0xfff, 0);
    cr_assert_eq(rd_at, RAM - 0x2000);
    expect_bytes(rd_at, rd, sizeof rd);
    cr_assert_eq(g64(BP + 0x70), RSDP);
    cr_assert_eq(g8(BP + 0x1e8), m->mem.ne820);
    for (int i = 0; i < m->mem.ne820; i++) {
        cr_assert_eq(g64(BP + 0x2d0 + 20ull * i), m->mem.e820[i].addr);
        cr_assert_eq(g64(BP + 0x2d0 + 20ull * i + 8), m->mem.e820[i].size);
        cr_assert_eq(g32(BP + 0x2d0 + 20ull * i + 16), m->mem.e820[i].type);
    }
    /* everything else in the zero page is zero */
    cr_assert_eq(g64(BP), 0);
    cr_assert_eq(g8(BP + 0x1ef), 0);
}

Test(boot, linux_bzimage_32bit_entry_and_relocation)
{
    static u8 k[0x4000];
    /* protocol 2.05: no xloadflags, pref_address or init_size; 32-bit entry at 1 MiB */
    struct bz b = { .version = 0x0205, .relocatable = false, .align = 0x100000 };
    size_t n = make_bzimage(k, sizeof k, &b, 0x1000);
    struct boot_image ki = img(k, n, "old-bzImage");
    cr_assert_eq(boot_linux(m, &ki, NULL, NULL), 0);
    expect_prot32(0x100000);
    BP = bsp->gpr[R_RSI];
    cr_assert_geq(BP, 0x1000);
    cr_assert_eq(BP & 0xfff, 0);
    cr_assert_neq(BP, bsp->gdtr.base);
    cr_assert_eq(bsp->gpr[R_RBX] | bsp->gpr[R_RBP] | bsp->gpr[R_RDI], 0);
    cr_assert_eq(g32(BP + 0x218), 0);
    cr_assert_eq(g64(BP + 0x70), 0); /* acpi_rsdp_addr is 2.14+ */
    expect_string(g32(BP + 0x228), "");

    /* relocatable 64-bit kernel preferring an address beyond RAM: moved to aligned RAM */
    struct bz r = { .version = 0x020c, .kernel64 = true, .relocatable = true, .pref = 0x80000000,
                    .align = 0x200000, .init_size = 0x100000, .cmdline_size = 255 };
    n = make_bzimage(k, sizeof k, &r, 0x800);
    ki = img(k, n, "reloc");
    cr_assert_eq(boot_linux(m, &ki, NULL, "a"), 0);
    BP = bsp->gpr[R_RSI];
    u32 load = g32(BP + 0x214);
    cr_assert_eq(load & 0x1fffff, 0);
    cr_assert_geq(load, 0x100000);
    expect_long64(load + 0x200ull);
}

Test(boot, linux_malformed)
{
    static u8 k[0x4000];
    struct bz good = { .version = 0x020f, .kernel64 = true, .relocatable = true,
                       .pref = 0x1000000, .align = 0x200000, .init_size = 0x10000,
                       .cmdline_size = 8 };
    struct boot_image ki;
    size_t n = make_bzimage(k, sizeof k, &good, 0x800);
    ki = img(k, 0x230, "cut-header");
    cr_assert_eq(boot_linux(m, &ki, NULL, NULL), NESTOR_EXIT_USAGE);
    ki = img(k, 5 * 512, "no-kernel");
    cr_assert_eq(boot_linux(m, &ki, NULL, NULL), NESTOR_EXIT_USAGE);
    ki = img(k, n, "long-cmdline");
    cr_assert_eq(boot_linux(m, &ki, NULL, "123456789"), NESTOR_EXIT_USAGE);
    cr_assert_eq(boot_linux(m, &ki, NULL, "12345678"), 0);

    struct bz b = good;
    b.version = 0x0201;
    n = make_bzimage(k, sizeof k, &b, 0x800);
    ki = img(k, n, "old");
    cr_assert_eq(boot_linux(m, &ki, NULL, NULL), NESTOR_EXIT_USAGE);
    b = good;
    b.align = 0x3000;
    n = make_bzimage(k, sizeof k, &b, 0x800);
    cr_assert_eq(boot_linux(m, &ki, NULL, NULL), NESTOR_EXIT_USAGE);
    b = good;
    b.relocatable = false;
    b.pref = 0x7000000; /* beyond 64 MiB of RAM */
    n = make_bzimage(k, sizeof k, &b, 0x800);
    cr_assert_eq(boot_linux(m, &ki, NULL, NULL), NESTOR_EXIT_USAGE);
    b = good;
    b.init_size = 0xfffffff0; /* needs more RAM than there is */
    n = make_bzimage(k, sizeof k, &b, 0x800);
    cr_assert_eq(boot_linux(m, &ki, NULL, NULL), NESTOR_EXIT_USAGE);
    n = make_bzimage(k, sizeof k, &good, 0x800);
    k[0x1f1] = 200; /* setup beyond the end of the file */
    ki = img(k, n, "sects");
    cr_assert_eq(boot_linux(m, &ki, NULL, NULL), NESTOR_EXIT_USAGE);
    /* header shorter than its version needs */
    n = make_bzimage(k, sizeof k, &good, 0x800);
    k[0x201] = 0x20;
    ki = img(k, n, "short-header");
    cr_assert_eq(boot_linux(m, &ki, NULL, NULL), NESTOR_EXIT_USAGE);
    /* zImage */
    n = make_bzimage(k, sizeof k, &good, 0x800);
    k[0x211] = 0;
    cr_assert_eq(boot_linux(m, &ki, NULL, NULL), NESTOR_EXIT_USAGE);
}

/* ---- plain ELF ---- */

Test(boot, plain_elf32_and_elf64)
{
    static u8 text[0x100], k[0x1000];
    memset(text, 0x90, sizeof text);
    struct segspec s = { 0x400000, 0x400000, text, sizeof text, 0x200 };
    size_t n = make_elf(k, sizeof k, false, 0x400010, &s, 1, NULL, 0);
    struct boot_image ki = img(k, n, "plain32");
    cr_assert_eq(boot_elf(m, &ki, NULL, NULL), 0);
    expect_prot32(0x400010);
    cr_assert_eq(bsp->gpr[R_RAX], 0);
    cr_assert_eq(bsp->gpr[R_RBX], 0);
    expect_bytes(0x400000, text, sizeof text);

    n = make_elf(k, sizeof k, true, 0x400020, &s, 1, NULL, 0);
    ki = img(k, n, "plain64");
    cr_assert_eq(boot_elf(m, &ki, NULL, NULL), 0);
    expect_long64(0x400020);

    /* ELF32 with x86-64 code (Xen's 64-bit test kernels): loaded and entered as ELF32;
     * an ELF32 for another machine is refused */
    n = make_elf(k, sizeof k, false, 0x400030, &s, 1, NULL, 0);
    put16(k + 18, EM_X86_64);
    ki = img(k, n, "plain32-x86-64");
    cr_assert_eq(boot_elf(m, &ki, NULL, NULL), 0);
    expect_prot32(0x400030);
    expect_bytes(0x400000, text, sizeof text);
    put16(k + 18, EM_ARM);
    ki = img(k, n, "plain32-arm");
    cr_assert_eq(boot_elf(m, &ki, NULL, NULL), NESTOR_EXIT_USAGE);

    n = make_elf(k, sizeof k, true, 0x400020, &s, 1, NULL, 0);
    const char *p = tmpfile_with("plain64", k, n);
    cr_assert_eq(boot_load_kernel(m, p, NULL, NULL), 0);
    expect_long64(0x400020);
    cr_assert_eq(boot_load_kernel(m, p, p, NULL), NESTOR_EXIT_USAGE); /* no way to pass an initrd */
    cr_assert_eq(boot_load_kernel(m, p, NULL, "x"), NESTOR_EXIT_USAGE);
}

Test(boot, elf_malformed)
{
    static u8 text[0x100], k[0x1000];
    struct segspec s = { 0x400000, 0x400000, text, sizeof text, 0x200 };
    struct boot_image ki;
    size_t n;
    struct elf_info info;

    n = make_elf(k, sizeof k, true, 0x400000, &s, 1, NULL, 0);
    ki = img(k, 40, "cut-ehdr");
    cr_assert_eq(boot_elf(m, &ki, NULL, NULL), NESTOR_EXIT_USAGE);
    ki = img(k, n - 1, "cut-segment");
    cr_assert_eq(boot_elf(m, &ki, NULL, NULL), NESTOR_EXIT_USAGE);
    ki = img(k, sizeof(Elf64_Ehdr) + 10, "cut-phdr");
    cr_assert_eq(boot_elf(m, &ki, NULL, NULL), NESTOR_EXIT_USAGE);

    struct segspec bad = s;
    bad.memsz = 0x80; /* p_filesz > p_memsz */
    n = make_elf(k, sizeof k, true, 0x400000, &bad, 1, NULL, 0);
    ki = img(k, n, "filesz");
    cr_assert_eq(elf_load(m, &ki, &info), -1);
    cr_assert_eq(boot_elf(m, &ki, NULL, NULL), NESTOR_EXIT_USAGE);

    bad = s;
    bad.paddr = 0x40000000; /* above 64 MiB of RAM */
    n = make_elf(k, sizeof k, true, 0x400000, &bad, 1, NULL, 0);
    cr_assert_eq(boot_elf(m, &ki, NULL, NULL), NESTOR_EXIT_USAGE);
    bad.paddr = 0xa0000; /* VGA hole */
    n = make_elf(k, sizeof k, true, 0x400000, &bad, 1, NULL, 0);
    cr_assert_eq(boot_elf(m, &ki, NULL, NULL), NESTOR_EXIT_USAGE);
    bad.paddr = 0x9f000; /* runs into the EBDA */
    bad.memsz = 0x2000;
    n = make_elf(k, sizeof k, true, 0x400000, &bad, 1, NULL, 0);
    cr_assert_eq(boot_elf(m, &ki, NULL, NULL), NESTOR_EXIT_USAGE);
    bad = s;
    bad.paddr = 0xe0000; /* the BIOS area with the ACPI tables */
    n = make_elf(k, sizeof k, true, 0x400000, &bad, 1, NULL, 0);
    cr_assert_eq(boot_elf(m, &ki, NULL, NULL), NESTOR_EXIT_USAGE);
    bad.paddr = 0xfffffffffffff000ull; /* wraps */
    n = make_elf(k, sizeof k, true, 0x400000, &bad, 1, NULL, 0);
    cr_assert_eq(boot_elf(m, &ki, NULL, NULL), NESTOR_EXIT_USAGE);

    struct segspec two[2] = { s, s };
    two[1].paddr = 0x400100; /* overlaps the first */
    n = make_elf(k, sizeof k, true, 0x400000, two, 2, NULL, 0);
    ki = img(k, n, "overlap");
    cr_assert_eq(boot_elf(m, &ki, NULL, NULL), NESTOR_EXIT_USAGE);

    /* entry above 4 GiB for a 64-bit kernel */
    n = make_elf(k, sizeof k, true, 0xffffffff80000000ull, &s, 1, NULL, 0);
    ki = img(k, n, "high-entry");
    cr_assert_eq(boot_elf(m, &ki, NULL, NULL), NESTOR_EXIT_USAGE);

    /* absurd program header counts */
    n = make_elf(k, sizeof k, true, 0x400000, &s, 1, NULL, 0);
    put16(k + 56, 0xffff);
    ki = img(k, n, "pn_xnum");
    cr_assert_eq(boot_elf(m, &ki, NULL, NULL), NESTOR_EXIT_USAGE);
    put16(k + 56, 5000);
    cr_assert_eq(boot_elf(m, &ki, NULL, NULL), NESTOR_EXIT_USAGE);
    put16(k + 56, 1);
    put64(k + 32, 0xfffffffffffffff0ull); /* e_phoff wraps */
    cr_assert_eq(boot_elf(m, &ki, NULL, NULL), NESTOR_EXIT_USAGE);

    /* wrong machine, big-endian, not executable */
    n = make_elf(k, sizeof k, true, 0x400000, &s, 1, NULL, 0);
    put16(k + 18, EM_386);
    cr_assert_eq(boot_elf(m, &ki, NULL, NULL), NESTOR_EXIT_USAGE);
    n = make_elf(k, sizeof k, true, 0x400000, &s, 1, NULL, 0);
    k[EI_DATA] = ELFDATA2MSB;
    cr_assert_eq(boot_elf(m, &ki, NULL, NULL), NESTOR_EXIT_USAGE);
    n = make_elf(k, sizeof k, true, 0x400000, &s, 1, NULL, 0);
    put16(k + 16, ET_REL);
    cr_assert_eq(boot_elf(m, &ki, NULL, NULL), NESTOR_EXIT_USAGE);

    /* too many PT_LOAD segments */
    static struct segspec many[40];
    for (int i = 0; i < 40; i++)
        many[i] = (struct segspec){ 0x400000 + 0x1000ull * i, 0, text, 16, 16 };
    static u8 big[0x4000];
    n = make_elf(big, sizeof big, false, 0x400000, many, 40, NULL, 0);
    ki = img(big, n, "many");
    cr_assert_eq(boot_elf(m, &ki, NULL, NULL), NESTOR_EXIT_USAGE);
}

Test(boot, files_that_are_not_kernels)
{
    cr_assert_eq(boot_load_kernel(m, "/nonexistent/kernel", NULL, NULL), NESTOR_EXIT_USAGE);
    cr_assert_eq(boot_load_kernel(m, tmpfile_with("empty", "", 0), NULL, NULL), NESTOR_EXIT_USAGE);
    cr_assert_eq(boot_load_kernel(m, tmpfile_with("text", "hello world\n", 12), NULL, NULL),
                 NESTOR_EXIT_USAGE);
    cr_assert_eq(boot_load_kernel(m, tmpfile_with("elfmagic", "\177ELF", 4), NULL, NULL),
                 NESTOR_EXIT_USAGE);
    static u8 k[0x2000];
    size_t n = make_aout(k, sizeof k, 0, 0);
    const char *kp = tmpfile_with("k2.bin", k, n);
    cr_assert_eq(boot_load_kernel(m, kp, "/nonexistent/module", NULL), NESTOR_EXIT_USAGE);
    cr_assert_eq(boot_load_kernel(m, kp, ",", NULL), NESTOR_EXIT_USAGE);
    cr_assert_eq(boot_load_kernel(m, kp, NULL, NULL), 0);
}

/* Randomly damaged valid images: every loader must answer 0, 1 or NESTOR_EXIT_USAGE and
 * never touch memory out of bounds (run under ASan by `make sanitize`). */
Test(boot, random_damage_never_crashes)
{
    static u8 base[4][0x4000], k[0x4000];
    size_t len[4];
    static u8 text[0x400];
    memset(text, 0x90, sizeof text);
    mb_header(text + 0x20, BIT(1));
    struct segspec s = { 0x200000, 0xc0200000, text, sizeof text, 0x1000 };
    len[0] = make_aout(base[0], 0x2000, 0x1000, 0);
    len[1] = make_elf(base[1], sizeof base[1], false, 0xc0200000, &s, 1, NULL, 0);
    len[2] = make_pvh(base[2], sizeof base[2], text, sizeof text, 0x1000010, 8);
    struct bz b = { .version = 0x020f, .kernel64 = true, .relocatable = true, .pref = 0x1000000,
                    .align = 0x200000, .init_size = 0x10000, .cmdline_size = 64 };
    len[3] = make_bzimage(base[3], sizeof base[3], &b, 0x800);
    typedef int (*loader)(struct machine *, const struct boot_image *, const struct boot_image *,
                          const char *);
    static const loader loaders[] = { boot_multiboot, boot_pvh, boot_linux, boot_elf };
    u64 seed = 0x9e3779b97f4a7c15ull;
    int loaded = 0;
    cr_redirect_stderr(); /* thousands of refusals */
    for (int iter = 0; iter < 3000; iter++) {
        int which = iter % 4;
        memcpy(k, base[which], len[which]);
        size_t n = len[which];
        int flips = 1 + (int)(seed % 8);
        for (int f = 0; f < flips; f++) {
            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            size_t at = (seed >> 33) % (which == 3 ? 0x300 : 0x100); /* headers */
            k[at] = (u8)(seed >> 17);
        }
        if (seed & BIT(60))
            n = (seed >> 20) % n;
        struct boot_image ki = img(k, n, "fuzz");
        for (size_t l = 0; l < ARRAY_SIZE(loaders); l++) {
            int rc = loaders[l](m, &ki, NULL, iter & 4 ? "x" : NULL);
            cr_assert(rc == 0 || rc == 1 || rc == NESTOR_EXIT_USAGE, "rc %d", rc);
            loaded += rc == 0;
        }
    }
    cr_assert_gt(loaded, 0); /* some damage is harmless: the loaders did run */
}
