/* ENCLU: the user leaves (SDM Vol. 3D ch. 41) - entering and leaving enclaves (EENTER,
 * ERESUME, EEXIT), the asynchronous exit (AEX, 39.4), reports and keys (EREPORT,
 * EGETKEY). One table names each leaf, where it may run (in or out of an enclave) and
 * the feature it needs. */
#include <string.h>

#include "cpu/fpu.h"
#include "cpu/sgx/sgx_internal.h"


static u64 addr_of(const struct cpu *c, u64 v) { return cpu_is_long64(c) ? v : v & 0xffffffffull; }

/* ---- the SSA frame ---- */
/* The page index of an enclave page at linear address lin that enclave secs may read and
 * write (the SSA's pages): a valid PT_REG page of secs mapped there with R and W; else
 * #PF (SDM EENTER: "if one or more pages of the current SSA frame are not
 * readable/writable, or do not resolve to a valid PT_REG EPC page"). */
static u64 ssa_page(struct cpu *c, u64 secs, u64 lin)
{
    struct sgx_epc *e = c->sgx->epc;
    u64 gpa = lin_translate(c, lin, ACC_WRITE);
    s64 idx = epc_index(e, gpa);
    u32 pfec = PFEC_P | PFEC_W | PFEC_SGX | (c->cpl == 3 ? PFEC_U : 0);
    if (idx < 0)
        cpu_page_fault(c, lin, pfec);
    const struct sgx_epcm *m = &e->epcm[idx];
    if (!m->valid || m->type != PT_REG || m->secs != secs || m->linaddr != (lin & ~0xfffull) ||
        (m->perms & (SECINFO_R | SECINFO_W)) != (SECINFO_R | SECINFO_W) || m->pending ||
        m->modified || m->blocked)
        cpu_page_fault(c, lin, pfec);
    return (u64)idx;
}

/* Where GPRSGX and the MISC region of the current frame are. */
static u8 *gprsgx(const struct cpu *c) { return epc_page(c->sgx->epc, c->sgx->ssa_last) + SGX_PAGE - GPRSGX_SIZE; }
static u8 *xsave_area(const struct cpu *c) { return epc_page(c->sgx->epc, c->sgx->ssa_first); }

static void xsave_to_ssa(struct cpu *c)
{
    u8 *x = xsave_area(c);
    memset(x, 0, XSAVE_AREA_SIZE);
    fpu_save_x87_image(c, x, true);
    wr32(x, 24, c->fpu.mxcsr);
    wr32(x, 28, MXCSR_WRITABLE);
    memcpy(x + 160, c->fpu.xmm, sizeof(c->fpu.xmm));
    wr64(x, XSAVE_HEADER_OFF, XCR0_X87 | XCR0_SSE); /* XSTATE_BV */
    mem_code_write(&c->sgx->epc->gen[c->sgx->ssa_first]);
}

/* XRSTOR of the frame's image (components not in XSTATE_BV get their initial state);
 * false if the image would make XRSTOR fault (a reserved MXCSR bit, header bits). */
static bool xrstor_from_ssa(struct cpu *c)
{
    const u8 *x = xsave_area(c);
    u64 bv = rd64(x, XSAVE_HEADER_OFF), comp = rd64(x, XSAVE_HEADER_OFF + 8);
    u32 mx = rd32(x, 24);
    if ((bv & ~(u64)(XCR0_X87 | XCR0_SSE)) || comp || (mx & ~MXCSR_WRITABLE))
        return false;
    if (bv & XCR0_X87)
        fpu_load_x87_image(c, x, true);
    else
        fpu_x87_init_state(c);
    c->fpu.mxcsr = mx;
    if (bv & XCR0_SSE)
        memcpy(c->fpu.xmm, x + 160, sizeof(c->fpu.xmm));
    else
        memset(c->fpu.xmm, 0, sizeof(c->fpu.xmm));
    return true;
}

/* ---- entering ---- */
struct entry {
    u64 tcs_lin, tcs, secs;
    u8 *tcs_page;
    const u8 *secs_page;
    u64 base, size;
    bool mode64;
};

/* The checks EENTER and ERESUME share (SDM 41, "EENTER", "ERESUME"), in their order, and
 * the SSA frame the entry uses (frame index). */
static void entry_checks(struct cpu *c, struct entry *en)
{
    struct sgx_cpu *s = c->sgx;
    struct sgx_epc *e = s->epc;
    u64 rbx = addr_of(c, c->gpr[R_RBX]);
    if (rbx & 0xfff)
        gp0(c);
    bool mode64 = cpu_is_long64(c);
    if (!mode64 && (c->seg[SEG_CS].base || c->seg[SEG_DS].base || c->seg[SEG_ES].base || c->seg[SEG_SS].base))
        gp0(c);
    en->tcs_lin = sgx_operand_linear(c, rbx, 1, true);
    u64 gpa = lin_translate(c, en->tcs_lin, ACC_WRITE);
    s64 idx = epc_index(e, gpa);
    const struct sgx_epcm *m = idx >= 0 ? &e->epcm[idx] : NULL;
    if (!m || !m->valid || m->type != PT_TCS || m->linaddr != en->tcs_lin || m->pending ||
        m->modified || m->blocked)
        cpu_page_fault(c, en->tcs_lin, PFEC_P | PFEC_W | PFEC_SGX | (c->cpl == 3 ? PFEC_U : 0));
    en->tcs = (u64)idx;
    en->secs = m->secs;
    en->tcs_page = epc_page(e, en->tcs);
    en->secs_page = epc_page(e, en->secs);
    u64 attr = rd64(en->secs_page, SECS_ATTRIBUTES), xfrm = rd64(en->secs_page, SECS_ATTRIBUTES + 8);
    if (!(attr & ATTR_INIT))
        gp0(c);
    en->mode64 = attr & ATTR_MODE64BIT;
    if (en->mode64 != mode64)
        gp0(c);
    if (!(c->cr4 & CR4_OSFXSR))
        gp0(c);
    if (!(c->cr4 & CR4_OSXSAVE) ? xfrm != 3 : (xfrm & ~c->xcr0) != 0)
        gp0(c);
    if (rd64(en->tcs_page, TCS_STATE) != 0)
        gp0(c);
    en->base = rd64(en->secs_page, SECS_BASEADDR);
    en->size = rd64(en->secs_page, SECS_SIZE);
}

