/* Unit tests of guest_mem's frame map: frames that hold nothing, RAM pages that move,
 * are populated again (zeroed) or given back, foreign pages placed anywhere; thousands
 * of holes; the RAM count; the listener told of every change; generation words retired. */
#include <criterion/criterion.h>
#include <string.h>

#include "machine/mem.h"

#define RAM (64 * MiB)

static struct guest_mem mem;
static int changes;

static void changed(void *opaque)
{
    (void)opaque;
    changes++;
}

static void setup(void)
{
    cr_assert_eq(mem_init(&mem, RAM), 0);
    mem_set_map_listener(&mem, changed, NULL);
    changes = 0;
}

static void teardown(void)
{
    mem_destroy(&mem);
}

TestSuite(mem_frames, .init = setup, .fini = teardown);

static u64 region_frames(void)
{
    u64 n = 0;
    for (int i = 0; i < mem.nregions; i++)
        n += mem.region[i].size >> 12;
    return n;
}

Test(mem_frames, a_removed_frame_is_not_memory_and_comes_back_zeroed)
{
    u64 gfn = 0x2000, gpa = gfn << 12;
    u64 ram = mem.ram_frames;
    cr_assert_eq(ram, region_frames());
    cr_assert_eq(mem_write_u32(&mem, gpa + 8, 0x12345678), 0);
    cr_assert_eq(mem_frame_remove(&mem, gfn, NULL), MEM_FRAME_RAM);
    cr_assert_eq(changes, 1);
    cr_assert_eq(mem.ram_frames, ram - 1);
    cr_assert_null(mem_ptr(&mem, gpa, 1));
    cr_assert_null(mem_page_gen(&mem, gpa));
    u32 v;
    cr_assert_eq(mem_read_u32(&mem, gpa + 8, &v), -1);
    cr_assert(!mem_is_ram(&mem, gpa - 4, 8), "a range running into the hole is not RAM");
    cr_assert(mem_is_ram(&mem, gpa - 4096, 4096), "its neighbour is");
    cr_assert_eq(mem_frame_at(&mem, gfn, NULL), MEM_FRAME_NONE);
    cr_assert_eq(mem_frame_remove(&mem, gfn, NULL), MEM_FRAME_NONE);
    cr_assert_eq(mem_frame_populate(&mem, gfn), 0);
    cr_assert_eq(mem.ram_frames, ram);
    cr_assert_eq(mem_read_u32(&mem, gpa + 8, &v), 0);
    cr_assert_eq(v, 0, "a populated frame is zero");
    cr_assert_eq(mem_frame_populate(&mem, gfn), -1, "it holds a page now");
    cr_assert_eq(mem.nframes, 0, "the frame is the region's own page again: no entry left");
}

Test(mem_frames, copies_across_a_moved_page)
{
    u64 a = 0x3000, b = 0x3005;
    u8 buf[3 * 4096];
    cr_assert_eq(mem_fill(&mem, a << 12, 0xaa, 4096), 0);
    cr_assert_eq(mem_frame_remove(&mem, b, NULL), MEM_FRAME_RAM);
    cr_assert_eq(mem_frame_move(&mem, a, b), 0);
    cr_assert_eq(mem_frame_move(&mem, a, b), -1, "nothing at a any more");
    cr_assert_eq(mem.ram_frames, region_frames() - 1);
    cr_assert_null(mem_ptr(&mem, a << 12, 1));
    /* b-1, b, b+1: one copy over a region page, the moved page, a region page */
    memset(buf, 0x55, sizeof(buf));
    cr_assert_eq(mem_write(&mem, (b - 1) << 12, buf, 4096), 0);
    cr_assert_eq(mem_read(&mem, (b - 1) << 12, buf, sizeof(buf)), 0);
    cr_assert_eq(buf[0], 0x55);
    cr_assert_eq(buf[4096], 0xaa, "the moved page's bytes");
    cr_assert_eq(buf[3 * 4096 - 1], 0);
    /* its own frame gets a fresh page while the old one is away */
    cr_assert_eq(mem_frame_populate(&mem, a), 0);
    cr_assert_eq(*mem_ptr(&mem, a << 12, 1), 0);
    cr_assert_eq(*mem_ptr(&mem, b << 12, 1), 0xaa);
    /* the old page given back: a's region page is free again, a keeps its own */
    cr_assert_eq(mem_frame_remove(&mem, b, NULL), MEM_FRAME_RAM);
    cr_assert_eq(mem_frame_remove(&mem, a, NULL), MEM_FRAME_RAM);
    cr_assert_eq(mem_frame_populate(&mem, a), 0);
    cr_assert_eq(mem_ptr(&mem, a << 12, 1), mem.region[2].host + (a << 12) - mem.region[2].gpa,
                 "a has its region page back");
    cr_assert_eq(mem.ram_frames, region_frames() - 1);
}

