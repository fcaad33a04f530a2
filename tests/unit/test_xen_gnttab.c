/* dom0's access to the guest's grants (xen_gnttab_host_*), the host-side API nestor's
 * PV backends use: the entry's checks (granted to dom0, permit_access or transitive,
 * read-only), the busy bits the guest sees while a mapping lasts (v1 flags, v2 status
 * word) and cleared after, sub-page ranges, transitive grants through dom0's own grants,
 * a hostile table (bogus frame numbers, entries changed while pinned, references out of
 * range), handles, and the guest's copies of dom0's grants. The guest's hypercalls run
 * from 32-bit flat protected mode (x86_32 layouts). */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "cpu/exec.h"
#include "hv/xen/xen.h"
#include "machine/mem.h"
#include "xen_fixture.h"

#define __XEN_INTERFACE_VERSION__ 0x00040e00
#include <xen/xen.h>
#include <xen/grant_table.h>
#include <xen/memory.h>

#define RAM (4 * MiB)
#define ARG 0x1000u
#define DATA 0x20000u   /* a guest page granted in the tests */
#define DATA2 0x21000u
#define TABLE 0xd0000000ull /* grant frame 0, in the PCI hole */
#define STATUS 0xd0001000ull /* v2 status frame 0 */
#define SELF 1u              /* the guest's domain id (the default) */

static struct guest_mem mem;
static struct cpuid_model model;
static struct cpu cpu, *c = &cpu;
static struct xen *xen;
static struct xen_config cfg;
static struct xen_host host;

/* grant frames go into the guest-physical space as on the machine */
static int h_map_page(void *o, u64 gpa, u8 *page, u32 *gen) { (void)o; return mem_overlay_map(&mem, gpa, page, gen); }
static void h_unmap_page(void *o, u8 *page) { (void)o; mem_overlay_unmap(&mem, page); }
static struct xen_host_ops host_ops;

static long hcall(u32 nr, u32 a1, const void *arg, size_t len, void *out, u32 a3)
{
    return xen_fixture_call(xen, c, ARG, nr, a1, arg, len, out, a3);
}

/* the guest's grant-table entries, written as the guest would (its memory) */
static void v1_entry(u32 ref, u16 flags, u16 domid, u32 frame)
{
    grant_entry_v1_t e = { .flags = flags, .domid = domid, .frame = frame };
    cr_assert_eq(mem_write(&mem, TABLE + 8ull * ref, &e, sizeof(e)), 0);
}

static u16 v1_flags(u32 ref)
{
    u16 f;
    cr_assert_eq(mem_read_u16(&mem, TABLE + 8ull * ref, &f), 0);
    return f;
}

static void v2_entry(u32 ref, const grant_entry_v2_t *e)
{
    cr_assert_eq(mem_write(&mem, TABLE + 16ull * ref, e, sizeof(*e)), 0);
}

static u16 v2_status(u32 ref)
{
    u16 s;
    cr_assert_eq(mem_read_u16(&mem, STATUS + 2ull * ref, &s), 0);
    return s;
}

/* the x86_32 gnttab_copy: u, domid, offset for each side; len, flags, status */
struct copy32 {
    u32 su;
    u16 sdom, soff;
    u32 du;
    u16 ddom, doff;
    u16 len, flags;
    s16 status;
    u16 pad;
};

/* version 2 with status frame 0 placed */
static void set_version(u32 v)
{
    u32 sv = v;
    cr_assert_eq(hcall(__HYPERVISOR_grant_table_op, GNTTABOP_set_version, &sv, 4, NULL, 1), 0);
    u32 ap[4] = { DOMID_SELF, XENMAPSPACE_grant_table, XENMAPIDX_grant_table_status, (u32)(STATUS >> 12) };
    if (v == 2)
        cr_assert_eq(hcall(__HYPERVISOR_memory_op, XENMEM_add_to_physmap, &ap, sizeof(ap), NULL, 0), 0);
}

static void setup(void)
{
    xen_fixture_boot(&mem, &model, c, RAM);
    host_ops = xen_fixture_host_ops();
    host_ops.map_page = h_map_page;
    host_ops.unmap_page = h_unmap_page;
    xen = xen_fixture_create(&cfg, &host, &host_ops, c, 0);
    /* compat xen_add_to_physmap: domid, size, space, idx, gpfn */
    u32 ap[4] = { DOMID_SELF, XENMAPSPACE_grant_table, 0, (u32)(TABLE >> 12) };
    cr_assert_eq(hcall(__HYPERVISOR_memory_op, XENMEM_add_to_physmap, &ap, sizeof(ap), NULL, 0), 0);
    for (u32 i = 0; i < 4096; i++) {
        u8 b = (u8)(i * 3 + 1);
        mem_write(&mem, DATA + i, &b, 1);
    }
}