/* Locates SSA frame n of the TCS (its first and last pages: the XSAVE area and GPRSGX). */
static void locate_frame(struct cpu *c, const struct entry *en, u32 n)
{
    u64 frame_pages = rd32(en->secs_page, SECS_SSAFRAMESIZE);
    u64 first = en->base + rd64(en->tcs_page, TCS_OSSA) + (u64)n * frame_pages * SGX_PAGE;
    u64 last = first + (frame_pages - 1) * SGX_PAGE;
    if (en->mode64 ? !cpu_canonical(c, first) || !cpu_canonical(c, last) : last > 0xffffffffull)
        gp0(c);
    /* every page of the frame must be usable; AEX writes only the first and the last */
    for (u64 p = 0; p < frame_pages; p++)
        (void)ssa_page(c, en->secs, first + p * SGX_PAGE);
    c->sgx->ssa_first = ssa_page(c, en->secs, first);
    c->sgx->ssa_last = ssa_page(c, en->secs, last);
}

/* FS and GS as the TCS says: base inside the enclave, limit from the TCS outside 64-bit
 * mode, the rest like DS, selector 0Bh (SDM "EENTER" operation). */
static void load_enclave_segment(struct cpu *c, int seg, u64 base, u32 limit)
{
    struct seg *sg = &c->seg[seg];
    sg->base = base;
    sg->sel = 0x0b;
    sg->attr = c->seg[SEG_DS].attr & ~SEG_ATTR_UNUSABLE;
    sg->limit = cpu_is_long64(c) ? c->seg[SEG_DS].limit : limit;
}

/* Commits an entry (EENTER, ERESUME, and ERESUME under AEX-Notify): enclave mode, the
 * outside state saved, FS/GS/XCR0 loaded, TF as the debug opt-in says. */
static void enter(struct cpu *c, const struct entry *en, u64 fsbase, u64 gsbase)
{
    struct sgx_cpu *s = c->sgx;
    struct sgx_epc *e = s->epc;
    s->secs = en->secs;
    s->tcs = en->tcs;
    s->tcs_la = en->tcs_lin;
    s->elrange_base = en->base;
    s->elrange_size = en->size;
    s->aep = addr_of(c, c->gpr[R_RCX]);
    s->save_fs = c->seg[SEG_FS];
    s->save_gs = c->seg[SEG_GS];
    s->save_xcr0 = c->xcr0;
    load_enclave_segment(c, SEG_FS, fsbase, rd32(en->tcs_page, TCS_FSLIMIT));
    load_enclave_segment(c, SEG_GS, gsbase, rd32(en->tcs_page, TCS_GSLIMIT));
    c->xcr0 = rd64(en->secs_page, SECS_ATTRIBUTES + 8);
    /* a debug enclave's thread that opted in can be single-stepped; any other entry
     * hides TF until the exit (SDM 42.2, "opt-out entry") */
    s->dbgoptin = (rd64(en->secs_page, SECS_ATTRIBUTES) & ATTR_DEBUG) &&
                  (rd64(en->tcs_page, TCS_FLAGS) & TCS_FLAGS_DBGOPTIN);
    s->save_tf = false;
    if (!s->dbgoptin && (c->rflags & FL_TF)) {
        s->save_tf = true;
        c->rflags &= ~FL_TF;
    }
    wr64(en->tcs_page, TCS_STATE, 1);
    wr64(en->tcs_page, TCS_AEP, s->aep); /* "stored into the TCS for use by AEXs" */
    secs_private(e, en->secs)->active_threads++;
    s->entry_epoch = secs_private(e, en->secs)->epoch;
    /* the outside stack, for the synthetic state of an AEX */
    u8 *g = gprsgx(c);
    wr64(g, GPR_URSP, c->gpr[R_RSP]);
    wr64(g, GPR_URBP, c->gpr[R_RBP]);
    c->enclave_mode = true;
    tlb_flush_all(&c->tlb);
    exec_block_end(c);
}


/* EENTER's entry proper, at frame cssa (EENTER, and ERESUME under AEX-Notify). */
static void enter_at_oentry(struct cpu *c, const struct insn *i, struct entry *en, u32 cssa)
{
    u32 nssa = rd32(en->tcs_page, TCS_NSSA);
    if (cssa >= nssa)
        gp0(c);
    u64 target = en->base + rd64(en->tcs_page, TCS_OENTRY);
    if (en->mode64 ? !cpu_canonical(c, target) : (target &= 0xffffffffull) > c->seg[SEG_CS].limit)
        gp0(c);
    locate_frame(c, en, cssa);
    enter(c, en, en->base + rd64(en->tcs_page, TCS_OFSBASE), en->base + rd64(en->tcs_page, TCS_OGSBASE));
    c->gpr[R_RCX] = i->next_rip;  /* where EEXIT goes back to, by convention */
    c->gpr[R_RAX] = cssa;
    c->rip = target;
    c->in->exits |= EXIT_RIP_WRITTEN;
}

