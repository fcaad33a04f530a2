/* ELF images: the shared ELF reader (headers, PT_LOAD segments, notes) and the loader for
 * plain ELF kernels that carry no boot protocol of their own.
 *
 * Every field read from the image is checked against the image size with overflow-checked
 * arithmetic before use, and every segment is checked (file bounds, guest RAM, overlaps)
 * before the first byte is written. */
#include <elf.h>
#include <string.h>

#include "boot/boot_internal.h"
#include "machine/machine.h"

/* ELF32 and ELF64 headers, in one shape. */
struct elf_hdr {
    bool is64;
    u16 type, machine;
    u64 entry, phoff, shoff;
    u16 phentsize, phnum, shentsize, shnum;
};

struct elf_phdr {
    u32 type;
    u64 offset, vaddr, paddr, filesz, memsz, align;
};

/* More PT_LOAD segments than any kernel has; the cap keeps hostile images cheap. */
#define ELF_MAX_LOAD 32

bool elf_is_elf(const struct boot_image *k)
{
    return k->size >= SELFMAG && memcmp(k->data, ELFMAG, SELFMAG) == 0;
}

/* True if [off, off+len) lies inside the image. */
static bool in_image(const struct boot_image *k, u64 off, u64 len)
{
    u64 end;
    return boot_add(off, len, &end) && end <= k->size;
}

/* Parses the ELF header; NULL, or what is wrong. */
static const char *elf_parse(const struct boot_image *k, struct elf_hdr *h)
{
    const u8 *d = k->data;
    if (k->size < EI_NIDENT || !elf_is_elf(k))
        return "truncated ELF identification";
    if (d[EI_CLASS] != ELFCLASS32 && d[EI_CLASS] != ELFCLASS64)
        return "unknown ELF class";
    if (d[EI_DATA] != ELFDATA2LSB)
        return "not a little-endian ELF";
    if (d[EI_VERSION] != EV_CURRENT)
        return "unknown ELF version";
    h->is64 = d[EI_CLASS] == ELFCLASS64;
    if (k->size < (h->is64 ? sizeof(Elf64_Ehdr) : sizeof(Elf32_Ehdr)))
        return "truncated ELF header";
    h->type = boot_rd16(d + offsetof(Elf64_Ehdr, e_type));
    h->machine = boot_rd16(d + offsetof(Elf64_Ehdr, e_machine));
    if (h->is64) {
        h->entry = boot_rd64(d + offsetof(Elf64_Ehdr, e_entry));
        h->phoff = boot_rd64(d + offsetof(Elf64_Ehdr, e_phoff));
        h->shoff = boot_rd64(d + offsetof(Elf64_Ehdr, e_shoff));
        h->phentsize = boot_rd16(d + offsetof(Elf64_Ehdr, e_phentsize));
        h->phnum = boot_rd16(d + offsetof(Elf64_Ehdr, e_phnum));
        h->shentsize = boot_rd16(d + offsetof(Elf64_Ehdr, e_shentsize));
        h->shnum = boot_rd16(d + offsetof(Elf64_Ehdr, e_shnum));
    } else {
        h->entry = boot_rd32(d + offsetof(Elf32_Ehdr, e_entry));
        h->phoff = boot_rd32(d + offsetof(Elf32_Ehdr, e_phoff));
        h->shoff = boot_rd32(d + offsetof(Elf32_Ehdr, e_shoff));
        h->phentsize = boot_rd16(d + offsetof(Elf32_Ehdr, e_phentsize));
        h->phnum = boot_rd16(d + offsetof(Elf32_Ehdr, e_phnum));
        h->shentsize = boot_rd16(d + offsetof(Elf32_Ehdr, e_shentsize));
        h->shnum = boot_rd16(d + offsetof(Elf32_Ehdr, e_shnum));
    }
    /* An ELF32 file may carry x86-64 code (EM_X86_64): Xen's own 64-bit test kernels
     * ship so, entered in 32-bit mode like any ELF32 kernel and switching to long mode
     * themselves; Xen's loader takes them. */
    if (h->is64 ? h->machine != EM_X86_64 : (h->machine != EM_386 && h->machine != EM_X86_64))
        return h->is64 ? "ELF64 image is not for x86-64" : "ELF32 image is not for i386 or x86-64";
    if (h->type != ET_EXEC && h->type != ET_DYN)
        return "ELF image is not an executable";
    if (h->phnum == PN_XNUM)
        return "extended program header numbering is not supported";
    if (h->phnum == 0)
        return "ELF image has no program headers";
    if (h->phentsize < (h->is64 ? sizeof(Elf64_Phdr) : sizeof(Elf32_Phdr)))
        return "ELF program header entries are too small";
    if (!in_image(k, h->phoff, (u64)h->phnum * h->phentsize))
        return "ELF program headers lie outside the file";
    return NULL;
}

