/* ENCLS: the privileged leaves that build, initialise, tear down and page enclaves (SDM
 * Vol. 3D ch. 40). One table names each leaf, its handler and the feature it needs; the
 * instruction's own checks come first (sgx_insn_encls), in the SDM's order. */
#include <string.h>

#include "cpu/sgx/sgx_internal.h"

/* ---- what several leaves share ---- */
/* The statuses EBLOCK and EWB report with CF instead (SDM "Flags Affected": EBLOCK sets
 * CF for a page already blocked or not blockable, EWB for an occupied VA slot, a
 * warning: the page was written out) */
static void leaf_status_cf(struct cpu *c, u32 status)
{
    c->gpr[R_RAX] = status;
    flags_set(c, FL_ARITH, FL_CF);
}


/* An operand's effective address from a register, as a DS-relative linear address,
 * aligned as the leaf requires (#GP(0) if not). */
static u64 operand(struct cpu *c, u64 ea, unsigned align, unsigned size, bool write)
{
    if (!cpu_is_long64(c))
        ea &= 0xffffffffull;
    if (ea & (align - 1))
        gp0(c);
    return sgx_operand_linear(c, ea, size, write);
}

/* An EPC page operand: aligned, EPC (#PF otherwise). */
static u64 epc_operand(struct cpu *c, u64 ea, bool write)
{
    u64 lin = operand(c, ea, SGX_PAGE, 1, write);
    return sgx_epc_operand(c, lin, write);
}

static struct sgx_epc *epc_of(struct cpu *c) { return c->sgx->epc; }

/* #PF for an EPC page whose EPCM state forbids the leaf (SDM: "#PF(DS:RCX)"). */
static _Noreturn void epcm_fault(struct cpu *c, u64 linear, bool write)
{
    cpu_page_fault(c, linear, PFEC_P | PFEC_SGX | (write ? PFEC_W : 0) |
                                  (c->cpl == 3 ? PFEC_U : 0));
}

/* The SECS page a PAGEINFO names: an EPC page holding a valid SECS (#PF otherwise). */
static u64 secs_operand(struct cpu *c, u64 ea)
{
    u64 lin = operand(c, ea, SGX_PAGE, 1, false);
    u64 idx = sgx_epc_operand(c, lin, false);
    const struct sgx_epcm *m = &epc_of(c)->epcm[idx];
    if (!m->valid || m->type != PT_SECS)
        epcm_fault(c, lin, false);
    return idx;
}

static u64 secs_attributes(const struct sgx_epc *e, u64 secs) { return rd64(epc_page(e, secs), SECS_ATTRIBUTES); }
static bool secs_initialized(const struct sgx_epc *e, u64 secs) { return secs_attributes(e, secs) & ATTR_INIT; }

struct pageinfo {
    u64 linaddr, srcpge, secinfo, secs;
};
static void read_pageinfo(struct cpu *c, u64 rbx, struct pageinfo *p)
{
    u8 b[PAGEINFO_SIZE];
    sgx_read_operand(c, operand(c, rbx, 32, PAGEINFO_SIZE, false), b, sizeof(b));
    p->linaddr = rd64(b, 0);
    p->srcpge = rd64(b, 8);
    p->secinfo = rd64(b, 16);
    p->secs = rd64(b, 24);
    if (!cpu_is_long64(c)) {
        p->linaddr &= 0xffffffffull;
        p->srcpge &= 0xffffffffull;
        p->secinfo &= 0xffffffffull;
        p->secs &= 0xffffffffull;
    }
}

/* SECINFO: 64-byte aligned, no reserved bit set (#GP(0)). */
static u64 read_secinfo(struct cpu *c, u64 ea)
{
    u8 b[SECINFO_SIZE];
    sgx_read_operand(c, operand(c, ea, 64, SECINFO_SIZE, false), b, sizeof(b));
    return secinfo_flags(c, b);
}

/* ---- ECREATE (SDM 40.3, "ECREATE") ---- */
static bool power_of_2(u64 v) { return v && !(v & (v - 1)); }