static void enclu_eresume(struct cpu *c, const struct insn *i)
{
    struct entry en;
    entry_checks(c, &en);
    u32 cssa = rd32(en.tcs_page, TCS_CSSA);
    if (cssa == 0)
        gp0(c);
    locate_frame(c, &en, cssa - 1);
    const u8 *g = gprsgx(c);
    /* AEX-Notify: the thread is told of the exit instead of resumed - it enters at
     * OENTRY with the frame still there, and its handler returns with EDECCSSA */
    if (g[GPR_AEXNOTIFY] & 1) {
        enter_at_oentry(c, i, &en, cssa);
        return;
    }
    u64 rip = rd64(g, GPR_RIP);
    if (en.mode64 ? !cpu_canonical(c, rip) : rip > c->seg[SEG_CS].limit)
        gp0(c);
    u64 fsbase = rd64(g, GPR_FSBASE), gsbase = rd64(g, GPR_GSBASE);
    if (en.mode64 && (!cpu_canonical(c, fsbase) || !cpu_canonical(c, gsbase)))
        gp0(c);
    /* the frame's XSAVE image must be one XRSTOR takes: checked before anything changes */
    {
        const u8 *x = xsave_area(c);
        if ((rd64(x, XSAVE_HEADER_OFF) & ~(u64)(XCR0_X87 | XCR0_SSE)) || rd64(x, XSAVE_HEADER_OFF + 8) ||
            (rd32(x, 24) & ~MXCSR_WRITABLE))
            gp0(c);
    }
    (void)i;
    u64 outside_rsp = c->gpr[R_RSP], outside_rbp = c->gpr[R_RBP];
    enter(c, &en, fsbase, gsbase);
    xrstor_from_ssa(c);
    for (int r = 0; r < 16; r++)
        c->gpr[r] = rd64(g, GPR_RAX + 8 * r);
    /* RFLAGS as saved, but the system bits stay the outside's (IF, IOPL, VM, ...) and TF
     * is the debug opt-in's */
    u64 fl = rd64(g, GPR_RFLAGS);
    u64 user_bits = FL_ARITH | FL_DF | FL_AC | FL_ID | (c->sgx->dbgoptin ? FL_TF : 0);
    cpu_flags(c);
    c->rflags = (c->rflags & ~user_bits) | (fl & user_bits);
    c->in->lz.op = LZ_NONE;
    c->rip = rip;
    c->in->exits |= EXIT_RIP_WRITTEN;
    /* the resumed frame is the current one again: it keeps the outside stack */
    u8 *gw = gprsgx(c);
    wr64(gw, GPR_URSP, outside_rsp);
    wr64(gw, GPR_URBP, outside_rbp);
    wr32(en.tcs_page, TCS_CSSA, cssa - 1);
}

static void enclu_eenter(struct cpu *c, const struct insn *i)
{
    struct entry en;
    entry_checks(c, &en);
    enter_at_oentry(c, i, &en, rd32(en.tcs_page, TCS_CSSA));
}

/* EDECCSSA (AEX-Notify): the handler is done with the last frame; the one before it is
 * the current one again, keeping the outside stack of this entry. */
static void enclu_edeccssa(struct cpu *c, const struct insn *i)
{
    (void)i;
    struct sgx_cpu *s = c->sgx;
    struct sgx_epc *e = s->epc;
    u8 *tcs = epc_page(e, s->tcs);
    u32 cssa = rd32(tcs, TCS_CSSA);
    if (cssa == 0)
        gp0(c);
    u64 ursp = rd64(gprsgx(c), GPR_URSP), urbp = rd64(gprsgx(c), GPR_URBP);
    struct entry en = { .tcs_lin = s->tcs_la, .tcs = s->tcs, .secs = s->secs, .tcs_page = tcs,
                        .secs_page = epc_page(e, s->secs), .base = s->elrange_base,
                        .size = s->elrange_size, .mode64 = cpu_is_long64(c) };
    locate_frame(c, &en, cssa - 1);
    wr64(gprsgx(c), GPR_URSP, ursp);
    wr64(gprsgx(c), GPR_URBP, urbp);
    wr32(tcs, TCS_CSSA, cssa - 1);
}

bool sgx_breakpoints_suppressed(const struct cpu *c, u64 linear, bool exec)
{
    const struct sgx_cpu *s = c->sgx;
    if (!s->dbgoptin)
        return true;
    return exec && linear - s->elrange_base >= s->elrange_size;
}

/* ---- leaving ---- */
void sgx_leave_enclave(struct cpu *c)
{
    struct sgx_cpu *s = c->sgx;
    struct sgx_epc *e = s->epc;
    wr64(epc_page(e, s->tcs), TCS_STATE, 0);
    struct sgx_secs_private *p = secs_private(e, s->secs);
    if (p->active_threads)
        p->active_threads--;
    c->seg[SEG_FS] = s->save_fs;
    c->seg[SEG_GS] = s->save_gs;
    c->xcr0 = s->save_xcr0;
    if (s->save_tf)
        c->rflags |= FL_TF;
    s->save_tf = false;
    c->enclave_mode = false;
    tlb_flush_all(&c->tlb);
    exec_block_end(c);
}

static void enclu_eexit(struct cpu *c, const struct insn *i)
{
    u64 target = addr_of(c, c->gpr[R_RBX]);
    if (cpu_is_long64(c) ? !cpu_canonical(c, target) : target > c->seg[SEG_CS].limit)
        gp0(c);
    (void)i;
    u64 aep = c->sgx->aep;
    sgx_leave_enclave(c);
    c->gpr[R_RCX] = aep; /* "RCX receives the current AEP" (SDM "EEXIT") */
    c->rip = target;
    c->in->exits |= EXIT_RIP_WRITTEN;
}

/* The asynchronous exit (SDM 39.4): the state goes to the current SSA frame, CSSA moves
 * on, and the synthetic state makes the event look as if it happened at the AEP with
 * ENCLU[ERESUME]'s registers loaded. */