static void elf_phdr_read(const struct boot_image *k, const struct elf_hdr *h, int i,
                          struct elf_phdr *ph)
{
    const u8 *p = k->data + h->phoff + (u64)i * h->phentsize;
    ph->type = boot_rd32(p); /* p_type is first in both classes */
    if (h->is64) {
        ph->offset = boot_rd64(p + offsetof(Elf64_Phdr, p_offset));
        ph->vaddr = boot_rd64(p + offsetof(Elf64_Phdr, p_vaddr));
        ph->paddr = boot_rd64(p + offsetof(Elf64_Phdr, p_paddr));
        ph->filesz = boot_rd64(p + offsetof(Elf64_Phdr, p_filesz));
        ph->memsz = boot_rd64(p + offsetof(Elf64_Phdr, p_memsz));
        ph->align = boot_rd64(p + offsetof(Elf64_Phdr, p_align));
    } else {
        ph->offset = boot_rd32(p + offsetof(Elf32_Phdr, p_offset));
        ph->vaddr = boot_rd32(p + offsetof(Elf32_Phdr, p_vaddr));
        ph->paddr = boot_rd32(p + offsetof(Elf32_Phdr, p_paddr));
        ph->filesz = boot_rd32(p + offsetof(Elf32_Phdr, p_filesz));
        ph->memsz = boot_rd32(p + offsetof(Elf32_Phdr, p_memsz));
        ph->align = boot_rd32(p + offsetof(Elf32_Phdr, p_align));
    }
}

int elf_load(struct machine *m, const struct boot_image *k, struct elf_info *out)
{
    struct boot_layout layout;
    boot_layout_init(&layout, m, k->path);
    return elf_load_into(&layout, k, out);
}

int elf_load_into(struct boot_layout *layout, const struct boot_image *k, struct elf_info *out)
{
    struct machine *m = layout->m;
    struct elf_hdr h;
    const char *why = elf_parse(k, &h);
    if (why) {
        nestor_log("%s: malformed ELF image: %s", k->path, why);
        return -1;
    }

    /* Check every segment (file bounds, RAM, overlaps) before writing anything. */
    struct elf_phdr load[ELF_MAX_LOAD];
    int nload = 0;
    for (int i = 0; i < h.phnum; i++) {
        struct elf_phdr ph;
        elf_phdr_read(k, &h, i, &ph);
        if (ph.type != PT_LOAD || ph.memsz == 0)
            continue;
        if (nload == ELF_MAX_LOAD) {
            nestor_log("%s: malformed ELF image: more than %d loadable segments", k->path,
                       ELF_MAX_LOAD);
            return -1;
        }
        if (ph.filesz > ph.memsz) {
            nestor_log("%s: malformed ELF image: segment %d has p_filesz 0x%llx > p_memsz 0x%llx",
                       k->path, i, (unsigned long long)ph.filesz, (unsigned long long)ph.memsz);
            return -1;
        }
        if (!in_image(k, ph.offset, ph.filesz)) {
            nestor_log("%s: truncated ELF image: segment %d (0x%llx bytes at offset 0x%llx) "
                       "extends past the end of the file (0x%zx bytes)", k->path, i,
                       (unsigned long long)ph.filesz, (unsigned long long)ph.offset, k->size);
            return -1;
        }
        u64 end;
        if (!boot_add(ph.paddr, ph.memsz, &end)) {
            nestor_log("%s: malformed ELF image: segment %d wraps around the address space",
                       k->path, i);
            return -1;
        }
        char what[32];
        snprintf(what, sizeof what, "ELF segment %d", i);
        if (boot_layout_claim(layout, ph.paddr, end, what))
            return -1;
        load[nload++] = ph;
    }
    if (nload == 0) {
        nestor_log("%s: malformed ELF image: no loadable segment", k->path);
        return -1;
    }

    out->is64 = h.is64;
    out->lowest = UINT64_MAX;
    out->highest = 0;
    /* Kernels start with paging off, so a virtual e_entry is translated through the
     * segment that contains it (as GRUB does); otherwise e_entry is physical already. */
    out->entry = h.entry;
    for (int i = 0; i < nload; i++) {
        const struct elf_phdr *ph = &load[i];
        if (ph->paddr < out->lowest)
            out->lowest = ph->paddr;
        if (ph->paddr + ph->memsz > out->highest)
            out->highest = ph->paddr + ph->memsz;
        if (h.entry >= ph->vaddr && h.entry - ph->vaddr < ph->memsz)
            out->entry = h.entry - ph->vaddr + ph->paddr;
    }
    for (int i = 0; i < nload; i++) {
        const struct elf_phdr *ph = &load[i];
        if (mem_write(&m->mem, ph->paddr, k->data + ph->offset, ph->filesz) ||
            mem_fill(&m->mem, ph->paddr + ph->filesz, 0, ph->memsz - ph->filesz))
            nestor_panic("boot: checked ELF segment [0x%llx, +0x%llx) not writable",
                         (unsigned long long)ph->paddr, (unsigned long long)ph->memsz);
    }
    return 0;
}

