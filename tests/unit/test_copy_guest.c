/* cpu_copy_guest, the path hypercall arguments take: linear addresses through the
 * guest's own page tables (the one walker), A/D bits, read-only pages and CR0.WP, CPL 3,
 * page crossings, non-canonical, unmapped and non-RAM addresses, and the 4 GiB end of
 * the linear space outside long mode. */
#include <criterion/criterion.h>
#include <string.h>

#include "cpu/exec.h"
#include "machine/mem.h"

#define RAM (16 * MiB)
#define PML4 0x20000u
#define PDPT 0x21000u
#define PD 0x22000u
#define PT 0x23000u
#define VA 0x400000u /* PT maps 0x400000-0x5fffff */
#define PTE_A BIT(5)
#define PTE_D BIT(6)

static struct guest_mem mem;
static struct cpuid_model model;
static struct cpu cpu, *c = &cpu;

static enum intercept_result intercept(struct cpu *cp, struct cpu_event *ev, void *opaque)
{
    (void)cp, (void)ev, (void)opaque;
    return INTERCEPT_DEFAULT;
}
static u64 now_ns(struct cpu *cp, void *opaque)
{
    (void)cp, (void)opaque;
    return 0;
}
static const struct cpu_ops ops = { .intercept = intercept, .now_ns = now_ns };

static void w64(u64 a, u64 v) { cr_assert_eq(mem_write_u64(&mem, a, v), 0); }
static u64 r64(u64 a)
{
    u64 v;
    cr_assert_eq(mem_read_u64(&mem, a, &v), 0);
    return v;
}
/* PTE of page i of the PT (VA + i * 4K) */
static u64 pte_addr(unsigned i) { return PT + 8 * i; }

static void setup(void)
{
    char err[128];
    cr_assert_eq(cpuid_model_parse(&model, "max", err, sizeof err), 0, "%s", err);
    cr_assert_eq(mem_init(&mem, RAM), 0);
    cr_assert_eq(cpu_init(c, 0, &mem, &model, &ops, NULL), 0);
    w64(PML4, PDPT | 7);
    w64(PDPT, PD | 7);
    w64(PD + 8 * 2, PT | 7);                 /* 0x400000 */
    w64(pte_addr(0), 0x100000 | 3);          /* rw */
    w64(pte_addr(1), 0x101000 | 1);          /* read-only */
    /* pte 2: not present */
    w64(pte_addr(3), 0xfee00000ull | 3);     /* the LAPIC page: not RAM */
    w64(pte_addr(4), 0x102000 | 7);          /* user */
    w64(pte_addr(5), (u64)(RAM + 0x100000) | 3); /* beyond RAM */
    c->cr3 = PML4;
    c->cr4 = CR4_PAE;
    c->efer = EFER_LME | EFER_LMA | EFER_NXE;
    c->cr0 = CR0_PE | CR0_PG | CR0_ET | CR0_NE | CR0_WP;
    cpu_set_seg(c, SEG_CS, 0x08, 0, 0xffffffff, 0xa09b);
    cpu_set_seg(c, SEG_SS, 0x10, 0, 0xffffffff, 0xc093);
    cpu_update_mode(c);
    mmu_update(c);
    cr_assert_eq(c->mode, MODE_LONG64);
}

static void teardown(void)
{
    cpu_destroy(c);
    mem_destroy(&mem);
}

TestSuite(copy_guest, .init = setup, .fini = teardown);

Test(copy_guest, reads_and_writes_through_the_page_tables)
{
    u8 in[8] = { 1, 2, 3, 4, 5, 6, 7, 8 }, out[8];
    cr_assert_eq(cpu_copy_guest(c, VA + 0x10, in, 8, true), 0);
    cr_assert_eq(r64(0x100010), 0x0807060504030201ull);
    cr_assert_eq(cpu_copy_guest(c, VA + 0x10, out, 8, false), 0);
    cr_assert_eq(memcmp(in, out, 8), 0);
    cr_assert(r64(pte_addr(0)) & PTE_A, "accessed bit set");
    cr_assert(r64(pte_addr(0)) & PTE_D, "dirty bit set by the write");
}

