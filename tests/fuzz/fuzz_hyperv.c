/* libFuzzer target: the Hyper-V interface (src/hv/hyperv/) as a guest drives it, through
 * the machine's own exit routing. Each input builds a machine with 2 vCPUs and
 * -cpu max,hv-passthrough (the first byte picks the variant: plain, with -xen too, where
 * Hyper-V's hypercalls are those with EAX bit 31 set, or with hv-syndbg and its device
 * pointed at a closed local UDP port, use_hcalls=on), plus -device hyperv-testdev, and
 * then runs a sequence of operations decoded from the rest:
 *   WRMSR/RDMSR of any index in 40000000h-400001FFh (steered towards the known ones) with
 *   arbitrary values (page MSRs steered to pages in and out of RAM); hypercalls with any
 *   control word, input/output GPAs, registers and XMM0-5, in 64-bit, compatibility,
 *   32-bit, 16-bit protected and real mode and at CPL 3, either as the VMCALL exit or
 *   executed for real through the hypercall page; guest memory writes at the GPAs the
 *   calls and pages use (plus planted HvPostMessage/flush/IPI inputs); the virtual clock
 *   run forward so that synthetic timers fire; interrupt acknowledges, LAPIC EOIs, the
 *   VP assist page's EOI avoidance; TSC writes; hyperv-testdev commands (SINT routes,
 *   message and event connections); x2APIC on and off; a partition reset.
 * Invariants checked (abort() on a violation), besides ASan/UBSan:
 *   - every hypercall result: a known HV_STATUS, bits 63:44 and 31:16 zero, reps
 *     completed 0 for a simple call and at most the rep count (the count on success);
 *     reserved control bits HV_STATUS_INVALID_HYPERCALL_INPUT whatever the code, else an
 *     unknown code HV_STATUS_INVALID_HYPERCALL_CODE; registers other than the result
 *     (RAX, or EDX:EAX outside 64-bit mode) and XMM unchanged; real mode, virtual-8086
 *     and CPL > 0 get #UD with nothing changed; with Xen on, a call without bit 31 is
 *     Xen's (xen_version answers);
 *   - MSRs: indices outside the implemented set #GP on read and write; a rejected write
 *     leaves the read value unchanged; plain registers read back what was accepted;
 *     SINTs refuse vectors below 16 unless masked; VP_INDEX, SVERSION, the frequencies,
 *     CRASH_CTL and TIME_REF_COUNT (the virtual clock / 100 within a unit) read as
 *     they must; VP_RUNTIME never goes back; a locked hypercall page MSR stays;
 *   - the reference TSC page, while nobody touched it, gives TIME_REF_COUNT within 2;
 *   - CPUID 40000000h/40000001h stable ("Microsoft Hv", "Hv#1"; Xen's at 40000100h);
 *   - a busy SynIC message slot is never overwritten (only its MessagePending flag set);
 *     a timer-expired message is well formed (size 24, a timer whose SINT is the slot's,
 *     expiration <= delivery <= now);
 *   - an auto-EOI SINT's vector is out of service once acknowledged. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/exec.h"
#include "dev/dev.h"
#include "hv/hyperv/hyperv.h"
#include "machine/machine.h"

#define RAM (2 * MiB)
#define PML4 0x1000u
#define PDPT 0x2000u
#define PD 0x3000u
#define HLT_AT 0x7000u
#define STACK 0x8000u
#define HOT 0x10000u     /* 16 pages the page MSRs and the hypercalls are steered to */
#define HOT_PAGES 16u
#define APIC 0xfee00000ull

/* one machine per variant, made once; each input starts from its state and RAM as made
 * (machine_state_load, and the pages the dirty log names copied back) */
static struct machine machines[3], *mp;
static struct state_buf pristine[3];
static u8 *pristine_ram[3];
static int variant;
static u32 sig0s[3][4], sig1s[3][4];
#define sig0 sig0s[variant]
#define sig1 sig1s[variant]
static u64 last_ref, last_runtime[2];

