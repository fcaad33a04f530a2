/* Unit tests of the Hyper-V interface's options (hv/hyperv/hyperv.h): QEMU's property
 * names and older underscore spellings, values, hv-passthrough, the dependencies and
 * their messages, and -device hv-syndbg's properties. */
#include <criterion/criterion.h>
#include <string.h>

#include "hv/hyperv/hyperv.h"

static int parse(struct hyperv_config *cfg, const char *spec, char *err, size_t len)
{
    char buf[512];
    strcpy(buf, spec);
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        int r = hyperv_parse_cpu_item(cfg, t, err, len);
        if (r <= 0)
            return r == 0 ? -2 : -1;
    }
    return hyperv_config_check(cfg, err, len);
}

Test(hyperv, names_and_spellings)
{
    struct hyperv_config c = { 0 };
    char err[200];
    cr_assert_eq(parse(&c, "hv-relaxed,hv_vapic,hv-time=on,hv_vpindex,hv-synic,hv-stimer,"
                           "hv-spinlocks=0x1fff,hv-vendor-id=nestorHV", err, sizeof(err)), 0, "%s", err);
    cr_expect(c.features & BIT(HV_FEAT_RELAXED));
    cr_expect(c.features & BIT(HV_FEAT_VAPIC));
    cr_expect(c.features & BIT(HV_FEAT_TIME));
    cr_expect(c.features & BIT(HV_FEAT_STIMER));
    cr_expect(!(c.features & BIT(HV_FEAT_IPI)));
    cr_expect_eq(c.spinlock_retries, 0x1fff);
    cr_expect_str_eq(c.vendor_id, "nestorHV");
    /* off again */
    cr_assert_eq(hyperv_parse_cpu_item(&c, "hv-relaxed=off", err, sizeof(err)), 1);
    cr_expect(!(c.features & BIT(HV_FEAT_RELAXED)));
    /* not Hyper-V's */
    cr_expect_eq(hyperv_parse_cpu_item(&c, "+avx", err, sizeof(err)), 0);
    cr_expect_eq(hyperv_parse_cpu_item(&c, "vendor=AuthenticAMD", err, sizeof(err)), 0);
}

Test(hyperv, bad_values)
{
    struct hyperv_config c = { 0 };
    char err[200];
    cr_expect_eq(hyperv_parse_cpu_item(&c, "hv-spinlocks=12", err, sizeof(err)), -1);
    cr_expect(strstr(err, "0xfff"), "%s", err);
    cr_expect_eq(hyperv_parse_cpu_item(&c, "hv-spinlocks=x", err, sizeof(err)), -1);
    cr_expect_eq(hyperv_parse_cpu_item(&c, "hv-vendor-id=0123456789abc", err, sizeof(err)), -1);
    cr_expect_eq(hyperv_parse_cpu_item(&c, "hv-time=maybe", err, sizeof(err)), -1);
    cr_expect_eq(hyperv_parse_cpu_item(&c, "hv-warp-drive", err, sizeof(err)), -1);
    cr_expect(strstr(err, "unknown Hyper-V property"), "%s", err);
}

Test(hyperv, dependencies)
{
    char err[200];
    struct hyperv_config c = { 0 };
    cr_expect_eq(parse(&c, "hv-synic", err, sizeof(err)), -1);
    cr_expect(strstr(err, "hv-synic requires hv-vpindex"), "%s", err);
    c = (struct hyperv_config){ 0 };
    cr_expect_eq(parse(&c, "hv-vpindex,hv-stimer-direct,hv-stimer,hv-synic", err, sizeof(err)), 0, "%s", err);
    c = (struct hyperv_config){ 0 };
    cr_expect_eq(parse(&c, "hv-stimer-direct", err, sizeof(err)), -1);
    cr_expect(strstr(err, "hv-stimer-direct requires hv-stimer"), "%s", err);
    c = (struct hyperv_config){ 0 };
    cr_expect_eq(parse(&c, "hv-tlbflush-ext,hv-tlbflush", err, sizeof(err)), -1);
    cr_expect(strstr(err, "hv-tlbflush requires hv-vpindex"), "%s", err);
    c = (struct hyperv_config){ 0 };
    cr_expect_eq(parse(&c, "hv-ipi", err, sizeof(err)), -1);
    c = (struct hyperv_config){ 0 };
    cr_expect_eq(parse(&c, "hv-evmcs", err, sizeof(err)), -1);
    cr_expect(strstr(err, "hv-evmcs requires hv-vapic"), "%s", err);
    c = (struct hyperv_config){ 0 };
    cr_expect_eq(parse(&c, "hv-vapic,hv-evmcs", err, sizeof(err)), 0, "%s", err);
    cr_expect(c.evmcs_asked);
    c = (struct hyperv_config){ 0 };
    cr_expect_eq(parse(&c, "hv-syndbg", err, sizeof(err)), -1);
    cr_expect(strstr(err, "hv-syndbg requires"), "%s", err);
}

Test(hyperv, passthrough)
{
    struct hyperv_config c = { 0 };
    char err[200];
    cr_assert_eq(parse(&c, "hv_passthrough", err, sizeof(err)), 0, "%s", err);
    for (int f = 0; f < HV_FEAT_COUNT; f++)
        if (f != HV_FEAT_SYNDBG && f != HV_FEAT_SPINLOCKS)
            cr_expect(c.features & BIT(f), "feature %d", f);
    cr_expect(!(c.features & BIT(HV_FEAT_SYNDBG)));
    cr_expect_eq(c.spinlock_retries, 0xffffffffu);
    cr_expect_str_eq(c.vendor_id, "Microsoft Hv");
}

Test(hyperv, syndbg_device)
{
    struct hyperv_config c = { 0 };
    char err[200];
    cr_assert_eq(hyperv_parse_syndbg_device(&c, "", err, sizeof(err)), 0);
    cr_expect(c.syndbg.enabled);
    cr_expect_str_eq(c.syndbg.host_ip, "127.0.0.1");
    cr_expect_eq(c.syndbg.host_port, 50000);
    cr_assert_eq(hyperv_parse_syndbg_device(&c, "host_ip=10.0.0.2,host_port=50011,use_hcalls=on",
                                            err, sizeof(err)), 0, "%s", err);
    cr_expect_str_eq(c.syndbg.host_ip, "10.0.0.2");
    cr_expect_eq(c.syndbg.host_port, 50011);
    cr_expect(c.syndbg.use_hcalls);
    cr_expect_eq(hyperv_parse_syndbg_device(&c, "host_port=70000", err, sizeof(err)), -1);
    cr_expect_eq(hyperv_parse_syndbg_device(&c, "colour=blue", err, sizeof(err)), -1);
    cr_expect(strstr(err, "unknown property"), "%s", err);
}
