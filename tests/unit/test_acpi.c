/* Unit tests of the ACPI tables: built into guest RAM of a hand-made machine, then found
 * the way an OS finds them (RSDP scan of the BIOS area) and checked: signatures, lengths,
 * checksums, pointers, FADT fields and the MADT's entries. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "dev/dev.h"
#include "machine/machine.h"

static struct machine m;

static void setup(void)
{
    memset(&m, 0, sizeof(m));
    cr_assert_eq(mem_init(&m.mem, 128 * MiB), 0);
    bus_init(&m.io, "io");
    bus_init(&m.mmio, "mmio");
    clock_init(&m.clock, true);
    m.ncpus = m.cfg.ncpus = 4;
}

static void teardown(void)
{
    mem_destroy(&m.mem);
}

TestSuite(acpi, .init = setup, .fini = teardown);

static u64 le(const u8 *p, int n)
{
    u64 v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static u8 sum(const u8 *p, size_t n)
{
    u8 s = 0;
    while (n--)
        s = (u8)(s + *p++);
    return s;
}

/* A table at gpa: checks signature, length bounds and checksum; returns its bytes. */
static const u8 *table(u64 gpa, const char *sig)
{
    const u8 *h = mem_ptr(&m.mem, gpa, 36);
    cr_assert_not_null(h, "%s at %#llx is not in RAM", sig, (unsigned long long)gpa);
    cr_assert_eq(memcmp(h, sig, 4), 0, "signature %.4s, expected %s", (const char *)h, sig);
    u32 len = (u32)le(h + 4, 4);
    cr_assert_geq(len, 36u);
    const u8 *t = mem_ptr(&m.mem, gpa, len);
    cr_assert_not_null(t);
    cr_assert_eq(sum(t, len), 0, "%s checksum", sig);
    cr_assert_eq(memcmp(t + 10, "NESTOR", 6), 0, "OEM ID");
    return t;
}

/* The RSDP as an OS finds it: "RSD PTR " on a 16-byte boundary in 0xE0000-0xFFFFF. */
static u64 scan_rsdp(void)
{
    for (u64 a = 0xe0000; a < 0x100000; a += 16) {
        const u8 *p = mem_ptr(&m.mem, a, 8);
        if (p && !memcmp(p, "RSD PTR ", 8))
            return a;
    }
    return 0;
}

static void check_tables(u64 rsdp_gpa, const u8 **fadt, const u8 **madt)
{
    cr_assert_eq(scan_rsdp(), rsdp_gpa);
    const u8 *rsdp = mem_ptr(&m.mem, rsdp_gpa, 36);
    cr_assert_eq(sum(rsdp, 20), 0, "ACPI 1.0 checksum");
    cr_assert_eq(sum(rsdp, 36), 0, "extended checksum");
    cr_assert_eq(rsdp[15], 2, "revision");
    cr_assert_eq(le(rsdp + 20, 4), 36u);

    const u8 *rsdt = table(le(rsdp + 16, 4), "RSDT");
    const u8 *xsdt = table(le(rsdp + 24, 8), "XSDT");
    u32 n = (u32)(le(xsdt + 4, 4) - 36) / 8;
    cr_assert_eq(n, 2u);
    cr_assert_eq((le(rsdt + 4, 4) - 36) / 4, n, "RSDT and XSDT list the same tables");
    *fadt = *madt = NULL;
    for (u32 i = 0; i < n; i++) {
        u64 a = le(xsdt + 36 + 8 * i, 8);
        cr_assert_eq(le(rsdt + 36 + 4 * i, 4), a);
        const u8 *h = mem_ptr(&m.mem, a, 4);
        if (!memcmp(h, "FACP", 4))
            *fadt = table(a, "FACP");
        else if (!memcmp(h, "APIC", 4))
            *madt = table(a, "APIC");
    }
    cr_assert_not_null(*fadt);
    cr_assert_not_null(*madt);
}