u64 sgx_aex(struct cpu *c, u8 vector, int type, bool has_error, u32 error, u64 return_rip)
{
    struct sgx_cpu *s = c->sgx;
    struct sgx_epc *e = s->epc;
    u8 *tcs = epc_page(e, s->tcs);
    const u8 *secs = epc_page(e, s->secs);
    u8 *g = gprsgx(c);
    cpu_flags(c);
    xsave_to_ssa(c);
    for (int r = 0; r < 16; r++)
        wr64(g, GPR_RAX + 8 * r, c->gpr[r]);
    /* RF as the event's frame would have pushed it outside an enclave: set for a fault
     * (SDM 43.3.3) */
    u32 faults = BIT(EXC_DE) | BIT(EXC_BR) | BIT(EXC_UD) | BIT(EXC_NM) | BIT(EXC_TS) |
                 BIT(EXC_NP) | BIT(EXC_SS) | BIT(EXC_GP) | BIT(EXC_PF) | BIT(EXC_MF) |
                 BIT(EXC_AC) | BIT(EXC_XM) | BIT(EXC_VE) | BIT(EXC_CP);
    bool fault = type == EVT_HW_EXC && vector < 32 && (faults & BIT(vector));
    wr64(g, GPR_RFLAGS, c->rflags | (fault ? FL_RF : 0));
    wr64(g, GPR_RIP, return_rip);
    wr64(g, GPR_FSBASE, c->seg[SEG_FS].base);
    wr64(g, GPR_GSBASE, c->seg[SEG_GS].base);
    /* EXITINFO: the exceptions an enclave may handle itself (SDM Table 39-3), #PF and
     * #GP only where MISCSELECT asks for their details */
    u32 misc = rd32(secs, SECS_MISCSELECT);
    bool exc = type == EVT_HW_EXC || type == EVT_SW_EXC || type == EVT_PRIV_SW_EXC;
    u32 reportable = BIT(EXC_DE) | BIT(EXC_DB) | BIT(EXC_BP) | BIT(EXC_BR) | BIT(EXC_UD) |
                     BIT(EXC_MF) | BIT(EXC_AC) | BIT(EXC_XM);
    if (misc & MISC_EXINFO)
        reportable |= BIT(EXC_PF) | BIT(EXC_GP);
    u32 exitinfo = 0;
    if (exc && vector < 32 && (reportable & BIT(vector)))
        exitinfo = BIT(31) | vector | (u32)(type == EVT_HW_EXC ? 3 : 6) << 8;
    wr32(g, GPR_EXITINFO, exitinfo);
    wr32(g, GPR_EXITINFO + 4, 0);
    u64 notify = (rd64(secs, SECS_ATTRIBUTES) & ATTR_AEXNOTIFY) &&
                 (rd64(tcs, TCS_FLAGS) & TCS_FLAGS_AEXNOTIFY);
    g[GPR_AEXNOTIFY] = (u8)notify;
    if ((misc & MISC_EXINFO) && exc && (vector == EXC_PF || vector == EXC_GP)) {
        u8 *x = g - EXINFO_SIZE;
        wr64(x, 0, vector == EXC_PF ? c->cr2 : 0);
        wr32(x, 8, has_error ? error : 0);
        wr32(x, 12, 0);
    }
    mem_code_write(&e->gen[s->ssa_last]);
    wr32(tcs, TCS_CSSA, rd32(tcs, TCS_CSSA) + 1);

    /* the synthetic state */
    u64 ursp = rd64(g, GPR_URSP), urbp = rd64(g, GPR_URBP);
    memset(c->gpr, 0, sizeof(c->gpr));
    c->gpr[R_RAX] = 3; /* ENCLU[ERESUME] */
    c->gpr[R_RBX] = s->tcs_la;
    c->gpr[R_RCX] = rd64(tcs, TCS_AEP);
    c->gpr[R_RSP] = ursp;
    c->gpr[R_RBP] = urbp;
    c->rflags &= ~(FL_ARITH | FL_TF | FL_RF);
    c->in->lz.op = LZ_NONE;
    fpu_x87_init_state(c);
    c->fpu.mxcsr = MXCSR_INIT;
    memset(c->fpu.xmm, 0, sizeof(c->fpu.xmm));
    /* a page fault inside the enclave reports the page, not the byte */
    if (vector == EXC_PF && type == EVT_HW_EXC)
        c->cr2 &= ~0xfffull;
    u64 aep = rd64(tcs, TCS_AEP);
    sgx_leave_enclave(c);
    c->rip = aep;
    exec_enter_context(c);
    return aep;
}

/* ---- reports and keys ---- */
/* KEYREQUEST (SDM 35.18) */
#define KR_KEYNAME 0
#define KR_KEYPOLICY 2
#define KR_ISVSVN 4
#define KR_CPUSVN 8
#define KR_ATTRIBUTEMASK 24
#define KR_KEYID 40
#define KR_MISCMASK 72
#define KR_CONFIGSVN 76
enum { KEY_EINITTOKEN = 0, KEY_PROVISION = 1, KEY_PROVISION_SEAL = 2, KEY_REPORT = 3, KEY_SEAL = 4 };
#define POLICY_MRENCLAVE BIT(0)
#define POLICY_MRSIGNER BIT(1)
#define POLICY_NOISVPRODID BIT(2)
#define POLICY_CONFIGID BIT(3)
#define POLICY_ISVFAMILYID BIT(4)
#define POLICY_ISVEXTPRODID BIT(5)

/* What a derived key depends on, laid out once (the SDM's TMP_KEYDEPENDENCIES): the key is
 * AES-CMAC over it under the machine's root secret. */