static void teardown(void)
{
    xen_destroy(xen);
    cpu_destroy(c);
    mem_destroy(&mem);
}

TestSuite(xen_gnttab_host, .init = setup, .fini = teardown);

Test(xen_gnttab_host, map_v1_busy_bits)
{
    v1_entry(10, GTF_permit_access, 0, DATA >> 12);
    u32 h;
    struct xen_grant_mapping m;
    cr_assert_eq(xen_gnttab_host_map(xen, 10, true, &h, &m), GNTST_okay);
    cr_assert_eq(m.page, mem_ptr(&mem, DATA, 4096), "the guest's page itself");
    cr_assert(m.offset == 0 && m.length == 4096);
    cr_assert_eq(v1_flags(10), GTF_permit_access | GTF_reading | GTF_writing, "busy while mapped");
    m.page[5] = 0xab;
    u8 b;
    mem_read_u8(&mem, DATA + 5, &b);
    cr_assert_eq(b, 0xab, "the backend's write is in the guest's memory");
    cr_assert_eq(xen_gnttab_host_unmap(xen, h), GNTST_okay);
    cr_assert_eq(v1_flags(10), GTF_permit_access, "not busy after the unmap");
    cr_assert_eq(xen_gnttab_host_unmap(xen, h), GNTST_bad_handle, "unmapped twice");
    cr_assert_eq(xen_gnttab_host_unmap(xen, 99999), GNTST_bad_handle, "a handle out of range");

    /* a read-only mapping and a writable one of the same grant */
    u32 h1, h2;
    cr_assert_eq(xen_gnttab_host_map(xen, 10, false, &h1, &m), GNTST_okay);
    cr_assert_eq(v1_flags(10), GTF_permit_access | GTF_reading);
    cr_assert_eq(xen_gnttab_host_map(xen, 10, true, &h2, &m), GNTST_okay);
    cr_assert_eq(v1_flags(10), GTF_permit_access | GTF_reading | GTF_writing);
    cr_assert_eq(xen_gnttab_host_unmap(xen, h2), GNTST_okay);
    cr_assert_eq(v1_flags(10), GTF_permit_access | GTF_reading, "writing clear, still reading");
    cr_assert_eq(xen_gnttab_host_unmap(xen, h1), GNTST_okay);
    cr_assert_eq(v1_flags(10), GTF_permit_access);
}

Test(xen_gnttab_host, refused_grants)
{
    u32 h;
    struct xen_grant_mapping m;
    v1_entry(11, GTF_permit_access | GTF_readonly, 0, DATA >> 12);
    cr_assert_eq(xen_gnttab_host_map(xen, 11, true, &h, &m), GNTST_general_error, "writable map of a read-only grant");
    cr_assert_eq(v1_flags(11), GTF_permit_access | GTF_readonly, "no busy bit left");
    cr_assert_eq(xen_gnttab_host_map(xen, 11, false, &h, &m), GNTST_okay, "read-only map of it");
    cr_assert_eq(xen_gnttab_host_unmap(xen, h), GNTST_okay);
    v1_entry(12, GTF_permit_access, SELF, DATA >> 12);
    cr_assert_eq(xen_gnttab_host_map(xen, 12, false, &h, &m), GNTST_general_error, "granted to the guest, not dom0");
    v1_entry(12, GTF_accept_transfer, 0, DATA >> 12);
    cr_assert_eq(xen_gnttab_host_map(xen, 12, false, &h, &m), GNTST_general_error, "accept-transfer");
    v1_entry(12, GTF_invalid, 0, DATA >> 12);
    cr_assert_eq(xen_gnttab_host_map(xen, 12, false, &h, &m), GNTST_general_error, "invalid");
    cr_assert_eq(xen_gnttab_host_map(xen, 512, false, &h, &m), GNTST_bad_gntref, "beyond the one frame");
    cr_assert_eq(xen_gnttab_host_map(xen, 0xffffffffu, false, &h, &m), GNTST_bad_gntref);
    /* bogus frame numbers: never a host address */
    v1_entry(13, GTF_permit_access, 0, 0xffffffffu);
    cr_assert_eq(xen_gnttab_host_map(xen, 13, false, &h, &m), GNTST_bad_page);
    cr_assert_eq(v1_flags(13), GTF_permit_access, "the busy bit set for it is cleared");
    v1_entry(13, GTF_permit_access, 0, RAM >> 12);
    cr_assert_eq(xen_gnttab_host_map(xen, 13, false, &h, &m), GNTST_bad_page, "just past RAM");
    v1_entry(13, GTF_permit_access, 0, 0xfee00);
    cr_assert_eq(xen_gnttab_host_map(xen, 13, true, &h, &m), GNTST_bad_page, "the LAPIC page");
    cr_assert_eq(v1_flags(13), GTF_permit_access);
    u8 buf[16];
    cr_assert_eq(xen_gnttab_host_copy_from(xen, 13, 0, buf, 16), GNTST_bad_page);
}

