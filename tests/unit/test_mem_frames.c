/* Unit tests of guest_mem's frame map: frames that hold nothing, RAM pages that move,
 * are populated again (zeroed) or given back, foreign pages placed anywhere; thousands
 * of holes; the RAM count; the listener told of every change; generation words retired. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "machine/mem.h"
#include "machine/state.h"

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

/* ---- the frame map across save and restore ---- */
static u8 foreign_page[4096];
static u32 foreign_gen;
static u64 foreign_id(void *opaque, const u8 *host)
{
    (void)opaque;
    return host == foreign_page ? 7 : MEM_PAGE_UNKNOWN;
}
static u8 *foreign_by_id(void *opaque, u64 id, u32 **gen)
{
    (void)opaque;
    *gen = &foreign_gen;
    return id == 7 ? foreign_page : NULL;
}

/* A map with every kind of entry: a moved region page, a hole, a page populated beyond
 * RAM, a detached page placed read-only elsewhere, a foreign page kept from hypercall
 * copies. */
static void build_map(struct guest_mem *m)
{
    u8 *host;
    u32 *gen;
    mem_set_foreign_pages(m, foreign_id, foreign_by_id, NULL);
    mem_write_u32(m, 0x300000, 0x11111111);
    cr_assert_eq(mem_frame_move(m, 0x300, 0x310 + 0x100000), 0); /* beyond RAM */
    cr_assert_eq(mem_frame_remove(m, 0x301, NULL), MEM_FRAME_RAM);
    cr_assert_eq(mem_frame_remove(m, 0x302, NULL), MEM_FRAME_RAM);
    cr_assert_eq(mem_frame_populate(m, 0x200000), 0);
    mem_write_u32(m, 0x200000000ull, 0x22222222);
    cr_assert_eq(mem_frame_detach(m, 0x200000, &host, &gen), 0);
    cr_assert_eq(mem_frame_place_prot(m, 0x302, host, gen, MEM_PROT_READONLY), 0);
    foreign_page[5] = 0x33;
    cr_assert_eq(mem_frame_remove(m, 0x400, NULL), MEM_FRAME_RAM);
    cr_assert_eq(mem_frame_place_prot(m, 0x400, foreign_page, &foreign_gen, MEM_PROT_NO_HV_COPY), 0);
}

static void save_map(struct guest_mem *m, struct state_buf *b)
{
    struct state_registry r = { 0 };
    mem_state_register(m, &r);
    state_save_all(&r, b);
    state_registry_free(&r);
}

static int load_map(struct guest_mem *m, const struct state_buf *b, char *err, size_t errlen)
{
    struct state_registry r = { 0 };
    mem_state_register(m, &r);
    int rc = state_load_all(&r, b->p, b->len, err, errlen);
    state_registry_free(&r);
    return rc;
}

Test(mem_frames, the_map_survives_save_and_restore)
{
    build_map(&mem);
    struct state_buf a = { 0 }, b = { 0 };
    save_map(&mem, &a);
    struct guest_mem m2;
    cr_assert_eq(mem_init(&m2, RAM), 0);
    mem_set_foreign_pages(&m2, foreign_id, foreign_by_id, NULL);
    /* the regions' bytes travel as RAM records: copied here */
    for (int i = 0; i < mem.nregions; i++)
        memcpy(m2.region[i].host, mem.region[i].host, mem.region[i].size);
    char err[200] = "";
    cr_assert_eq(load_map(&m2, &a, err, sizeof(err)), 0, "%s", err);
    u32 v = 0;
    cr_assert_eq(mem_read_u32(&m2, 0x100310000ull, &v), 0);
    cr_assert_eq(v, 0x11111111, "the moved page at its new frame");
    cr_assert_null(mem_ptr(&m2, 0x300000, 1), "its old frame a hole");
    cr_assert_null(mem_ptr(&m2, 0x301000, 1));
    cr_assert_null(mem_ptr(&m2, 0x200000000ull, 1), "the detached page left its frame");
    cr_assert_eq(mem_read_u32(&m2, 0x302000, &v), 0);
    cr_assert_eq(v, 0x22222222, "the detached page where it was placed");
    cr_assert(mem_frame_readonly(&m2, 0x302), "read-only still");
    cr_assert_eq(mem_frame_at(&m2, 0x400, NULL), MEM_FRAME_FOREIGN);
    cr_assert_eq(mem_ptr(&m2, 0x400000, 1), foreign_page, "the foreign page by its name");
    cr_assert(!mem_frame_hv_copy_ok(&m2, 0x400));
    cr_assert_eq(m2.ram_frames, mem.ram_frames);
    cr_assert_eq(m2.nkept, 1);
    save_map(&m2, &b);
    cr_assert_eq(a.len, b.len);
    cr_assert_eq(memcmp(a.p, b.p, a.len), 0, "saved again: the same bytes");
    /* what the restored map does next is what the original does */
    cr_assert_eq(mem_frame_populate(&mem, 0x301), 0);
    cr_assert_eq(mem_frame_populate(&m2, 0x301), 0);
    cr_assert_eq(mem_frame_populate(&mem, 0x300), 0);
    cr_assert_eq(mem_frame_populate(&m2, 0x300), 0);
    cr_assert_eq(mem.ram_frames, m2.ram_frames);
    state_buf_free(&a);
    state_buf_free(&b);
    mem_destroy(&m2);
}

