/* Unit tests of the state description (machine/state.h): every registered component's
 * description covers its whole struct; a machine's state survives a save/load round trip
 * byte for byte; a loader refuses sections of another version or layout, missing or
 * foreign components, truncation and values the code would index tables with. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "cpu/cpu.h"
#include "machine/machine.h"
#include "machine/state.h"

static struct machine a, b;

static const char *devices[] = { "pc-testdev", "pci-testdev", "hyperv-testdev" };

/* xen: with the Xen interface; hyperv: with every Hyper-V enlightenment and QEMU's
 * hyperv-testdev (both: Xen with viridian) */
static void make_with(struct machine *m, bool xen, bool hyperv)
{
    struct machine_config cfg = {
        .ram_size = 64 * MiB,
        .ncpus = 2,
        .console_in_fd = -1,
        .console_out_fd = -1,
        .deterministic = true,
        .ndevices = hyperv ? 3 : 2,
        .cpu_spec = hyperv ? "max,hv-passthrough" : NULL,
    };
    cfg.devices[0] = devices[0];
    cfg.devices[1] = devices[1];
    cfg.devices[2] = devices[2];
    if (xen) {
        char err[128];
        cr_assert_eq(xen_parse_option(&cfg.xen, NULL, err, sizeof(err)), 0);
    }
    cr_assert_eq(machine_create(m, &cfg), 0);
}

static void make(struct machine *m, bool xen)
{
    make_with(m, xen, false);
}

static void teardown(void)
{
    machine_destroy(&a);
    machine_destroy(&b);
}

Test(state, descriptions_cover_their_structs, .fini = teardown)
{
    make(&a, true);
    make(&b, false);
    cr_assert_gt(a.state.n, 20);
    for (size_t i = 0; i < a.state.n; i++) {
        char err[200] = "";
        const struct state_desc *d = a.state.e[i].desc;
        if (!d->nfields)
            continue; /* a section with only a variable part */
        cr_expect_eq(state_desc_check(d, err, sizeof(err)), 0, "%s: %s", d->name, err);
    }
}

/* A struct with a member its description forgets is caught. */
struct sample {
    u64 a;
    u32 b;
    u32 forgotten;
    u8 c;
};
static const struct state_field sample_fields[] = {
    STATE_FIELD(struct sample, a), STATE_FIELD(struct sample, b), STATE_FIELD(struct sample, c),
};
static const struct state_desc sample_desc = STATE_DESC("sample", 1, struct sample, sample_fields);
static const struct state_field sample_tail_fields[] = {
    STATE_FIELD(struct sample, a), STATE_FIELD(struct sample, b),
    STATE_FIELD(struct sample, forgotten),
};
static const struct state_desc sample_tail_desc =
    STATE_DESC("sample", 1, struct sample, sample_tail_fields);

/* The Hyper-V interface's sections (a VP's and the debugger's are written by its save
 * function) cover their structs, and a Hyper-V machine (with Xen too) round-trips. */
Test(state, hyperv_descriptions_and_round_trip, .fini = teardown)
{
    char err[300] = "";
    for (int i = 0; hyperv_state_descs(i); i++)
        cr_expect_eq(state_desc_check(hyperv_state_descs(i), err, sizeof(err)), 0, "%s: %s",
                     hyperv_state_descs(i)->name, err);
    make_with(&a, true, true);
    make_with(&b, true, true);
    for (size_t i = 0; i < a.state.n; i++)
        if (a.state.e[i].desc->nfields)
            cr_expect_eq(state_desc_check(a.state.e[i].desc, err, sizeof(err)), 0, "%s: %s",
                         a.state.e[i].desc->name, err);
    /* an enabled SynIC with a message page, a timer and a crash parameter */
    cr_assert(hyperv_msr_write(a.hyperv, a.cpu[1], 0x40000080, 1));
    cr_assert(hyperv_msr_write(a.hyperv, a.cpu[1], 0x40000083, 0x5000 | 1));
    cr_assert(hyperv_msr_write(a.hyperv, a.cpu[1], 0x40000091, 0x30052));
    cr_assert(hyperv_msr_write(a.hyperv, a.cpu[1], 0x400000b1, 123456789));
    cr_assert(hyperv_msr_write(a.hyperv, a.cpu[1], 0x400000b0, 0x10001));
    cr_assert(hyperv_msr_write(a.hyperv, a.cpu[0], 0x40000102, 0xfeedull));
    struct state_buf s1 = { 0 }, s2 = { 0 };
    machine_state_save(&a, &s1);
    cr_assert(!s1.oom);
    cr_assert_eq(machine_state_load(&b, s1.p, s1.len, err, sizeof(err)), 0, "%s", err);
    u64 v = 0;
    cr_expect(hyperv_msr_read(b.hyperv, b.cpu[1], 0x40000091, &v) && v == 0x30052);
    cr_expect(hyperv_msr_read(b.hyperv, b.cpu[1], 0x400000b1, &v) && v == 123456789);
    cr_expect(hyperv_msr_read(b.hyperv, b.cpu[1], 0x400000b0, &v) && v == 0x10001);
    cr_expect(hyperv_msr_read(b.hyperv, b.cpu[0], 0x40000102, &v) && v == 0xfeed);
    machine_state_save(&b, &s2);
    cr_expect(s1.len == s2.len && !memcmp(s1.p, s2.p, s1.len), "a reloaded machine saves differently");
    state_buf_free(&s1);
    state_buf_free(&s2);
}