Test(acpi, rsdp_xsdt_rsdt)
{
    u64 rsdp = acpi_build(&m);
    cr_assert_eq(rsdp & 15, 0u);
    cr_assert(rsdp >= 0xe0000 && rsdp < 0x100000);
    const u8 *fadt, *madt;
    check_tables(rsdp, &fadt, &madt);
    /* the area is reserved in e820 */
    bool reserved = false;
    for (int i = 0; i < m.mem.ne820; i++)
        if (m.mem.e820[i].addr <= rsdp && rsdp < m.mem.e820[i].addr + m.mem.e820[i].size)
            reserved = m.mem.e820[i].type == E820_RESERVED;
    cr_assert(reserved);
}

Test(acpi, fadt)
{
    const u8 *fadt, *madt;
    check_tables(acpi_build(&m), &fadt, &madt);
    cr_assert_eq(le(fadt + 4, 4), 276u);
    cr_assert_eq(fadt[8], 6, "revision 6");
    u32 flags = (u32)le(fadt + 112, 4);
    cr_assert_eq(flags & (1u << 20), 0u, "not hardware-reduced");
    cr_assert_eq(le(fadt + 46, 2), 9u, "SCI");
    cr_assert_eq(le(fadt + 76, 4), 0u, "no PM timer device: no PM_TMR_BLK");
    cr_assert_eq(fadt[91], 0);
    cr_assert_eq(fadt[208], 0, "no X_PM_TMR_BLK");
    /* reset register: I/O port 0xcf9, value 6 */
    cr_assert_eq(fadt[116], 1);
    cr_assert_eq(fadt[117], 8);
    cr_assert_eq(le(fadt + 120, 8), 0xcf9u);
    cr_assert_eq(fadt[128], 6);
    /* FACS and DSDT, 32- and 64-bit pointers agree */
    cr_assert_eq(le(fadt + 36, 4), le(fadt + 132, 8));
    cr_assert_eq(le(fadt + 40, 4), le(fadt + 140, 8));
    const u8 *facs = mem_ptr(&m.mem, le(fadt + 36, 4), 64);
    cr_assert_eq(memcmp(facs, "FACS", 4), 0);
    cr_assert_eq(le(facs + 4, 4), 64u);
    cr_assert_eq(le(fadt + 36, 4) & 63, 0u, "FACS is 64-byte aligned");
    const u8 *dsdt = table(le(fadt + 40, 4), "DSDT");
    u32 dlen = (u32)le(dsdt + 4, 4);
    /* \_S5 is a package of four */
    bool s5 = false;
    for (u32 i = 36; i + 7 < dlen; i++)
        if (!memcmp(dsdt + i, "\x08\\_S5_\x12", 7))
            s5 = dsdt[i + 8] == 4;
    cr_assert(s5, "Name(\\_S5, Package(4){...})");
}

Test(acpi, fadt_follows_the_bus)
{
    /* with devices on the PM timer and reset ports, both are advertised */
    bus_register(&m.io, 0x608, 4, NULL, NULL, NULL, "pmtimer");
    bus_register(&m.io, 0xcf9, 1, NULL, NULL, NULL, "reset");
    const u8 *fadt, *madt;
    check_tables(acpi_build(&m), &fadt, &madt);
    cr_assert_eq(le(fadt + 76, 4), 0x608u);
    cr_assert_eq(fadt[91], 4);
    cr_assert_eq(le(fadt + 208 + 4, 8), 0x608u);
    cr_assert_eq(fadt[208], 1);
    cr_assert_eq(fadt[209], 32);
    cr_assert(le(fadt + 112, 4) & (1u << 10), "RESET_REG_SUP");
}

