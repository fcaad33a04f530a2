/* A multiboot kernel loaded in low memory (lowload.ld: a segment at [0x1000, 0x8000) with
 * the header, the entry code and a pattern, the rest at 1 MiB), as kvm-unit-tests'
 * realmode test (linked at 0x8000) is: the loader must place its own structures (boot
 * GDT, information structure, memory map, strings) where the image is not, and leave the
 * image intact. QEMU's option ROM keeps the memory map at 0x9000, inside the span it copies
 * the kernel over, so the map's contents are checked on nestor only. */
#include "rt.h"

extern u8 __low_start[], __low_end[];
extern void _start(void);

#define PATTERN_WORDS 0x1000
/* the pattern: word i is (i << 16) | (i ^ 0x5a5a) */
asm(".section .lowdata, \"a\"\n"
    ".globl low_pattern\n"
    "low_pattern:\n"
    ".set i, 0\n"
    ".rept 0x1000\n"
    ".long (i << 16) | (i ^ 0x5a5a)\n"
    ".set i, i + 1\n"
    ".endr\n"
    ".previous\n");
extern const u32 low_pattern[PATTERN_WORDS];

static bool inside(u32 addr, u32 len, const void *start, const void *end)
{
    return addr < (ulong)end && (ulong)start < addr + len;
}

/* [addr, addr+len) must lie outside both segments of the image. */
static void check_outside(const char *what, u32 addr, u32 len)
{
    TEST_ASSERT(addr >= 0x1000, "%s at %#x is not in page 0", what, addr);
    TEST_ASSERT(!inside(addr, len, __low_start, __low_end),
                "%s [%#x, +%#x) is outside the low segment [%p, %p)", what, addr, len,
                __low_start, __low_end);
    TEST_ASSERT(!inside(addr, len, __image_start, __image_end),
                "%s [%#x, +%#x) is outside the high segment [%p, %p)", what, addr, len,
                __image_start, __image_end);
}

void test_main(void)
{
    TEST_EQ((ulong)__low_start, 0x1000, "the low segment starts at 0x1000");
    TEST_ASSERT((ulong)_start < 0x8000, "the entry point %p is in low memory", (void *)_start);
    TEST_EQ(mb_magic, 0x2badb002, "EAX at entry is the multiboot magic");

    unsigned bad = 0;
    for (u32 i = 0; i < PATTERN_WORDS; i++)
        bad += low_pattern[i] != ((i << 16) | (i ^ 0x5a5a));
    TEST_EQ(bad, 0, "words of the low segment's pattern changed by the loader");
    const u32 *hdr = (const u32 *)__low_start;
    TEST_EQ(hdr[0], 0x1badb002, "the multiboot header at 0x1000 is intact");
    TEST_EQ(hdr[0] + hdr[1] + hdr[2], 0, "its checksum too");

    const u32 *mbi = (const u32 *)(ulong)mb_info;
    check_outside("the multiboot information", mb_info, 88);
    u32 flags = mbi[0];
    TEST_ASSERT(flags & BIT(2), "MBI flags %#x have a command line", flags);
    TEST_ASSERT(flags & BIT(6), "MBI flags %#x have a memory map", flags);
    if (flags & BIT(2)) {
        const char *cmd = (const char *)(ulong)mbi[4];
        check_outside("the command line", mbi[4], strlen(cmd) + 1);
        TEST_ASSERT(strlen(cmd) > 0, "the command line '%s' names the kernel", cmd);
    }
    if (flags & BIT(9)) {
        const char *name = (const char *)(ulong)mbi[16];
        check_outside("the boot loader name", mbi[16], strlen(name) + 1);
        TEST_ASSERT(strlen(name) > 0, "boot loader name '%s'", name);
    }
    if (!(flags & BIT(6)))
        return;
    u32 len = mbi[11], addr = mbi[12];
    check_outside("the memory map", addr, len);
    if (on_qemu_tcg()) {
        test_skip("QEMU's memory map at 0x9000 lies in the span it copies the kernel over");
        return;
    }
    /* the map is real: RAM entries hold both segments */
    bool low_ram = false, high_ram = false;
    unsigned entries = 0;
    for (u32 off = 0; off + 24 <= len && entries < 64; entries++) {
        const u8 *e = (const u8 *)(ulong)(addr + off);
        u32 size;
        u64 base, length;
        u32 type;
        memcpy(&size, e, 4);
        memcpy(&base, e + 4, 8);
        memcpy(&length, e + 12, 8);
        memcpy(&type, e + 20, 4);
        if (type == 1 && base <= (ulong)__low_start && (ulong)__low_end <= base + length)
            low_ram = true;
        if (type == 1 && base <= (ulong)__image_start && (ulong)__image_end <= base + length)
            high_ram = true;
        off += size + 4;
    }
    TEST_ASSERT(entries >= 3, "the memory map has %u entries", entries);
    TEST_ASSERT(low_ram, "a RAM entry of the memory map holds the low segment");
    TEST_ASSERT(high_ram, "a RAM entry of the memory map holds the high segment");
}