struct key_deps {
    u16 keyname, isvprodid, isvsvn, configsvn;
    u8 cpusvn[16];
    u64 attributes[2];
    u8 mrenclave[32], mrsigner[32], keyid[32], configid[64];
    u32 miscselect, pad;
    u8 owner_epoch[16];
};

static void derive(const struct sgx_epc *e, const struct key_deps *d, u8 key[16])
{
    sgx_cmac(e->cfg.root_secret, d, sizeof(*d), key);
}

/* The report key of a target enclave (EREPORT's MAC, EGETKEY(REPORT) in the target). */
static void report_key(const struct sgx_epc *e, const u8 *measurement, const u8 *attributes,
                       u32 miscselect, const u8 *keyid, u8 key[16])
{
    struct key_deps d;
    memset(&d, 0, sizeof(d));
    d.keyname = KEY_REPORT;
    memcpy(d.cpusvn, e->cpusvn, 16);
    memcpy(d.attributes, attributes, 16);
    memcpy(d.mrenclave, measurement, 32);
    memcpy(d.keyid, keyid, 32);
    d.miscselect = miscselect;
    derive(e, &d, key);
}

/* The enclave-supplied buffers of EREPORT and EGETKEY lie inside the enclave. */
static u64 enclave_buffer(struct cpu *c, u64 ea, unsigned align, unsigned size)
{
    ea = addr_of(c, ea);
    if (ea & (align - 1))
        gp0(c);
    u64 lin = sgx_operand_linear(c, ea, size, false);
    struct sgx_cpu *s = c->sgx;
    if (lin - s->elrange_base >= s->elrange_size || lin + size - 1 - s->elrange_base >= s->elrange_size)
        gp0(c);
    return lin;
}

/* the per-boot KEYID EREPORT puts in reports (CR_REPORT_KEYID): the machine's, derived
 * from its root secret so that it stays the same across save/restore */
static void report_keyid(const struct sgx_epc *e, u8 keyid[32])
{
    static const u8 label[16] = "report key id...";
    u8 k[16];
    sgx_cmac(e->cfg.root_secret, label, sizeof(label), k);
    memset(keyid, 0, 32);
    memcpy(keyid, k, 16);
}

static void enclu_ereport(struct cpu *c, const struct insn *i)
{
    (void)i;
    struct sgx_cpu *s = c->sgx;
    struct sgx_epc *e = s->epc;
    u64 ti_lin = enclave_buffer(c, c->gpr[R_RBX], 512, TARGETINFO_SIZE);
    u64 rd_lin = enclave_buffer(c, c->gpr[R_RCX], 128, 64);
    u64 out_lin = enclave_buffer(c, c->gpr[R_RDX], 512, REPORT_SIZE);
    u8 ti[TARGETINFO_SIZE], reportdata[64];
    sgx_read_operand(c, ti_lin, ti, sizeof(ti));
    sgx_read_operand(c, rd_lin, reportdata, sizeof(reportdata));
    const u8 *secs = epc_page(e, s->secs);
    u8 r[REPORT_SIZE];
    memset(r, 0, sizeof(r));
    memcpy(r + 0, e->cpusvn, 16);
    wr32(r, 16, rd32(secs, SECS_MISCSELECT));
    memcpy(r + 48, secs + SECS_ATTRIBUTES, 16);
    memcpy(r + 64, secs + SECS_MRENCLAVE, 32);
    memcpy(r + 128, secs + SECS_MRSIGNER, 32);
    memcpy(r + 192, secs + SECS_CONFIGID, 64);
    wr16(r, 256, rd16(secs, SECS_ISVPRODID));
    wr16(r, 258, rd16(secs, SECS_ISVSVN));
    wr16(r, 260, rd16(secs, SECS_CONFIGSVN));
    memcpy(r + 320, reportdata, 64);
    report_keyid(e, r + 384);
    u8 key[16];
    report_key(e, ti + 0, ti + 32, rd32(ti, 52), r + 384, key);
    sgx_cmac(key, r, 384, r + 416);
    sgx_write_operand(c, out_lin, r, sizeof(r));
}

