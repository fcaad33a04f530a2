/* -cpu ...,hv-*: Hyper-V's hypercall ABI (TLFS 3) in 64-bit mode: calls through the
 * hypercall page and by a raw VMCALL, the result word (status, reps completed), unknown
 * codes (2), reserved control bits, reps on a simple call, no reps on a rep call, a
 * variable header on a call without one (3), an unaligned input page (4), CPL 3 (#UD);
 * HvFlushVirtualAddressSpace/List and their Ex forms, slow and fast (XMM input): bad flags
 * (5), bad processor sets (3), and a flush that really flushes, on this vCPU and on vCPU
 * 1; HvSendSyntheticClusterIpi and its Ex form (sparse and all) delivering to vCPU 1,
 * vectors below 16 (3); HvNotifyLongSpinWait; HvPostMessage and HvSignalEvent to unknown
 * connections (18), a fast HvPostMessage (2). With the enlightenments off their codes are
 * unknown (the -min run).
 * QEMU TCG has no Hyper-V interface: the test skips there.
 * guest: cpu=max,hv-passthrough smp=2 name=hv_hcall */
/* guest: cpu=max,hv-vpindex smp=2 name=hv_hcall-min */
#include "rt.h"
#include "hyperv.h"

#define GUEST_OS_ID 0x40000000
#define HYPERCALL 0x40000001

#define HC_FAST BIT(16)
#define HC_VAR(n) ((u64)(n) << 17)
#define HC_REP(n) ((u64)(n) << 32)
#define HC_IDX(n) ((u64)(n) << 48)

enum { FLUSH_SPACE = 2, FLUSH_LIST = 3, SPIN_WAIT = 8, SEND_IPI = 0xb, FLUSH_SPACE_EX = 0x13,
       FLUSH_LIST_EX = 0x14, SEND_IPI_EX = 0x15, POST_MESSAGE = 0x5c, SIGNAL_EVENT = 0x5d };
enum { ST_OK = 0, ST_CODE = 2, ST_INPUT = 3, ST_ALIGN = 4, ST_PARAM = 5, ST_CONN = 0x12 };

static u8 hc_page[4096] ALIGNED(4096);
static u64 in_pg[512] ALIGNED(4096);
static u64 out_pg[512] ALIGNED(4096);
static bool amd, full;

static u64 hc(u64 ctl, u64 in, u64 out) { return hv_hypercall_via(hc_page, ctl, in, out); }
static u64 hc_raw(u64 ctl, u64 in, u64 out) { return hv_hypercall_raw(amd, ctl, in, out); }

/* a fast call with XMM0-XMM5 loaded from x[0..11] (XMM0 low quadword first) */
static u64 hc_xmm(u64 ctl, u64 rdx, u64 r8v, const u64 x[12])
{
    u64 r;
    register u64 r8 asm("r8") = r8v;
    asm volatile("movdqu 0(%[x]), %%xmm0\n\tmovdqu 16(%[x]), %%xmm1\n\t"
                 "movdqu 32(%[x]), %%xmm2\n\tmovdqu 48(%[x]), %%xmm3\n\t"
                 "movdqu 64(%[x]), %%xmm4\n\tmovdqu 80(%[x]), %%xmm5\n\t"
                 "call *%[p]"
                 : "=a"(r), "+c"(ctl), "+d"(rdx), "+r"(r8)
                 : [p] "r"(hc_page), [x] "r"(x)
                 : "r9", "r10", "r11", "memory"); /* no XMM clobbers: -mgeneral-regs-only code never holds values there */
    return r;
}

static ulong user_hcall(ulong ctl)
{
    return hc_raw(ctl, 0, 0);
}

static void cpl3_call(void *arg)
{
    (void)arg;
    run_user(user_hcall, SPIN_WAIT, 0);
}

/* ---------------------------------------------------------------- vCPU 1 */
static struct page_table pt;
#define TVA 0x8000000000ull /* 512 GiB: a 4 KiB page of this test's tables */
static u64 pg_a[512] ALIGNED(4096), pg_b[512] ALIGNED(4096);
static void *tpte;
static bool now_b;

static volatile int ap_op, ap_req, ap_ack;
static volatile u64 ap_val;
static volatile int irq_count[2][256];

