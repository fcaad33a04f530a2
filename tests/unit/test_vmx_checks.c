/* Unit tests of the VM-entry check list (src/cpu/vmx/entry_checks.c): every row has a
 * name and an SDM section of its class, the rows follow the SDM's order (controls, host
 * state, guest state; sections never go back), qualifications only on guest rows; and
 * the host-state rules of a 32-bit host (SDM 27.2.3, 27.2.4), which a 64-bit L1 cannot
 * reach in a guest test because "host address-space size" must be 1 in IA-32e mode. */
#include <criterion/criterion.h>
#include <string.h>

#include "cpu/vmx/entry_checks.h"
#include "machine/mem.h"

static struct guest_mem mem;
static struct cpuid_model model;
static struct cpu cpu, *c = &cpu;

static enum intercept_result intercept(struct cpu *cp, struct cpu_event *ev, void *opaque)
{
    (void)cp;
    (void)ev;
    (void)opaque;
    return INTERCEPT_DEFAULT;
}
static const struct cpu_ops ops = { .intercept = intercept };

static void setup(void)
{
    char err[128];
    cr_assert_eq(cpuid_model_parse(&model, "max", err, sizeof err), 0, "%s", err);
    cr_assert_eq(mem_init(&mem, 16 * MiB), 0);
    cr_assert_eq(cpu_init(c, 0, &mem, &model, &ops, NULL), 0);
    cr_assert_not_null(c->vmx, "-cpu max has VMX");
}

static void teardown(void)
{
    cpu_destroy(c);
    mem_destroy(&mem);
}

TestSuite(vmx_checks, .init = setup, .fini = teardown);

static int class_rank(const char *cls)
{
    return !strcmp(cls, "control") ? 0 : !strcmp(cls, "host") ? 1 : !strcmp(cls, "guest") ? 2 : -1;
}

/* "27.2.1.3" < "27.2.2" < "27.3.1.1": numeric, part by part */
static int section_cmp(const char *a, const char *b)
{
    while (*a || *b) {
        long x = strtol(a, (char **)&a, 10), y = strtol(b, (char **)&b, 10);
        if (x != y)
            return x < y ? -1 : 1;
        if (*a == '.')
            a++;
        if (*b == '.')
            b++;
        if (!*a || !*b)
            return (*a != 0) - (*b != 0);
    }
    return 0;
}

Test(vmx_checks, every_row_named_with_a_section_of_its_class_in_sdm_order)
{
    int n = vmx_entry_check_count();
    cr_assert_geq(n, 90, "the whole of 27.2 and 27.3.1");
    struct vmx_check_info prev = { 0 }, info;
    cr_assert(!vmx_entry_check_info(n, &info));
    cr_assert(!vmx_entry_check_info(-1, &info));
    for (int k = 0; k < n; k++) {
        cr_assert(vmx_entry_check_info(k, &info));
        cr_assert(info.name && *info.name, "row %d has a name", k);
        int rank = class_rank(info.cls);
        static const char *const prefix[] = { "27.2.1.", "27.2.", "27.3.1." };
        cr_assert_geq(rank, 0, "%s: class %s", info.name, info.cls);
        cr_assert_eq(strncmp(info.sdm, prefix[rank], strlen(prefix[rank])), 0,
                     "%s: section %s is not one of the %s checks", info.name, info.sdm, info.cls);
        if (rank == 1)
            cr_assert_neq(strncmp(info.sdm, "27.2.1", 6), 0, "%s: a host rule in 27.2.1", info.name);
        cr_assert(rank == 2 || info.qual == 0, "%s: a qualification on a VMfail rule", info.name);
        cr_assert(info.qual == 0 || info.qual == 2 || info.qual == 3 || info.qual == 4,
                  "%s: qualification %u", info.name, info.qual);
        /* the guest-rule names say guest, the others ctl/host */
        static const char *const name_prefix[] = { "ctl_", "host_", "guest_" };
        cr_assert_eq(strncmp(info.name, name_prefix[rank], strlen(name_prefix[rank])), 0,
                     "%s: named for its class", info.name);
        if (k) {
            cr_assert_geq(rank, class_rank(prev.cls), "%s: classes out of order", info.name);
            cr_assert_leq(section_cmp(prev.sdm, info.sdm), 0, "%s: section %s after %s",
                          info.name, info.sdm, prev.sdm);
        }
        for (int j = 0; j < k; j++) {
            struct vmx_check_info other;
            vmx_entry_check_info(j, &other);
            cr_assert_str_neq(other.name, info.name, "%s twice", info.name);
        }
        prev = info;
    }
    /* the qualifications of 27.8: 2 PDPTEs (27.3.1.6), 4 link pointer (27.3.1.5) */
    vmx_entry_check_info(n - 1, &info);
    cr_assert_str_eq(info.sdm, "27.3.1.6");
    cr_assert_eq(info.qual, 2);
}