static void encls_ecreate(struct cpu *c)
{
    struct sgx_epc *e = epc_of(c);
    struct pageinfo pi;
    read_pageinfo(c, c->gpr[R_RBX], &pi);
    u64 target_lin = operand(c, c->gpr[R_RCX], SGX_PAGE, 1, true);
    if ((pi.srcpge & 0xfff) || (pi.secinfo & 63))
        gp0(c);
    if (pi.linaddr || pi.secs)
        gp0(c);
    u64 flags = read_secinfo(c, pi.secinfo);
    if (SECINFO_TYPE(flags) != PT_SECS || (flags & (SECINFO_PERMS | SECINFO_PENDING | SECINFO_MODIFIED | SECINFO_PR)))
        gp0(c);
    u8 secs[SGX_PAGE];
    sgx_read_operand(c, sgx_operand_linear(c, pi.srcpge, SGX_PAGE, false), secs, SGX_PAGE);
    u64 idx = sgx_epc_operand(c, target_lin, true);
    if (e->epcm[idx].valid)
        epcm_fault(c, target_lin, true);

    u64 size = rd64(secs, SECS_SIZE), base = rd64(secs, SECS_BASEADDR);
    u32 ssaframesize = rd32(secs, SECS_SSAFRAMESIZE), misc = rd32(secs, SECS_MISCSELECT);
    u64 attr = rd64(secs, SECS_ATTRIBUTES), xfrm = rd64(secs, SECS_ATTRIBUTES + 8);
    bool mode64 = attr & ATTR_MODE64BIT;
    /* ATTRIBUTES and XFRM within what CPUID leaf 12h sub-leaf 1 allows, INIT clear, the
     * provisioning key only where the host grants it; XFRM holds x87 and SSE and is a
     * valid XCR0 value; MISCSELECT within sub-leaf 0's EBX */
    if ((attr & ~sgx_attributes_allowed(c)) || (attr & ATTR_INIT))
        gp0(c);
    if ((attr & ATTR_PROVISIONKEY) && !e->cfg.provision_allowed)
        gp0(c);
    if ((xfrm & ~sgx_xfrm_allowed(c)) || (xfrm & 3) != 3)
        gp0(c);
    if (misc & ~sgx_miscselect_allowed(c))
        gp0(c);
    /* a 64-bit enclave is created in 64-bit mode (a 32-bit one anywhere: Linux's
     * driver creates them from its 64-bit kernel) */
    if (mode64 && !cpu_is_long64(c))
        gp0(c);
    struct cpuid_result l0 = cpuid_query(c->model, 0x12, 0, (u32)c->id, false, true, 0);
    unsigned max_bits = mode64 ? (l0.edx >> 8) & 0xff : l0.edx & 0xff;
    if (!power_of_2(size) || size < 2 * SGX_PAGE || (max_bits < 64 && size > (1ull << max_bits)))
        gp0(c);
    if (base & (size - 1))
        gp0(c);
    if (mode64 ? !cpu_canonical_max(c, base) || !cpu_canonical_max(c, base + size - 1)
               : base + size > 0x100000000ull)
        gp0(c);
    /* the frame holds the XSAVE image of XFRM, the MISC region and GPRSGX */
    u64 need = sgx_xsave_size(xfrm) + sgx_misc_size(misc) + GPRSGX_SIZE;
    if (ssaframesize == 0 || (u64)ssaframesize * SGX_PAGE < need)
        gp0(c);
    /* reserved fields are zero */
    for (unsigned k = 24; k < 48; k++)
        if (secs[k])
            gp0(c);
    for (unsigned k = 96; k < 128; k++)
        if (secs[k])
            gp0(c);
    for (unsigned k = 160; k < SGX_PAGE; k++)
        if (secs[k] && !(k >= SECS_CONFIGID && k < SECS_CONFIGID + 64) &&
            !(k >= SECS_ISVPRODID && k < SECS_CONFIGSVN + 2))
            gp0(c);
    if (!(attr & ATTR_KSS)) { /* CONFIGID/CONFIGSVN are KSS's */
        for (unsigned k = SECS_CONFIGID; k < SECS_CONFIGID + 64; k++)
            if (secs[k])
                gp0(c);
        if (rd16(secs, SECS_CONFIGSVN))
            gp0(c);
    }

    /* the measurement starts; MRENCLAVE, MRSIGNER, ISVPRODID and ISVSVN are EINIT's */
    memset(secs + SECS_MRENCLAVE, 0, 32);
    memset(secs + SECS_MRSIGNER, 0, 32);
    wr16(secs, SECS_ISVPRODID, 0);
    wr16(secs, SECS_ISVSVN, 0);
    struct sgx_secs_private *p = (struct sgx_secs_private *)(secs + SECS_PRIVATE);
    memset(p, 0, sizeof(*p));
    p->eid = e->next_eid++;
    sgx_measure_init(&p->measure);
    sgx_measure_ecreate(&p->measure, ssaframesize, size);
    memcpy(epc_page(e, idx), secs, SGX_PAGE);
    mem_code_write(&e->gen[idx]);
    e->epcm[idx] = (struct sgx_epcm){ .valid = 1, .type = PT_SECS };
}

/* ---- EADD ---- */
/* The TCS's fields as EADD checks them (SDM 40.3 "EADD": TCS must be valid). */
static bool tcs_valid(const struct cpu *c, const u8 *tcs, bool mode64)
{
    u64 flags = rd64(tcs, TCS_FLAGS);
    u64 allowed = TCS_FLAGS_DBGOPTIN;
    if (cpuid_has(c->model, "sgx-aex-notify"))
        allowed |= TCS_FLAGS_AEXNOTIFY;
    if (flags & ~allowed)
        return false;
    if ((rd64(tcs, TCS_OSSA) & 0xfff) || (rd64(tcs, TCS_OFSBASE) & 0xfff) ||
        (rd64(tcs, TCS_OGSBASE) & 0xfff))
        return false;
    /* outside 64-bit mode the limits are page granular */
    if (!mode64 && ((rd32(tcs, TCS_FSLIMIT) & 0xfff) != 0xfff || (rd32(tcs, TCS_GSLIMIT) & 0xfff) != 0xfff))
        return false;
    for (unsigned k = TCS_RESERVED; k < SGX_PAGE; k++)
        if (tcs[k])
            return false;
    return true;
}

