/* Differential test harness: runs each form natively and in the engine; see harness.h.
 *
 * Environment: DIFF_CASES (cases per form, default 2000), DIFF_SEED (default 1),
 * DIFF_FILTER (run only forms whose name contains this), DIFF_VERBOSE=1 (print every
 * mismatch of a failing form, not only the first), DIFF_TRACE=1 (engine trace on stderr). */
#include <cpuid.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "cpu/exec.h"
#include "machine/mem.h"
#include "harness.h"

/* ---- fixed host mappings ---- */
#define CODE_BASE 0x300000ull  /* prologue + instruction + epilogue (RWX) */
#define AREA_BASE 0x310000ull  /* native_area below */
#define GUEST_RAM (16 * MiB)
#define PT_BASE 0x1000ull      /* guest page tables: PML4, PDPT, PD */

struct native_area {
    struct diff_state st;                    /* loaded/stored by the generated code */
    uint64_t host_rsp;
    uint8_t host_fx[512] __attribute__((aligned(16)));
    uint8_t stack32[256] __attribute__((aligned(16))); /* for the far transfers to/from 32-bit code */
};
#define AREA ((struct native_area *)AREA_BASE)
#define A_ADDR(field) ((uint32_t)(AREA_BASE + offsetof(struct native_area, field)))
#define A_GPR(r) ((uint32_t)(AREA_BASE + offsetof(struct native_area, st.gpr) + 8 * (r)))
#define A_FLAGS ((uint32_t)(AREA_BASE + offsetof(struct native_area, st.rflags)))
#define A_FX ((uint32_t)(AREA_BASE + offsetof(struct native_area, st.fx)))

/* ---- random numbers (xoroshiro128+) ---- */
uint64_t diff_rand(struct diff_rng *r) {
    uint64_t s0 = r->s[0], s1 = r->s[1], res = s0 + s1;
    s1 ^= s0;
    r->s[0] = ((s0 << 55) | (s0 >> 9)) ^ s1 ^ (s1 << 14);
    r->s[1] = (s1 << 36) | (s1 >> 28);
    return res;
}

static void rng_seed(struct diff_rng *r, uint64_t seed, const char *name) {
    uint64_t h = 0xcbf29ce484222325ull ^ seed;
    for (const char *p = name; *p; p++)
        h = (h ^ (uint8_t)*p) * 0x100000001b3ull;
    r->s[0] = h | 1;
    r->s[1] = (h * 0x9e3779b97f4a7c15ull) ^ seed;
    for (int k = 0; k < 8; k++)
        diff_rand(r);
}

uint64_t diff_rand_value(struct diff_rng *r) {
    static const uint64_t edges[] = {
        0, 1, 2, 0x7f, 0x80, 0xff, 0x100, 0x7fff, 0x8000, 0xffff, 0x10000, 0x7fffffff,
        0x80000000, 0xffffffff, 0x100000000ull, 0x7fffffffffffffffull, 0x8000000000000000ull,
        0xffffffffffffffffull, 0xfffffffffffffffeull, 0x99, 0x9a, 0x0f, 0x09, 0x0a, 0xf9,
    };
    uint64_t x = diff_rand(r);
    switch (x & 7) {
    case 0: return edges[(x >> 8) % (sizeof(edges) / sizeof(edges[0]))];
    case 1: return (x >> 8) & 0x1f;
    case 2: return 0 - ((x >> 8) & 0x1f);
    case 3: { /* a random value truncated and sign- or zero-extended from a random width */
        unsigned w = 8 << ((x >> 8) & 3);
        uint64_t v = diff_rand(r);
        if (w < 64) {
            v &= (1ull << w) - 1;
            if ((x >> 10) & 1 && (v >> (w - 1)) & 1)
                v |= ~0ull << w;
        }
        return v;
    }
    case 4: return edges[(x >> 8) % (sizeof(edges) / sizeof(edges[0]))] ^ (1ull << ((x >> 16) & 63));
    default: return diff_rand(r);
    }
}

/* ---- suites ---- */
static struct diff_suite *suites;
void diff_register_suite(struct diff_suite *s) {
    struct diff_suite **p = &suites;
    while (*p)
        p = &(*p)->next;
    *p = s;
}