static u64 rd_tva(void) { return *(volatile u64 *)TVA; }

static void irq_handler(struct exc_frame *f)
{
    int cpu = apic_id() ? 1 : 0;
    irq_count[cpu][(u8)f->vector]++;
    apic_eoi();
}

enum { AP_LOAD_CR3 = 1, AP_READ };

static void ap_main(int index)
{
    (void)index;
    int seen = 0;
    sti();
    for (;;) {
        while (ap_req == seen)
            pause();
        seen = ap_req;
        cli();
        if (ap_op == AP_LOAD_CR3)
            write_cr3(pt.root);
        ap_val = rd_tva();
        sti();
        ap_ack = seen;
    }
}

static u64 ap_do(int op)
{
    ap_op = op;
    int want = ++ap_req;
    for (long i = 0; i < 100000000 && ap_ack != want; i++)
        pause();
    return ap_ack == want ? ap_val : ~0ull;
}

static void swap_page(void)
{
    now_b = !now_b;
    pte_set(&pt, tpte, (u64)(now_b ? pg_b : pg_a) | PTE_P | PTE_W);
}

static u64 cur_val(void) { return now_b ? pg_b[0] : pg_a[0]; }

/* ---------------------------------------------------------------- the ABI */
static void test_abi(void)
{
    TEST_EQ(hc(SPIN_WAIT, 0, 0), ST_OK, "HvNotifyLongSpinWait through the page: RAX 0");
    TEST_EQ(hc_raw(SPIN_WAIT, 0, 0), ST_OK, "HvNotifyLongSpinWait by a raw hypercall: RAX 0");
    TEST_EQ(hc(SPIN_WAIT | HC_FAST, 0, 0), ST_OK, "... fast");
    static const u16 unknown[] = { 0x0000, 0x0001, 0x0046, 0x00ff, 0x7fff, 0x8001, 0xffff };
    for (size_t i = 0; i < ARRAY_SIZE(unknown); i++) {
        char what[64];
        snprintf(what, sizeof(what), "code %#x: invalid hypercall code", unknown[i]);
        TEST_EQ(hc(unknown[i], (u64)in_pg, (u64)out_pg), ST_CODE, what);
    }
    TEST_EQ(hc(SPIN_WAIT | BIT(27), 0, 0), ST_INPUT, "reserved control bit 27: invalid input");
    TEST_EQ(hc(SPIN_WAIT | BIT(30), 0, 0), ST_INPUT, "reserved control bit 30: invalid input");
    TEST_EQ(hc(SPIN_WAIT | BIT(44), 0, 0), ST_INPUT, "reserved control bit 44: invalid input");
    TEST_EQ(hc(SPIN_WAIT | BIT(63), 0, 0), ST_INPUT, "reserved control bit 63: invalid input");
    TEST_EQ(hc(SPIN_WAIT | HC_REP(1), 0, 0), ST_INPUT, "a rep count on a simple call: invalid input");
    TEST_EQ(hc(SPIN_WAIT | HC_IDX(1), 0, 0), ST_INPUT, "a rep start on a simple call: invalid input");
    TEST_EQ(hc(SPIN_WAIT | HC_VAR(1), 0, 0), ST_INPUT, "a variable header on HvNotifyLongSpinWait: invalid input");
    TEST_EQ(exc_catch(cpl3_call, NULL), UD_VECTOR, "a hypercall at CPL 3: #UD");
}