static void encls_eadd(struct cpu *c)
{
    struct sgx_epc *e = epc_of(c);
    struct pageinfo pi;
    read_pageinfo(c, c->gpr[R_RBX], &pi);
    u64 target_lin = operand(c, c->gpr[R_RCX], SGX_PAGE, 1, true);
    if ((pi.srcpge & 0xfff) || (pi.secinfo & 63) || (pi.secs & 0xfff) || (pi.linaddr & 0xfff))
        gp0(c);
    u64 flags = read_secinfo(c, pi.secinfo);
    unsigned type = SECINFO_TYPE(flags);
    if (type != PT_REG && type != PT_TCS)
        gp0(c);
    if (flags & (SECINFO_PENDING | SECINFO_MODIFIED | SECINFO_PR))
        gp0(c);
    if (type == PT_TCS && (flags & SECINFO_PERMS))
        gp0(c);
    if ((flags & SECINFO_W) && !(flags & SECINFO_R))
        gp0(c);
    u8 page[SGX_PAGE];
    sgx_read_operand(c, sgx_operand_linear(c, pi.srcpge, SGX_PAGE, false), page, SGX_PAGE);
    u64 secs = secs_operand(c, pi.secs);
    u64 idx = sgx_epc_operand(c, target_lin, true);
    if (e->epcm[idx].valid)
        epcm_fault(c, target_lin, true);
    if (secs_initialized(e, secs))
        gp0(c);
    const u8 *s = epc_page(e, secs);
    u64 base = rd64(s, SECS_BASEADDR), size = rd64(s, SECS_SIZE);
    if (pi.linaddr - base >= size)
        gp0(c);
    if (type == PT_TCS && !tcs_valid(c, page, secs_attributes(e, secs) & ATTR_MODE64BIT))
        gp0(c);

    /* EADD forces a TCS's debug opt-in, state and CSSA to zero (SDM 43.1.2; only EDBGWR
     * sets the opt-in, for a debugger) */
    if (type == PT_TCS) {
        wr64(page, TCS_FLAGS, rd64(page, TCS_FLAGS) & ~TCS_FLAGS_DBGOPTIN);
        wr64(page, TCS_STATE, 0);
        wr32(page, TCS_CSSA, 0);
        wr64(page, TCS_AEP, 0);
    }
    memcpy(epc_page(e, idx), page, SGX_PAGE);
    mem_code_write(&e->gen[idx]);
    u8 secinfo48[48] = { 0 };
    wr64(secinfo48, 0, flags);
    struct sgx_secs_private *p = secs_private(e, secs);
    sgx_measure_eadd(&p->measure, pi.linaddr - base, secinfo48);
    p->children++;
    e->epcm[idx] = (struct sgx_epcm){ .valid = 1, .type = (u8)type,
                                      .perms = (u8)(flags & SECINFO_PERMS),
                                      .secs = (u32)secs, .linaddr = pi.linaddr };
}

/* ---- EEXTEND ---- */
static void encls_eextend(struct cpu *c)
{
    struct sgx_epc *e = epc_of(c);
    u64 lin = operand(c, c->gpr[R_RCX], 256, 1, false);
    u64 idx = sgx_epc_operand(c, lin, false);
    const struct sgx_epcm *m = &e->epcm[idx];
    if (!m->valid || (m->type != PT_REG && m->type != PT_TCS))
        epcm_fault(c, lin, false);
    if (secs_initialized(e, m->secs))
        gp0(c);
    u64 base = rd64(epc_page(e, m->secs), SECS_BASEADDR);
    unsigned off = (unsigned)(lin & 0xfff);
    sgx_measure_eextend(&secs_private(e, m->secs)->measure, m->linaddr - base + off,
                        epc_page(e, idx) + off);
}

/* ---- EINIT ---- */
static const u8 sigstruct_header[16] = { 6, 0, 0, 0, 0xe1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0 };
static const u8 sigstruct_header2[16] = { 1, 1, 0, 0, 0x60, 0, 0, 0, 0x60, 0, 0, 0, 1, 0, 0, 0 };
#define SIG_VENDOR 16
#define SIG_MODULUS 128
#define SIG_MISCSELECT 900
#define SIG_MISCMASK 904
#define SIG_ISVFAMILYID 912
#define SIG_ATTRIBUTES 928
#define SIG_ATTRIBUTEMASK 944
#define SIG_ENCLAVEHASH 960
#define SIG_ISVEXTPRODID 1008
#define SIG_ISVPRODID 1024
#define SIG_ISVSVN 1026
/* EINITTOKEN */
#define TOK_VALID 0
#define TOK_ATTRIBUTES 48
#define TOK_MRENCLAVE 64
#define TOK_MRSIGNER 128
#define TOK_CPUSVNLE 192
#define TOK_ISVPRODIDLE 208
#define TOK_ISVSVNLE 210
#define TOK_MASKEDMISCSELECTLE 236
#define TOK_MASKEDATTRIBUTESLE 240
#define TOK_KEYID 256
#define TOK_MAC 288

