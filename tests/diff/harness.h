/* Differential testing of the software CPU against the host CPU.
 *
 * A form is one instruction encoding. For each form the harness generates random inputs
 * (GPRs, arithmetic flags and DF, XMM registers, MXCSR, x87 state, and a data buffer),
 * runs the instruction natively on the host (between a generated prologue that loads the
 * state and an epilogue that stores it back) and in the engine (a vCPU in 64-bit or
 * compatibility mode with identity paging), and compares the results: GPRs, the
 * instruction's defined flags, the data buffer, and when asked XMM/MXCSR/x87 state.
 * Faults are compared by class (native signal vs engine exception vector).
 *
 * The data buffer lives at the same address in the host process (mapped at a fixed low
 * address) and in the guest, so memory operands can use it directly: registers named in
 * a form's ptr_regs point into its middle; RSP always points into it (below its top).
 *
 * Adding forms from another file:
 *     static const struct diff_form my_forms[] = { { .name = "addps xmm0,xmm1",
 *         .code = "\x0f\x58\xc1", .len = 3, .opts = DIFF_CMP_SSE }, ... };
 *     DIFF_SUITE(sse, my_forms);
 * in a new .c file in tests/diff/ (diff.mk builds every .c file there). */
#ifndef NESTOR_TESTS_DIFF_HARNESS_H
#define NESTOR_TESTS_DIFF_HARNESS_H

#include <stddef.h>
#include <stdint.h>

#define DIFF_DATA_BASE 0x200000ull /* data buffer: same address natively and in the guest */
#define DIFF_DATA_SIZE 0x2000u
#define DIFF_PTR_BASE (DIFF_DATA_BASE + 0x800) /* ptr_regs point at [PTR_BASE, +0x400) */
#define DIFF_STACK_TOP (DIFF_DATA_BASE + 0x1e00) /* RSP lies in [STACK_TOP-0x100, STACK_TOP) */

/* Register numbers (as the engine and the ModRM encoding use them). */
enum { D_RAX, D_RCX, D_RDX, D_RBX, D_RSP, D_RBP, D_RSI, D_RDI,
       D_R8, D_R9, D_R10, D_R11, D_R12, D_R13, D_R14, D_R15 };

/* RFLAGS bits the harness loads and compares. */
#define DF_CF 0x1u
#define DF_PF 0x4u
#define DF_AF 0x10u
#define DF_ZF 0x40u
#define DF_SF 0x80u
#define DF_DF 0x400u
#define DF_OF 0x800u
#define DF_ARITH (DF_CF | DF_PF | DF_AF | DF_ZF | DF_SF | DF_OF)
#define DF_ALL (DF_ARITH | DF_DF)

/* The state the prologue loads and the epilogue stores. fx is an FXSAVE image (64-bit
 * layout): FCW, FSW, abridged FTW, FOP, FIP, FDP, MXCSR, ST0..7 (stack order), XMM0..15. */
struct diff_state {
    uint64_t gpr[16];
    uint64_t rflags;
    uint8_t fx[512] __attribute__((aligned(16)));
};

/* Byte offsets inside the FXSAVE image. */
#define FX_FCW 0
#define FX_FSW 2
#define FX_FTW 4
#define FX_MXCSR 24
#define FX_ST(i) (32 + 16 * (i))
#define FX_XMM(i) (160 + 16 * (i))

enum diff_mode { DIFF_MODE64 = 0, DIFF_MODE32 = 1 /* compatibility mode, 32-bit code */ };

/* Options */
#define DIFF_CMP_SSE 0x1u   /* compare XMM0-15 and MXCSR */
#define DIFF_CMP_X87 0x2u   /* compare FCW, FSW, FTW and the ST registers (80-bit) */
#define DIFF_NO_MEM 0x4u    /* do not compare the data buffer */
#define DIFF_ALLOW_FAULT 0x8u /* faults are expected in some cases (still compared) */

struct diff_rng { uint64_t s[2]; };
uint64_t diff_rand(struct diff_rng *r);
/* A "interesting" 64-bit value: boundary values, small numbers, random patterns. */
uint64_t diff_rand_value(struct diff_rng *r);

/* The data buffer of the case being generated (DIFF_DATA_SIZE bytes, copied to
 * DIFF_DATA_BASE natively and in the guest): setup functions may edit it. */
uint8_t *diff_input_data(void);
#define DIFF_DATA_AT(addr) (diff_input_data() + ((addr) - DIFF_DATA_BASE))

struct diff_form;
/* Adjusts generated inputs (constrain a divisor, a count, ...). */
typedef void (*diff_setup_fn)(struct diff_state *in, struct diff_rng *r, const struct diff_form *f);
/* Flags (DF_*) that are defined for this input; overrides flags_cmp when given. */
typedef uint32_t (*diff_flags_fn)(const struct diff_state *in, const struct diff_form *f);

struct diff_form {
    const char *name;
    const char *code;      /* instruction bytes */
    unsigned len;
    enum diff_mode mode;
    uint32_t flags_cmp;    /* flags compared (0 = DF_ALL; use DIFF_FLAGS_NONE for none) */
    uint32_t opts;         /* DIFF_* options */
    uint16_t ptr_regs;     /* bit per GPR: points into the data buffer */
    uint16_t ignore_regs;  /* bit per GPR: not compared (undefined results) */
    diff_setup_fn setup;
    diff_flags_fn flags_fn;
    long arg;              /* for setup/flags_fn */
    /* Optional: the engine runs with this CPU model (QEMU -cpu syntax) instead of "max",
     * and the host runs native_code instead of code (e.g. LZCNT without ABM in the
     * engine against BSR on the host). */
    const char *model;
    const char *native_code;
    unsigned native_len;
};
#define DIFF_FLAGS_NONE 0x80000000u

struct diff_suite {
    const char *name;
    const struct diff_form *forms;
    size_t count;
    struct diff_suite *next;
};
void diff_register_suite(struct diff_suite *s);
#define DIFF_SUITE(sname, array)                                                          \
    static struct diff_suite diff_suite_##sname = { #sname, array,                        \
                                                    sizeof(array) / sizeof((array)[0]), 0 }; \
    __attribute__((constructor)) static void diff_suite_init_##sname(void) {              \
        diff_register_suite(&diff_suite_##sname);                                          \
    }

#endif