/* ---- native execution ---- */
static sigjmp_buf native_jmp;
static volatile sig_atomic_t native_signal;

static void native_fault(int sig, siginfo_t *si, void *uc) {
    (void)si;
    (void)uc;
    native_signal = sig;
    siglongjmp(native_jmp, 1);
}

struct emitter { uint8_t *p; };
static void e8(struct emitter *e, unsigned b) { *e->p++ = (uint8_t)b; }
static void e32(struct emitter *e, uint32_t v) { memcpy(e->p, &v, 4); e->p += 4; }
static void ebytes(struct emitter *e, const char *b, unsigned n) { memcpy(e->p, b, n); e->p += n; }

/* 64-bit code: mov [abs32], r64 / mov r64, [abs32] (ModRM rm=100, SIB base=101 no index) */
static void mov64_store(struct emitter *e, int r, uint32_t addr) {
    e8(e, 0x48 | ((r >> 3) << 2)); e8(e, 0x89); e8(e, ((r & 7) << 3) | 4); e8(e, 0x25); e32(e, addr);
}
static void mov64_load(struct emitter *e, int r, uint32_t addr) {
    e8(e, 0x48 | ((r >> 3) << 2)); e8(e, 0x8b); e8(e, ((r & 7) << 3) | 4); e8(e, 0x25); e32(e, addr);
}
/* 32-bit code: mov [disp32], r32 / mov r32, [disp32] (ModRM mod=00 rm=101) */
static void mov32_store(struct emitter *e, int r, uint32_t addr) { e8(e, 0x89); e8(e, (r << 3) | 5); e32(e, addr); }
static void mov32_load(struct emitter *e, int r, uint32_t addr) { e8(e, 0x8b); e8(e, (r << 3) | 5); e32(e, addr); }

static void native_insn(struct emitter *e, const struct diff_form *f) {
    if (f->native_code)
        ebytes(e, f->native_code, f->native_len);
    else
        ebytes(e, f->code, f->len);
}