/* ---------------------------------------------------------------- TLB flushes */
static void flush_errors(void)
{
    memset(in_pg, 0, sizeof(in_pg));
    in_pg[2] = BIT(0);
    TEST_EQ(hc(FLUSH_SPACE, (u64)in_pg, 0), ST_OK, "HvFlushVirtualAddressSpace slow: RAX 0");
    TEST_EQ(hc(FLUSH_SPACE | HC_REP(1), (u64)in_pg, 0), ST_INPUT, "... with a rep count: invalid input");
    TEST_EQ(hc(FLUSH_SPACE | HC_VAR(1), (u64)in_pg, 0), ST_INPUT, "... with a variable header: invalid input");
    TEST_EQ(hc(FLUSH_SPACE, (u64)in_pg + 4, 0), ST_ALIGN, "... input GPA not 8-byte aligned: invalid alignment");
    in_pg[1] = BIT(4);
    TEST_EQ(hc(FLUSH_SPACE, (u64)in_pg, 0), ST_PARAM, "... undefined flag bit 4: invalid parameter");
    in_pg[1] = 0;
    in_pg[3] = TVA;
    in_pg[4] = TVA + 4096;
    TEST_EQ(hc(FLUSH_LIST | HC_REP(2), (u64)in_pg, 0), HC_REP(2), "HvFlushVirtualAddressList rep 2: 2 reps completed");
    TEST_EQ(hc(FLUSH_LIST, (u64)in_pg, 0), ST_INPUT, "... rep count 0: invalid input");
    TEST_EQ(hc(FLUSH_LIST | HC_REP(2) | HC_VAR(1), (u64)in_pg, 0), ST_INPUT, "... with a variable header: invalid input");
    /* Ex: space, flags, vpset {format, valid_bank_mask, banks...}, gvas */
    memset(in_pg, 0, sizeof(in_pg));
    in_pg[2] = 0;     /* sparse 4K */
    in_pg[3] = 1;     /* bank 0 */
    in_pg[4] = BIT(0);
    in_pg[5] = TVA;
    TEST_EQ(hc(FLUSH_SPACE_EX | HC_VAR(1), (u64)in_pg, 0), ST_OK, "HvFlushVirtualAddressSpaceEx sparse: RAX 0");
    TEST_EQ(hc(FLUSH_SPACE_EX | HC_VAR(2), (u64)in_pg, 0), ST_INPUT, "... var count 2 for one bank: invalid input");
    TEST_EQ(hc(FLUSH_SPACE_EX, (u64)in_pg, 0), ST_INPUT, "... var count 0 for one bank: invalid input");
    TEST_EQ(hc(FLUSH_SPACE_EX | HC_VAR(1) | HC_REP(1), (u64)in_pg, 0), ST_INPUT, "... with a rep count: invalid input");
    TEST_EQ(hc(FLUSH_LIST_EX | HC_VAR(1) | HC_REP(1), (u64)in_pg, 0), HC_REP(1), "HvFlushVirtualAddressListEx rep 1: 1 rep completed");
    TEST_EQ(hc(FLUSH_LIST_EX | HC_VAR(1), (u64)in_pg, 0), ST_INPUT, "... rep count 0: invalid input");
    in_pg[2] = 2;
    TEST_EQ(hc(FLUSH_SPACE_EX | HC_VAR(1), (u64)in_pg, 0), ST_INPUT, "vpset format 2: invalid input");
    in_pg[2] = 1;
    in_pg[3] = 0;
    TEST_EQ(hc(FLUSH_SPACE_EX, (u64)in_pg, 0), ST_OK, "HvFlushVirtualAddressSpaceEx all processors: RAX 0");
    in_pg[1] = BIT(5);
    TEST_EQ(hc(FLUSH_SPACE_EX, (u64)in_pg, 0), ST_PARAM, "... undefined flag bit 5: invalid parameter");
}