Test(state, forgotten_members_are_found)
{
    char err[200];
    cr_expect_eq(state_desc_check(&sample_desc, err, sizeof(err)), -1);
    cr_expect(strstr(err, "before c"), "%s", err);
    cr_expect_eq(state_desc_check(&sample_tail_desc, err, sizeof(err)), -1);
    cr_expect(strstr(err, "at the end"), "%s", err);
}

static void save(struct machine *m, struct state_buf *buf)
{
    *buf = (struct state_buf){ 0 };
    machine_state_save(m, buf);
    cr_assert(!buf->oom);
}

Test(state, round_trip, .fini = teardown)
{
    make(&a, false);
    make(&b, false);
    /* some state that differs from a fresh machine's */
    a.cpu[1]->gpr[R_RBX] = 0x1122334455667788ull;
    a.cpu[1]->seg[SEG_DS].sel = 0x2b;
    a.cpu[0]->fpu.xmm[3][7] = 0x5a;
    a.cpu[0]->nmi_pending = true;
    a.cpu[0]->intr_shadow = SHADOW_MOV_SS;
    a.cpu[1]->icount = 12345;
    a.started[1] = true;
    a.irq_level = 0x101;
    struct state_buf s1, s2;
    save(&a, &s1);
    char err[300] = "";
    cr_assert_eq(machine_state_load(&b, s1.p, s1.len, err, sizeof(err)), 0, "%s", err);
    cr_expect_eq(b.cpu[1]->gpr[R_RBX], 0x1122334455667788ull);
    cr_expect_eq(b.cpu[1]->seg[SEG_DS].sel, 0x2b);
    cr_expect_eq(b.cpu[0]->fpu.xmm[3][7], 0x5a);
    cr_expect(b.cpu[0]->nmi_pending);
    cr_expect_eq(b.cpu[0]->intr_shadow, SHADOW_MOV_SS);
    cr_expect_eq(b.cpu[1]->icount, 12345);
    save(&b, &s2);
    cr_expect_eq(s1.len, s2.len);
    cr_expect(s1.len == s2.len && !memcmp(s1.p, s2.p, s1.len), "a reloaded machine saves differently");
    state_buf_free(&s1);
    state_buf_free(&s2);
}

/* Finds a field record in a serialised state: the offset of its value. */
static size_t find_field(const struct state_buf *s, const char *section, const char *field)
{
    /* the section's name, then (a little later) the field's name with its length */
    size_t sl = strlen(section), fl = strlen(field);
    for (size_t i = 0; i + 8 + sl < s->len; i++) {
        if (memcmp(s->p + i, "SECT", 4) || s->p[i + 4] != sl || memcmp(s->p + i + 8, section, sl))
            continue;
        for (size_t j = i + 8 + sl; j + 4 + fl + 4 < s->len; j++)
            if (s->p[j] == fl && !s->p[j + 1] && !s->p[j + 2] && !s->p[j + 3] &&
                !memcmp(s->p + j + 4, field, fl))
                return j + 4 + fl + 4;
    }
    return 0;
}

static void expect_refused(struct state_buf *s, const char *want)
{
    char err[300] = "";
    cr_expect_eq(machine_state_load(&b, s->p, s->len, err, sizeof(err)), -1, "accepted (%s)", want);
    cr_expect(strstr(err, want), "'%s' does not say '%s'", err, want);
}

Test(state, refusals, .fini = teardown)
{
    make(&a, false);
    make(&b, false);
    struct state_buf s;
    save(&a, &s);
    u8 *copy = malloc(s.len);
    memcpy(copy, s.p, s.len);

    /* truncated */
    struct state_buf t = s;
    t.len = s.len - 100;
    expect_refused(&t, "truncated");
    /* the cpu section's mode: an impossible value */
    size_t off = find_field(&s, "cpu", "mode");
    cr_assert(off);
    s.p[off] = 99;
    expect_refused(&s, "impossible run state");
    memcpy(s.p, copy, s.len);
    /* a bool holding 2 */
    off = find_field(&s, "cpu", "nmi_pending");
    cr_assert(off);
    s.p[off] = 2;
    expect_refused(&s, "impossible value");
    memcpy(s.p, copy, s.len);
    /* a field renamed (another layout) */
    off = find_field(&s, "cpu", "icount");
    cr_assert(off);
    s.p[off - 4 - 6] = 'I';
    expect_refused(&s, "Icount");
    memcpy(s.p, copy, s.len);
    /* another version of a component: the word after the instance */
    off = find_field(&s, "uart", "ier");
    cr_assert(off);
    size_t sec = 0;
    for (size_t i = 0; i < off; i++)
        if (!memcmp(s.p + i, "SECT", 4))
            sec = i;
    s.p[sec + 8 + 4 + 4] = 7; /* magic, name length, "uart", instance, version */
    expect_refused(&s, "version 7");
    memcpy(s.p, copy, s.len);
    /* a component this machine lacks: the state of a machine with other devices */
    struct machine c;
    struct machine_config cfg = { .ram_size = 64 * MiB, .ncpus = 2, .console_in_fd = -1,
                                  .console_out_fd = -1, .deterministic = true };
    cr_assert_eq(machine_create(&c, &cfg), 0);
    struct state_buf sc;
    save(&c, &sc);
    machine_destroy(&c);
    expect_refused(&sc, "lacks component");
    state_buf_free(&sc);
    /* the UART's FIFO index out of range */
    off = find_field(&s, "uart", "rx_head");
    cr_assert(off);
    s.p[off] = 200;
    expect_refused(&s, "receive FIFO");
    free(copy);
    state_buf_free(&s);
}