/* Looks for the note in [off, off+len) of the image; entries are padded to `align`. */
static const u8 *find_note_in(const struct boot_image *k, u64 off, u64 len, u64 align,
                              const char *name, u32 type, u32 *desc_len)
{
    if (!in_image(k, off, len))
        return NULL;
    const u8 *base = k->data + off;
    size_t name_len = strlen(name);
    u64 pos = 0;
    while (len - pos >= 12) {
        u32 namesz = boot_rd32(base + pos), descsz = boot_rd32(base + pos + 4);
        u32 ntype = boot_rd32(base + pos + 8);
        u64 name_at = pos + 12;
        u64 desc_at = name_at + boot_align_up(namesz, align);
        u64 next = desc_at + boot_align_up(descsz, align); /* u32 sizes: no overflow */
        if (desc_at > len || descsz > len - desc_at)
            return NULL;
        /* the name is stored with its NUL; accept a writer that left the NUL out */
        bool name_ok = (namesz == name_len + 1 && base[name_at + name_len] == 0) ||
                       namesz == name_len;
        if (ntype == type && name_ok && memcmp(base + name_at, name, name_len) == 0) {
            *desc_len = descsz;
            return base + desc_at;
        }
        if (next > len)
            return NULL;
        pos = next;
    }
    return NULL;
}

const u8 *elf_find_note(const struct boot_image *k, const char *name, u32 type, u32 *desc_len)
{
    struct elf_hdr h;
    if (elf_parse(k, &h))
        return NULL;
    for (int i = 0; i < h.phnum; i++) {
        struct elf_phdr ph;
        elf_phdr_read(k, &h, i, &ph);
        if (ph.type != PT_NOTE)
            continue;
        const u8 *d = find_note_in(k, ph.offset, ph.filesz, ph.align == 8 ? 8 : 4, name, type,
                                   desc_len);
        if (d)
            return d;
    }
    /* Images whose notes have no PT_NOTE: look through SHT_NOTE sections. */
    u64 shdr_size = h.is64 ? sizeof(Elf64_Shdr) : sizeof(Elf32_Shdr);
    if (h.shnum == 0 || h.shentsize < shdr_size ||
        !in_image(k, h.shoff, (u64)h.shnum * h.shentsize))
        return NULL;
    for (int i = 0; i < h.shnum; i++) {
        const u8 *s = k->data + h.shoff + (u64)i * h.shentsize;
        if (boot_rd32(s + offsetof(Elf64_Shdr, sh_type)) != SHT_NOTE)
            continue;
        u64 off, size, align;
        if (h.is64) {
            off = boot_rd64(s + offsetof(Elf64_Shdr, sh_offset));
            size = boot_rd64(s + offsetof(Elf64_Shdr, sh_size));
            align = boot_rd64(s + offsetof(Elf64_Shdr, sh_addralign));
        } else {
            off = boot_rd32(s + offsetof(Elf32_Shdr, sh_offset));
            size = boot_rd32(s + offsetof(Elf32_Shdr, sh_size));
            align = boot_rd32(s + offsetof(Elf32_Shdr, sh_addralign));
        }
        const u8 *d = find_note_in(k, off, size, align == 8 ? 8 : 4, name, type, desc_len);
        if (d)
            return d;
    }
    return NULL;
}

/* A plain ELF kernel (no multiboot header, no PVH note): its PT_LOAD segments are loaded
 * at their physical addresses and it is entered at its (physical) entry point with every
 * general register zero:
 *   ELFCLASS32: BOOT_ENTRY_PROT32, 32-bit flat protected mode, paging off;
 *   ELFCLASS64: BOOT_ENTRY_LONG64, long mode with [0, 4 GiB) identity-mapped.
 * There is no protocol to hand over a command line or an initrd, so both are refused. */
int boot_elf(struct machine *m, const struct boot_image *k, const struct boot_image *initrd,
             const char *cmdline)
{
    if (!elf_is_elf(k))
        return 1;
    if (initrd || (cmdline && *cmdline)) {
        nestor_log("%s: a plain ELF kernel (no multiboot header, no PVH note) cannot receive "
                   "%s", k->path, initrd ? "an initrd" : "a command line");
        return NESTOR_EXIT_USAGE;
    }
    struct boot_layout layout;
    boot_layout_init(&layout, m, k->path);
    struct elf_info info;
    struct boot_entry boot;
    if (elf_load_into(&layout, k, &info))
        return NESTOR_EXIT_USAGE;
    if (info.entry >= MEM_4G) {
        nestor_log("%s: ELF entry point 0x%llx is above 4 GiB, outside the identity map the "
                   "kernel is entered with", k->path, (unsigned long long)info.entry);
        return NESTOR_EXIT_USAGE;
    }
    if (boot_entry_place(&layout, info.is64 ? BOOT_ENTRY_LONG64 : BOOT_ENTRY_PROT32, &boot))
        return NESTOR_EXIT_USAGE;
    boot_enter(m, &boot, info.entry);
    return 0;
}