Test(mem_frames, a_page_moves_home)
{
    u64 a = 0x3800, b = 0x3801;
    cr_assert_eq(mem_frame_remove(&mem, b, NULL), MEM_FRAME_RAM);
    cr_assert_eq(mem_frame_move(&mem, a, b), 0);
    cr_assert_eq(mem_frame_move(&mem, b, a), 0);
    cr_assert_eq(mem.nframes, 1, "only b's hole is left");
    cr_assert_not_null(mem_ptr(&mem, a << 12, 4096));
}

Test(mem_frames, foreign_pages_anywhere)
{
    static u8 page[4096];
    static u32 gen;
    u64 hole = 0xd0000; /* the PCI hole */
    u8 *host;
    cr_assert_eq(mem_frame_place(&mem, hole, page, &gen), 0);
    cr_assert_eq(mem_frame_place(&mem, hole, page, &gen), -1, "the frame is taken");
    cr_assert_eq(mem_ptr(&mem, hole << 12, 4096), page);
    cr_assert_eq(mem_frame_at(&mem, hole, &host), MEM_FRAME_FOREIGN);
    cr_assert_eq(host, page);
    cr_assert_eq(mem_frame_of(&mem, page), hole);
    cr_assert_eq(mem.max_gfn, hole);
    u64 ram = mem.ram_frames;
    cr_assert_eq(mem_overlay_map(&mem, 0x100ull << 12, page, &gen), 0, "moved over RAM");
    cr_assert_eq(mem.ram_frames, ram - 1, "the RAM page there is freed");
    cr_assert_null(mem_ptr(&mem, hole << 12, 1), "the frame it left holds nothing");
    cr_assert_eq(mem.nframes, 1);
    gen = PAGE_GEN_CODE;
    mem_overlay_unmap(&mem, page);
    cr_assert_eq(gen & PAGE_GEN_CODE, 0, "code decoded from it is stale");
    cr_assert_null(mem_ptr(&mem, 0x100ull << 12, 1));
    cr_assert_eq(mem_frame_of(&mem, page), MEM_NO_GFN);
}