/* Generates the native test routine for a form; returns the instruction's address. */
static uint64_t native_build(const struct diff_form *f) {
    struct emitter e = { (uint8_t *)CODE_BASE };
    static const char save_callee[] = "\x53\x55\x41\x54\x41\x55\x41\x56\x41\x57";
    ebytes(&e, save_callee, 10);
    e8(&e, 0x0f); e8(&e, 0xae); e8(&e, 0x04); e8(&e, 0x25); e32(&e, A_ADDR(host_fx)); /* fxsave */
    e8(&e, 0x48); e8(&e, 0x89); e8(&e, 0x24); e8(&e, 0x25); e32(&e, A_ADDR(host_rsp));  /* mov [host_rsp], rsp */
    uint64_t insn;
    if (f->mode == DIFF_MODE64) {
        e8(&e, 0x0f); e8(&e, 0xae); e8(&e, 0x0c); e8(&e, 0x25); e32(&e, A_FX);     /* fxrstor */
        e8(&e, 0xff); e8(&e, 0x34); e8(&e, 0x25); e32(&e, A_FLAGS);                /* push [flags] */
        e8(&e, 0x9d);                                                             /* popfq */
        for (int r = 0; r < 16; r++)
            if (r != D_RSP)
                mov64_load(&e, r, A_GPR(r));
        mov64_load(&e, D_RSP, A_GPR(D_RSP));
        insn = (uint64_t)(uintptr_t)e.p;
        native_insn(&e, f);
        for (int r = 0; r < 16; r++)
            mov64_store(&e, r, A_GPR(r));
        mov64_load(&e, D_RSP, A_ADDR(host_rsp));
        e8(&e, 0x9c);                                                             /* pushfq */
        e8(&e, 0x8f); e8(&e, 0x04); e8(&e, 0x25); e32(&e, A_FLAGS);                /* pop [flags] */
        e8(&e, 0x0f); e8(&e, 0xae); e8(&e, 0x04); e8(&e, 0x25); e32(&e, A_FX);     /* fxsave */
    } else {
        /* Far return into the 32-bit user code segment (0x23), and back to 0x33. */
        uint32_t stk = A_ADDR(stack32) + 256;
        e8(&e, 0x48); e8(&e, 0xc7); e8(&e, 0xc4); e32(&e, stk);                    /* mov rsp, stk */
        e8(&e, 0x6a); e8(&e, 0x23);                                               /* push 0x23 */
        uint8_t *target_imm = e.p + 1;
        e8(&e, 0x68); e32(&e, 0);                                                 /* push label32 */
        e8(&e, 0x48); e8(&e, 0xcb);                                               /* retfq */
        uint32_t label32 = (uint32_t)(uintptr_t)e.p;
        memcpy(target_imm, &label32, 4);
        /* 32-bit code */
        e8(&e, 0x6a); e8(&e, 0x2b); e8(&e, 0x1f);                                 /* push 0x2b; pop ds */
        e8(&e, 0x6a); e8(&e, 0x2b); e8(&e, 0x07);                                 /* push 0x2b; pop es */
        e8(&e, 0x0f); e8(&e, 0xae); e8(&e, 0x0d); e32(&e, A_FX);                   /* fxrstor */
        e8(&e, 0xff); e8(&e, 0x35); e32(&e, A_FLAGS);                              /* push [flags] */
        e8(&e, 0x9d);                                                             /* popfd */
        for (int r = 0; r < 8; r++)
            if (r != D_RSP)
                mov32_load(&e, r, A_GPR(r));
        mov32_load(&e, D_RSP, A_GPR(D_RSP));
        insn = (uint64_t)(uintptr_t)e.p;
        native_insn(&e, f);
        /* The instruction may have loaded DS with null: store through SS (36 prefix). */
        for (int r = 0; r < 8; r++) {
            e8(&e, 0x36);
            mov32_store(&e, r, A_GPR(r));
        }
        e8(&e, 0xbc); e32(&e, stk);                                               /* mov esp, stk */
        e8(&e, 0x9c);                                                             /* pushfd */
        e8(&e, 0x36); e8(&e, 0x8f); e8(&e, 0x05); e32(&e, A_FLAGS);                /* pop ss:[flags] */
        e8(&e, 0x36); e8(&e, 0x0f); e8(&e, 0xae); e8(&e, 0x05); e32(&e, A_FX);     /* fxsave ss:[] */
        e8(&e, 0x6a); e8(&e, 0x33);                                               /* push 0x33 */
        uint8_t *back_imm = e.p + 1;
        e8(&e, 0x68); e32(&e, 0);                                                 /* push label64 */
        e8(&e, 0xcb);                                                             /* retf */
        uint32_t label64 = (uint32_t)(uintptr_t)e.p;
        memcpy(back_imm, &label64, 4);
        mov64_load(&e, D_RSP, A_ADDR(host_rsp));
        /* 64-bit Linux user code runs with null DS/ES: put them back. */
        static const char null_ds_es[] = "\x31\xc0\x8e\xd8\x8e\xc0"; /* xor eax,eax; mov ds,eax; mov es,eax */
        ebytes(&e, null_ds_es, 6);
    }
    e8(&e, 0x0f); e8(&e, 0xae); e8(&e, 0x0c); e8(&e, 0x25); e32(&e, A_ADDR(host_fx)); /* fxrstor */
    e8(&e, 0xfc);                                                                     /* cld */
    static const char restore_callee[] = "\x41\x5f\x41\x5e\x41\x5d\x41\x5c\x5d\x5b\xc3";
    ebytes(&e, restore_callee, 11);
    __builtin___clear_cache((char *)CODE_BASE, (char *)e.p);
    return insn;
}

/* Runs the routine; returns 0 or the signal the instruction raised. */
static int native_run(void) {
    native_signal = 0;
    if (sigsetjmp(native_jmp, 1) == 0) {
        ((void (*)(void))(uintptr_t)CODE_BASE)();
        return 0;
    }
    /* The signal left us without the epilogue: restore the host x87/SSE control state. */
    __builtin_ia32_fxrstor64(AREA->host_fx);
    return native_signal;
}