#define CHECK(cond, ...)                                                                   \
    do {                                                                                   \
        if (!(cond)) {                                                                     \
            fprintf(stderr, "fuzz_hyperv: invariant broken at line %d: %s: ", __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                                  \
            fprintf(stderr, "\n");                                                         \
            abort();                                                                       \
        }                                                                                  \
    } while (0)

static u64 take(const u8 **p, size_t *n, unsigned bytes)
{
    u64 v = 0;
    for (unsigned i = 0; i < bytes && *n; i++, (*p)++, (*n)--)
        v |= (u64)**p << (8 * i);
    return v;
}

/* ---- the machine's exits, as the engine raises them ---- */
static enum intercept_result ev_raise(struct cpu *c, struct cpu_event *ev)
{
    enum intercept_result r = c->ops->intercept(c, ev, c->ops_opaque);
    return r == INTERCEPT_STOP ? INTERCEPT_HANDLED : r;
}

static bool msr_rd(struct cpu *c, u32 index, u64 *v)
{
    struct cpu_event ev = { .kind = EV_MSR_READ, .u.msr = { index, 0 } };
    enum intercept_result r = ev_raise(c, &ev);
    CHECK(r == INTERCEPT_HANDLED || r == INTERCEPT_FAULT, "rdmsr %#x: result %d", index, r);
    *v = ev.u.msr.value;
    return r == INTERCEPT_HANDLED;
}

static bool msr_wr(struct cpu *c, u32 index, u64 v)
{
    struct cpu_event ev = { .kind = EV_MSR_WRITE, .u.msr = { index, v } };
    enum intercept_result r = ev_raise(c, &ev);
    CHECK(r == INTERCEPT_HANDLED || r == INTERCEPT_FAULT, "wrmsr %#x: result %d", index, r);
    return r == INTERCEPT_HANDLED;
}

static void cpuid_hv(struct cpu *c, u32 leaf, u32 r[4])
{
    struct cpu_event ev = { .kind = EV_CPUID, .u.cpuid = { .leaf = leaf } };
    CHECK(ev_raise(c, &ev) == INTERCEPT_HANDLED, "cpuid %#x not answered", leaf);
    r[0] = ev.u.cpuid.eax, r[1] = ev.u.cpuid.ebx, r[2] = ev.u.cpuid.ecx, r[3] = ev.u.cpuid.edx;
}

static void mmio(struct cpu *c, u64 gpa, bool write, u64 *v)
{
    struct cpu_event ev = { .kind = EV_MMIO, .u.mmio = { gpa, 4, write, write ? *v : 0 } };
    ev_raise(c, &ev);
    if (!write)
        *v = ev.u.mmio.value;
}

static void io_out32(struct cpu *c, u16 port, u32 v)
{
    struct cpu_event ev = { .kind = EV_IO, .u.io = { port, 4, true, v } };
    ev_raise(c, &ev);
}

/* ---- the implemented MSRs (TLFS numbers; hv-passthrough, plus the debugger's) ---- */
static bool msr_known(u32 i)
{
    u32 o = i - 0x40000000u;
    if (o <= 3 || o == 0x10 || (o >= 0x20 && o <= 0x23) || (o >= 0x70 && o <= 0x73) ||
        (o >= 0x80 && o <= 0x84) || (o >= 0x90 && o <= 0x9f) || (o >= 0xb0 && o <= 0xb7) ||
        (o >= 0x100 && o <= 0x108))
        return true;
    return variant == 2 && ((o >= 0xf1 && o <= 0xf5) || o == 0xff);
}

static const u16 msr_list[] = {
    0x00, 0x01, 0x02, 0x03, 0x10, 0x20, 0x21, 0x22, 0x23, 0x70, 0x71, 0x72, 0x73,
    0x80, 0x81, 0x82, 0x83, 0x84, 0x90, 0x91, 0x92, 0x93, 0x9f, 0xb0, 0xb1, 0xb2, 0xb3,
    0xb4, 0xb5, 0xb6, 0xb7, 0xf0, 0xf1, 0xf2, 0xf3, 0xf4, 0xf5, 0xff, 0x100, 0x104,
    0x105, 0x106, 0x107, 0x108, 0x83, 0x84, 0xb0, 0xb1, 0x73, 0x21,
};

/* A guest-physical address: in the hot pages (aligned or not, at a page's end), beyond
 * RAM, the APIC page, or raw. */
static u64 steer_gpa(u64 raw)
{
    u64 page = HOT + ((raw >> 3) % HOT_PAGES) * 0x1000;
    switch (raw & 7) {
    case 0: case 1: case 2: return page + ((raw >> 8) & 0xff8);
    case 3: return page + ((raw >> 8) & 0xfff);
    case 4: return page + 0xff8 + ((raw >> 8) & 7);
    case 5: return (raw >> 8) & 1 ? RAM + ((raw >> 9) & 0xfff000) : APIC;
    case 6: return raw >> 3;
    default: return raw;
    }
}

/* An MSR value: a page MSR's GPA with enable, small numbers, a SINT/timer-like word, raw */
static u64 steer_msr_value(u32 index, u64 raw)
{
    switch (raw & 3) {
    case 0: return (steer_gpa(raw >> 2) & ~0xfffull) | ((raw >> 40) & 1 ? 1 : 0) | ((raw >> 41) & 2);
    case 1: return (raw >> 2) & 0xff;
    case 2:
        if (index >= 0x400000b0u && index <= 0x400000b7u && !(index & 1)) /* stimer config */
            return ((raw >> 2) & 0xf) | ((raw >> 8) & 0xff) << 4 | ((raw >> 16) & 1) << 12 |
                   ((raw >> 17) & 0xf) << 16;
        if (index >= 0x400000b0u && index <= 0x400000b7u) /* count, in 100 ns */
            return (raw >> 2) & 0xffff;
        return ((raw >> 2) & 0xff) | ((raw >> 10) & 7) << 16; /* vector, masked, auto-EOI, polling */
    default: return raw >> 2;
    }
}

/* ---- vCPU modes ---- */
enum { M_LONG, M_COMPAT, M_PROT32, M_PROT16, M_REAL, M_V86, M_LONG_CPL3, M_PROT32_PAGED };

static void identity_tables(void)
{
    mem_write_u64(&mp->mem, PML4, PDPT | 3);
    mem_write_u64(&mp->mem, PDPT, PD | 3);
    for (u64 i = 0; i < 8; i++)
        mem_write_u64(&mp->mem, PD + 8 * i, (i << 21) | 0x83);
}

static void set_mode(struct cpu *c, int mode)
{
    unsigned cpl = mode == M_LONG_CPL3 ? 3 : 0;
    c->cr4 = 0;
    c->efer = 0;
    c->cr0 = CR0_PE | CR0_ET | CR0_NE;
    c->rflags = FL_FIXED1;
    u32 cs = 0xc09b, ss = 0xc093;
    switch (mode) {
    case M_LONG: case M_LONG_CPL3: case M_COMPAT:
        identity_tables();
        c->cr4 = CR4_PAE;
        c->efer = EFER_LME | EFER_LMA;
        c->cr0 |= CR0_PG;
        c->cr3 = PML4;
        cs = mode == M_COMPAT ? 0xc09b : 0xa09b;
        break;
    case M_PROT32_PAGED: /* 32-bit paging over the same tables: whatever they map */
        c->cr0 |= CR0_PG;
        c->cr3 = PML4;
        break;
    case M_PROT16:
        cs = 0x9b, ss = 0x93;
        break;
    case M_REAL:
        c->cr0 = CR0_ET;
        cs = 0x9b, ss = 0x93;
        break;
    case M_V86:
        c->rflags |= FL_VM;
        cs = 0xfb, ss = 0xf3;
        break;
    }
    cpu_set_seg(c, SEG_CS, (u16)(0x08 | cpl), 0, mode == M_REAL || mode == M_V86 ? 0xffff : 0xffffffff,
                cs | cpl << 5);
    cpu_set_seg(c, SEG_SS, (u16)(0x10 | cpl), 0, 0xffffffff, ss | cpl << 5);
    cpu_set_seg(c, SEG_DS, 0x10, 0, 0xffffffff, 0xc093);
    cpu_set_seg(c, SEG_ES, 0x10, 0, 0xffffffff, 0xc093);
    cpu_update_mode(c);
    mmu_update(c);
}

/* ---- hypercalls ---- */
static bool status_known(u16 s)
{
    static const u16 known[] = { 0, 2, 3, 4, 5, 6, 7, 8, 0xb, 0xe, 0x11, 0x12, 0x13, 0x18, 0x1b, 0x78 };
    for (unsigned i = 0; i < sizeof(known) / sizeof(known[0]); i++)
        if (s == known[i])
            return true;
    return false;
}

/* the dispatch table's codes: rep calls, and whether the code is one at all here */
static bool code_rep(u16 code) { return code == 0x3 || code == 0x14; }
static bool code_known(u16 code)
{
    switch (code) {
    case 0x2: case 0x3: case 0x8: case 0xb: case 0x13: case 0x14: case 0x15: case 0x5c: case 0x5d:
        return true;
    case 0x69: case 0x6a: case 0x6b:
        return variant == 2;
    default:
        return false;
    }
}

static const u16 code_list[] = { 0x2, 0x3, 0x8, 0xb, 0x13, 0x14, 0x15, 0x5c, 0x5d, 0x69, 0x6a, 0x6b,
                                 0x0, 0x1, 0x4c, 0xffff };

/* The result's invariants, for a call of control word ctl that reached Hyper-V in
 * mode (long64: 64-bit), the result being res. */
static void check_result(u64 ctl, u64 res)
{
    u16 st = (u16)res, code = (u16)ctl;
    u32 reps = (u32)(res >> 32) & 0xfff, rep_cnt = (u32)(ctl >> 32) & 0xfff;
    CHECK(status_known(st), "status %#x (control %#llx)", st, (unsigned long long)ctl);
    CHECK(!(res >> 44) && !(res & 0xffff0000ull), "result %#llx (control %#llx)",
          (unsigned long long)res, (unsigned long long)ctl);
    /* reserved control bits come first, whatever the code (KVM's order) */
    if (ctl & (0x78000000ull | 0x0000f00000000000ull | 0xf000000000000000ull)) {
        CHECK(st == 3, "reserved control bits: status %#x (control %#llx)", st, (unsigned long long)ctl);
        return;
    }
    if (!code_known(code)) {
        CHECK(st == 2 && res == 2, "unknown code %#x: result %#llx", code, (unsigned long long)res);
        return;
    }
    if (!code_rep(code)) {
        CHECK(reps == 0, "simple call %#x: reps %u", code, reps);
    } else {
        CHECK(reps <= rep_cnt || st != 0, "rep call %#x: %u of %u", code, reps, rep_cnt);
        if (st == 0)
            CHECK(reps == rep_cnt, "rep call %#x succeeded with %u of %u", code, reps, rep_cnt);
    }
}

/* HvPostMessage's input planted at gpa: a small connection id, a type, a size */
static void plant_input(u64 gpa, u64 raw, u16 code)
{
    u8 b[32] = { 0 };
    if (code == 0x5c) {
        u32 w[4] = { (u32)(raw & 7), 0, (u32)((raw >> 3) & 0xff) | ((raw >> 11) & 1 ? 0x80000000u : 0),
                     (u32)((raw >> 12) & 0x1ff) };
        memcpy(b, w, 16);
    } else {
        /* flush / IPI: address space or vector, flags, mask or a sparse set */
        u64 w[4] = { (raw & 0xff) | 0x10, (raw >> 8) & 0xf, (raw >> 12) & 1 ? 1 : (raw >> 13) & 3,
                     (raw >> 15) & 3 };
        memcpy(b, w, 32);
    }
    mem_write(&mp->mem, gpa, b, sizeof(b));
}

static void do_hypercall(struct cpu *c, const u8 **p, size_t *n)
{
    u64 sel = take(p, n, 2);
    int mode = (int)(sel & 7);
    u64 ctl = take(p, n, 8);
    if (!(sel & 0x8)) { /* a known code, a plausible control word */
        ctl = code_list[(ctl >> 48) % (sizeof(code_list) / sizeof(code_list[0]))] |
              (ctl & BIT(16)) | ((ctl >> 17) & 3) << 17 |
              (u64)((ctl >> 20) & 7) << 32 | (u64)((ctl >> 24) & 3) << 48 |
              ((ctl >> 26) & 1 ? (ctl & 0xf00000000000ull) : 0);
    }
    u64 in = take(p, n, 8), out = take(p, n, 8);
    if (!(sel & 0x10))
        in = steer_gpa(in);
    if (!(sel & 0x20))
        out = steer_gpa(out);
    bool fast = ctl & BIT(16);
    if ((sel & 0x40) && !fast)
        plant_input(in, take(p, n, 4), (u16)ctl);
    /* registers: the others from the input, XMM0-5 */
    for (int r = 0; r < 16; r++)
        c->gpr[r] = 0x1111111111111111ull * (u64)(r + 1);
    if (sel & 0x80)
        for (int r = 0; r < 6; r++) {
            u64 lo = take(p, n, 8), hi = take(p, n, 8);
            memcpy(c->fpu.xmm[r], &lo, 8), memcpy(c->fpu.xmm[r] + 8, &hi, 8);
        }
    set_mode(c, mode);
    bool long64 = mode == M_LONG;
    bool xen_call = variant == 1 && (sel & 0x100);
    if (long64) {
        c->gpr[R_RCX] = ctl, c->gpr[R_RDX] = in, c->gpr[R_R8] = out;
        c->gpr[R_RAX] = variant == 1 ? (xen_call ? 17 /* xen_version */ : 0x80000000u) : c->gpr[R_RAX];
        if (xen_call)
            c->gpr[R_RDI] = 0; /* XENVER_version */
    } else {
        c->gpr[R_RAX] = (u32)ctl, c->gpr[R_RDX] = ctl >> 32;
        c->gpr[R_RCX] = (u32)in, c->gpr[R_RBX] = in >> 32;
        c->gpr[R_RSI] = (u32)out, c->gpr[R_RDI] = out >> 32;
        if (variant == 1) {
            if (xen_call)
                c->gpr[R_RAX] = 17, c->gpr[R_RBX] = 0;
            else
                c->gpr[R_RAX] |= 0x80000000u;
        }
    }
    u64 before[16];
    u8 xmm[16][16];
    memcpy(before, c->gpr, sizeof(before));
    memcpy(xmm, c->fpu.xmm, sizeof(xmm));
    u64 rip = c->rip;
    struct cpu_event ev = { .kind = EV_HYPERCALL };
    enum intercept_result r = ev_raise(c, &ev);
    CHECK(!memcmp(xmm, c->fpu.xmm, sizeof(xmm)), "XMM changed by a hypercall");
    CHECK(c->rip == rip, "RIP moved");
    bool ud_mode = mode == M_REAL || mode == M_V86 || mode == M_LONG_CPL3;
    if (xen_call) {
        if (r == INTERCEPT_HANDLED && !ud_mode)
            CHECK((u32)c->gpr[R_RAX] == (4u << 16 | 17u) || (s64)c->gpr[R_RAX] < 0,
                  "Xen's xen_version answered %#llx", (unsigned long long)c->gpr[R_RAX]);
        return;
    }
    if (ud_mode) {
        CHECK(r == INTERCEPT_DEFAULT, "a hypercall in mode %d was not #UD (%d)", mode, r);
        CHECK(!memcmp(before, c->gpr, sizeof(before)), "a #UD hypercall changed registers");
        return;
    }
    CHECK(r == INTERCEPT_HANDLED, "hypercall in mode %d: %d", mode, r);
    for (int i = 0; i < 16; i++)
        if (i != R_RAX && (long64 || i != R_RDX))
            CHECK(c->gpr[i] == before[i], "register %d changed by hypercall %#llx", i,
                  (unsigned long long)ctl);
    u64 res;
    if (long64) {
        res = c->gpr[R_RAX];
    } else {
        CHECK(!(c->gpr[R_RAX] >> 32) && !(c->gpr[R_RDX] >> 32), "32-bit result with upper halves");
        res = c->gpr[R_RDX] << 32 | (u32)c->gpr[R_RAX];
        if (variant == 1)
            ctl &= ~0x80000000ull;
        else
            ctl = (u64)(u32)before[R_RDX] << 32 | (u32)before[R_RAX];
    }
    check_result(ctl, res);
}

/* The hypercall executed for real: a CALL-less entry into the hypercall page (the stack
 * holds the return address of a HLT), in 64-bit or 32-bit flat mode. Only while the page
 * holds the stub nestor wrote. */
static void page_call(struct cpu *c, const u8 **p, size_t *n)
{
    u64 sel = take(p, n, 1), ctl = take(p, n, 8), in = steer_gpa(take(p, n, 8));
    u64 hc;
    if (!msr_rd(c, 0x40000001u, &hc) || !(hc & 1))
        return;
    u64 page = hc & ~0xfffull;
    u8 want[16], got[16];
    unsigned len = 0;
    if (variant == 1)
        want[len++] = 0x0d, want[len++] = 0, want[len++] = 0, want[len++] = 0, want[len++] = 0x80;
    want[len++] = 0x0f, want[len++] = 0x01, want[len++] = mp->model.vendor == VENDOR_AMD ? 0xd9 : 0xc1;
    want[len++] = 0xc3;
    if (page < 0x9000 || mem_read(&mp->mem, page, got, len) || memcmp(got, want, len))
        return;
    if (!(sel & 2))
        ctl = code_list[(ctl >> 48) % (sizeof(code_list) / sizeof(code_list[0]))] | (ctl & BIT(16)) |
              (u64)((ctl >> 20) & 3) << 32;
    bool long64 = sel & 1;
    set_mode(c, long64 ? M_LONG : M_PROT32);
    mem_write_u8(&mp->mem, HLT_AT, 0xf4);
    for (int r = 0; r < 16; r++)
        c->gpr[r] = 0x2222222222222222ull * (u64)(r + 1);
    if (long64) {
        c->gpr[R_RCX] = ctl, c->gpr[R_RDX] = in, c->gpr[R_R8] = in + 0x800;
        c->gpr[R_RSP] = STACK - 8;
        mem_write_u64(&mp->mem, STACK - 8, HLT_AT);
    } else {
        c->gpr[R_RAX] = (u32)ctl, c->gpr[R_RDX] = ctl >> 32;
        c->gpr[R_RCX] = (u32)in, c->gpr[R_RBX] = 0;
        c->gpr[R_RSI] = (u32)in + 0x800, c->gpr[R_RDI] = 0;
        c->gpr[R_RSP] = STACK - 4;
        mem_write_u32(&mp->mem, STACK - 4, HLT_AT);
    }
    if (variant == 1 && long64)
        c->gpr[R_RAX] = 0; /* the stub's OR marks it */
    u64 before[16];
    memcpy(before, c->gpr, sizeof(before));
    c->rip = page;
    c->state = CPU_RUNNING;
    /* a handler that asks the machine for attention ends the pass early */
    for (int i = 0; i < 4 && c->state == CPU_RUNNING; i++)
        cpu_run(c, 16);
    CHECK(c->state == CPU_HALTED && c->rip == HLT_AT + 1, "the hypercall page did not return "
          "(state %d, rip %#llx)", c->state, (unsigned long long)c->rip);
    c->state = CPU_RUNNING;
    u64 res;
    if (long64) {
        res = c->gpr[R_RAX];
    } else {
        res = c->gpr[R_RDX] << 32 | (u32)c->gpr[R_RAX];
    }
    for (int i = 0; i < 16; i++)
        if (i != R_RAX && i != R_RSP && (long64 || i != R_RDX))
            CHECK(c->gpr[i] == before[i], "register %d changed by the hypercall page", i);
    check_result(ctl, res);
}

/* ---- MSRs ---- */
static bool plain_msr(u32 i)
{
    u32 o = i - 0x40000000u;
    return o == 0 || o == 0x73 || o == 0x80 || o == 0x82 || o == 0x83 || o == 0x106 || o == 0x107 ||
           (o >= 0x90 && o <= 0x9f) || (o >= 0x100 && o <= 0x104) || o == 0x21 ||
           (variant == 2 && ((o >= 0xf2 && o <= 0xf4) || o == 0xff));
}

/* Returns whether the MSR is one that writes guest memory (a page it zeroes or fills) */
static bool do_msr(struct cpu *c, const u8 **p, size_t *n, bool write)
{
    u64 sel = take(p, n, 2);
    u32 index = sel & 0x8000 ? 0x40000000u + (u32)(sel % 0x200)
                             : 0x40000000u + msr_list[sel % (sizeof(msr_list) / sizeof(msr_list[0]))];
    u64 raw = take(p, n, 8);
    u64 value = sel & 0x4000 ? raw : steer_msr_value(index, raw);
    u64 old = 0, now = 0;
    u32 o = index - 0x40000000u;
    bool pages = o == 0x01 || o == 0x21 || o == 0x73 || o == 0x82 || o == 0x83 || o == 0x03 ||
                 (o >= 0xf1 && o <= 0xf5);
    bool readable = msr_rd(c, index, &old);
    if (!msr_known(index)) {
        CHECK(!readable, "rdmsr %#x of no implemented MSR succeeded", index);
        CHECK(!msr_wr(c, index, value), "wrmsr %#x of no implemented MSR succeeded", index);
        return false;
    }
    if (index == 0x40000070u)
        CHECK(!readable, "the EOI MSR is write-only");
    else if (index != 0x40000071u && index != 0x40000072u)
        CHECK(readable, "rdmsr %#x failed", index);
    if (!write)
        return false;
    u64 os_id = 0;
    msr_rd(c, 0x40000000u, &os_id);
    bool ok = msr_wr(c, index, value);
    if (index == 0x40000003u || index == 0x40000105u)
        return pages; /* reset and crash: the machine stops (its stop flag), nothing to read back */
    bool readable2 = msr_rd(c, index, &now);
    if (!ok) {
        CHECK(readable2 == readable && (!readable || now == old),
              "rejected wrmsr %#x (%#llx) changed it: %#llx -> %#llx", index,
              (unsigned long long)value, (unsigned long long)old, (unsigned long long)now);
        return pages;
    }
    if (plain_msr(index))
        CHECK(now == value, "wrmsr %#x (%#llx) reads back %#llx", index, (unsigned long long)value,
              (unsigned long long)now);
    if (index >= 0x40000090u && index <= 0x4000009fu)
        CHECK((value & 0xff) >= 16 || (value & BIT(16)), "SINT vector %#llx accepted unmasked",
              (unsigned long long)value);
    if (index == 0x40000001u)
        CHECK(now == ((old & 2) || !os_id ? old : value), "hypercall MSR %#llx after %#llx (was %#llx)",
              (unsigned long long)now, (unsigned long long)value, (unsigned long long)old);
    if (index == 0x40000000u && !value) {
        u64 hc = 0;
        msr_rd(c, 0x40000001u, &hc);
        CHECK(!(hc & 1), "a zero guest OS id left the hypercall page enabled");
    }
    if (index >= 0x400000b0u && index <= 0x400000b7u) {
        if (index & 1) {
            CHECK(now == value, "stimer count %#llx reads %#llx", (unsigned long long)value,
                  (unsigned long long)now);
        } else {
            CHECK(!(value & 0xfffffffffff0e000ull), "reserved stimer config bits accepted");
            CHECK((now & ~1ull) == (value & ~1ull), "stimer config %#llx reads %#llx",
                  (unsigned long long)value, (unsigned long long)now);
            if (!(value & BIT(12)) && !((value >> 16) & 0xf))
                CHECK(!(now & 1), "a message timer without a SINT is enabled");
        }
    }
    return pages;
}

/* ---- time ---- */
/* the read-only registers and the clocks */
static void check_clocks(void)
{
    u64 now_ns = clock_now(&mp->clock);
    for (int v = 0; v < 2; v++) {
        struct cpu *c = mp->cpu[v];
        u64 x;
        CHECK(msr_rd(c, 0x40000002u, &x) && x == (u64)v, "VP_INDEX %llu at vCPU %d", (unsigned long long)x, v);
        CHECK(msr_rd(c, 0x40000081u, &x) && x == 1, "SVERSION %llu", (unsigned long long)x);
        CHECK(msr_rd(c, 0x40000022u, &x) && x == (u64)mp->model.tsc_khz * 1000, "TSC_FREQUENCY %llu",
              (unsigned long long)x);
        CHECK(msr_rd(c, 0x40000023u, &x) && x == (u64)mp->model.bus_khz * 1000, "APIC_FREQUENCY");
        CHECK(msr_rd(c, 0x40000105u, &x) && x == 1ull << 63, "CRASH_CTL %#llx", (unsigned long long)x);
        /* the clock / 100, or with the TSC page on its formula, which runs within a unit
         * of it (a rewrite of the page at a TSC write may step it back by that unit) */
        CHECK(msr_rd(c, 0x40000020u, &x) && x + 1 >= now_ns / 100 && x <= now_ns / 100 + 1 &&
                  x + 1 >= last_ref,
              "TIME_REF_COUNT %llu (clock %llu ns, last %llu)", (unsigned long long)x,
              (unsigned long long)now_ns, (unsigned long long)last_ref);
        last_ref = x;
        CHECK(msr_rd(c, 0x40000010u, &x) && x >= last_runtime[v], "VP_RUNTIME went back");
        last_runtime[v] = x;
        u32 r[4];
        cpuid_hv(c, 0x40000000u, r);
        CHECK(!memcmp(r, sig0, sizeof(r)), "CPUID 40000000h changed: %08x %08x %08x %08x", r[0], r[1], r[2], r[3]);
        cpuid_hv(c, 0x40000001u, r);
        CHECK(!memcmp(r, sig1, sizeof(r)), "CPUID 40000001h changed");
    }
}

/* the reference TSC page while its content is what nestor last wrote */
static u8 tsc_page_copy[24];
static u64 tsc_page_gpa; /* 0: not tracked */

static void tsc_page_track(void)
{
    u64 v = 0;
    tsc_page_gpa = 0;
    if (!msr_rd(mp->cpu[0], 0x40000021u, &v) || !(v & 1))
        return;
    if (mem_read(&mp->mem, v & ~0xfffull, tsc_page_copy, sizeof(tsc_page_copy)))
        return;
    tsc_page_gpa = v & ~0xfffull;
}

static void tsc_page_check(void)
{
    u8 now[24];
    u64 v = 0;
    if (!tsc_page_gpa || !msr_rd(mp->cpu[0], 0x40000021u, &v) || (v & ~0xfffull) != tsc_page_gpa ||
        !(v & 1) || mem_read(&mp->mem, tsc_page_gpa, now, sizeof(now)) ||
        memcmp(now, tsc_page_copy, sizeof(now)))
        return;
    u32 seq;
    u64 scale;
    s64 off;
    memcpy(&seq, now, 4), memcpy(&scale, now + 8, 8), memcpy(&off, now + 16, 8);
    CHECK(seq != 0 && seq != 0xffffffffu, "TSC page sequence %#x", seq);
    u64 tsc = cpu_tsc_at(mp->cpu[0], clock_now(&mp->clock));
    u64 ref = (u64)(((unsigned __int128)tsc * scale) >> 64) + (u64)off;
    u64 want = clock_now(&mp->clock) / 100;
    CHECK(ref + 2 >= want && ref <= want + 2, "TSC page gives %llu, TIME_REF_COUNT %llu",
          (unsigned long long)ref, (unsigned long long)want);
}

/* ---- SynIC message slots ---- */
static u8 simp_copy[2][4096];
static u64 simp_gpa[2]; /* 0: off or not checkable */

/* whether gpa's page is another of the interface's pages (then anything may write it) */
static bool page_shared(u64 page, int self)
{
    static const u32 pages[] = { 0x40000001u, 0x40000021u, 0x40000073u, 0x40000082u, 0x400000f3u,
                                 0x400000f4u, 0x400000f5u };
    for (int v = 0; v < 2; v++)
        for (unsigned i = 0; i < sizeof(pages) / sizeof(pages[0]); i++) {
            u64 x;
            if (msr_rd(mp->cpu[v], pages[i], &x) && (x & ~0xfffull) == page &&
                (x & 1 || pages[i] >= 0x400000f3u))
                return true;
            if (v != self && msr_rd(mp->cpu[v], 0x40000083u, &x) && (x & 1) && (x & ~0xfffull) == page)
                return true;
        }
    return page >= HLT_AT - 0x7000 && page <= STACK; /* the harness's own */
}

static void simp_snapshot(void)
{
    for (int v = 0; v < 2; v++) {
        u64 x = 0;
        simp_gpa[v] = 0;
        if (!msr_rd(mp->cpu[v], 0x40000083u, &x) || !(x & 1) || page_shared(x & ~0xfffull, v) ||
            mem_read(&mp->mem, x & ~0xfffull, simp_copy[v], 4096))
            continue;
        simp_gpa[v] = x & ~0xfffull;
    }
}

static void simp_check(u64 ref_before)
{
    for (int v = 0; v < 2; v++) {
        u64 x = 0;
        u8 now[4096];
        if (!simp_gpa[v] || !msr_rd(mp->cpu[v], 0x40000083u, &x) || (x & ~0xfffull) != simp_gpa[v] ||
            !(x & 1) || mem_read(&mp->mem, simp_gpa[v], now, sizeof(now)))
            continue;
        for (int s = 0; s < 16; s++) {
            const u8 *a = simp_copy[v] + 256 * s, *b = now + 256 * s;
            u32 ta, tb;
            memcpy(&ta, a, 4), memcpy(&tb, b, 4);
            if (ta) {
                CHECK(!memcmp(a, b, 5) && !memcmp(a + 6, b + 6, 250) && (b[5] & ~1) == (a[5] & ~1),
                      "vCPU %d SINT %d: a busy message slot was overwritten", v, s);
                continue;
            }
            if (tb != 0x80000010u || !memcmp(a, b, 256))
                continue;
            u32 index;
            u64 exp, del, cfg = 0;
            memcpy(&index, b + 16, 4), memcpy(&exp, b + 24, 8), memcpy(&del, b + 32, 8);
            CHECK(b[4] == 24 && index < 4, "timer message: size %u, timer %u", b[4], index);
            msr_rd(mp->cpu[v], 0x400000b0u + 2 * index, &cfg);
            CHECK(((cfg >> 16) & 0xf) == (u64)s, "timer %u (SINT %llu) wrote to SINT %d's slot", index,
                  (unsigned long long)((cfg >> 16) & 0xf), s);
            CHECK(del + 1 >= ref_before && del <= clock_now(&mp->clock) / 100 + 1 && exp <= del,
                  "timer message: expiration %llu, delivery %llu, now %llu",
                  (unsigned long long)exp, (unsigned long long)del,
                  (unsigned long long)(clock_now(&mp->clock) / 100));
        }
    }
}

/* ---- interrupts ---- */
static void do_intr(struct cpu *c, u64 sel)
{
    switch (sel & 3) {
    case 0: { /* acknowledge the highest pending one */
        int v = c->ops->intr_pending(c, c->ops_opaque);
        if (v < 0)
            return;
        /* an auto-EOI SINT's vector, as the harness reads the SINTs */
        bool auto_eoi = false;
        for (u32 s = 0; s < 16; s++) {
            u64 x = 0;
            if (msr_rd(c, 0x40000090u + s, &x) && !(x & BIT(16)) && (x & BIT(17)) && (u8)x == v)
                auto_eoi = true;
        }
        int got = c->ops->intr_ack(c, c->ops_opaque);
        u64 base = 0;
        msr_rd(c, 0x1b, &base);
        if (got == v && v >= 16 && auto_eoi && !(base & BIT(10)) && (base & BIT(11))) {
            u64 isr = 0;
            mmio(c, APIC + 0x100 + (u64)(v / 32) * 0x10, false, &isr);
            CHECK(!((isr >> (v % 32)) & 1), "auto-EOI vector %#x in service", v);
        }
        break;
    }
    case 1: { /* an EOI at the LAPIC */
        u64 base = 0, zero = 0;
        msr_rd(c, 0x1b, &base);
        if (base & BIT(10))
            msr_wr(c, 0x80b, 0);
        else
            mmio(c, APIC + 0xb0, true, &zero);
        break;
    }
    case 2: /* the vCPU is about to run: EOI avoidance's bit is looked at */
        hyperv_vcpu_resume(mp->hyperv, c);
        break;
    default: /* its pass ended */
        hyperv_vcpu_ran(mp->hyperv, c);
        break;
    }
}

/* ---- one input ---- */
static void build(int v)
{
    variant = v;
    struct machine_config cfg = { .ram_size = RAM, .ncpus = 2, .console_in_fd = -1, .console_out_fd = -1,
                                  .deterministic = true };
    cfg.cpu_spec = v == 2 ? "max,hv-passthrough,hv-syndbg" : "max,hv-passthrough";
    cfg.devices[cfg.ndevices++] = "hyperv-testdev";
    if (v == 2)
        cfg.devices[cfg.ndevices++] = "hv-syndbg,host_ip=127.0.0.1,host_port=9,use_hcalls=on";
    if (v == 1) {
        char err[128];
        if (xen_parse_option(&cfg.xen, NULL, err, sizeof(err)))
            abort();
        cfg.xen.enabled = true;
        cfg.xen.platform = false;
    }
    if (machine_create(mp, &cfg) || !mp->hyperv)
        abort();
    for (int i = 0; i < 2; i++) {
        u64 svr = 0x1ff;
        mmio(mp->cpu[i], APIC + 0xf0, true, &svr);
    }
    cpuid_hv(mp->cpu[0], 0x40000000u, sig0);
    cpuid_hv(mp->cpu[0], 0x40000001u, sig1);
    CHECK(!memcmp(&sig0[1], "Microsoft Hv", 12) && sig0[0] >= 0x40000005u, "40000000h: %08x", sig0[0]);
    CHECK(!memcmp(&sig1[0], "Hv#1", 4), "40000001h");
    if (v == 1) {
        u32 r[4];
        cpuid_hv(mp->cpu[0], 0x40000100u, r);
        CHECK(!memcmp(&r[1], "XenVMMXenVMM", 12), "Xen's leaves are not at 40000100h");
    }
    if (machine_dirty_log_start(mp))
        abort();
    u8 *bits = calloc(RAM / 4096 / 8 + 1, 1);
    machine_dirty_log_take(mp, bits);
    free(bits);
    if (!(pristine_ram[v] = calloc(1, RAM)))
        abort();
    for (u64 pg = 0; pg < RAM / 4096; pg++) /* the legacy hole's pages are not RAM */
        mem_read(&mp->mem, pg * 4096, pristine_ram[v] + pg * 4096, 4096);
    machine_state_save(mp, &pristine[v]);
    if (pristine[v].oom)
        abort();
}

/* the machine of variant v as made */
static void start(int v)
{
    variant = v;
    mp = &machines[v];
    if (!pristine_ram[v]) {
        build(v);
    } else {
        static u8 bits[RAM / 4096 / 8 + 1];
        char err[200];
        machine_dirty_log_take(mp, bits);
        for (u64 pg = 0; pg < RAM / 4096; pg++)
            if (bits[pg / 8] >> (pg % 8) & 1)
                mem_write(&mp->mem, pg * 4096, pristine_ram[v] + pg * 4096, 4096);
        machine_dirty_log_take(mp, bits);
        if (machine_state_load(mp, pristine[v].p, pristine[v].len, err, sizeof(err))) {
            fprintf(stderr, "fuzz_hyperv: the machine's own state does not load: %s\n", err);
            abort();
        }
        mp->stop = false;
        mp->exit_status = 0;
    }
    last_ref = 0;
    last_runtime[0] = last_runtime[1] = 0;
    tsc_page_gpa = 0;
}


int LLVMFuzzerTestOneInput(const u8 *data, size_t size)
{
    u64 v = take(&data, &size, 1);
    start((int)(v % 3));
    for (int ops = 0; size && ops < 64 && !mp->stop; ops++) {
        u64 op = take(&data, &size, 1);
        struct cpu *c = mp->cpu[(op >> 7) & 1];
        u64 ref_before = clock_now(&mp->clock) / 100;
        simp_snapshot();
        bool writes_pages = false;
        switch (op & 0xf) {
        case 0: case 1: case 2:
            writes_pages = do_msr(c, &data, &size, true);
            break;
        case 3:
            do_msr(c, &data, &size, false);
            break;
        case 4: case 5: case 6:
            do_hypercall(c, &data, &size);
            writes_pages = variant == 2; /* HvRetrieveDebugData writes its output page */
            break;
        case 7: { /* guest memory: some bytes at a steered GPA */
            u64 gpa = steer_gpa(take(&data, &size, 4));
            size_t len = take(&data, &size, 1) % 33;
            len = len < size ? len : size;
            if (gpa < RAM && gpa >= 0x9000)
                mem_write(&mp->mem, gpa, data, len);
            data += len, size -= len;
            writes_pages = true;
            break;
        }
        case 8: case 9: { /* the clock runs on: timers fire */
            u64 d = take(&data, &size, 3);
            u64 delta = d & 1 ? (d >> 1) * 100 : (d >> 1) % 20000;
            clock_advance_to(&mp->clock, clock_now(&mp->clock) + delta);
            clock_run_timers(&mp->clock);
            writes_pages = variant == 2; /* the debugger's pending byte */
            break;
        }
        case 10:
            do_intr(c, take(&data, &size, 1));
            break;
        case 11: { /* a TSC write */
            u64 t = take(&data, &size, 5);
            c->tsc_offset = (s64)(t << 8);
            struct cpu_event ev = { .kind = EV_TSC_WRITTEN };
            ev_raise(c, &ev);
            if (c->id == 0)
                tsc_page_track();
            writes_pages = true;
            break;
        }
        case 12: { /* hyperv-testdev: SINT routes, connections */
            u64 w = take(&data, &size, 2);
            u32 cmd = 1 + (u32)(w % 7), vp = (w >> 3) & 1, sint = (w >> 4) & 0xf, id = (w >> 8) & 7;
            io_out32(c, 0x3000, sint | vp << 8 | cmd << 16 | id << 24);
            break;
        }
        case 13:
            page_call(c, &data, &size);
            writes_pages = variant == 2;
            break;
        case 14: { /* x2APIC on or off (APIC base: enabled, x2APIC bit) */
            u64 w = take(&data, &size, 1);
            u64 base = 0;
            msr_rd(c, 0x1b, &base);
            if ((w & 1) && !(base & BIT(10)))
                msr_wr(c, 0x1b, base | BIT(10) | BIT(11));
            else if (!(w & 1) && (base & BIT(10)) && (w & 2)) {
                msr_wr(c, 0x1b, base & ~(BIT(10) | BIT(11)));
                msr_wr(c, 0x1b, (base & ~BIT(10)) | BIT(11));
                u64 svr = 0x1ff;
                mmio(c, APIC + 0xf0, true, &svr);
            }
            break;
        }
        default: /* the partition is reset (a new boot) */
            hyperv_reset(mp->hyperv);
            last_runtime[0] = last_runtime[1] = 0;
            writes_pages = true;
            break;
        }
        if (!writes_pages)
            simp_check(ref_before);
        if (op & 0x40)
            tsc_page_track();
        else if ((op & 0xf) != 7)
            tsc_page_check();
        check_clocks();
    }
    return 0;
}