Test(xen_gnttab_host, entry_changed_while_pinned)
{
    u32 h, h2;
    struct xen_grant_mapping m, m2;
    v1_entry(14, GTF_permit_access, 0, DATA >> 12);
    cr_assert_eq(xen_gnttab_host_map(xen, 14, false, &h, &m), GNTST_okay);
    /* the guest rewrites the entry under the mapping: frame, domain, flags */
    v1_entry(14, GTF_permit_access | GTF_reading, 7, DATA2 >> 12);
    cr_assert_eq(xen_gnttab_host_map(xen, 14, false, &h2, &m2), GNTST_okay, "pinned: what was granted stays");
    cr_assert_eq(m2.page, m.page, "the page pinned, not the new frame");
    cr_assert_eq(xen_gnttab_host_unmap(xen, h2), GNTST_okay);
    /* now read-only: a writable pin on top fails, the read-only pin stays */
    v1_entry(14, GTF_permit_access | GTF_readonly | GTF_reading, 0, DATA >> 12);
    cr_assert_eq(xen_gnttab_host_map(xen, 14, true, &h2, &m2), GNTST_general_error);
    cr_assert_eq(v1_flags(14), GTF_permit_access | GTF_readonly | GTF_reading);
    cr_assert_eq(xen_gnttab_host_unmap(xen, h), GNTST_okay);
    cr_assert_eq(v1_flags(14), GTF_permit_access | GTF_readonly, "reading cleared with the last pin");
    v1_entry(14, GTF_permit_access, 7, DATA >> 12);
    cr_assert_eq(xen_gnttab_host_map(xen, 14, false, &h, &m), GNTST_general_error, "unpinned: checked again");
}

Test(xen_gnttab_host, pins_and_handles)
{
    struct xen_grant_mapping m;
    static u32 h[1024];
    v1_entry(15, GTF_permit_access, 0, DATA >> 12);
    for (int i = 0; i < 127; i++)
        cr_assert_eq(xen_gnttab_host_map(xen, 15, false, &h[i], &m), GNTST_okay);
    u32 x;
    cr_assert_eq(xen_gnttab_host_map(xen, 15, false, &x, &m), GNTST_okay, "the 128th read pin");
    cr_assert_eq(xen_gnttab_host_map(xen, 15, false, &h[200], &m), GNTST_general_error,
                 "the count's top bit is set: no more pins (Xen's overflow guard)");
    cr_assert_eq(xen_gnttab_host_unmap(xen, x), GNTST_okay);
    for (int i = 0; i < 127; i++)
        cr_assert_eq(xen_gnttab_host_unmap(xen, h[i]), GNTST_okay);
    cr_assert_eq(v1_flags(15), GTF_permit_access);
    /* 1024 handles over 8 grants, then none */
    for (u32 r = 0; r < 8; r++)
        v1_entry(16 + r, GTF_permit_access, 0, DATA >> 12);
    for (u32 i = 0; i < 1024; i++)
        cr_assert_eq(xen_gnttab_host_map(xen, 16 + i / 128, false, &h[i], &m), GNTST_okay, "%u", i);
    cr_assert_eq(xen_gnttab_host_map(xen, 10, false, &x, &m), GNTST_no_device_space);
    /* set_version while grants beyond the reserved ones are in use */
    u32 sv = 2;
    cr_assert_eq(hcall(__HYPERVISOR_grant_table_op, GNTTABOP_set_version, &sv, 4, &sv, 1), -EBUSY);
    cr_assert_eq(sv, 1);
    for (u32 i = 0; i < 1024; i++)
        cr_assert_eq(xen_gnttab_host_unmap(xen, h[i]), GNTST_okay);
}