/* ---- the engine ---- */
static struct guest_mem gmem;
static struct cpuid_model model;
static struct cpu vcpu;
static int engine_vector;          /* exception the instruction raised, or -1 */
static const char *engine_unsupported;

static enum intercept_result engine_intercept(struct cpu *c, struct cpu_event *ev, void *opaque) {
    (void)c;
    (void)opaque;
    switch (ev->kind) {
    case EV_EXCEPTION:
        engine_vector = ev->u.exc.vector;
        return INTERCEPT_STOP;
    case EV_UNSUPPORTED:
        engine_unsupported = ev->u.unsupported.what;
        return INTERCEPT_DEFAULT;
    case EV_SHUTDOWN:
        engine_vector = 8;
        return INTERCEPT_STOP;
    default:
        return INTERCEPT_DEFAULT;
    }
}
static int engine_intr_pending(struct cpu *c, void *o) { (void)c; (void)o; return -1; }
static int engine_intr_ack(struct cpu *c, void *o) { (void)c; (void)o; return -1; }
static u64 engine_now(struct cpu *c, void *o) { (void)c; (void)o; return 0; }
static const struct cpu_ops engine_ops = { engine_intercept, engine_intr_pending, engine_intr_ack, engine_now };

/* (Re)creates the vCPU with a CPU model: spec NULL is "max". The model always has the
 * host's vendor: where vendors differ, the engine follows the model's vendor, and the
 * host is the reference here. */
static int engine_cpu(const char *spec) {
    static bool have_cpu;
    char err[200], full[256];
    unsigned a = 0, b = 0, cc = 0, d = 0;
    bool amd = __get_cpuid(0, &a, &b, &cc, &d) && b == 0x68747541; /* "Auth"enticAMD */
    snprintf(full, sizeof(full), "%s%s", spec ? spec : "max", amd ? ",vendor=AuthenticAMD" : "");
    if (cpuid_model_parse(&model, full, err, sizeof(err)) < 0) {
        fprintf(stderr, "diff: cpu model %s: %s\n", full, err);
        return -1;
    }
    if (have_cpu)
        cpu_destroy(&vcpu);
    have_cpu = false;
    if (cpu_init(&vcpu, 0, &gmem, &model, &engine_ops, NULL) < 0)
        return -1;
    have_cpu = true;
    if (getenv("DIFF_TRACE")) /* instruction and event trace of the engine on stderr */
        cpu_set_trace(&vcpu, stderr, true, true);
    return 0;
}

static int engine_init(void) {
    if (mem_init(&gmem, GUEST_RAM) < 0)
        return -1;
    if (engine_cpu(NULL) < 0)
        return -1;
    /* Identity map of the first 16 MiB with 2 MiB user pages. */
    mem_write_u64(&gmem, PT_BASE, (PT_BASE + 0x1000) | 7);
    mem_write_u64(&gmem, PT_BASE + 0x1000, (PT_BASE + 0x2000) | 7);
    for (u64 k = 0; k < GUEST_RAM / (2 * MiB); k++)
        mem_write_u64(&gmem, PT_BASE + 0x2000 + 8 * k, (k * 2 * MiB) | 0x87);
    return 0;
}

static void fx_to_engine(struct fpu_state *fp, const uint8_t *fx) {
    memcpy(&fp->fcw, fx + FX_FCW, 2);
    memcpy(&fp->fsw, fx + FX_FSW, 2);
    fp->ftw = fx[FX_FTW];
    memcpy(&fp->fop, fx + 6, 2);
    memcpy(&fp->fip, fx + 8, 8);
    memcpy(&fp->fdp, fx + 16, 8);
    memcpy(&fp->mxcsr, fx + FX_MXCSR, 4);
    unsigned top = (fp->fsw >> 11) & 7;
    for (int i = 0; i < 8; i++)
        memcpy(fp->st[(top + i) & 7], fx + FX_ST(i), 16);
    for (int i = 0; i < 16; i++)
        memcpy(fp->xmm[i], fx + FX_XMM(i), 16);
}

