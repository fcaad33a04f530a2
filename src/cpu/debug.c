/* Debug facilities (SDM Vol. 3B 17.2-17.3): the four breakpoint registers DR0-DR3 under
 * the control of DR7, and the status register DR6.
 *
 * Instruction breakpoints (RW = 00) are faults checked before an instruction executes;
 * data breakpoints (RW = 01 write, 11 read/write) are traps collected in
 * in->pending_db_bits by the memory path and raised after the instruction; I/O
 * breakpoints (RW = 10, only with CR4.DE) are checked by the port I/O path (io.c). */
#include "cpu/exec.h"
#include "cpu/sgx/sgx.h"

#define DR6_B_MASK 0xfu
#define DR6_STICKY (BIT(13) | BIT(14) | BIT(15)) /* BD, BS, BT */
#define DR6_FIXED1 0xffff0ff0ull
#define DR7_GD BIT(13)

enum { RW_EXEC = 0, RW_WRITE = 1, RW_IO = 2, RW_RW = 3 };

static inline bool bp_enabled(u64 dr7, int n) { return (dr7 >> (2 * n)) & 3; }
static inline unsigned bp_rw(u64 dr7, int n) { return (dr7 >> (16 + 4 * n)) & 3; }

/* Length of breakpoint n in bytes: LEN 00 = 1, 01 = 2, 11 = 4, 10 = 8. */
static inline unsigned bp_len(u64 dr7, int n)
{
    static const unsigned len[4] = { 1, 2, 8, 4 };
    return len[(dr7 >> (18 + 4 * n)) & 3];
}

/* Outside IA-32e mode linear addresses and breakpoint addresses are 32 bits. */
static inline u64 addr_mask(const struct cpu *c)
{
    return (c->efer & EFER_LMA) ? ~0ull : 0xffffffffull;
}

void debug_update(struct cpu *c)
{
    u64 dr7 = c->dr[7];
    bool exec = false, data = false;
    c->in->exits |= EXIT_BLOCK_END; /* blocks run only without armed breakpoints */
    for (int n = 0; n < 4; n++) {
        if (!bp_enabled(dr7, n))
            continue;
        unsigned rw = bp_rw(dr7, n);
        if (rw == RW_EXEC)
            exec = true;
        else if (rw == RW_WRITE || rw == RW_RW)
            data = true;
    }
    c->in->dr_exec_active = exec;
    /* the host debugger's watchpoints ride on the same memory-path check */
    c->in->dr_data_active = data || (c->host_debug && c->host_debug->nwp);
}

void cpu_set_host_debug(struct cpu *c, const struct cpu_host_debug *d)
{
    c->host_debug = d && (d->nbp || d->nwp) ? d : NULL;
    debug_update(c);
}

/* The host debugger's watchpoints: a hit stops the vCPU after the instruction. */
static void host_check_data(struct cpu *c, u64 linear, unsigned size, bool write)
{
    const struct cpu_host_debug *d = c->host_debug;
    for (int k = 0; k < d->nwp; k++) {
        u64 a = d->wp[k].addr;
        if (linear + size <= a || a + d->wp[k].len <= linear)
            continue;
        u8 kind = d->wp[k].kind;
        if ((kind == HOST_WATCH_WRITE && !write) || (kind == HOST_WATCH_READ && write))
            continue;
        c->host_stop = HOST_STOP_WATCH;
        c->host_stop_watch_kind = kind;
        c->host_stop_addr = a;
        c->in->exits |= EXIT_STOP;
        return;
    }
}

void debug_set_dr6(struct cpu *c, u32 bits)
{
    c->in->dr6_before_db = c->dr[6];
    c->in->db_qual = bits & (DR6_B_MASK | BIT(13) | DR6_BS); /* B0-B3, BD, BS */
    /* B0-B3 report the breakpoints of this exception only; BD, BS and BT are never
     * cleared by the processor (SDM 17.2.3). */
    c->dr[6] = (c->dr[6] & ~(u64)DR6_B_MASK) | (bits & DR6_B_MASK) | (bits & DR6_STICKY) |
               DR6_FIXED1;
}

void debug_db_delivered(struct cpu *c)
{
    /* Data breakpoints held back by MOV SS / POP SS are reported with this #DB, not by
     * another one later (only data breakpoints are ever held: the single-step trap
     * after MOV SS is suppressed, SDM Vol. 3A 6.8.3). */
    c->dr[6] |= c->in->held_db_bits & DR6_B_MASK;
    c->in->held_db_bits = 0;
    /* Entering the #DB handler clears GD so that it can use the debug registers. */
    c->dr[7] &= ~DR7_GD;
}

_Noreturn void debug_raise_trap(struct cpu *c, u32 dr6_bits)
{
    debug_set_dr6(c, dr6_bits);
    cpu_fault_noerr(c, EXC_DB);
}

bool debug_check_exec(struct cpu *c, u64 linear)
{
    if (unlikely(c->enclave_mode) && sgx_breakpoints_suppressed(c, linear, true))
        return false;
    u64 dr7 = c->dr[7], mask = addr_mask(c);
    u32 hit = 0;
    for (int n = 0; n < 4; n++)
        if (bp_enabled(dr7, n) && bp_rw(dr7, n) == RW_EXEC &&
            ((c->dr[n] ^ linear) & mask) == 0)
            hit |= 1u << n;
    if (!hit)
        return false;
    debug_set_dr6(c, hit);
    return true;
}

/* Does [start, start+size) overlap breakpoint n's aligned range? */
static bool bp_overlaps(const struct cpu *c, int n, u64 start, unsigned size, u64 mask)
{
    unsigned len = bp_len(c->dr[7], n);
    u64 bp = c->dr[n] & mask & ~(u64)(len - 1);
    u64 first = start & mask, last = first + size - 1;
    if (bp <= last && first <= bp + len - 1)
        return true;
    /* an access running past the top of a 32-bit (or port) space wraps to 0 */
    return mask != ~0ull && last > mask && bp <= (last & mask);
}

void debug_check_data(struct cpu *c, u64 linear, unsigned size, bool write)
{
    if (unlikely(c->host_debug != NULL))
        host_check_data(c, linear, size, write);
    if (unlikely(c->enclave_mode) && sgx_breakpoints_suppressed(c, linear, false))
        return;
    u64 dr7 = c->dr[7], mask = addr_mask(c);
    for (int n = 0; n < 4; n++) {
        if (!bp_enabled(dr7, n))
            continue;
        unsigned rw = bp_rw(dr7, n);
        if (!(rw == RW_RW || (rw == RW_WRITE && write)))
            continue;
        if (bp_overlaps(c, n, linear, size, mask))
            c->in->pending_db_bits |= 1u << n;
    }
}

void debug_check_io(struct cpu *c, u16 port, unsigned size)
{
    u64 dr7 = c->dr[7];
    if (!(c->cr4 & CR4_DE) || !(dr7 & 0xff))
        return;
    for (int n = 0; n < 4; n++)
        if (bp_enabled(dr7, n) && bp_rw(dr7, n) == RW_IO &&
            bp_overlaps(c, n, port, size, 0xffff))
            c->in->pending_db_bits |= 1u << n;
}
