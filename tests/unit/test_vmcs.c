/* Unit tests of the VMCS field table: encodings as the SDM's Appendix B gives them,
 * fields that exist only with their feature, the high-half access of 64-bit fields,
 * reserved encoding bits, widths on read and write, and VMCS_ENUM's highest index. */
#include <criterion/criterion.h>

#include "cpu/vmx/vmcs.h"

#define ALL_FEATURES (VMXF_MASK(VMXF_COUNT) - 1)

Test(vmcs, table_is_sorted_and_each_slot_named_once)
{
    int n;
    const struct vmcs_field_desc *t = vmcs_field_table(&n);
    cr_assert_eq(n, VMCS_NFIELDS);
    bool seen[VMCS_NFIELDS] = { false };
    for (int i = 0; i < n; i++) {
        if (i)
            cr_assert_lt(t[i - 1].encoding, t[i].encoding, "row %d out of order", i);
        cr_assert_eq(t[i].encoding & (VMCS_ENC_HIGH | BIT(12) | ~0x7fffu), 0,
                     "%s: reserved bits in its encoding", t[i].name);
        cr_assert(!seen[t[i].field], "%s: slot used twice", t[i].name);
        seen[t[i].field] = true;
    }
}

/* A few encodings checked against the SDM's Appendix B, one per width and kind */
Test(vmcs, encodings_from_the_sdm)
{
    static const struct { u32 enc; enum vmcs_field f; } known[] = {
        { 0x0000, VMCS_VPID },           { 0x0802, VMCS_GUEST_CS_SEL },
        { 0x0c0c, VMCS_HOST_TR_SEL },    { 0x2000, VMCS_IO_BITMAP_A },
        { 0x201a, VMCS_EPT_POINTER },    { 0x2400, VMCS_GUEST_PHYSICAL_ADDR },
        { 0x2800, VMCS_LINK_POINTER },   { 0x2c02, VMCS_HOST_EFER },
        { 0x4002, VMCS_PROC_CONTROLS },  { 0x401e, VMCS_PROC_CONTROLS2 },
        { 0x4402, VMCS_EXIT_REASON },    { 0x4826, VMCS_GUEST_ACTIVITY_STATE },
        { 0x482e, VMCS_PREEMPT_TIMER_VALUE }, { 0x4c00, VMCS_HOST_SYSENTER_CS },
        { 0x6000, VMCS_CR0_GUEST_HOST_MASK }, { 0x6400, VMCS_EXIT_QUALIFICATION },
        { 0x681e, VMCS_GUEST_RIP },      { 0x6c16, VMCS_HOST_RIP },
    };
    for (unsigned i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
        bool high = true;
        const struct vmcs_field_desc *d = vmcs_field_find(known[i].enc, ALL_FEATURES, &high);
        cr_assert(d, "0x%x not found", known[i].enc);
        cr_assert_eq(d->field, known[i].f, "0x%x: %s", known[i].enc, d->name);
        cr_assert(!high);
    }
}

Test(vmcs, fields_exist_only_with_their_feature)
{
    bool high;
    cr_assert_null(vmcs_field_find(0x201a, 0, &high), "EPTP without EPT");
    cr_assert_not_null(vmcs_field_find(0x201a, VMXF_MASK(VMXF_EPT), &high));
    cr_assert_null(vmcs_field_find(0x0000, VMXF_MASK(VMXF_EPT), &high), "VPID without VPID");
    cr_assert_null(vmcs_field_find(0x482e, 0, &high), "preemption timer value without it");
    cr_assert_not_null(vmcs_field_find(0x681e, 0, &high), "guest RIP always");
    cr_assert_not_null(vmcs_field_find(0x4400, 0, &high), "VM-instruction error always");
}

Test(vmcs, high_access_only_for_64_bit_fields)
{
    bool high = false;
    const struct vmcs_field_desc *d = vmcs_field_find(0x2011, 0, &high);
    cr_assert(d && d->field == VMCS_TSC_OFFSET && high, "TSC offset, high half");
    cr_assert_null(vmcs_field_find(0x4003, ALL_FEATURES, &high), "a 32-bit field has no high half");
    cr_assert_null(vmcs_field_find(0x681f, ALL_FEATURES, &high), "nor a natural-width one");
    cr_assert_null(vmcs_field_find(0x0801, ALL_FEATURES, &high), "nor a 16-bit one");
}

Test(vmcs, reserved_encoding_bits_and_unknown_fields)
{
    bool high;
    cr_assert_null(vmcs_field_find(0x1000 | 0x0802, ALL_FEATURES, &high), "bit 12");
    cr_assert_null(vmcs_field_find(0x8000 | 0x0802, ALL_FEATURES, &high), "bit 15");
    cr_assert_null(vmcs_field_find(0x100000000ull | 0x0802, ALL_FEATURES, &high), "bit 32");
    cr_assert_null(vmcs_field_find(0x482c, ALL_FEATURES, &high), "0x482c: no field");
    cr_assert_null(vmcs_field_find(0x0814 + 0x40, ALL_FEATURES, &high), "an index past the last");
}

Test(vmcs, read_and_write_keep_the_field_width)
{
    struct vmcs v = { { 0 } };
    bool high;
    const struct vmcs_field_desc *sel = vmcs_field_find(0x0802, 0, &high);
    vmcs_write(&v, sel, false, 0x123456789abcdefull);
    cr_assert_eq(vmcs_read(&v, sel, false), 0xcdef, "16-bit field keeps its low 16 bits");
    const struct vmcs_field_desc *lim = vmcs_field_find(0x4802, 0, &high);
    vmcs_write(&v, lim, false, 0x123456789abcdefull);
    cr_assert_eq(vmcs_read(&v, lim, false), 0x89abcdef);
    const struct vmcs_field_desc *rip = vmcs_field_find(0x681e, 0, &high);
    vmcs_write(&v, rip, false, 0xffffffff80001000ull);
    cr_assert_eq(vmcs_read(&v, rip, false), 0xffffffff80001000ull);

    const struct vmcs_field_desc *off = vmcs_field_find(0x2010, 0, &high);
    vmcs_write(&v, off, false, 0x1111111122222222ull);
    cr_assert_eq(vmcs_read(&v, off, true), 0x11111111, "the high half reads bits 63:32");
    vmcs_write(&v, off, true, 0xaaaaaaaa);
    cr_assert_eq(vmcs_read(&v, off, false), 0xaaaaaaaa22222222ull, "a high write keeps bits 31:0");
    vmcs_write(&v, off, false, 0x33333333);
    cr_assert_eq(vmcs_read(&v, off, false), 0x33333333, "a full write of a 32-bit value clears 63:32");
}

Test(vmcs, max_index_follows_the_features)
{
    /* the index is encoding bits 9:1: without features the highest is guest
     * IA32_SYSENTER_CS (0x482a) */
    cr_assert_eq(vmcs_max_index(0), 0x15, "guest SYSENTER_CS 0x482a: index 0x15");
    cr_assert_eq(vmcs_max_index(VMXF_MASK(VMXF_PREEMPT_TIMER)), 0x17, "0x482e: index 0x17");
    cr_assert_eq(vmcs_max_index(VMXF_MASK(VMXF_TSC_SCALING)), 0x19, "TSC multiplier 0x2032: 0x19");
}