static void enclu_egetkey(struct cpu *c, const struct insn *i)
{
    (void)i;
    struct sgx_cpu *s = c->sgx;
    struct sgx_epc *e = s->epc;
    u64 kr_lin = enclave_buffer(c, c->gpr[R_RBX], 512, KEYREQUEST_SIZE);
    u64 out_lin = enclave_buffer(c, c->gpr[R_RCX], 16, 16);
    u8 kr[KEYREQUEST_SIZE];
    sgx_read_operand(c, kr_lin, kr, sizeof(kr));
    const u8 *secs = epc_page(e, s->secs);
    u64 attr = rd64(secs, SECS_ATTRIBUTES);
    u16 policy = rd16(kr, KR_KEYPOLICY);
    /* reserved fields and policy bits (the KSS ones need KSS) */
    u16 policy_ok = POLICY_MRENCLAVE | POLICY_MRSIGNER | POLICY_NOISVPRODID;
    if (attr & ATTR_KSS)
        policy_ok |= POLICY_CONFIGID | POLICY_ISVFAMILYID | POLICY_ISVEXTPRODID;
    if ((policy & ~policy_ok) || rd16(kr, 6))
        gp0(c);
    for (unsigned k = 78; k < KEYREQUEST_SIZE; k++)
        if (kr[k])
            gp0(c);
    u16 name = rd16(kr, KR_KEYNAME);
    u32 status = SGX_SUCCESS;
    struct key_deps d;
    memset(&d, 0, sizeof(d));
    d.keyname = name;
    u16 isvsvn = rd16(kr, KR_ISVSVN), configsvn = rd16(kr, KR_CONFIGSVN);
    /* a key of a later security version than the enclave's or the processor's is never
     * handed out (CPUSVN compares as a whole here: one component) */
    bool svn_ok = isvsvn <= rd16(secs, SECS_ISVSVN) && configsvn <= rd16(secs, SECS_CONFIGSVN);
    bool cpusvn_ok = memcmp(kr + KR_CPUSVN, e->cpusvn, 16) <= 0;
    switch (name) {
    case KEY_EINITTOKEN:
        if (!(attr & ATTR_EINITTOKEN_KEY)) {
            status = SGX_INVALID_ATTRIBUTE;
            break;
        }
        if (!svn_ok) { status = SGX_INVALID_ISVSVN; break; }
        if (!cpusvn_ok) { status = SGX_INVALID_CPUSVN; break; }
        d.isvsvn = isvsvn;
        memcpy(d.cpusvn, kr + KR_CPUSVN, 16);
        memcpy(d.mrsigner, secs + SECS_MRSIGNER, 32);
        memcpy(d.keyid, kr + KR_KEYID, 32);
        d.isvprodid = rd16(secs, SECS_ISVPRODID);
        d.attributes[0] = attr & rd64(kr, KR_ATTRIBUTEMASK);
        break;
    case KEY_PROVISION:
    case KEY_PROVISION_SEAL:
        if (!(attr & ATTR_PROVISIONKEY)) {
            status = SGX_INVALID_ATTRIBUTE;
            break;
        }
        /* fall through */
    case KEY_SEAL:
        if (!svn_ok) { status = SGX_INVALID_ISVSVN; break; }
        if (!cpusvn_ok) { status = SGX_INVALID_CPUSVN; break; }
        d.isvsvn = isvsvn;
        d.configsvn = configsvn;
        memcpy(d.cpusvn, kr + KR_CPUSVN, 16);
        /* INIT and DEBUG always count: a debug enclave never gets a production key */
        d.attributes[0] = attr & (rd64(kr, KR_ATTRIBUTEMASK) | ATTR_INIT | ATTR_DEBUG);
        d.attributes[1] = rd64(secs, SECS_ATTRIBUTES + 8) & rd64(kr, KR_ATTRIBUTEMASK + 8);
        d.miscselect = rd32(secs, SECS_MISCSELECT) & rd32(kr, KR_MISCMASK);
        if (name != KEY_PROVISION)
            memcpy(d.keyid, kr + KR_KEYID, 32);
        if (name == KEY_SEAL && (policy & POLICY_MRENCLAVE))
            memcpy(d.mrenclave, secs + SECS_MRENCLAVE, 32);
        if (name != KEY_SEAL || (policy & POLICY_MRSIGNER))
            memcpy(d.mrsigner, secs + SECS_MRSIGNER, 32);
        if (!(policy & POLICY_NOISVPRODID))
            d.isvprodid = rd16(secs, SECS_ISVPRODID);
        if (policy & POLICY_CONFIGID)
            memcpy(d.configid, secs + SECS_CONFIGID, 64);
        break;
    case KEY_REPORT: {
        u8 key[16];
        report_key(e, secs + SECS_MRENCLAVE, secs + SECS_ATTRIBUTES, rd32(secs, SECS_MISCSELECT),
                   kr + KR_KEYID, key);
        sgx_write_operand(c, out_lin, key, 16);
        leaf_status(c, SGX_SUCCESS);
        return;
    }
    default:
        status = SGX_INVALID_KEYNAME;
        break;
    }
    if (status) {
        leaf_status(c, status);
        return;
    }
    u8 key[16];
    derive(e, &d, key);
    sgx_write_operand(c, out_lin, key, 16);
    leaf_status(c, SGX_SUCCESS);
}

/* The launch key a token's MAC is checked with (EINIT): the key EGETKEY(EINITTOKEN_KEY)
 * gives a launch enclave signed by the key the hash MSRs name, for the token's KEYID,
 * CPUSVN, ISVSVN and attributes. */
void sgx_einittoken_key(const struct cpu *c, const u8 *tok, u8 key[16])
{
    struct key_deps d;
    memset(&d, 0, sizeof(d));
    d.keyname = KEY_EINITTOKEN;
    d.isvsvn = rd16(tok, 210);
    d.isvprodid = rd16(tok, 208);
    memcpy(d.cpusvn, tok + 192, 16);
    memcpy(d.mrsigner, c->sgx->lepubkeyhash, 32);
    memcpy(d.keyid, tok + 256, 32);
    d.attributes[0] = rd64(tok, 240);
    derive(c->sgx->epc, &d, key);
}

/* The paging key EWB and ELDB/ELDU encrypt with: the machine's, from its root secret. */
void sgx_paging_key(const struct sgx_epc *e, u8 key[16])
{
    struct key_deps d;
    memset(&d, 0, sizeof(d));
    d.keyname = 0x100; /* no EGETKEY name: software never gets this key */
    derive(e, &d, key);
}

/* ---- SGX2 inside the enclave: EACCEPT, EMODPE, EACCEPTCOPY (SDM 41.x) ---- */
/* SECINFO inside the enclave, 64-byte aligned, reserved bits clear (#GP). */
static u64 enclave_secinfo(struct cpu *c)
{
    u64 lin = enclave_buffer(c, c->gpr[R_RBX], 64, SECINFO_SIZE);
    u8 b[SECINFO_SIZE];
    sgx_read_operand(c, lin, b, sizeof(b));
    return secinfo_flags(c, b);
}

/* The enclave page at RCX (an address in the enclave, page aligned): a valid page of
 * this enclave mapped there (#PF with PFEC.SGX otherwise). */