static u32 einit_check(struct cpu *c, u64 secs, const u8 *sig, const u8 *tok)
{
    struct sgx_epc *e = epc_of(c);
    u8 *s = epc_page(e, secs);
    if (memcmp(sig, sigstruct_header, 16) || memcmp(sig + 24, sigstruct_header2, 16))
        return SGX_INVALID_SIG_STRUCT;
    u32 vendor = rd32(sig, SIG_VENDOR);
    if (vendor != 0 && vendor != 0x8086)
        return SGX_INVALID_SIG_STRUCT;
    if (sgx_sigstruct_verify(sig) != 0)
        return SGX_INVALID_SIGNATURE;
    /* the enclave's ATTRIBUTES and MISCSELECT as the signer required them */
    for (int k = 0; k < 2; k++) {
        u64 want = rd64(sig, SIG_ATTRIBUTES + 8 * k), mask = rd64(sig, SIG_ATTRIBUTEMASK + 8 * k);
        if ((want & mask) != (rd64(s, SECS_ATTRIBUTES + 8 * k) & mask))
            return SGX_INVALID_ATTRIBUTE;
    }
    u32 misc_mask = rd32(sig, SIG_MISCMASK);
    if ((rd32(sig, SIG_MISCSELECT) & misc_mask) != (rd32(s, SECS_MISCSELECT) & misc_mask))
        return SGX_INVALID_ATTRIBUTE;
    u8 mrenclave[32], mrsigner[32];
    sgx_measure_final(&secs_private(e, secs)->measure, mrenclave);
    if (memcmp(mrenclave, sig + SIG_ENCLAVEHASH, 32))
        return SGX_INVALID_MEASUREMENT;
    sgx_sha256(sig + SIG_MODULUS, 384, mrsigner);
    u8 lehash[32];
    memcpy(lehash, c->sgx->lepubkeyhash, 32);
    u64 attr = rd64(s, SECS_ATTRIBUTES);
    if (rd32(tok, TOK_VALID) & 1) {
        /* a launch token: made for this enclave by a launch enclave this processor's
         * Launch Control trusts, MACed with the launch key */
        u8 key[16], mac[16];
        sgx_einittoken_key(c, tok, key);
        sgx_cmac(key, tok, 192, mac);
        if (memcmp(mac, tok + TOK_MAC, 16))
            return SGX_INVALID_EINITTOKEN;
        if (memcmp(tok + TOK_MRENCLAVE, mrenclave, 32) || memcmp(tok + TOK_MRSIGNER, mrsigner, 32) ||
            memcmp(tok + TOK_ATTRIBUTES, s + SECS_ATTRIBUTES, 16))
            return SGX_INVALID_EINITTOKEN;
        /* a debug launch enclave's token launches debug enclaves only */
        if ((rd64(tok, TOK_MASKEDATTRIBUTESLE) & ATTR_DEBUG) && !(attr & ATTR_DEBUG))
            return SGX_INVALID_EINITTOKEN;
    } else if (memcmp(mrsigner, lehash, 32)) {
        /* without a token only the signer the hash MSRs name may launch (Launch Control) */
        return SGX_INVALID_EINITTOKEN;
    }
    /* the launch key is for launch enclaves, signed by the key the MSRs name */
    if ((attr & ATTR_EINITTOKEN_KEY) && memcmp(mrsigner, lehash, 32))
        return SGX_INVALID_ATTRIBUTE;

    memcpy(s + SECS_MRENCLAVE, mrenclave, 32);
    memcpy(s + SECS_MRSIGNER, mrsigner, 32);
    wr16(s, SECS_ISVPRODID, rd16(sig, SIG_ISVPRODID));
    wr16(s, SECS_ISVSVN, rd16(sig, SIG_ISVSVN));
    wr64(s, SECS_ATTRIBUTES, attr | ATTR_INIT);
    return SGX_SUCCESS;
}

static void encls_einit(struct cpu *c)
{
    u64 sig_lin = operand(c, c->gpr[R_RBX], SGX_PAGE, SGX_SIGSTRUCT_SIZE, false);
    u64 tok_lin = operand(c, c->gpr[R_RDX], 512, EINITTOKEN_SIZE, false);
    u8 sig[SGX_SIGSTRUCT_SIZE], tok[EINITTOKEN_SIZE];
    sgx_read_operand(c, sig_lin, sig, sizeof(sig));
    sgx_read_operand(c, tok_lin, tok, sizeof(tok));
    u64 secs = secs_operand(c, c->gpr[R_RCX]);
    if (secs_initialized(epc_of(c), secs))
        gp0(c);
    leaf_status(c, einit_check(c, secs, sig, tok));
}

/* ---- EREMOVE ---- */
static void encls_eremove(struct cpu *c)
{
    struct sgx_epc *e = epc_of(c);
    u64 idx = epc_operand(c, c->gpr[R_RCX], true);
    struct sgx_epcm *m = &e->epcm[idx];
    if (!m->valid) {
        leaf_status(c, SGX_SUCCESS);
        return;
    }
    if (m->type == PT_SECS) {
        if (secs_private(e, idx)->children) {
            leaf_status(c, SGX_CHILD_PRESENT);
            return;
        }
    } else if (m->type != PT_VA) {
        if (secs_private(e, m->secs)->active_threads) {
            leaf_status(c, SGX_ENCLAVE_ACT);
            return;
        }
        secs_private(e, m->secs)->children--;
    }
    memset(m, 0, sizeof(*m));
    memset(epc_page(e, idx), 0, SGX_PAGE);
    mem_code_write(&e->gen[idx]);
    sgx_flush_translations(e);
    leaf_status(c, SGX_SUCCESS);
}