/* one flush of the mapping of TVA: ret is the hypercall's result word */
typedef u64 (*flush_fn)(u64 mask);
static u64 fl_space(u64 mask)
{
    memset(in_pg, 0, 64);
    in_pg[2] = mask;
    return hc(FLUSH_SPACE, (u64)in_pg, 0);
}
static u64 fl_space_allflag(u64 mask)
{
    memset(in_pg, 0, 64);
    in_pg[1] = BIT(0); /* HV_FLUSH_ALL_PROCESSORS */
    in_pg[2] = mask;
    return hc(FLUSH_SPACE, (u64)in_pg, 0);
}
static u64 fl_list(u64 mask)
{
    memset(in_pg, 0, 64);
    in_pg[2] = mask;
    in_pg[3] = TVA;
    return hc(FLUSH_LIST | HC_REP(1), (u64)in_pg, 0) - HC_REP(1);
}
static u64 fl_space_ex(u64 mask)
{
    memset(in_pg, 0, 64);
    in_pg[3] = 1;
    in_pg[4] = mask;
    return hc(FLUSH_SPACE_EX | HC_VAR(1), (u64)in_pg, 0);
}
static u64 fl_list_ex(u64 mask)
{
    memset(in_pg, 0, 64);
    in_pg[3] = 1;
    in_pg[4] = mask;
    in_pg[5] = TVA;
    return hc(FLUSH_LIST_EX | HC_VAR(1) | HC_REP(1), (u64)in_pg, 0) - HC_REP(1);
}
static u64 fl_space_fast(u64 mask)
{
    u64 x[12] = { mask };
    return hc_xmm(FLUSH_SPACE | HC_FAST, 0, 0, x);
}
static u64 fl_list_fast(u64 mask)
{
    u64 x[12] = { mask, TVA };
    return hc_xmm(FLUSH_LIST | HC_FAST | HC_REP(1), 0, 0, x) - HC_REP(1);
}
static u64 fl_space_ex_fast(u64 mask)
{
    u64 x[12] = { 0, 1, mask };
    return hc_xmm(FLUSH_SPACE_EX | HC_FAST | HC_VAR(1), 0, 0, x);
}
static u64 fl_list_ex_fast(u64 mask)
{
    u64 x[12] = { 0, 1, mask, TVA };
    return hc_xmm(FLUSH_LIST_EX | HC_FAST | HC_VAR(1) | HC_REP(1), 0, 0, x) - HC_REP(1);
}

static void flush_check(const char *what, flush_fn fn, u64 mask, bool ap)
{
    u64 before = ap ? ap_do(AP_READ) : rd_tva();
    TEST_EQ(before, cur_val(), "the mapping before");
    swap_page();
    u64 stale = ap ? ap_do(AP_READ) : rd_tva();
    if (stale != before) {
        test_skip("%s: the old translation was not cached", what);
        return;
    }
    u64 r = fn(mask);
    u64 after = ap ? ap_do(AP_READ) : rd_tva();
    char buf[128];
    snprintf(buf, sizeof(buf), "%s: result", what);
    TEST_EQ(r, ST_OK, buf);
    snprintf(buf, sizeof(buf), "%s: %s sees the new mapping", what, ap ? "vCPU 1" : "this vCPU");
    TEST_EQ(after, cur_val(), buf);
}

static void test_flush_effect(bool have_ap)
{
    for (int i = 0; i < 512; i++)
        pg_a[i] = 0xaaaaaaaa00000000ull + i, pg_b[i] = 0xbbbbbbbb00000000ull + i;
    pt_init(&pt, PT_4LEVEL);
    pt_map_identity(&pt, PTE_W | PTE_U);
    pt_map(&pt, TVA, (u64)pg_a, 4096, 4096, PTE_W);
    int lvl;
    tpte = pt_leaf(&pt, TVA, &lvl);
    pt_activate(&pt, 0);
    flush_check("HvFlushVirtualAddressSpace, self", fl_space, BIT(0), false);
    flush_check("HvFlushVirtualAddressSpace, empty mask (all)", fl_space, 0, false);
    flush_check("HvFlushVirtualAddressSpace, vCPU 1 + HV_FLUSH_ALL_PROCESSORS", fl_space_allflag, BIT(1), false);
    flush_check("HvFlushVirtualAddressList, self", fl_list, BIT(0), false);
    flush_check("HvFlushVirtualAddressSpaceEx, self", fl_space_ex, BIT(0), false);
    flush_check("HvFlushVirtualAddressListEx, self", fl_list_ex, BIT(0), false);
    flush_check("HvFlushVirtualAddressSpace fast (XMM0 mask), self", fl_space_fast, BIT(0), false);
    flush_check("HvFlushVirtualAddressList fast (XMM), self", fl_list_fast, BIT(0), false);
    flush_check("HvFlushVirtualAddressSpaceEx fast (XMM vpset), self", fl_space_ex_fast, BIT(0), false);
    flush_check("HvFlushVirtualAddressListEx fast (XMM), self", fl_list_ex_fast, BIT(0), false);
    if (have_ap) {
        TEST_EQ(ap_do(AP_LOAD_CR3), cur_val(), "vCPU 1 on the same tables");
        flush_check("HvFlushVirtualAddressSpace, vCPU 1", fl_space, BIT(1), true);
        flush_check("HvFlushVirtualAddressSpace fast, vCPU 1", fl_space_fast, BIT(1), true);
        flush_check("HvFlushVirtualAddressSpaceEx, vCPU 1", fl_space_ex, BIT(1), true);
        flush_check("HvFlushVirtualAddressListEx fast, vCPU 1", fl_list_ex_fast, BIT(1), true);
    }
}

