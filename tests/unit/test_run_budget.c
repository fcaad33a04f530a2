/* cpu_run()'s budget bounds delivered faults too: a guest whose exception handler faults
 * again at once retires no instruction, and cpu_run() must still return to the machine
 * (a real-mode #UD handler that is itself UD2: the stack only wraps inside its segment,
 * nothing escalates to a double fault). */
#include <criterion/criterion.h>

#include "cpu/exec.h"
#include "machine/mem.h"

static enum intercept_result no_intercept(struct cpu *c, struct cpu_event *ev, void *opaque)
{
    (void)c, (void)ev, (void)opaque;
    return INTERCEPT_DEFAULT;
}

static u64 clock_of_icount(struct cpu *c, void *opaque)
{
    (void)opaque;
    return c->icount * 10;
}

static const struct cpu_ops ops = { .intercept = no_intercept, .now_ns = clock_of_icount };

Test(run_budget, a_fault_loop_returns, .timeout = 20)
{
    static struct guest_mem mem;
    static struct cpuid_model model;
    static struct cpu cpu;
    char err[128];
    cr_assert_eq(mem_init(&mem, 4 << 20), 0);
    cr_assert_eq(cpuid_model_parse(&model, "max", err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(cpu_init(&cpu, 0, &mem, &model, &ops, NULL), 0);
    u32 ivt6 = 0x00000500; /* #UD -> 0000:0500 */
    static const u8 ud2[] = { 0x0f, 0x0b };
    cr_assert_eq(mem_write(&mem, 6 * 4, &ivt6, 4), 0);
    cr_assert_eq(mem_write(&mem, 0x500, ud2, sizeof(ud2)), 0);
    cpu.seg[SEG_CS] = (struct seg){ 0, 0, 0xffff, 0x9b };
    cpu.seg[SEG_SS] = (struct seg){ 0x2000, 0x20000, 0xffff, 0x93 };
    cpu.rip = 0x500;
    cpu.gpr[R_RSP] = 0x7000;
    cpu_update_mode(&cpu);
    for (int k = 0; k < 3; k++) {
        cr_assert_eq(cpu_run(&cpu, 1000), STOP_BUDGET, "cpu_run returns after its budget of faults");
        cr_assert_eq(cpu.rip, 0x500, "still at the handler");
    }
    cr_assert_eq(cpu.icount, 0, "nothing retired");
    cpu_destroy(&cpu);
    mem_destroy(&mem);
}