/* ---- EDBGRD / EDBGWR ---- */
static void encls_edbg(struct cpu *c, bool write)
{
    struct sgx_epc *e = epc_of(c);
    bool mode64 = cpu_is_long64(c);
    unsigned n = mode64 ? 8 : 4;
    u64 lin = operand(c, c->gpr[R_RCX], n, n, write);
    u64 idx = sgx_epc_operand(c, lin, write);
    const struct sgx_epcm *m = &e->epcm[idx];
    if (!m->valid)
        epcm_fault(c, lin, write);
    if (m->type != PT_REG && m->type != PT_TCS) {
        leaf_status(c, SGX_PAGE_NOT_DEBUGGABLE);
        return;
    }
    if (!(secs_attributes(e, m->secs) & ATTR_DEBUG))
        gp0(c);
    unsigned off = (unsigned)(lin & 0xfff);
    u8 *p = epc_page(e, idx) + off;
    if (write) {
        /* of a TCS only FLAGS may be written (the debugger's opt-in) */
        if (m->type == PT_TCS && off != TCS_FLAGS)
            gp0(c);
        u64 v = c->gpr[R_RBX];
        if (m->type == PT_TCS) {
            u64 allowed = TCS_FLAGS_DBGOPTIN | (rd64(p, 0) & TCS_FLAGS_AEXNOTIFY);
            if (v & ~allowed)
                gp0(c);
        }
        memcpy(p, &v, n);
        mem_code_write(&e->gen[idx]);
    } else {
        u64 v = 0;
        memcpy(&v, p, n);
        if (mode64)
            c->gpr[R_RBX] = v;
        else
            gpr_write(c, R_RBX, 4, v);
    }
    leaf_status(c, SGX_SUCCESS);
}
static void encls_edbgrd(struct cpu *c) { encls_edbg(c, false); }
static void encls_edbgwr(struct cpu *c) { encls_edbg(c, true); }

/* ---- paging: EPA, EBLOCK, ETRACK, EWB, ELDB/ELDU (SDM 40.5) ---- */
/* A VA slot: 8-byte aligned in a valid VA page (#PF otherwise). Returns its host bytes. */
static u8 *va_slot(struct cpu *c, u64 ea, bool write)
{
    u64 lin = operand(c, ea, 8, 8, write);
    struct sgx_epc *e = epc_of(c);
    u64 idx = sgx_epc_operand(c, lin, write);
    if (!e->epcm[idx].valid || e->epcm[idx].type != PT_VA)
        epcm_fault(c, lin, write);
    return epc_page(e, idx) + (lin & 0xfff);
}

static void encls_epa(struct cpu *c)
{
    struct sgx_epc *e = epc_of(c);
    if (c->gpr[R_RBX] != PT_VA)
        gp0(c);
    u64 lin = operand(c, c->gpr[R_RCX], SGX_PAGE, 1, true);
    u64 idx = sgx_epc_operand(c, lin, true);
    if (e->epcm[idx].valid)
        epcm_fault(c, lin, true);
    memset(epc_page(e, idx), 0, SGX_PAGE);
    e->epcm[idx] = (struct sgx_epcm){ .valid = 1, .type = PT_VA };
}

static void encls_eblock(struct cpu *c)
{
    struct sgx_epc *e = epc_of(c);
    u64 idx = epc_operand(c, c->gpr[R_RCX], false);
    struct sgx_epcm *m = &e->epcm[idx];
    if (!m->valid) {
        leaf_status(c, SGX_PG_INVLD);
        return;
    }
    if (m->type != PT_REG && m->type != PT_TCS && m->type != PT_TRIM) {
        leaf_status_cf(c, m->type == PT_SECS ? SGX_PG_IS_SECS : SGX_NOTBLOCKABLE);
        return;
    }
    if (m->blocked) {
        leaf_status_cf(c, SGX_BLKSTATE);
        return;
    }
    m->blocked = 1;
    m->blocked_epoch = secs_private(e, m->secs)->epoch;
    sgx_flush_translations(e); /* no new translation of a blocked page */
    leaf_status(c, SGX_SUCCESS);
}

static void encls_etrack(struct cpu *c)
{
    struct sgx_epc *e = epc_of(c);
    u64 lin = operand(c, c->gpr[R_RCX], SGX_PAGE, 1, false);
    u64 secs = sgx_epc_operand(c, lin, false);
    if (!e->epcm[secs].valid || e->epcm[secs].type != PT_SECS)
        epcm_fault(c, lin, false);
    /* the threads of the last round must all have left */
    if (sgx_enclave_has_old_threads(e, secs)) {
        leaf_status(c, SGX_PREV_TRK_INCMPL);
        return;
    }
    secs_private(e, secs)->epoch++;
    leaf_status(c, SGX_SUCCESS);
}