Test(mem_frames, readonly_frames)
{
    static u8 page[4096];
    static u32 gen;
    u64 ro = 0x200; /* over RAM */
    memset(page, 0x5a, sizeof(page));
    cr_assert_eq(mem_frame_remove(&mem, ro, NULL), MEM_FRAME_RAM);
    cr_assert_eq(mem_frame_place_prot(&mem, ro, page, &gen, MEM_PROT_READONLY), 0);
    cr_assert(mem_frame_readonly(&mem, ro));
    cr_assert_not(mem_frame_readonly(&mem, ro + 1), "RAM beside it is writable");
    cr_assert_eq(mem_ptr(&mem, ro << 12, 4096), page, "readable");
    cr_assert_null(mem_ptr_write(&mem, ro << 12, 1), "not writable");
    cr_assert_not_null(mem_ptr_write(&mem, (ro + 1) << 12, 4096));
    u32 *g;
    bool readonly = false;
    cr_assert_eq(mem_page(&mem, (ro << 12) + 100, &g, &readonly), page);
    cr_assert(readonly);
    cr_assert_eq(g, &gen);
    u8 buf[16];
    cr_assert_eq(mem_read(&mem, (ro << 12) + 8, buf, sizeof(buf)), 0);
    cr_assert_eq(buf[0], 0x5a);
    memset(buf, 0x11, sizeof(buf));
    cr_assert_eq(mem_write(&mem, (ro << 12) + 8, buf, sizeof(buf)), -1, "a write is refused");
    cr_assert_eq(mem_write(&mem, (ro << 12) - 8, buf, sizeof(buf)), -1, "also one that starts in RAM");
    cr_assert_eq(*(u8 *)mem_ptr(&mem, (ro << 12) - 8, 1), 0, "and nothing of it is written");
    cr_assert_eq(mem_fill(&mem, (ro << 12) + 4000, 0, 200), -1, "a fill too");
    cr_assert_eq(mem_write_u32(&mem, (ro << 12) + 4, 7), -1);
    cr_assert_eq(page[8], 0x5a, "the page unchanged");
    cr_assert_eq(mem_write(&mem, (ro + 1) << 12, buf, sizeof(buf)), 0, "the next frame is written");

    cr_assert_eq(mem_frame_remove(&mem, ro, NULL), MEM_FRAME_FOREIGN);
    int before = changes;
    cr_assert_eq(mem_frame_place_prot(&mem, ro, page, &gen, 0), 0, "placed writable");
    cr_assert_gt(changes, before, "the TLBs are told");
    cr_assert_not(mem_frame_readonly(&mem, ro));
    cr_assert_eq(mem_write(&mem, (ro << 12) + 8, buf, sizeof(buf)), 0);
    cr_assert_eq(page[8], 0x11);
    cr_assert_eq(mem_frame_remove(&mem, ro, NULL), MEM_FRAME_FOREIGN);
    cr_assert_not(mem_frame_readonly(&mem, ro), "an empty frame is not read-only");

    /* placed read-only in a hole; a RAM page moved or populated there later is writable */
    u64 hole = 0xd0000;
    cr_assert_eq(mem_frame_place_prot(&mem, hole, page, &gen, MEM_PROT_READONLY), 0);
    cr_assert(mem_frame_readonly(&mem, hole));
    cr_assert_eq(mem_frame_remove(&mem, hole, NULL), MEM_FRAME_FOREIGN);
    cr_assert_eq(mem_frame_populate(&mem, hole), 0);
    cr_assert_not(mem_frame_readonly(&mem, hole));
    cr_assert_not_null(mem_ptr_write(&mem, hole << 12, 4096));
    cr_assert_eq(mem_frame_place(&mem, ro, page, &gen), 0, "mem_frame_place: writable");
    cr_assert_not(mem_frame_readonly(&mem, ro));
}

/* a frame the hypervisor's copies do not reach (a grant mapping): its memory is there
 * for the vCPU; the flag goes with the page and is not left on the frame */
Test(mem_frames, frames_hypercall_copies_do_not_reach)
{
    static u8 page[4096];
    static u32 gen;
    u64 gfn = 0x300;
    cr_assert(mem_frame_hv_copy_ok(&mem, gfn), "RAM: reached");
    cr_assert_eq(mem_frame_remove(&mem, gfn, NULL), MEM_FRAME_RAM);
    cr_assert_eq(mem_frame_place_prot(&mem, gfn, page, &gen, MEM_PROT_NO_HV_COPY), 0);
    cr_assert_not(mem_frame_hv_copy_ok(&mem, gfn));
    cr_assert_not(mem_frame_readonly(&mem, gfn), "writable all the same");
    cr_assert_not_null(mem_ptr_write(&mem, gfn << 12, 4096), "the vCPU's path reaches it");
    cr_assert(mem_frame_hv_copy_ok(&mem, gfn + 1), "the next frame is RAM");
    cr_assert_eq(mem_frame_remove(&mem, gfn, NULL), MEM_FRAME_FOREIGN);
    cr_assert(mem_frame_hv_copy_ok(&mem, gfn), "an empty frame has no flag");
    cr_assert_eq(mem_frame_populate(&mem, gfn), 0);
    cr_assert(mem_frame_hv_copy_ok(&mem, gfn), "RAM populated there is reached");
    cr_assert_eq(mem_frame_remove(&mem, gfn, NULL), MEM_FRAME_RAM);
    cr_assert_eq(mem_frame_place_prot(&mem, gfn, page, &gen, MEM_PROT_READONLY | MEM_PROT_NO_HV_COPY), 0);
    cr_assert(mem_frame_readonly(&mem, gfn) && !mem_frame_hv_copy_ok(&mem, gfn), "both at once");
}