Test(xen_gnttab_host, copies)
{
    v1_entry(20, GTF_permit_access, 0, DATA >> 12);
    u8 buf[64], want[64];
    cr_assert_eq(xen_gnttab_host_copy_from(xen, 20, 100, buf, 64), GNTST_okay);
    mem_read(&mem, DATA + 100, want, 64);
    cr_assert_arr_eq(buf, want, 64);
    memset(buf, 0x77, sizeof(buf));
    cr_assert_eq(xen_gnttab_host_copy_to(xen, 20, 4032, buf, 64), GNTST_okay, "up to the page's end");
    mem_read(&mem, DATA + 4032, want, 64);
    cr_assert_arr_eq(buf, want, 64);
    cr_assert_eq(xen_gnttab_host_copy_to(xen, 20, 4033, buf, 64), GNTST_bad_copy_arg, "across it");
    cr_assert_eq(xen_gnttab_host_copy_from(xen, 20, 0xfffffff0u, buf, 32), GNTST_bad_copy_arg, "wrapping offset");
    cr_assert_eq(v1_flags(20), GTF_permit_access, "never left busy");
    v1_entry(21, GTF_permit_access | GTF_readonly, 0, DATA >> 12);
    cr_assert_eq(xen_gnttab_host_copy_to(xen, 21, 0, buf, 8), GNTST_general_error, "to a read-only grant");
    cr_assert_eq(xen_gnttab_host_copy_from(xen, 21, 0, buf, 8), GNTST_okay, "from it");
    cr_assert_eq(xen_gnttab_host_copy_from(xen, 600, 0, buf, 8), GNTST_bad_gntref);
}

Test(xen_gnttab_host, v2_sub_page_and_status)
{
    set_version(2);
    grant_entry_v2_t e = { 0 };
    e.hdr.flags = GTF_permit_access | GTF_sub_page;
    e.hdr.domid = 0;
    e.sub_page.page_off = 512;
    e.sub_page.length = 100;
    e.sub_page.frame = DATA >> 12;
    v2_entry(30, &e);
    u32 h;
    struct xen_grant_mapping m;
    cr_assert_eq(xen_gnttab_host_map(xen, 30, true, &h, &m), GNTST_okay);
    cr_assert(m.offset == 512 && m.length == 100, "the sub-page range (%u, %u)", m.offset, m.length);
    cr_assert_eq(v2_status(30), GTF_reading | GTF_writing, "busy bits in the status word");
    grant_entry_v2_t back;
    mem_read(&mem, TABLE + 16 * 30, &back, sizeof(back));
    cr_assert_eq(back.hdr.flags, GTF_permit_access | GTF_sub_page, "the header untouched");
    cr_assert_eq(xen_gnttab_host_unmap(xen, h), GNTST_okay);
    cr_assert_eq(v2_status(30), 0);
    u8 buf[128];
    cr_assert_eq(xen_gnttab_host_copy_from(xen, 30, 512, buf, 100), GNTST_okay, "all of it");
    cr_assert_eq(xen_gnttab_host_copy_from(xen, 30, 511, buf, 10), GNTST_bad_copy_arg, "before it");
    cr_assert_eq(xen_gnttab_host_copy_from(xen, 30, 600, buf, 13), GNTST_bad_copy_arg, "after it");
    /* a sub-page beyond its page is never handed out */
    e.sub_page.page_off = 4000;
    e.sub_page.length = 200;
    v2_entry(31, &e);
    cr_assert_eq(xen_gnttab_host_map(xen, 31, false, &h, &m), GNTST_general_error);
    cr_assert_eq(v2_status(31), 0);
    cr_assert_eq(xen_gnttab_host_copy_from(xen, 31, 4000, buf, 96), GNTST_okay, "its part within the page");
    cr_assert_eq(xen_gnttab_host_copy_from(xen, 31, 4000, buf, 97), GNTST_bad_copy_arg, "not beyond it");
    /* a full-page v2 frame number beyond any physical address */
    e = (grant_entry_v2_t){ 0 };
    e.hdr.flags = GTF_permit_access;
    e.full_page.frame = 1ull << 60;
    v2_entry(32, &e);
    cr_assert_eq(xen_gnttab_host_map(xen, 32, false, &h, &m), GNTST_bad_page);
    cr_assert_eq(v2_status(32), 0);
    cr_assert_eq(xen_gnttab_host_map(xen, 256, false, &h, &m), GNTST_bad_gntref, "256 entries of 16 bytes");
}