/* The binding of a paged-out page: what its MAC covers besides the bytes. */
struct paging_aad {
    u64 secinfo_flags;
    u64 enclave_id;
    u64 linaddr;
    u64 version;
};

static void paging_iv(u64 version, u8 iv[12])
{
    memset(iv, 0, 12);
    memcpy(iv, &version, 8);
}

#define PCMD_ENCLAVEID 64
#define PCMD_MAC 112

static void encls_ewb(struct cpu *c)
{
    struct sgx_epc *e = epc_of(c);
    struct pageinfo pi;
    read_pageinfo(c, c->gpr[R_RBX], &pi);
    u64 pcmd_ea = pi.secinfo; /* EWB's PAGEINFO names the PCMD where others have SECINFO */
    if ((pi.srcpge & 0xfff) || (pcmd_ea & 127) || pi.linaddr || pi.secs)
        gp0(c);
    u64 src_lin = sgx_operand_linear(c, pi.srcpge, SGX_PAGE, true);
    u64 pcmd_lin = sgx_operand_linear(c, pcmd_ea, PCMD_SIZE, true);
    u64 lin = operand(c, c->gpr[R_RCX], SGX_PAGE, 1, true);
    u64 idx = sgx_epc_operand(c, lin, true);
    struct sgx_epcm *m = &e->epcm[idx];
    if (!m->valid)
        epcm_fault(c, lin, true);
    u8 *slot = va_slot(c, c->gpr[R_RDX], true);
    /* the destinations must be writable before anything changes */
    lin_translate(c, src_lin, ACC_WRITE);
    lin_translate(c, src_lin + SGX_PAGE - 1, ACC_WRITE);
    lin_translate(c, pcmd_lin, ACC_WRITE);
    if (m->type == PT_SECS) {
        if (secs_private(e, idx)->children) {
            leaf_status(c, SGX_CHILD_PRESENT);
            return;
        }
    } else if (m->type != PT_VA) {
        if (!m->blocked) {
            leaf_status(c, SGX_PAGE_NOT_BLOCKED);
            return;
        }
        /* tracked: an ETRACK after the EBLOCK, and every thread of before it gone */
        if (secs_private(e, m->secs)->epoch <= m->blocked_epoch ||
            sgx_enclave_has_threads_from(e, m->secs, m->blocked_epoch)) {
            leaf_status(c, SGX_NOT_TRACKED);
            return;
        }
    }
    if (slot >= epc_page(e, idx) && slot < epc_page(e, idx) + SGX_PAGE)
        gp0(c); /* a VA page cannot hold its own version */
    u64 old_slot = rd64(slot, 0);
    u64 version = ++e->paging_nonce;
    struct paging_aad aad = {
        .secinfo_flags = (u64)m->type << 8 | m->perms |
                         (m->pending ? SECINFO_PENDING : 0) | (m->modified ? SECINFO_MODIFIED : 0) |
                         (m->pr ? SECINFO_PR : 0),
        .enclave_id = m->type == PT_SECS ? secs_private(e, idx)->eid
                      : m->type == PT_VA ? 0 : secs_private(e, m->secs)->eid,
        .linaddr = m->linaddr,
        .version = version,
    };
    u8 key[16], iv[12], out[SGX_PAGE], pcmd[PCMD_SIZE];
    sgx_paging_key(e, key);
    paging_iv(version, iv);
    memset(pcmd, 0, sizeof(pcmd));
    wr64(pcmd, 0, aad.secinfo_flags);
    wr64(pcmd, PCMD_ENCLAVEID, aad.enclave_id);
    sgx_page_encrypt(key, iv, &aad, sizeof(aad), epc_page(e, idx), out, pcmd + PCMD_MAC);
    sgx_write_operand(c, src_lin, out, SGX_PAGE);
    sgx_write_operand(c, pcmd_lin, pcmd, PCMD_SIZE);
    wr64(slot, 0, version);
    if (m->type != PT_SECS && m->type != PT_VA)
        secs_private(e, m->secs)->children--;
    memset(m, 0, sizeof(*m));
    memset(epc_page(e, idx), 0, SGX_PAGE);
    mem_code_write(&e->gen[idx]);
    sgx_flush_translations(e);
    /* an occupied slot is overwritten, and said so (SDM "EWB") */
    if (old_slot)
        leaf_status_cf(c, SGX_VA_SLOT_OCCUPIED);
    else
        leaf_status(c, SGX_SUCCESS);
}