static void fx_from_engine(uint8_t *fx, const struct fpu_state *fp) {
    memset(fx, 0, 512);
    memcpy(fx + FX_FCW, &fp->fcw, 2);
    memcpy(fx + FX_FSW, &fp->fsw, 2);
    fx[FX_FTW] = fp->ftw;
    memcpy(fx + FX_MXCSR, &fp->mxcsr, 4);
    unsigned top = (fp->fsw >> 11) & 7;
    for (int i = 0; i < 8; i++)
        memcpy(fx + FX_ST(i), fp->st[(top + i) & 7], 10);
    for (int i = 0; i < 16; i++)
        memcpy(fx + FX_XMM(i), fp->xmm[i], 16);
}

static void engine_set_mode(enum diff_mode mode) {
    struct cpu *c = &vcpu;
    c->cr0 = CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_WP | CR0_PG;
    c->cr4 = CR4_PAE | CR4_OSFXSR | CR4_OSXMMEXCPT;
    c->cr3 = PT_BASE;
    c->efer = EFER_LME | EFER_LMA | EFER_NXE | EFER_SCE;
    u32 data = 0x3 | SEG_ATTR_S | (3 << 5) | SEG_ATTR_P | SEG_ATTR_DB | SEG_ATTR_G;
    /* Linux user mode: DS/ES/FS/GS null in 64-bit code; the 32-bit path loads 0x2b. */
    u16 dsel = mode == DIFF_MODE64 ? 0 : 0x2b;
    cpu_set_seg(c, SEG_DS, dsel, 0, 0xffffffff, data);
    cpu_set_seg(c, SEG_ES, dsel, 0, 0xffffffff, data);
    cpu_set_seg(c, SEG_FS, 0, 0, 0xffffffff, data);
    cpu_set_seg(c, SEG_GS, 0, 0, 0xffffffff, data);
    cpu_set_seg(c, SEG_SS, 0x2b, 0, 0xffffffff, data);
    u32 code = 0xb | SEG_ATTR_S | (3 << 5) | SEG_ATTR_P | SEG_ATTR_G |
               (mode == DIFF_MODE64 ? SEG_ATTR_L : SEG_ATTR_DB);
    cpu_set_seg(c, SEG_CS, mode == DIFF_MODE64 ? 0x33 : 0x23, 0, 0xffffffff, code);
    cpu_update_mode(c);
    mmu_update(c);
    /* A TSS whose I/O bitmap lies beyond its limit: user-mode port I/O faults as it
     * does natively. */
    c->tr = (struct seg){ 0x40, 0, 0x67, 0x8b };
    mem_write_u16(&gmem, 0x66, 0xffff);
}

/* Runs one instruction at rip; REP string instructions may take several calls. */
static void engine_run(u64 rip, const struct diff_state *in, struct diff_state *out) {
    struct cpu *c = &vcpu;
    memcpy(c->gpr, in->gpr, sizeof(c->gpr));
    c->rip = rip;
    c->rflags = (in->rflags & (DF_ALL)) | FL_FIXED1 | FL_IF;
    c->intr_shadow = 0;
    c->state = CPU_RUNNING;
    fx_to_engine(&c->fpu, in->fx);
    engine_vector = -1;
    engine_unsupported = NULL;
    for (int k = 0; k < 64; k++) {
        cpu_run(c, 1);
        if (engine_vector >= 0 || c->rip != rip)
            break;
    }
    memcpy(out->gpr, c->gpr, sizeof(out->gpr));
    out->rflags = c->rflags;
    fx_from_engine(out->fx, &c->fpu);
}

/* ---- comparison ---- */
static const char *const reg_names[16] = { "rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi",
                                           "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15" };

/* The signal Linux sends for an exception vector. */
static int vector_signal(int v) {
    switch (v) {
    case EXC_DE: case EXC_MF: case EXC_XM: return SIGFPE;
    case EXC_DB: case EXC_BP: return SIGTRAP;
    case EXC_UD: return SIGILL;
    case EXC_SS: case EXC_AC: return SIGBUS;
    case EXC_NM: return SIGILL;
    default: return SIGSEGV;
    }
}