Test(xen_gnttab_host, transitive_and_dom0_grants)
{
    static u8 dom0_page[4096];
    for (int i = 0; i < 4096; i++)
        dom0_page[i] = (u8)(i ^ 0x5a);
    int g0 = xen_gnttab_host_grant(xen, dom0_page, false);
    cr_assert_geq(g0, 0);
    int g1 = xen_gnttab_host_grant(xen, dom0_page, true);
    cr_assert_gt(g1, g0);

    /* the guest copies from dom0's grant (compat gnttab_copy: u, domid, offset per side;
     * len, flags, status) */
    struct copy32 op = { (u32)g0, 0, 16, DATA2 >> 12, DOMID_SELF, 32, 64, GNTCOPY_source_gref, 99, 0 };
    _Static_assert(sizeof(op) == 24, "x86_32 gnttab_copy");
    cr_assert_eq(hcall(__HYPERVISOR_grant_table_op, GNTTABOP_copy, &op, sizeof(op), &op, 1), 0);
    cr_assert_eq(op.status, GNTST_okay);
    u8 got[64];
    mem_read(&mem, DATA2 + 32, got, 64);
    cr_assert_arr_eq(got, dom0_page + 16, 64, "the guest copied dom0's page");
    op = (struct copy32){ DATA2 >> 12, DOMID_SELF, 0, (u32)g1, 0, 0, 8, GNTCOPY_dest_gref, 99, 0 };
    hcall(__HYPERVISOR_grant_table_op, GNTTABOP_copy, &op, sizeof(op), &op, 1);
    cr_assert_eq(op.status, GNTST_general_error, "dom0's read-only grant as a destination");

    /* the guest grants dom0 transitively what dom0 granted it */
    set_version(2);
    grant_entry_v2_t e = { 0 };
    e.hdr.flags = GTF_transitive;
    e.hdr.domid = 0;
    e.transitive.trans_domid = 0;
    e.transitive.gref = (u32)g0;
    v2_entry(40, &e);
    u32 h;
    struct xen_grant_mapping m;
    cr_assert_eq(xen_gnttab_host_map(xen, 40, true, &h, &m), GNTST_okay);
    cr_assert_eq(m.page, dom0_page, "the transitive grant leads back to dom0's page");
    cr_assert_eq(xen_gnttab_host_end_grant(xen, (u32)g0), -EBUSY, "in use through the transitive grant");
    cr_assert_eq(xen_gnttab_host_unmap(xen, h), GNTST_okay);
    cr_assert_eq(xen_gnttab_host_end_grant(xen, (u32)g0), 0);
    cr_assert_eq(xen_gnttab_host_end_grant(xen, (u32)g0), -EINVAL, "ended twice");
    cr_assert_eq(xen_gnttab_host_map(xen, 40, false, &h, &m), GNTST_general_error, "the referent is gone");
    cr_assert_eq(v2_status(40), 0);
    /* self-referential: the guest's own id as the transitive domain */
    int g2 = xen_gnttab_host_grant(xen, dom0_page, false);
    e.transitive.gref = (u32)g2;
    e.transitive.trans_domid = SELF;
    v2_entry(41, &e);
    cr_assert_eq(xen_gnttab_host_map(xen, 41, false, &h, &m), GNTST_general_error, "self-referential");
    e.transitive.trans_domid = 0;
    e.hdr.domid = SELF;
    v2_entry(42, &e);
    cr_assert_eq(xen_gnttab_host_map(xen, 42, false, &h, &m), GNTST_general_error, "transitive to the guest, not dom0");
    /* the guest's own copy through its transitive grant to itself of dom0's grant */
    op = (struct copy32){ 42, DOMID_SELF, 0, DATA2 >> 12, DOMID_SELF, 0, 32, GNTCOPY_source_gref, 99, 0 };
    cr_assert_eq(hcall(__HYPERVISOR_grant_table_op, GNTTABOP_copy, &op, sizeof(op), &op, 1), 0);
    cr_assert_eq(op.status, GNTST_okay, "the guest reads dom0's page through its transitive grant");
    mem_read(&mem, DATA2, got, 32);
    cr_assert_arr_eq(got, dom0_page, 32);
    cr_assert_eq(xen_gnttab_host_grant(xen, NULL, false), -EINVAL, "no page");
}

/* map_grant_ref's placement (guest_physmap_add_entry): a grant-table frame the guest
 * granted to itself leaves the frame it was placed at (Xen removes the page's old p2m
 * entry) and the table knows it is placed nowhere; a page of dom0's mapped twice is at
 * both frames, and an unmap takes only its own frame. */