static void encls_eld(struct cpu *c, bool blocked)
{
    struct sgx_epc *e = epc_of(c);
    struct pageinfo pi;
    read_pageinfo(c, c->gpr[R_RBX], &pi);
    u64 pcmd_ea = pi.secinfo;
    if ((pi.srcpge & 0xfff) || (pcmd_ea & 127) || (pi.linaddr & 0xfff) || (pi.secs & 0xfff))
        gp0(c);
    u8 in[SGX_PAGE], pcmd[PCMD_SIZE];
    sgx_read_operand(c, sgx_operand_linear(c, pi.srcpge, SGX_PAGE, false), in, SGX_PAGE);
    sgx_read_operand(c, sgx_operand_linear(c, pcmd_ea, PCMD_SIZE, false), pcmd, PCMD_SIZE);
    u64 lin = operand(c, c->gpr[R_RCX], SGX_PAGE, 1, true);
    u64 idx = sgx_epc_operand(c, lin, true);
    if (e->epcm[idx].valid)
        epcm_fault(c, lin, true);
    u8 *slot = va_slot(c, c->gpr[R_RDX], true);
    u64 flags = rd64(pcmd, 0);
    unsigned type = SECINFO_TYPE(flags);
    if ((flags & ~SECINFO_DEFINED) || type > PT_TRIM)
        gp0(c);
    u64 secs = 0, eid = 0;
    if (type == PT_SECS || type == PT_VA) {
        if (pi.secs || pi.linaddr)
            gp0(c);
        eid = rd64(pcmd, PCMD_ENCLAVEID);
    } else {
        secs = secs_operand(c, pi.secs);
        eid = secs_private(e, secs)->eid;
        u64 base = rd64(epc_page(e, secs), SECS_BASEADDR), size = rd64(epc_page(e, secs), SECS_SIZE);
        if (pi.linaddr - base >= size)
            gp0(c);
    }
    struct paging_aad aad = { .secinfo_flags = flags, .enclave_id = eid,
                              .linaddr = (type == PT_SECS || type == PT_VA) ? 0 : pi.linaddr,
                              .version = rd64(slot, 0) };
    u8 key[16], iv[12];
    sgx_paging_key(e, key);
    paging_iv(aad.version, iv);
    /* a wrong version, enclave, address or byte: the MAC does not match */
    if (rd64(pcmd, PCMD_ENCLAVEID) != eid ||
        sgx_page_decrypt(key, iv, &aad, sizeof(aad), in, epc_page(e, idx), pcmd + PCMD_MAC) != 0) {
        leaf_status(c, SGX_MAC_COMPARE_FAIL);
        return;
    }
    mem_code_write(&e->gen[idx]);
    e->epcm[idx] = (struct sgx_epcm){
        .valid = 1, .type = (u8)type, .perms = (u8)(flags & SECINFO_PERMS),
        .pending = !!(flags & SECINFO_PENDING), .modified = !!(flags & SECINFO_MODIFIED),
        .pr = !!(flags & SECINFO_PR), .blocked = blocked, .secs = (u32)secs,
        .linaddr = aad.linaddr,
        .blocked_epoch = type == PT_SECS || type == PT_VA ? 0 : secs_private(e, secs)->epoch,
    };
    if (type != PT_SECS && type != PT_VA)
        secs_private(e, secs)->children++;
    wr64(slot, 0, 0);
    leaf_status(c, SGX_SUCCESS);
}
static void encls_eldb(struct cpu *c) { encls_eld(c, true); }
static void encls_eldu(struct cpu *c) { encls_eld(c, false); }

/* ---- SGX2: EAUG, EMODPR, EMODT (SDM 40.6) ---- */
static void encls_eaug(struct cpu *c)
{
    struct sgx_epc *e = epc_of(c);
    struct pageinfo pi;
    read_pageinfo(c, c->gpr[R_RBX], &pi);
    if (pi.srcpge || (pi.linaddr & 0xfff) || (pi.secs & 0xfff))
        gp0(c);
    /* SECINFO may name a shadow-stack type, which this processor does not have */
    if (pi.secinfo)
        gp0(c);
    u64 lin = operand(c, c->gpr[R_RCX], SGX_PAGE, 1, true);
    u64 secs = secs_operand(c, pi.secs);
    u64 idx = sgx_epc_operand(c, lin, true);
    if (e->epcm[idx].valid)
        epcm_fault(c, lin, true);
    if (!secs_initialized(e, secs))
        gp0(c);
    const u8 *s = epc_page(e, secs);
    if (pi.linaddr - rd64(s, SECS_BASEADDR) >= rd64(s, SECS_SIZE))
        gp0(c);
    memset(epc_page(e, idx), 0, SGX_PAGE);
    mem_code_write(&e->gen[idx]);
    secs_private(e, secs)->children++;
    e->epcm[idx] = (struct sgx_epcm){ .valid = 1, .type = PT_REG, .perms = SECINFO_R | SECINFO_W,
                                      .pending = 1, .secs = (u32)secs, .linaddr = pi.linaddr };
}

/* The SECINFO and EPC page of EMODPR/EMODT: the page must be a valid enclave page
 * (#PF), of an initialised enclave (#GP). The type is each leaf's to check, in its
 * order. */
static struct sgx_epcm *modify_operands(struct cpu *c, u64 *flags, u64 *lin)
{
    struct sgx_epc *e = epc_of(c);
    *flags = read_secinfo(c, c->gpr[R_RBX]);
    *lin = operand(c, c->gpr[R_RCX], SGX_PAGE, 1, true);
    u64 idx = sgx_epc_operand(c, *lin, true);
    struct sgx_epcm *m = &e->epcm[idx];
    if (!m->valid || m->type == PT_SECS || m->type == PT_VA)
        epcm_fault(c, *lin, true);
    if (!secs_initialized(e, m->secs))
        gp0(c);
    return m;
}