static void print_state(const char *what, const struct diff_state *s, int nregs) {
    printf("    %s:", what);
    for (int r = 0; r < nregs; r++)
        printf("%s %s=%016llx", r % 4 == 0 ? "\n     " : "", reg_names[r], (unsigned long long)s->gpr[r]);
    printf("\n      rflags=%08llx\n", (unsigned long long)s->rflags);
}

static struct diff_state in_state, nat_state, eng_state;
static uint8_t data_in[DIFF_DATA_SIZE] __attribute__((aligned(16))), data_eng[DIFF_DATA_SIZE];

uint8_t *diff_input_data(void) { return data_in; }

/* Compares the results of one case; writes a description of the first difference. */
static bool compare_case(const struct diff_form *f, int nsig, char *why, size_t whylen) {
    int nregs = f->mode == DIFF_MODE64 ? 16 : 8;
    uint64_t rmask = f->mode == DIFF_MODE64 ? ~0ull : 0xffffffffull;
    if (engine_unsupported) {
        snprintf(why, whylen, "engine: unimplemented %s", engine_unsupported);
        return false;
    }
    if (nsig || engine_vector >= 0) {
        if (!nsig || engine_vector < 0 || vector_signal(engine_vector) != nsig) {
            snprintf(why, whylen, "native signal %d, engine exception %d", nsig, engine_vector);
            return false;
        }
        return true; /* both faulted the same way: state is not compared */
    }
    for (int r = 0; r < nregs; r++) {
        if (f->ignore_regs & (1u << r))
            continue;
        if ((nat_state.gpr[r] ^ eng_state.gpr[r]) & rmask) {
            snprintf(why, whylen, "%s: native %016llx engine %016llx", reg_names[r],
                     (unsigned long long)nat_state.gpr[r], (unsigned long long)eng_state.gpr[r]);
            return false;
        }
    }
    uint32_t fm = f->flags_fn ? f->flags_fn(&in_state, f) : f->flags_cmp ? f->flags_cmp : DF_ALL;
    if (fm & DIFF_FLAGS_NONE)
        fm = 0;
    if ((nat_state.rflags ^ eng_state.rflags) & fm) {
        snprintf(why, whylen, "flags (compared %03x): native %03llx engine %03llx", fm,
                 (unsigned long long)(nat_state.rflags & fm), (unsigned long long)(eng_state.rflags & fm));
        return false;
    }
    if (!(f->opts & DIFF_NO_MEM)) {
        mem_read(&gmem, DIFF_DATA_BASE, data_eng, DIFF_DATA_SIZE);
        if (memcmp(data_eng, (void *)DIFF_DATA_BASE, DIFF_DATA_SIZE) != 0) {
            const uint8_t *nat = (const uint8_t *)DIFF_DATA_BASE;
            unsigned k = 0;
            while (nat[k] == data_eng[k])
                k++;
            snprintf(why, whylen, "memory at %#llx: native %02x engine %02x (input %02x)",
                     (unsigned long long)(DIFF_DATA_BASE + k), nat[k], data_eng[k], data_in[k]);
            return false;
        }
    }
    if (f->opts & DIFF_CMP_SSE) {
        if (memcmp(nat_state.fx + FX_MXCSR, eng_state.fx + FX_MXCSR, 4) != 0) {
            uint32_t a, b;
            memcpy(&a, nat_state.fx + FX_MXCSR, 4);
            memcpy(&b, eng_state.fx + FX_MXCSR, 4);
            snprintf(why, whylen, "mxcsr: native %08x engine %08x", a, b);
            return false;
        }
        for (int x = 0; x < 16; x++)
            if (memcmp(nat_state.fx + FX_XMM(x), eng_state.fx + FX_XMM(x), 16) != 0) {
                uint64_t a[2], b[2];
                memcpy(a, nat_state.fx + FX_XMM(x), 16);
                memcpy(b, eng_state.fx + FX_XMM(x), 16);
                snprintf(why, whylen, "xmm%d: native %016llx%016llx engine %016llx%016llx", x,
                         (unsigned long long)a[1], (unsigned long long)a[0],
                         (unsigned long long)b[1], (unsigned long long)b[0]);
                return false;
            }
    }
    if (f->opts & DIFF_CMP_X87) {
        uint16_t a, b;
        memcpy(&a, nat_state.fx + FX_FCW, 2);
        memcpy(&b, eng_state.fx + FX_FCW, 2);
        if (a != b) {
            snprintf(why, whylen, "fcw: native %04x engine %04x", a, b);
            return false;
        }
        memcpy(&a, nat_state.fx + FX_FSW, 2);
        memcpy(&b, eng_state.fx + FX_FSW, 2);
        if (a != b) {
            snprintf(why, whylen, "fsw: native %04x engine %04x", a, b);
            return false;
        }
        if (nat_state.fx[FX_FTW] != eng_state.fx[FX_FTW]) {
            snprintf(why, whylen, "ftw: native %02x engine %02x", nat_state.fx[FX_FTW], eng_state.fx[FX_FTW]);
            return false;
        }
        for (int s = 0; s < 8; s++)
            if ((nat_state.fx[FX_FTW] >> ((((a >> 11) & 7) + s) & 7)) & 1 &&
                memcmp(nat_state.fx + FX_ST(s), eng_state.fx + FX_ST(s), 10) != 0) {
                snprintf(why, whylen, "st(%d) differs", s);
                return false;
            }
    }
    return true;
}