static struct sgx_epcm *enclave_page(struct cpu *c, u64 ea, u64 *idx_out)
{
    struct sgx_cpu *s = c->sgx;
    struct sgx_epc *e = s->epc;
    u64 lin = enclave_buffer(c, ea, SGX_PAGE, 1);
    /* the page tables only: the leaf checks the EPCM itself (pending, modified, TRIM) */
    u64 gpa = lin_translate(c, lin, ACC_READ | ACC_NO_AD | ACC_EPCM_UNCHECKED);
    s64 idx = epc_index(e, gpa);
    struct sgx_epcm *m = idx >= 0 ? &e->epcm[idx] : NULL;
    if (!m || !m->valid || m->secs != s->secs || m->linaddr != lin)
        cpu_page_fault(c, lin, PFEC_P | PFEC_SGX | (c->cpl == 3 ? PFEC_U : 0));
    *idx_out = (u64)idx;
    return m;
}

static void enclu_eaccept(struct cpu *c, const struct insn *i)
{
    (void)i;
    u64 flags = enclave_secinfo(c);
    u64 idx;
    struct sgx_epcm *m = enclave_page(c, c->gpr[R_RCX], &idx);
    unsigned type = SECINFO_TYPE(flags);
    unsigned perms = (unsigned)(flags & SECINFO_PERMS);
    u32 status = SGX_PAGE_ATTRIBUTES_MISMATCH;
    /* accepting a restriction (EMODPR) or a type change (EMODT) needs it tracked: an
     * ETRACK since, and every thread that was inside then gone (SDM "EACCEPT") */
    struct sgx_epc *e = c->sgx->epc;
    if ((flags & (SECINFO_MODIFIED | SECINFO_PR)) && (m->modified || m->pr) &&
        (secs_private(e, m->secs)->epoch <= m->modify_epoch ||
         sgx_enclave_has_threads_from(e, m->secs, m->modify_epoch))) {
        leaf_status(c, SGX_NOT_TRACKED);
        return;
    }
    if (m->blocked) {
        status = SGX_PAGE_ATTRIBUTES_MISMATCH;
    } else if (flags & SECINFO_PENDING) {
        /* a page EAUG added: regular, read/write, as SECINFO says */
        if (m->pending && !m->modified && type == PT_REG && m->type == PT_REG && perms == m->perms &&
            !(flags & (SECINFO_MODIFIED | SECINFO_PR))) {
            m->pending = 0;
            status = SGX_SUCCESS;
        }
    } else if (flags & SECINFO_MODIFIED) {
        /* a type change EMODT made; a new TCS must be one EENTER can take (#GP) */
        if (m->modified && type == m->type && m->type == PT_TCS) {
            const u8 *t = epc_page(e, idx);
            if (rd64(t, TCS_STATE) || (rd64(t, TCS_FLAGS) & TCS_FLAGS_DBGOPTIN) ||
                rd32(t, TCS_CSSA) >= rd32(t, TCS_NSSA) || rd64(t, TCS_AEP))
                gp0(c);
        }
        if (m->modified && type == m->type && !(flags & SECINFO_PR) && perms == 0) {
            m->modified = 0;
            status = SGX_SUCCESS;
        }
    } else if (flags & SECINFO_PR) {
        /* a restriction EMODPR made */
        if (m->pr && !m->pending && !m->modified && type == PT_REG && perms == m->perms) {
            m->pr = 0;
            status = SGX_SUCCESS;
        }
    }
    leaf_status(c, status);
}

static void enclu_emodpe(struct cpu *c, const struct insn *i)
{
    (void)i;
    u64 flags = enclave_secinfo(c);
    if (flags & ~SECINFO_PERMS)
        gp0(c);
    u64 idx;
    struct sgx_epcm *m = enclave_page(c, c->gpr[R_RCX], &idx);
    if (m->type != PT_REG || m->pending || m->modified)
        cpu_page_fault(c, c->gpr[R_RCX], PFEC_P | PFEC_SGX | PFEC_U);
    m->perms |= (u8)(flags & SECINFO_PERMS);
    /* a page with W must have R (SDM: EMODPE keeps the EPCM consistent) */
    if ((m->perms & SECINFO_W) && !(m->perms & SECINFO_R))
        m->perms |= SECINFO_R;
}

static void enclu_eacceptcopy(struct cpu *c, const struct insn *i)
{
    (void)i;
    struct sgx_epc *e = c->sgx->epc;
    u64 flags = enclave_secinfo(c);
    u64 src_lin = enclave_buffer(c, c->gpr[R_RDX], SGX_PAGE, SGX_PAGE);
    u8 src[SGX_PAGE];
    sgx_read_operand(c, src_lin, src, SGX_PAGE);
    u64 idx;
    struct sgx_epcm *m = enclave_page(c, c->gpr[R_RCX], &idx);
    unsigned perms = (unsigned)(flags & SECINFO_PERMS);
    if (SECINFO_TYPE(flags) != PT_REG || (flags & (SECINFO_PENDING | SECINFO_MODIFIED | SECINFO_PR)) ||
        ((perms & SECINFO_W) && !(perms & SECINFO_R)))
        gp0(c);
    if (!m->pending || m->modified || m->type != PT_REG || m->blocked) {
        leaf_status(c, SGX_PAGE_ATTRIBUTES_MISMATCH);
        return;
    }
    memcpy(epc_page(e, idx), src, SGX_PAGE);
    mem_code_write(&e->gen[idx]);
    m->perms = (u8)perms;
    m->pending = 0;
    leaf_status(c, SGX_SUCCESS);
}

/* ---- the leaf table ---- */
enum { WHERE_OUTSIDE = 1, WHERE_INSIDE = 2 };
struct enclu_leaf {
    const char *name;
    void (*fn)(struct cpu *c, const struct insn *i);
    u8 where;            /* WHERE_*: outside an enclave, inside, or both */
    enum sgx_feature feature;
};

