/* Kernel loaders: they place a kernel (and modules/initrd) in guest RAM and set the boot
 * vCPU's registers as its boot protocol says. A malformed or truncated image is reported
 * with a clear message and the loader returns NESTOR_EXIT_USAGE. */
#ifndef NESTOR_BOOT_BOOT_H
#define NESTOR_BOOT_BOOT_H

#include "common.h"

struct machine;

struct boot_image {
    const u8 *data;
    size_t size;
    const char *path;     /* for messages */
};

/* Detects the format (PVH ELF note, multiboot header, Linux bzImage, plain ELF) and loads.
 * Returns 0 or NESTOR_EXIT_USAGE. */
int boot_load_kernel(struct machine *m, const char *kernel, const char *initrd,
                     const char *cmdline);

/* The individual formats; each returns 1 if the image is not of its format (nothing
 * done), 0 if loaded, NESTOR_EXIT_USAGE if it is of its format but malformed. */
int boot_multiboot(struct machine *m, const struct boot_image *k, const struct boot_image *initrd,
                   const char *cmdline);
int boot_pvh(struct machine *m, const struct boot_image *k, const struct boot_image *initrd,
             const char *cmdline);
int boot_linux(struct machine *m, const struct boot_image *k, const struct boot_image *initrd,
               const char *cmdline);
int boot_elf(struct machine *m, const struct boot_image *k, const struct boot_image *initrd,
             const char *cmdline);

/* ELF helpers shared by the loaders (bounds-checked against the image). */
struct elf_info {
    u64 entry;
    bool is64;
    u64 lowest, highest; /* physical range spanned by PT_LOAD segments */
};
/* Loads PT_LOAD segments at their physical addresses. 0, or -1 with a message. */
int elf_load(struct machine *m, const struct boot_image *k, struct elf_info *out);
bool elf_is_elf(const struct boot_image *k);
/* Finds an ELF note by name and type; returns a pointer into the image or NULL. */
const u8 *elf_find_note(const struct boot_image *k, const char *name, u32 type, u32 *desc_len);

#endif