/* Default input generation. */
static void generate(const struct diff_form *f, struct diff_rng *r, struct diff_state *s) {
    for (int k = 0; k < 16; k++)
        s->gpr[k] = diff_rand_value(r);
    for (int k = 0; k < 16; k++)
        if (f->ptr_regs & (1u << k))
            s->gpr[k] = DIFF_PTR_BASE + (diff_rand(r) & 0x3ff);
    s->gpr[D_RSP] = DIFF_STACK_TOP - (diff_rand(r) & 0xff);
    if (diff_rand(r) & 1)
        s->gpr[D_RSP] &= ~7ull;
    s->rflags = diff_rand(r) & DF_ALL;
    /* x87/SSE: FNINIT state, default MXCSR, random XMM registers. */
    memset(s->fx, 0, sizeof(s->fx));
    uint16_t fcw = 0x37f;
    uint32_t mxcsr = 0x1f80;
    memcpy(s->fx + FX_FCW, &fcw, 2);
    memcpy(s->fx + FX_MXCSR, &mxcsr, 4);
    for (int x = 0; x < 16; x++)
        for (int q = 0; q < 2; q++) {
            uint64_t v = diff_rand_value(r);
            memcpy(s->fx + FX_XMM(x) + 8 * q, &v, 8);
        }
    /* Data buffer: random bytes. */
    uint64_t *d = (uint64_t *)(void *)data_in;
    for (unsigned k = 0; k < DIFF_DATA_SIZE / 8; k++)
        d[k] = (k & 3) == 0 ? diff_rand_value(r) : diff_rand(r);
    if (f->setup)
        f->setup(s, r, f);
}

static int cases_per_form(void) {
    const char *e = getenv("DIFF_CASES");
    int n = e ? atoi(e) : 2000;
    return n > 0 ? n : 1;
}