/* ---------------------------------------------------------------- IPIs */
static bool wait_irq(int cpu, u8 v, int n)
{
    for (long i = 0; i < 2000000 && irq_count[cpu][v] < n; i++) {
        sti();
        asm volatile("nop");
        cli();
        pause();
    }
    return irq_count[cpu][v] >= n;
}

static void test_ipi(void)
{
    memset(in_pg, 0, 64);
    in_pg[0] = 0x70;
    in_pg[1] = BIT(1);
    TEST_EQ(hc(SEND_IPI, (u64)in_pg, 0), ST_OK, "HvSendSyntheticClusterIpi slow to vCPU 1: RAX 0");
    TEST_ASSERT(wait_irq(1, 0x70, 1), "... vCPU 1 takes vector 70h");
    TEST_EQ(irq_count[0][0x70], 0, "... and this vCPU does not");
    TEST_EQ(hc(SEND_IPI | HC_FAST, 0x71, BIT(1)), ST_OK, "HvSendSyntheticClusterIpi fast (RDX vector, R8 mask)");
    TEST_ASSERT(wait_irq(1, 0x71, 1), "... vCPU 1 takes vector 71h");
    TEST_EQ(hc(SEND_IPI | HC_FAST, 0x71 | BIT(32), BIT(1)), ST_INPUT, "... reserved upper half of RDX: invalid input");
    TEST_EQ(hc(SEND_IPI | HC_FAST, 15, BIT(1)), ST_INPUT, "... vector 15: invalid input");
    TEST_EQ(hc(SEND_IPI | HC_FAST | HC_REP(1), 0x71, BIT(1)), ST_INPUT, "... with a rep count: invalid input");
    in_pg[0] = 0x0f;
    TEST_EQ(hc(SEND_IPI, (u64)in_pg, 0), ST_INPUT, "HvSendSyntheticClusterIpi slow, vector 15: invalid input");
    /* Ex: vector, reserved, vpset */
    memset(in_pg, 0, 64);
    in_pg[0] = 0x72;
    in_pg[1] = 0;
    in_pg[2] = 1;
    in_pg[3] = BIT(1);
    TEST_EQ(hc(SEND_IPI_EX | HC_VAR(1), (u64)in_pg, 0), ST_OK, "HvSendSyntheticClusterIpiEx sparse {1}: RAX 0");
    TEST_ASSERT(wait_irq(1, 0x72, 1), "... vCPU 1 takes vector 72h");
    TEST_EQ(irq_count[0][0x72], 0, "... and this vCPU does not");
    TEST_EQ(hc(SEND_IPI_EX | HC_VAR(2), (u64)in_pg, 0), ST_INPUT, "... var count 2 for one bank: invalid input");
    in_pg[1] = 2;
    TEST_EQ(hc(SEND_IPI_EX | HC_VAR(1), (u64)in_pg, 0), ST_INPUT, "... vpset format 2: invalid input");
    in_pg[1] = 0;
    in_pg[0] = 0x0e;
    TEST_EQ(hc(SEND_IPI_EX | HC_VAR(1), (u64)in_pg, 0), ST_INPUT, "... vector 14: invalid input");
    memset(in_pg, 0, 64);
    in_pg[0] = 0x73;
    in_pg[1] = 1; /* HV_GENERIC_SET_ALL */
    TEST_EQ(hc(SEND_IPI_EX, (u64)in_pg, 0), ST_OK, "HvSendSyntheticClusterIpiEx all: RAX 0");
    TEST_ASSERT(wait_irq(1, 0x73, 1), "... vCPU 1 takes vector 73h");
    TEST_ASSERT(wait_irq(0, 0x73, 1), "... and so does this vCPU");
    u64 x[12] = { 1, BIT(1) }; /* valid_bank_mask, bank 0 */
    TEST_EQ(hc_xmm(SEND_IPI_EX | HC_FAST | HC_VAR(1), 0x74, 0, x), ST_OK,
            "HvSendSyntheticClusterIpiEx fast (RDX vector, R8 format, XMM0 mask and bank)");
    TEST_ASSERT(wait_irq(1, 0x74, 1), "... vCPU 1 takes vector 74h");
    TEST_EQ(irq_count[0][0x74], 0, "... and this vCPU does not");
}