static void encls_emodpr(struct cpu *c)
{
    u64 flags, lin;
    struct sgx_epcm *m = modify_operands(c, &flags, &lin);
    if ((flags & ~SECINFO_PERMS) || ((flags & SECINFO_W) && !(flags & SECINFO_R)))
        gp0(c);
    /* a page not yet accepted is not modifiable; only then is a page that is not a
     * regular one a fault (Linux tells an accepted trimmed page by the #PF) */
    if (m->pending || m->modified) {
        leaf_status(c, SGX_PAGE_NOT_MODIFIABLE);
        return;
    }
    if (m->type != PT_REG)
        epcm_fault(c, lin, true);
    m->perms &= (u8)(flags & SECINFO_PERMS);
    m->pr = 1;
    m->modify_epoch = secs_private(epc_of(c), m->secs)->epoch; /* EACCEPT waits for an ETRACK */
    sgx_flush_translations(epc_of(c));
    leaf_status(c, SGX_SUCCESS);
}

static void encls_emodt(struct cpu *c)
{
    u64 flags, lin;
    struct sgx_epcm *m = modify_operands(c, &flags, &lin);
    if (m->type != PT_REG && m->type != PT_TCS)
        epcm_fault(c, lin, true);
    unsigned type = SECINFO_TYPE(flags);
    if ((flags & ~(u64)0xff00) || (type != PT_TCS && type != PT_TRIM))
        gp0(c);
    /* a TCS can become a trimmed page only; a regular page either */
    if (m->pending || m->modified || m->pr || (m->type == PT_TCS && type != PT_TRIM)) {
        leaf_status(c, SGX_PAGE_NOT_MODIFIABLE);
        return;
    }
    if (m->type == PT_TCS && rd64(epc_page(epc_of(c), (u64)(m - epc_of(c)->epcm)), TCS_STATE)) {
        leaf_status(c, SGX_PAGE_NOT_MODIFIABLE);
        return;
    }
    m->type = (u8)type;
    m->perms = 0;
    m->modified = 1;
    m->modify_epoch = secs_private(epc_of(c), m->secs)->epoch; /* EACCEPT waits for an ETRACK */
    sgx_flush_translations(epc_of(c));
    leaf_status(c, SGX_SUCCESS);
}

/* ---- the leaf table ---- */
struct sgx_leaf {
    const char *name;
    void (*fn)(struct cpu *c);
    enum sgx_feature feature; /* the CPUID feature the leaf needs */
};

static const struct sgx_leaf encls_leaves[] = {
    [0x0] = { "ECREATE", encls_ecreate, SGXF_SGX1 },
    [0x1] = { "EADD", encls_eadd, SGXF_SGX1 },
    [0x2] = { "EINIT", encls_einit, SGXF_SGX1 },
    [0x3] = { "EREMOVE", encls_eremove, SGXF_SGX1 },
    [0x4] = { "EDBGRD", encls_edbgrd, SGXF_SGX1 },
    [0x5] = { "EDBGWR", encls_edbgwr, SGXF_SGX1 },
    [0x6] = { "EEXTEND", encls_eextend, SGXF_SGX1 },
    [0x7] = { "ELDB", encls_eldb, SGXF_SGX1 },
    [0x8] = { "ELDU", encls_eldu, SGXF_SGX1 },
    [0x9] = { "EBLOCK", encls_eblock, SGXF_SGX1 },
    [0xa] = { "EPA", encls_epa, SGXF_SGX1 },
    [0xb] = { "EWB", encls_ewb, SGXF_SGX1 },
    [0xc] = { "ETRACK", encls_etrack, SGXF_SGX1 },
    [0xd] = { "EAUG", encls_eaug, SGXF_SGX2 },
    [0xe] = { "EMODPR", encls_emodpr, SGXF_SGX2 },
    [0xf] = { "EMODT", encls_emodt, SGXF_SGX2 },
};

/* ENCLS: SDM Vol. 3D 40.2, the instruction's checks in its order. */
void sgx_insn_encls(struct cpu *c, const struct insn *i)
{
    (void)i;
    if (!cpu_is_prot(c) || !c->sgx || !c->sgx->feature[SGXF_SGX1] || c->enclave_mode)
        cpu_fault_noerr(c, EXC_UD);
    if (c->cpl > 0)
        cpu_fault_noerr(c, EXC_UD);
    u32 leaf = (u32)c->gpr[R_RAX];
    cpu_insn_event(c, INSN_EV_ENCLS, leaf);
    u64 fc = c->msr_feature_control;
    if (!(fc & BIT(0)) || !(fc & FEATURE_CONTROL_SGX))
        gp0(c);
    if (leaf >= ARRAY_SIZE(encls_leaves) || !encls_leaves[leaf].fn ||
        !c->sgx->feature[encls_leaves[leaf].feature])
        gp0(c);
    if (!(c->cr0 & CR0_PG))
        gp0(c);
    /* 16-bit code segments cannot use the leaves */
    if (!cpu_is_long64(c) && !(c->seg[SEG_CS].attr & SEG_ATTR_DB))
        gp0(c);
    encls_leaves[leaf].fn(c);
}