Test(mem_frames, detached_pages_stay)
{
    u64 a = 0x300, b = 0xd0010;
    u8 *host;
    u32 *gen;
    u64 ram = mem.ram_frames;
    *mem_ptr(&mem, a << 12, 1) = 0x77;
    *mem_page_gen(&mem, a << 12) = PAGE_GEN_CODE;
    cr_assert_eq(mem_frame_detach(&mem, a, &host, &gen), 0);
    cr_assert_eq(host[0], 0x77, "the page keeps its bytes");
    cr_assert_eq(*gen & PAGE_GEN_CODE, 0, "code decoded from it at its frame is stale");
    cr_assert_null(mem_ptr(&mem, a << 12, 1), "its frame is a hole");
    cr_assert_eq(mem.ram_frames, ram - 1);
    cr_assert_eq(mem_frame_detach(&mem, a, &host, &gen), -1, "nothing there now");
    cr_assert_eq(mem_frame_place(&mem, b, host, gen), 0, "placed elsewhere as a foreign page");
    cr_assert_eq(mem_ptr(&mem, b << 12, 1)[0], 0x77);
    cr_assert_eq(mem_frame_populate(&mem, a), 0);
    u8 *fresh = mem_ptr(&mem, a << 12, 4096);
    cr_assert_neq(fresh, host, "its frame gets another page");
    cr_assert_eq(fresh[0], 0);
    cr_assert_eq(host[0], 0x77, "the detached page untouched");
    cr_assert_eq(mem_frame_remove(&mem, b, NULL), MEM_FRAME_FOREIGN, "unhooked, not given back");
    cr_assert_eq(host[0], 0x77);
    /* a page guest_mem allocated, detached: kept until mem_destroy (ASan sees the rest) */
    cr_assert_eq(mem_frame_detach(&mem, a, &host, &gen), 0);
    cr_assert_eq(mem.nkept, 1);
    host[4095] = 1;
    static u8 page[4096];
    static u32 pgen;
    cr_assert_eq(mem_frame_place(&mem, a, page, &pgen), 0);
    cr_assert_eq(mem_frame_detach(&mem, a, &host, &gen), -1, "a foreign page is not detached");
}

Test(mem_frames, thousands_of_holes)
{
    u64 ram = mem.ram_frames;
    for (u64 g = 0x1000; g < 0x3000; g += 2)
        cr_assert_eq(mem_frame_remove(&mem, g, NULL), MEM_FRAME_RAM);
    cr_assert_eq(mem.nframes, 0x1000);
    cr_assert_eq(mem.ram_frames, ram - 0x1000);
    for (u64 g = 0x1000; g < 0x3000; g++)
        cr_assert_eq(mem_ptr(&mem, g << 12, 1) == NULL, !(g & 1), "frame %#llx", (unsigned long long)g);
    for (u64 g = 0x1000; g < 0x3000; g += 2)
        cr_assert_eq(mem_frame_populate(&mem, g), 0);
    cr_assert_eq(mem.nframes, 0);
    cr_assert_eq(mem.ram_frames, ram);
}

Test(mem_frames, populated_outside_ram_and_given_back)
{
    u64 g = 0xe0000;
    u32 *gen;
    cr_assert_eq(mem_frame_populate(&mem, g), 0);
    cr_assert_eq(mem.ram_frames, region_frames() + 1);
    cr_assert_eq(mem_write_u32(&mem, g << 12, 7), 0);
    gen = mem_page_gen(&mem, g << 12);
    *gen |= PAGE_GEN_CODE;
    u32 was = *gen;
    cr_assert_eq(mem_frame_remove(&mem, g, NULL), MEM_FRAME_RAM);
    cr_assert_neq(*gen, was, "its generation word is retired, not freed");
    cr_assert_eq(mem.nframes, 0, "outside the regions, nothing is no entry");
    cr_assert_eq(mem_frame_populate(&mem, g), 0);
    cr_assert_eq(mem_page_gen(&mem, g << 12), gen, "the word is reused");
    cr_assert_neq(*gen, was, "with a generation no old block has");
    u32 v = 1;
    cr_assert_eq(mem_read_u32(&mem, g << 12, &v), 0);
    cr_assert_eq(v, 0);
}