Test(copy_guest, a_read_sets_only_the_accessed_bit)
{
    u8 out[4];
    cr_assert_eq(cpu_copy_guest(c, VA + 0x1000, out, 4, false), 0);
    cr_assert(r64(pte_addr(1)) & PTE_A);
    cr_assert(!(r64(pte_addr(1)) & PTE_D));
}

Test(copy_guest, crossing_pages_reaches_both_frames)
{
    u8 in[16];
    for (int i = 0; i < 16; i++)
        in[i] = (u8)i;
    cr_assert_eq(mem_write(&mem, 0x100ff8, in, 8), 0);
    cr_assert_eq(mem_write(&mem, 0x101000, in + 8, 8), 0);
    u8 out[16];
    cr_assert_eq(cpu_copy_guest(c, VA + 0xff8, out, 16, false), 0);
    cr_assert_eq(memcmp(in, out, 16), 0);
}

Test(copy_guest, read_only_pages_refuse_writes_with_wp)
{
    u8 b[4] = { 0xaa, 0xaa, 0xaa, 0xaa };
    cr_assert_eq(cpu_copy_guest(c, VA + 0x1000, b, 4, true), -1);
    c->cr0 &= ~CR0_WP;
    mmu_update(c);
    cr_assert_eq(cpu_copy_guest(c, VA + 0x1000, b, 4, true), 0, "supervisor write, WP clear");
}

Test(copy_guest, write_crossing_into_a_read_only_page_fails)
{
    u8 b[16] = { 0 };
    cr_assert_eq(cpu_copy_guest(c, VA + 0xff8, b, 16, true), -1);
}

Test(copy_guest, unreachable_addresses_fail)
{
    u8 b[8];
    cr_assert_eq(cpu_copy_guest(c, VA + 0x2000, b, 8, false), -1, "not present");
    cr_assert_eq(cpu_copy_guest(c, VA + 0x1ffc, b, 8, false), -1, "crossing into not present");
    cr_assert_eq(cpu_copy_guest(c, VA + 0x3000, b, 8, false), -1, "MMIO");
    cr_assert_eq(cpu_copy_guest(c, VA + 0x3000, b, 8, true), -1, "MMIO write");
    cr_assert_eq(cpu_copy_guest(c, VA + 0x5000, b, 8, false), -1, "beyond RAM");
    cr_assert_eq(cpu_copy_guest(c, 0x800000000000ull, b, 8, false), -1, "non-canonical");
    cr_assert_eq(cpu_copy_guest(c, 0x00007ffffffffffcull, b, 8, false), -1,
                 "crossing into non-canonical");
    cr_assert_eq(cpu_copy_guest(c, 0x40000000ull, b, 8, false), -1, "no page table");
}

Test(copy_guest, cpl3_reaches_only_user_pages)
{
    cpu_set_seg(c, SEG_CS, 0x1b, 0, 0xffffffff, 0xa0fb);
    cpu_set_seg(c, SEG_SS, 0x23, 0, 0xffffffff, 0xc0f3);
    cpu_update_mode(c);
    cr_assert_eq(c->cpl, 3);
    u8 b[8];
    cr_assert_eq(cpu_copy_guest(c, VA, b, 8, false), -1, "supervisor page");
    cr_assert_eq(cpu_copy_guest(c, VA + 0x4000, b, 8, false), 0, "user page");
}

Test(copy_guest, without_paging_the_linear_space_ends_at_4g)
{
    c->cr0 = CR0_PE | CR0_ET | CR0_NE;
    c->cr4 = 0;
    c->efer = 0;
    cpu_set_seg(c, SEG_CS, 0x08, 0, 0xffffffff, 0xc09b);
    cpu_update_mode(c);
    mmu_update(c);
    u8 b[8] = { 9, 9, 9, 9, 9, 9, 9, 9 };
    cr_assert_eq(cpu_copy_guest(c, 0x100000, b, 8, true), 0, "linear = physical");
    cr_assert_eq(r64(0x100000), 0x0909090909090909ull);
    cr_assert_eq(cpu_copy_guest(c, 0xfffffffcull, b, 8, false), -1, "wraps past 4 GiB");
    cr_assert_eq(cpu_copy_guest(c, 0x100000000ull, b, 1, false), -1, "above 4 GiB");
    cr_assert_eq(cpu_copy_guest(c, 0xfee00000ull, b, 4, false), -1, "MMIO");
}