static s16 map_grant(u32 ref, u16 dom, u32 flags, u64 gpa, u32 *handle)
{
    struct gnttab_map_grant_ref m = { .host_addr = gpa, .flags = flags, .ref = ref, .dom = dom };
    cr_assert_eq(hcall(__HYPERVISOR_grant_table_op, GNTTABOP_map_grant_ref, &m, sizeof(m), &m, 1), 0);
    *handle = m.handle;
    return m.status;
}

static s16 unmap_grant(u64 gpa, u32 handle)
{
    struct gnttab_unmap_grant_ref u = { .host_addr = gpa, .handle = handle };
    cr_assert_eq(hcall(__HYPERVISOR_grant_table_op, GNTTABOP_unmap_grant_ref, &u, sizeof(u), &u, 1), 0);
    return u.status;
}

Test(xen_gnttab_host, guest_maps_place_pages)
{
    u64 frame1 = TABLE + 0x2000, g1 = 0xd0010000ull, g2 = 0xd0011000ull;
    u32 ap[4] = { DOMID_SELF, XENMAPSPACE_grant_table, 1, (u32)(frame1 >> 12) };
    cr_assert_eq(hcall(__HYPERVISOR_memory_op, XENMEM_add_to_physmap, &ap, sizeof(ap), NULL, 0), 0);
    cr_assert_eq(mem_write_u32(&mem, frame1 + 64, 0x12345678), 0);
    u8 *page;
    cr_assert_eq(mem_frame_at(&mem, frame1 >> 12, &page), MEM_FRAME_FOREIGN);
    v1_entry(5, GTF_permit_access, SELF, (u32)(frame1 >> 12));
    u32 h, h2;
    cr_assert_eq(map_grant(5, SELF, GNTMAP_host_map, g1, &h), GNTST_okay);
    cr_assert_eq(mem_frame_at(&mem, frame1 >> 12, NULL), MEM_FRAME_NONE, "the grant frame left its frame");
    cr_assert_eq(mem_ptr(&mem, g1, 4096), page, "it is at the mapping's");
    cr_assert_eq(map_grant(5, SELF, GNTMAP_host_map | GNTMAP_readonly, g2, &h2), GNTST_okay,
                 "mapped again (the pinned page)");
    cr_assert_eq(mem_ptr(&mem, g2, 4096), page);
    cr_assert(mem_frame_readonly(&mem, g2 >> 12) && !mem_frame_readonly(&mem, g1 >> 12));
    cr_assert_eq(unmap_grant(g1, h), GNTST_okay);
    cr_assert_null(mem_ptr(&mem, g1, 1), "a hole");
    cr_assert_eq(mem_ptr(&mem, g2, 4096), page, "the other mapping stays");
    cr_assert_eq(unmap_grant(g2, h2), GNTST_okay);
    cr_assert_null(mem_ptr(&mem, g2, 1));
    /* placed again: it was nowhere, so add_to_physmap puts it back and its bytes are there */
    cr_assert_eq(hcall(__HYPERVISOR_memory_op, XENMEM_add_to_physmap, &ap, sizeof(ap), NULL, 0), 0);
    u32 v;
    cr_assert_eq(mem_read_u32(&mem, frame1 + 64, &v), 0);
    cr_assert_eq(v, 0x12345678);

    static u8 dom0_page[4096];
    dom0_page[9] = 0x44;
    int ref = xen_gnttab_host_grant(xen, dom0_page, false);
    cr_assert_geq(ref, 0);
    cr_assert_eq(map_grant((u32)ref, 0, GNTMAP_host_map, g1, &h), GNTST_okay);
    cr_assert_eq(map_grant((u32)ref, 0, GNTMAP_host_map, g2, &h2), GNTST_okay, "dom0's page at a second frame");
    cr_assert_eq(mem_ptr(&mem, g1, 4096), dom0_page);
    cr_assert_eq(mem_ptr(&mem, g2, 4096), dom0_page);
    cr_assert_eq(map_grant((u32)ref, 0, GNTMAP_host_map, g2, &h), GNTST_general_error,
                 "over a mapping: refused (Xen crashes the domain)");
    cr_assert_eq(unmap_grant(g2, h2), GNTST_okay);
    cr_assert_eq(mem_ptr(&mem, g1, 4096), dom0_page, "only its own frame unmapped");
    cr_assert_null(mem_ptr(&mem, g2, 1));
}