/* ---------------------------------------------------------------- SynIC calls */
static void test_synic_calls(void)
{
    memset(in_pg, 0, 256);
    in_pg[0] = 0x4242;           /* connection id, reserved */
    in_pg[1] = 1 | (8ull << 32); /* message type 1, payload size 8 */
    TEST_EQ(hc(POST_MESSAGE, (u64)in_pg, 0), ST_CONN, "HvPostMessage to an unknown connection: 12h");
    TEST_EQ(hc(POST_MESSAGE | HC_FAST, 0x4242, 0), ST_CODE, "HvPostMessage fast: invalid hypercall code");
    TEST_EQ(hc(POST_MESSAGE, (u64)in_pg + 4, 0), ST_ALIGN, "HvPostMessage, input not 8-byte aligned: 4");
    TEST_EQ(hc(POST_MESSAGE | HC_REP(1), (u64)in_pg, 0), ST_INPUT, "HvPostMessage with a rep count: 3");
    TEST_EQ(hc(SIGNAL_EVENT | HC_FAST, 0x4242, 0), ST_CONN, "HvSignalEvent fast to an unknown connection: 12h");
    in_pg[0] = 0x4242;
    TEST_EQ(hc(SIGNAL_EVENT, (u64)in_pg, 0), ST_CONN, "HvSignalEvent slow to an unknown connection: 12h");
    TEST_EQ(hc(SIGNAL_EVENT, (u64)in_pg + 4, 0), ST_ALIGN, "HvSignalEvent, input not 8-byte aligned: 4");
    TEST_EQ(hc(SIGNAL_EVENT | HC_FAST, 0x4242 | BIT(56), 0), ST_INPUT, "HvSignalEvent, reserved bits 63:48: 3");
}

static void test_off_codes(void)
{
    static const u16 codes[] = { FLUSH_SPACE, FLUSH_LIST, FLUSH_SPACE_EX, FLUSH_LIST_EX, SEND_IPI,
                                 SEND_IPI_EX, POST_MESSAGE, SIGNAL_EVENT };
    memset(in_pg, 0, 256);
    for (size_t i = 0; i < ARRAY_SIZE(codes); i++) {
        char what[80];
        snprintf(what, sizeof(what), "code %#x with its enlightenment off: invalid hypercall code", codes[i]);
        u64 rep = codes[i] == FLUSH_LIST || codes[i] == FLUSH_LIST_EX ? HC_REP(1) : 0;
        TEST_EQ(hc(codes[i] | rep, (u64)in_pg, 0) & 0xffff, ST_CODE, what);
    }
}

static bool mentions(const char *s, const char *word)
{
    for (size_t n = strlen(word); *s; s++)
        if (strncmp(s, word, n) == 0)
            return true;
    return false;
}

void test_main(void)
{
    char spec[512] = "";
    rt_cmdline_value("cpu", spec, sizeof(spec));
    full = mentions(spec, "hv-passthrough");
    amd = mentions(spec, "AuthenticAMD");
    if (cpuid(0x40000001).a != 0x31237648) {
        if (on_qemu_tcg()) {
            test_skip("QEMU TCG has no Hyper-V interface");
            return;
        }
        panic("no Hyper-V interface (CPUID 40000001h)");
    }
    apic_enable();
    for (int v = 0x70; v < 0x78; v++)
        exc_set_handler(v, irq_handler);
    memset(hc_page, 0xcc, sizeof(hc_page));
    wrmsr(GUEST_OS_ID, 0x8100000000050a00ull);
    wrmsr(HYPERCALL, (u64)hc_page | 1);
    bool have_ap = smp_start(ap_main, 1, 2000000) == 1;
    TEST_ASSERT(have_ap, "vCPU 1 started");
    cli();

    test_abi();
    if (!full) {
        test_off_codes();
        return;
    }
    flush_errors();
    test_flush_effect(have_ap);
    if (have_ap)
        test_ipi();
    test_synic_calls();
}