#define F(x) (c->vmx->vmcs.f[VMCS_##x])

/* Valid controls and a valid 32-bit host: a processor outside IA-32e mode. */
static void valid_32bit_host(void)
{
    const u64 *cap = c->vmx->caps.msr;
    c->efer = 0;
    F(PIN_CONTROLS) = (u32)cap[VMX_TRUE_PINBASED];
    F(PROC_CONTROLS) = (u32)cap[VMX_TRUE_PROCBASED];
    F(EXIT_CONTROLS) = (u32)cap[VMX_TRUE_EXIT];
    F(ENTRY_CONTROLS) = (u32)cap[VMX_TRUE_ENTRY];
    F(HOST_CR0) = cap[VMX_CR0_FIXED0];
    F(HOST_CR4) = cap[VMX_CR4_FIXED0];
    F(HOST_CR3) = 0x1000;
    F(HOST_CS_SEL) = 0x08;
    F(HOST_SS_SEL) = 0x10;
    F(HOST_DS_SEL) = 0x10;
    F(HOST_ES_SEL) = 0x10;
    F(HOST_TR_SEL) = 0x18;
    F(HOST_RIP) = 0x100000;
    F(LINK_POINTER) = ~0ull;
}

static const char *failing_rule(void)
{
    struct vmx_check_failure fail = { 0 };
    if (vmx_entry_check_controls_host(c, &fail))
        return "";
    cr_assert_eq(fail.insn_error, VMXERR_ENTRY_INVALID_HOST_STATE);
    return fail.name;
}

Test(vmx_checks, a_valid_32bit_host_passes)
{
    valid_32bit_host();
    cr_assert_str_eq(failing_rule(), "");
}

Test(vmx_checks, a_32bit_host_needs_ss)
{
    valid_32bit_host();
    F(HOST_SS_SEL) = 0;
    cr_assert_str_eq(failing_rule(), "host_ss_nonnull_32bit");
    F(EXIT_CONTROLS) |= EXIT_HOST_ADDR_SPACE; /* a 64-bit host may have SS 0 ... */
    cr_assert_str_eq(failing_rule(), "host_addr_space_matches_mode"); /* ... in IA-32e mode */
}

Test(vmx_checks, a_32bit_host_rules)
{
    valid_32bit_host();
    F(HOST_RIP) = 1ull << 32;
    cr_assert_str_eq(failing_rule(), "host_32bit_rules");
    valid_32bit_host();
    F(HOST_CR4) |= CR4_PCIDE;
    cr_assert_str_eq(failing_rule(), "host_32bit_rules");
}

Test(vmx_checks, ia32e_guest_outside_ia32e_mode)
{
    valid_32bit_host();
    F(ENTRY_CONTROLS) |= ENTRY_IA32E_GUEST;
    cr_assert_str_eq(failing_rule(), "host_addr_space_matches_mode");
}

/* A 64-bit host: HOST_RIP canonical (the guest test's L1 cannot choose its HOST_RIP). */
Test(vmx_checks, a_64bit_host_needs_a_canonical_rip)
{
    valid_32bit_host();
    c->efer = EFER_LMA | EFER_LME;
    F(EXIT_CONTROLS) |= EXIT_HOST_ADDR_SPACE;
    F(HOST_CR4) |= CR4_PAE;
    F(HOST_RIP) = 0xffffffff81000000ull;
    cr_assert_str_eq(failing_rule(), "");
    F(HOST_RIP) = 1ull << 60;
    cr_assert_str_eq(failing_rule(), "host_64bit_rules");
}