static const struct enclu_leaf enclu_leaves[] = {
    [0x0] = { "EREPORT", enclu_ereport, WHERE_INSIDE, SGXF_SGX1 },
    [0x1] = { "EGETKEY", enclu_egetkey, WHERE_INSIDE, SGXF_SGX1 },
    [0x2] = { "EENTER", enclu_eenter, WHERE_OUTSIDE, SGXF_SGX1 },
    [0x3] = { "ERESUME", enclu_eresume, WHERE_OUTSIDE, SGXF_SGX1 },
    [0x4] = { "EEXIT", enclu_eexit, WHERE_INSIDE, SGXF_SGX1 },
    [0x5] = { "EACCEPT", enclu_eaccept, WHERE_INSIDE, SGXF_SGX2 },
    [0x6] = { "EMODPE", enclu_emodpe, WHERE_INSIDE, SGXF_SGX2 },
    [0x7] = { "EACCEPTCOPY", enclu_eacceptcopy, WHERE_INSIDE, SGXF_SGX2 },
    [0x9] = { "EDECCSSA", enclu_edeccssa, WHERE_INSIDE, SGXF_EDECCSSA },
};

/* ENCLU: SDM Vol. 3D 41.2, the instruction's checks in its order. */
void sgx_insn_enclu(struct cpu *c, const struct insn *i)
{
    if (!cpu_is_prot(c) || cpu_is_v86(c) || !c->sgx || !c->sgx->feature[SGXF_SGX1])
        cpu_fault_noerr(c, EXC_UD);
    if (c->cr0 & CR0_TS)
        cpu_fault_noerr(c, EXC_NM);
    if (c->cpl < 3)
        cpu_fault_noerr(c, EXC_UD);
    u64 fc = c->msr_feature_control;
    if (!(fc & BIT(0)) || !(fc & FEATURE_CONTROL_SGX))
        gp0(c);
    u32 leaf = (u32)c->gpr[R_RAX];
    if (leaf >= ARRAY_SIZE(enclu_leaves) || !enclu_leaves[leaf].fn ||
        !c->sgx->feature[enclu_leaves[leaf].feature])
        gp0(c);
    if (!(c->cr0 & CR0_PG) || !(c->cr0 & CR0_NE))
        gp0(c);
    if (!cpu_is_long64(c) && !(c->seg[SEG_CS].attr & SEG_ATTR_DB))
        gp0(c);
    if (!(enclu_leaves[leaf].where & (c->enclave_mode ? WHERE_INSIDE : WHERE_OUTSIDE)))
        gp0(c);
    enclu_leaves[leaf].fn(c, i);
}

/* SDM 39.6.1: instructions that may exit to a VMM, do I/O or change privilege (far
 * transfers, segment register loads other than FS/GS through the TCS). */
bool sgx_insn_illegal_in_enclave(const struct ZydisDecodedInstruction_ *d,
                                 const struct ZydisDecodedOperand_ *op, const struct cpu *c)
{
    if (d->meta.branch_type == ZYDIS_BRANCH_TYPE_FAR)
        return true;
    switch (d->mnemonic) {
    case ZYDIS_MNEMONIC_CPUID: case ZYDIS_MNEMONIC_GETSEC: case ZYDIS_MNEMONIC_RDPMC:
    case ZYDIS_MNEMONIC_SGDT: case ZYDIS_MNEMONIC_SIDT: case ZYDIS_MNEMONIC_SLDT:
    case ZYDIS_MNEMONIC_STR: case ZYDIS_MNEMONIC_VMCALL: case ZYDIS_MNEMONIC_VMFUNC:
    case ZYDIS_MNEMONIC_IN: case ZYDIS_MNEMONIC_INSB: case ZYDIS_MNEMONIC_INSW:
    case ZYDIS_MNEMONIC_INSD: case ZYDIS_MNEMONIC_OUT: case ZYDIS_MNEMONIC_OUTSB:
    case ZYDIS_MNEMONIC_OUTSW: case ZYDIS_MNEMONIC_OUTSD:
    case ZYDIS_MNEMONIC_INT: case ZYDIS_MNEMONIC_INTO: case ZYDIS_MNEMONIC_INT1:
    /* (INT3 depends on the debug opt-in: its handler decides) */
    case ZYDIS_MNEMONIC_IRET: case ZYDIS_MNEMONIC_IRETD: case ZYDIS_MNEMONIC_IRETQ:
    case ZYDIS_MNEMONIC_LDS: case ZYDIS_MNEMONIC_LES: case ZYDIS_MNEMONIC_LFS:
    case ZYDIS_MNEMONIC_LGS: case ZYDIS_MNEMONIC_LSS:
    case ZYDIS_MNEMONIC_SYSCALL: case ZYDIS_MNEMONIC_SYSENTER:
    case ZYDIS_MNEMONIC_ENCLS: case ZYDIS_MNEMONIC_VMMCALL:
        return true;
    case ZYDIS_MNEMONIC_RDTSC: case ZYDIS_MNEMONIC_RDTSCP:
        /* legal with SGX2 (SDM 39.6.1) */
        return !cpuid_has(c->model, "sgx2");
    case ZYDIS_MNEMONIC_MOV: case ZYDIS_MNEMONIC_POP:
        /* MOV to and POP of a segment register */
        return op[0].type == ZYDIS_OPERAND_TYPE_REGISTER &&
               (op[0].reg.value == ZYDIS_REGISTER_DS || op[0].reg.value == ZYDIS_REGISTER_ES ||
                op[0].reg.value == ZYDIS_REGISTER_SS || op[0].reg.value == ZYDIS_REGISTER_FS ||
                op[0].reg.value == ZYDIS_REGISTER_GS);
    default:
        return false;
    }
}
