/* The hypervisor CPUID bit (CPUID.1:ECX[31]) is on by default in every model, as QEMU
 * sets it, and -hypervisor hides it. With the bit, leaf 40000000h names the highest
 * hypervisor leaf (40000001h) and the VMM's 12-character signature, and 40000001h (no
 * paravirtual features) is zero, the layout QEMU TCG shows a guest without KVM, Xen or
 * Hyper-V. Without the bit there are no hypervisor leaves: an Intel CPU answers with the
 * highest basic leaf.
 * QEMU TCG answers leaf 40000000h even with -hypervisor: that check is skipped there.
 * guest: cpu=max name=hypervisor */
/* guest: cpu=max,-hypervisor name=hypervisor-off */
/* guest: cpu=qemu64 name=hypervisor-qemu64 */
#include "rt.h"

static bool mentions(const char *s, const char *word)
{
    for (size_t n = strlen(word); *s; s++)
        if (strncmp(s, word, n) == 0)
            return true;
    return false;
}

static bool is_tcg_signature(struct cpuid_regs r)
{
    return !memcmp(&r.b, "TCGT", 4) && !memcmp(&r.c, "CGTC", 4) && !memcmp(&r.d, "GTCG", 4);
}

void test_main(void)
{
    char spec[128] = "max";
    rt_cmdline_value("cpu", spec, sizeof(spec));
    bool want = !mentions(spec, "-hypervisor");
    bool bit = cpu_has(1, 0, 2, 31);
    TEST_EQ(bit, want, "CPUID.1:ECX.hypervisor is on unless -hypervisor");

    struct cpuid_regs hv = cpuid(0x40000000);
    if (bit) {
        TEST_EQ(hv.a, 0x40000001, "40000000h: the highest hypervisor leaf is 40000001h");
        char sig[13] = { 0 };
        memcpy(sig, &hv.b, 4);
        memcpy(sig + 4, &hv.c, 4);
        memcpy(sig + 8, &hv.d, 4);
        bool printable = true;
        for (int k = 0; k < 12; k++)
            printable &= sig[k] >= 0x20 && sig[k] < 0x7f;
        TEST_ASSERT(printable, "a 12-character signature: '%s'", sig);
        if (!on_qemu_tcg())
            TEST_ASSERT(!strcmp(sig, "NestorNestor"), "nestor's signature: '%s'", sig);
        struct cpuid_regs f = cpuid(0x40000001);
        TEST_ASSERT(f.a == 0 && f.b == 0 && f.c == 0 && f.d == 0,
                    "40000001h: no paravirtual features (%x %x %x %x)", f.a, f.b, f.c, f.d);
    } else if (is_tcg_signature(hv)) {
        test_skip("QEMU TCG keeps its leaf 40000000h with -hypervisor");
    } else {
        struct cpuid_regs l0 = cpuid(0);
        bool intel = !memcmp(&l0.b, "Genu", 4);
        struct cpuid_regs top = cpuid(l0.a);
        if (intel)
            TEST_ASSERT(hv.a == top.a && hv.b == top.b && hv.c == top.c && hv.d == top.d,
                        "without the bit, 40000000h is out of range: the highest basic leaf");
    }
}