Test(mem_frames, a_broken_map_is_refused)
{
    build_map(&mem);
    struct state_buf a = { 0 };
    save_map(&mem, &a);
    /* each patch makes one entry impossible: a foreign page as RAM, an allocated page
     * the file does not hold, a page nobody has, truncation */
    size_t n = a.len;
    u8 *p = a.p;
    /* the entries are the last bytes: (gfn, id, kind, flags) of 18 bytes, by frame
     * number; the foreign page at 0x400 is the one before the frame beyond RAM */
    size_t last = n - 18;
    u64 id;
    for (size_t off = n - 18;; off -= 18) {
        memcpy(&id, p + off + 8, 8);
        if ((id & MEM_PAGE_KIND_MASK) == MEM_PAGE_FOREIGN) {
            last = off;
            break;
        }
        cr_assert_gt(off, 18u);
    }
    struct { size_t off; u8 byte; const char *want; } cases[] = {
        { last + 16, MEM_FRAME_RAM, "hypervisor page as RAM" },
        { last + 8, 8, "does not have" },       /* foreign id 8: nobody's */
        { last + 15, 0x20, "does not hold" },   /* an allocated page numbered 0x20... */
        { last + 17, 0x80, "impossible entry" },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct state_buf bad = { 0 };
        state_put(&bad, p, n);
        if (i == 2) {
            u64 own = MEM_PAGE_OWN | 0x20;
            memcpy(bad.p + last + 8, &own, 8);
        } else {
            bad.p[cases[i].off] = cases[i].byte;
        }
        struct guest_mem m2;
        cr_assert_eq(mem_init(&m2, RAM), 0);
        mem_set_foreign_pages(&m2, foreign_id, foreign_by_id, NULL);
        char err[200] = "";
        cr_expect_eq(load_map(&m2, &bad, err, sizeof(err)), -1, "case %zu", i);
        cr_expect(strstr(err, cases[i].want), "case %zu: %s", i, err);
        mem_destroy(&m2);
        state_buf_free(&bad);
    }
    struct guest_mem m2;
    cr_assert_eq(mem_init(&m2, RAM), 0);
    char err[200] = "";
    struct state_buf cut = { 0 };
    state_put(&cut, p, n - 9);
    cr_expect_eq(load_map(&m2, &cut, err, sizeof(err)), -1, "truncated");
    mem_destroy(&m2);
    state_buf_free(&cut);
    state_buf_free(&a);
}

static bool dirty(const u8 *bits, u64 gpa)
{
    u64 at;
    for (u64 i = 0; mem_region_page(&mem, i, &at); i++)
        if (at == gpa)
            return bits[i / 8] >> (i % 8) & 1;
    cr_assert_fail("%#llx is no region page", (unsigned long long)gpa);
    return false;
}

/* Dirty logging names the page a write reaches: a moved region page is dirty as itself,
 * not as the frame it is at; pages outside the regions travel with the state. */
Test(mem_frames, dirty_logging_follows_moved_pages)
{
    cr_assert_eq(mem_frame_remove(&mem, 0x500, NULL), MEM_FRAME_RAM);
    cr_assert_eq(mem_frame_move(&mem, 0x600, 0x500), 0);
    cr_assert_eq(mem_dirty_log_start(&mem), 0);
    u64 n = mem_region_pages(&mem);
    u8 *bits = calloc((n + 7) / 8, 1);
    mem_dirty_log_take(&mem, bits);
    mem_write_u8(&mem, 0x500000, 1);
    memset(bits, 0, (n + 7) / 8);
    mem_dirty_log_take(&mem, bits);
    cr_assert(dirty(bits, 0x600000), "the page written is 0x600's");
    cr_assert_not(dirty(bits, 0x500000), "not the frame's own page");
    u8 *page = mem_ptr(&mem, 0x500000, 4096);
    memset(bits, 0, (n + 7) / 8);
    mem_dirty_log_take(&mem, bits);
    mem_page_written(&mem, page + 17, NULL);
    mem_dirty_log_take(&mem, bits);
    cr_assert(dirty(bits, 0x600000), "written behind the accessors");
    free(bits);
    mem_dirty_log_stop(&mem);
}

/* MEM_NO_GFN marks the frame table's free slots: a guest's all-ones frame number (a
 * hypercall argument) must not find one (it did, and read a free slot's stale fields) */
Test(mem_frames, an_all_ones_frame_number_is_no_frame)
{
    cr_assert_eq(mem_frame_remove(&mem, 0x2000, NULL), MEM_FRAME_RAM);
    cr_assert_gt(mem.nframes, 0, "the table has an entry, and free slots");
    u8 *host = (u8 *)1;
    cr_assert_eq(mem_frame_at(&mem, ~0ull, &host), MEM_FRAME_NONE);
    cr_assert_null(host);
    cr_assert_eq(mem_frame_remove(&mem, ~0ull, NULL), MEM_FRAME_NONE);
    cr_assert_eq(mem_frame_at(&mem, 1ull << 40, NULL), MEM_FRAME_NONE);
}
