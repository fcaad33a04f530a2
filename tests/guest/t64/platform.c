/* CPUID consistency, fw_cfg (signature, CPU count, RAM size, e820 through the file
 * directory) and ACPI (RSDP in the BIOS area, MADT with one local APIC per CPU).
 * guest: smp=2 */
#include "rt.h"

static void check_cpuid(void)
{
    struct cpuid_regs r = cpuid(0);
    char vendor[13];
    memcpy(vendor, &r.b, 4);
    memcpy(vendor + 4, &r.d, 4);
    memcpy(vendor + 8, &r.c, 4);
    vendor[12] = 0;
    printf("vendor %s, max basic leaf %#x\n", vendor, r.a);
    TEST_ASSERT(!strcmp(vendor, "GenuineIntel") || !strcmp(vendor, "AuthenticAMD"),
                "cpuid: vendor is Intel or AMD (%s)", vendor);
    TEST_ASSERT(r.a >= 1, "cpuid: max basic leaf >= 1");
    u32 ext_max = cpuid(0x80000000).a;
    TEST_ASSERT(ext_max >= 0x80000001 && ext_max < 0x80000100, "cpuid: max extended leaf %#x", ext_max);

    /* features that imply others, or that running here proves */
    TEST_ASSERT(HAS_LM(), "cpuid: long mode (we are in it)");
    TEST_ASSERT(HAS_PAE(), "cpuid: PAE (long mode needs it)");
    TEST_ASSERT(cpu_has(1, 0, 3, 0), "cpuid: FPU");
    TEST_ASSERT(cpu_has(1, 0, 3, 4), "cpuid: TSC");
    TEST_ASSERT(cpu_has(1, 0, 3, 5), "cpuid: MSR");
    TEST_ASSERT(HAS_APIC(), "cpuid: APIC");
    TEST_ASSERT(!HAS_SSE2() || (cpu_has(1, 0, 3, 25) && HAS_FXSR()), "cpuid: SSE2 implies SSE and FXSR");
    TEST_ASSERT(!cpu_has(1, 0, 2, 28) || HAS_XSAVE(), "cpuid: AVX implies XSAVE");
    if (HAS_XSAVE()) {
        struct cpuid_regs d = cpuid2(0xd, 0);
        TEST_ASSERT((d.a & 3) == 3, "cpuid 0xd: x87 and SSE state in XCR0 mask (%#x)", d.a);
        TEST_ASSERT(d.c >= 576, "cpuid 0xd: XSAVE area at least legacy+header (%u)", d.c);
    }
    struct cpuid_regs one = cpuid(1);
    TEST_EQ(one.b >> 24, apic_id(), "cpuid 1: initial APIC ID is the LAPIC's ID");
    TEST_ASSERT(((one.b >> 8) & 0xff) != 0, "cpuid 1: CLFLUSH line size set");
    /* OSXSAVE reflects CR4 */
    if (HAS_XSAVE()) {
        write_cr4(read_cr4() | CR4_OSXSAVE);
        TEST_ASSERT(cpu_has(1, 0, 2, 27), "cpuid 1: OSXSAVE set with CR4.OSXSAVE");
        write_cr4(read_cr4() & ~CR4_OSXSAVE);
        TEST_ASSERT(!cpu_has(1, 0, 2, 27), "cpuid 1: OSXSAVE clear without CR4.OSXSAVE");
    }
    /* the APIC feature bit follows IA32_APIC_BASE.EN */
    u64 base = rdmsr(MSR_APIC_BASE);
    TEST_ASSERT(base & BIT(8), "APIC_BASE: BSP flag on the BSP");
    TEST_EQ(base & 0xfffff000u, APIC_DEFAULT_BASE, "APIC_BASE: default address");
    if (ext_max >= 0x80000004) {
        char brand[49];
        for (u32 i = 0; i < 3; i++) {
            r = cpuid(0x80000002 + i);
            memcpy(brand + 16 * i, &r, 16);
        }
        brand[48] = 0;
        bool printable = brand[0] != 0;
        for (int i = 0; brand[i]; i++)
            printable &= brand[i] >= 0x20 && brand[i] < 0x7f;
        TEST_ASSERT(printable, "cpuid: brand string printable: %s", brand);
    }
    if (ext_max >= 0x80000008) {
        u32 pa_bits = cpuid(0x80000008).a & 0xff, va_bits = (cpuid(0x80000008).a >> 8) & 0xff;
        TEST_ASSERT(pa_bits >= 36 && pa_bits <= 52, "cpuid 0x80000008: physical bits %u", pa_bits);
        TEST_ASSERT(va_bits == 48 || va_bits == 57, "cpuid 0x80000008: linear bits %u", va_bits);
        TEST_ASSERT((va_bits == 57) == HAS_LA57(), "cpuid: 57 linear bits iff LA57");
    }
}

static u32 fw_ncpus;