Test(acpi, madt)
{
    const u8 *fadt, *madt;
    check_tables(acpi_build(&m), &fadt, &madt);
    cr_assert_eq(le(madt + 36, 4), 0xfee00000u);
    u32 len = (u32)le(madt + 4, 4);
    int lapics = 0, ioapics = 0, isos = 0, nmis = 0;
    for (u32 off = 44; off < len;) {
        const u8 *e = madt + off;
        cr_assert_geq(e[1], 2);
        cr_assert_leq(off + e[1], len);
        switch (e[0]) {
        case 0:
            cr_assert_eq(e[1], 8);
            cr_assert_eq(e[2], lapics, "processor UID");
            cr_assert_eq(e[3], lapics, "APIC ID");
            cr_assert_eq(le(e + 4, 4), 1u, "enabled");
            lapics++;
            break;
        case 1:
            cr_assert_eq(e[1], 12);
            cr_assert_eq(e[2], 4, "I/O APIC ID after the CPUs");
            cr_assert_eq(le(e + 4, 4), 0xfec00000u);
            cr_assert_eq(le(e + 8, 4), 0u);
            ioapics++;
            break;
        case 2:
            cr_assert_eq(e[1], 10);
            cr_assert_eq(e[2], 0, "ISA");
            if (e[3] == 0) {
                cr_assert_eq(le(e + 4, 4), 2u);
            } else {
                cr_assert_eq(e[3], 9);
                cr_assert_eq(le(e + 4, 4), 9u);
                cr_assert_eq(le(e + 8, 2), 0xdu, "active high, level");
            }
            isos++;
            break;
        case 4:
            cr_assert_eq(e[1], 6);
            cr_assert_eq(e[2], 0xff);
            cr_assert_eq(e[5], 1, "LINT1");
            nmis++;
            break;
        default:
            cr_assert_fail("unexpected MADT entry type %d", e[0]);
        }
        off += e[1];
    }
    cr_assert_eq(lapics, 4);
    cr_assert_eq(ioapics, 1);
    cr_assert_eq(isos, 2);
    cr_assert_eq(nmis, 1);
}

Test(acpi, pm1_blocks_advertised_with_the_device)
{
    const u8 *fadt, *madt;
    check_tables(acpi_build(&m), &fadt, &madt);
    cr_assert_eq(le(fadt + 56, 4), 0u, "no PM device: no PM1a event block");
    struct acpi_pm *pm = acpi_pm_create(&m);
    check_tables(acpi_build(&m), &fadt, &madt);
    cr_assert_eq(le(fadt + 56, 4), 0x600u);
    cr_assert_eq(fadt[88], 4);
    cr_assert_eq(le(fadt + 64, 4), 0x604u);
    cr_assert_eq(fadt[89], 2);
    cr_assert_eq(le(fadt + 148 + 4, 8), 0x600u, "X_PM1a_EVT_BLK");
    cr_assert_eq(le(fadt + 172 + 4, 8), 0x604u, "X_PM1a_CNT_BLK");
    acpi_pm_destroy(pm);
}

Test(acpi, pm1_registers_and_soft_off)
{
    struct acpi_pm *pm = acpi_pm_create(&m);
    cr_assert_eq(bus_read(&m.io, 0x604, 2) & 1, 1u, "SCI_EN: always in ACPI mode");
    bus_write(&m.io, 0x602, 2, 0x0121); /* PM1_EN */
    cr_assert_eq(bus_read(&m.io, 0x602, 2), 0x0121u);
    cr_assert_eq(bus_read(&m.io, 0x600, 4), 0x01210000u, "status 0, enable above it");
    bus_write(&m.io, 0x600, 2, 0xffff); /* write-1-to-clear leaves the enables alone */
    cr_assert_eq(bus_read(&m.io, 0x602, 2), 0x0121u);
    /* SLP_TYP without SLP_EN only sets the type */
    bus_write(&m.io, 0x604, 2, (ACPI_S5_SLP_TYP << 10) | 1);
    cr_assert(!m.stop);
    /* a sleep type that is not S5 does nothing */
    bus_write(&m.io, 0x604, 2, ((ACPI_S5_SLP_TYP + 1) << 10) | (1 << 13));
    cr_assert(!m.stop);
    cr_assert_eq(bus_read(&m.io, 0x604, 2) & (1 << 13), 0u, "SLP_EN is write-only");
    bus_write(&m.io, 0x604, 2, (ACPI_S5_SLP_TYP << 10) | (1 << 13));
    cr_assert(m.stop, "S5: power off");
    cr_assert_eq(m.exit_status, 0);
    acpi_pm_destroy(pm);
}