/* Runs every case of a form; prints its PASS/FAIL line. Returns true on pass. */
static bool run_form(const struct diff_form *f, uint64_t seed, int ncases, bool verbose) {
    struct diff_rng rng;
    rng_seed(&rng, seed, f->name);
    uint64_t insn = native_build(f);
    /* The guest sees the instruction bytes at the same address. */
    static uint8_t zero_page[4096];
    mem_write(&gmem, CODE_BASE, zero_page, sizeof(zero_page));
    mem_write(&gmem, insn, f->code, f->len);
    if (f->model && engine_cpu(f->model) < 0) {
        printf("FAIL diff:%s: cannot create a vCPU with model %s\n", f->name, f->model);
        engine_cpu(NULL);
        return false;
    }
    engine_set_mode(f->mode);
    int failures = 0, faults = 0;
    char why[256], first_why[256] = "";
    for (int n = 0; n < ncases; n++) {
        generate(f, &rng, &in_state);
        /* native */
        memcpy((void *)DIFF_DATA_BASE, data_in, DIFF_DATA_SIZE);
        AREA->st = in_state;
        AREA->st.rflags |= 0x202;
        int nsig = native_run();
        nat_state = AREA->st;
        /* engine */
        mem_write(&gmem, DIFF_DATA_BASE, data_in, DIFF_DATA_SIZE);
        engine_run(insn, &in_state, &eng_state);
        if (nsig)
            faults++;
        if (!nsig && engine_vector < 0 && vcpu.rip != (insn + f->len)) {
            snprintf(why, sizeof(why), "engine rip %#llx, expected %#llx",
                     (unsigned long long)vcpu.rip, (unsigned long long)(insn + f->len));
        } else if (compare_case(f, nsig, why, sizeof(why))) {
            continue;
        }
        if (failures++ == 0 || verbose) {
            if (failures == 1)
                snprintf(first_why, sizeof(first_why), "%s", why);
            printf("  %s: case %d (DIFF_SEED=%llu DIFF_FILTER='%s'): %s\n", f->name, n,
                   (unsigned long long)seed, f->name, why);
            print_state("input", &in_state, f->mode == DIFF_MODE64 ? 16 : 8);
            print_state("native", &nat_state, f->mode == DIFF_MODE64 ? 16 : 8);
            print_state("engine", &eng_state, f->mode == DIFF_MODE64 ? 16 : 8);
        }
    }
    if (f->model && engine_cpu(NULL) < 0)
        nestor_panic("diff: cannot recreate the default vCPU");
    if (!failures && faults == ncases && !(f->opts & DIFF_ALLOW_FAULT)) {
        printf("FAIL diff:%s: every case faulted natively (signal %d)\n", f->name, native_signal);
        return false;
    }
    if (failures) {
        printf("FAIL diff:%s: %d/%d cases differ; first: %s\n", f->name, failures, ncases, first_why);
        return false;
    }
    if (faults)
        printf("PASS diff:%s (%d cases, %d faulted)\n", f->name, ncases, faults);
    else
        printf("PASS diff:%s (%d cases)\n", f->name, ncases);
    return true;
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    void *code = mmap((void *)CODE_BASE, 0x10000, PROT_READ | PROT_WRITE | PROT_EXEC,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    void *area = mmap((void *)AREA_BASE, 0x10000, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    void *data = mmap((void *)DIFF_DATA_BASE, DIFF_DATA_SIZE, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (code != (void *)CODE_BASE || area != (void *)AREA_BASE || data != (void *)DIFF_DATA_BASE) {
        printf("FAIL diff:setup: cannot map the fixed test areas (%p %p %p)\n", code, area, data);
        return 1;
    }
    static uint8_t altstack[65536];
    stack_t ss = { .ss_sp = altstack, .ss_size = sizeof(altstack) };
    sigaltstack(&ss, NULL);
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = native_fault;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
    int sigs[] = { SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP };
    for (size_t k = 0; k < sizeof(sigs) / sizeof(sigs[0]); k++)
        sigaction(sigs[k], &sa, NULL);
    if (engine_init() < 0) {
        printf("FAIL diff:setup: engine initialisation failed\n");
        return 1;
    }
    const char *se = getenv("DIFF_SEED");
    uint64_t seed = se ? strtoull(se, NULL, 0) : 1;
    const char *filter = getenv("DIFF_FILTER");
    bool verbose = getenv("DIFF_VERBOSE") != NULL;
    int ncases = cases_per_form(), pass = 0, fail = 0;
    for (struct diff_suite *s = suites; s; s = s->next)
        for (size_t k = 0; k < s->count; k++) {
            const struct diff_form *f = &s->forms[k];
            if (filter && *filter && !strstr(f->name, filter))
                continue;
            if (run_form(f, seed, ncases, verbose))
                pass++;
            else
                fail++;
        }
    fprintf(stderr, "diff: %d forms passed, %d failed (seed %llu, %d cases each)\n", pass, fail,
            (unsigned long long)seed, ncases);
    return fail ? 1 : 0;
}