static void check_fwcfg(void)
{
    TEST_ASSERT(fwcfg_present(), "fw_cfg: signature QEMU");
    if (!fwcfg_present())
        return;
    u32 id = 0;
    fwcfg_select(FW_CFG_ID);
    fwcfg_read(&id, 4);
    TEST_ASSERT(id & 1, "fw_cfg: ID has the traditional interface bit (%#x)", id);
    u16 ncpus = 0;
    fwcfg_select(FW_CFG_NB_CPUS);
    fwcfg_read(&ncpus, 2);
    fw_ncpus = ncpus;
    TEST_EQ(ncpus, 2, "fw_cfg: NB_CPUS (run with -smp 2)");
    u64 ram = 0;
    fwcfg_select(FW_CFG_RAM_SIZE);
    fwcfg_read(&ram, 8);
    TEST_EQ(ram, 128ull << 20, "fw_cfg: RAM_SIZE (run with 128 MiB)");

    u16 sel;
    u32 size;
    bool found = fwcfg_find_file("etc/e820", &sel, &size);
    TEST_ASSERT(found, "fw_cfg: file etc/e820 in the directory");
    if (!found)
        return;
    TEST_ASSERT(size && size % 20 == 0, "fw_cfg: e820 size %u is a multiple of 20", size);
    fwcfg_select(sel);
    u64 total = 0;
    bool covers_image = false;
    for (u32 off = 0; off + 20 <= size; off += 20) {
        struct { u64 addr, len; u32 type; } __attribute__((packed)) e;
        fwcfg_read(&e, 20);
        printf("e820: %#llx-%#llx type %u\n", (unsigned long long)e.addr,
               (unsigned long long)(e.addr + e.len - 1), e.type);
        if (e.type == 1) {
            total += e.len;
            if (e.addr <= (ulong)__image_start && e.addr + e.len >= (ulong)__image_end)
                covers_image = true;
        }
    }
    TEST_ASSERT(covers_image, "e820: a RAM range holds the kernel image");
    TEST_ASSERT(total <= ram && total >= ram - (1 << 20), "e820: RAM entries add up to RAM_SIZE (%llu KiB)",
                (unsigned long long)(total >> 10));
    TEST_ASSERT(!fwcfg_find_file("etc/no-such-file", &sel, &size), "fw_cfg: unknown file not found");
}

static void check_acpi(void)
{
    const u8 *rsdp = acpi_find_rsdp();
    TEST_ASSERT(rsdp != NULL, "acpi: RSDP in 0xE0000-0xFFFFF");
    if (!rsdp)
        return;
    /* Test kernels that scan only the F segment (as firmware like SeaBIOS places it
     * there) must find it too. */
    TEST_ASSERT((ulong)rsdp >= 0xf0000, "acpi: RSDP in the F segment (0xF0000-0xFFFFF)");
    if (rsdp[15] >= 2) {
        u32 len;
        memcpy(&len, rsdp + 20, 4);
        TEST_ASSERT(len >= 36 && acpi_checksum(rsdp, len) == 0, "acpi: RSDP extended checksum");
    }
    const struct acpi_header *madt = acpi_find_table("APIC");
    TEST_ASSERT(madt != NULL, "acpi: MADT found (checksums valid)");
    if (!madt)
        return;
    u32 lapic_addr;
    memcpy(&lapic_addr, madt + 1, 4);
    TEST_EQ(lapic_addr, APIC_DEFAULT_BASE, "madt: local APIC address");
    const u8 *p = (const u8 *)madt + sizeof(*madt) + 8, *end = (const u8 *)madt + madt->length;
    u32 lapics = 0;
    bool bsp_listed = false;
    int ioapics = 0;
    while (p + 2 <= end && p[1] >= 2 && p + p[1] <= end) {
        if (p[0] == 0 && p[1] == 8) {
            u32 flags;
            memcpy(&flags, p + 4, 4);
            if (flags & 1) {
                lapics++;
                bsp_listed |= p[3] == apic_id();
            }
        } else if (p[0] == 9 && p[1] == 16) { /* x2APIC entry */
            u32 flags, id;
            memcpy(&id, p + 4, 4);
            memcpy(&flags, p + 8, 4);
            if (flags & 1) {
                lapics++;
                bsp_listed |= id == apic_id();
            }
        } else if (p[0] == 1) {
            ioapics++;
        }
        p += p[1];
    }
    TEST_ASSERT(p == end, "madt: entries fill the table exactly");
    TEST_EQ(lapics, 2, "madt: one enabled local APIC per CPU (-smp 2)");
    if (fw_ncpus)
        TEST_EQ(lapics, fw_ncpus, "madt: local APICs match fw_cfg NB_CPUS");
    TEST_ASSERT(bsp_listed, "madt: the BSP's APIC ID is listed");
    printf("madt: %u local APICs, %d I/O APICs\n", lapics, ioapics);
}

void test_main(void)
{
    check_cpuid();
    check_fwcfg();
    check_acpi();
}
