/* Inside src/cpu/sgx/: the architectural structures (SDM Vol. 3D ch. 35), the EPC and
 * EPCM, and the per-vCPU enclave state the leaves share. */
#ifndef NESTOR_CPU_SGX_INTERNAL_H
#define NESTOR_CPU_SGX_INTERNAL_H

#include <string.h>

#include "cpu/exec.h"
#include "cpu/sgx/crypto.h"
#include "cpu/sgx/sgx.h"
#include "machine/mem.h"

#define SGX_PAGE 4096u

/* ---- error codes ENCLS/ENCLU return in EAX (SDM Table 38-4) ---- */
enum {
    SGX_SUCCESS = 0,
    SGX_INVALID_SIG_STRUCT = 1,
    SGX_INVALID_ATTRIBUTE = 2,
    SGX_BLKSTATE = 3,
    SGX_INVALID_MEASUREMENT = 4,
    SGX_NOTBLOCKABLE = 5,
    SGX_PG_INVLD = 6,
    SGX_EPC_PAGE_CONFLICT = 7,
    SGX_INVALID_SIGNATURE = 8,
    SGX_MAC_COMPARE_FAIL = 9,
    SGX_PAGE_NOT_BLOCKED = 10,
    SGX_NOT_TRACKED = 11,
    SGX_VA_SLOT_OCCUPIED = 12,
    SGX_CHILD_PRESENT = 13,
    SGX_ENCLAVE_ACT = 14,
    SGX_ENTRYEPOCH_LOCKED = 15,
    SGX_INVALID_EINITTOKEN = 16,
    SGX_PREV_TRK_INCMPL = 17,
    SGX_PG_IS_SECS = 18,
    SGX_PAGE_ATTRIBUTES_MISMATCH = 19,
    SGX_PAGE_NOT_MODIFIABLE = 20,
    SGX_PAGE_NOT_DEBUGGABLE = 21,
    SGX_INVALID_CPUSVN = 32,
    SGX_INVALID_ISVSVN = 64,
    SGX_UNMASKED_EVENT = 128,
    SGX_INVALID_KEYNAME = 256,
};

/* ---- page types and SECINFO flags (SDM 35.11) ---- */
enum { PT_SECS = 0, PT_TCS = 1, PT_REG = 2, PT_VA = 3, PT_TRIM = 4 };
#define SECINFO_R BIT(0)
#define SECINFO_W BIT(1)
#define SECINFO_X BIT(2)
#define SECINFO_PENDING BIT(3)
#define SECINFO_MODIFIED BIT(4)
#define SECINFO_PR BIT(5)
#define SECINFO_PERMS (SECINFO_R | SECINFO_W | SECINFO_X)
#define SECINFO_TYPE(f) (((f) >> 8) & 0xff)
/* the bits of SECINFO.FLAGS that are not reserved (R, W, X, PENDING, MODIFIED, PR, type) */
#define SECINFO_DEFINED (0x3full | 0xff00ull)

/* ---- SECS.ATTRIBUTES (SDM 35.7.1) ---- */
#define ATTR_INIT BIT(0)
#define ATTR_DEBUG BIT(1)
#define ATTR_MODE64BIT BIT(2)
#define ATTR_PROVISIONKEY BIT(4)
#define ATTR_EINITTOKEN_KEY BIT(5)
#define ATTR_KSS BIT(7)
#define ATTR_AEXNOTIFY BIT(10)
/* MISCSELECT */
#define MISC_EXINFO BIT(0)

/* ---- SECS layout (4096 bytes) ---- */
#define SECS_SIZE 0
#define SECS_BASEADDR 8
#define SECS_SSAFRAMESIZE 16
#define SECS_MISCSELECT 20
#define SECS_ATTRIBUTES 48      /* flags u64, xfrm u64 */
#define SECS_MRENCLAVE 64
#define SECS_MRSIGNER 128
#define SECS_CONFIGID 192       /* 64 bytes */
#define SECS_ISVPRODID 256
#define SECS_ISVSVN 258
#define SECS_CONFIGSVN 260
/* What the processor keeps in the SECS's reserved area (software never reads a SECS:
 * EDBGRD refuses it), so that it lives and is saved with the page. */
struct sgx_secs_private {
    u64 eid;                /* the enclave's identity (EINITTOKEN, paging) */
    struct sgx_measure measure; /* MRENCLAVE while the enclave is being built */
    u64 children;           /* valid EPC pages whose SECS this is */
    u64 active_threads;     /* TCSs in enclave mode */
    u64 epoch;              /* ETRACK: the current tracking epoch */
};
#define SECS_PRIVATE 3072

/* ---- TCS layout ---- */
#define TCS_STATE 0             /* the processor's: 0 inactive, 1 active */
#define TCS_FLAGS 8
#define TCS_OSSA 16
#define TCS_CSSA 24
#define TCS_NSSA 28
#define TCS_OENTRY 32
#define TCS_AEP 40
#define TCS_OFSBASE 48
#define TCS_OGSBASE 56
#define TCS_FSLIMIT 64
#define TCS_GSLIMIT 68
#define TCS_RESERVED 72         /* to the end of the page: must be zero at EADD */
#define TCS_FLAGS_DBGOPTIN BIT(0)
#define TCS_FLAGS_AEXNOTIFY BIT(1)

/* ---- SSA frame: GPRSGX at the end, MISC (EXINFO) right before it ---- */
#define GPRSGX_SIZE 184
#define GPR_RAX 0               /* RAX..R15 at 8 * register number */
#define GPR_RFLAGS 128
#define GPR_RIP 136
#define GPR_URSP 144
#define GPR_URBP 152
#define GPR_EXITINFO 160
#define GPR_AEXNOTIFY 167       /* bit 0: AEX-Notify for the next ERESUME */
#define GPR_FSBASE 168
#define GPR_GSBASE 176
#define EXINFO_SIZE 16          /* MADDR u64, ERRCD u32, reserved u32 */

/* ---- sizes of the other structures ---- */
#define PAGEINFO_SIZE 32
#define SECINFO_SIZE 64
#define PCMD_SIZE 128
#define REPORT_SIZE 432
#define TARGETINFO_SIZE 512
#define KEYREQUEST_SIZE 512
#define EINITTOKEN_SIZE 304

/* ---- the EPC ---- */
struct sgx_epcm {
    u8 valid;
    u8 type;        /* PT_* */
    u8 perms;       /* SECINFO_R/W/X */
    u8 pending, modified, pr, blocked;
    u8 pad;
    u32 secs;       /* the SECS page's index (pages of an enclave), else 0 */
    u32 pad2;
    u64 linaddr;    /* the enclave linear address it is mapped at (REG, TCS, TRIM) */
    u64 blocked_epoch; /* EBLOCK: the SECS tracking epoch at the time */
    /* EMODPR, EMODT: the SECS tracking epoch at the time, which EACCEPT waits to see
     * tracked; 0 after a reload (its EWB needed a tracking round of its own) */
    u64 modify_epoch;
};

struct sgx_epc {
    struct sgx_config cfg;
    u64 npages;
    u64 first_page[SGX_MAX_SECTIONS]; /* index of each section's first page */
    u8 *bytes;                  /* npages * 4096 */
    u32 *gen;                   /* per page: code-generation word (mem.h) */
    struct sgx_epcm *epcm;      /* per page */
    u64 next_eid;
    u64 paging_nonce;           /* EWB's monotonic counter (part of each blob's IV) */
    u8 cpusvn[16];
    /* the vCPUs attached (ETRACK looks at which of them are inside an enclave) */
    struct sgx_cpu *cpus[64];
    int ncpus;
    /* flushes every vCPU's TLB after an EPCM change that takes access away */
    void (*flush_all)(void *opaque);
    void *flush_opaque;
};

/* The page index of gpa, or -1 if gpa is not in the EPC. */
static inline s64 epc_index(const struct sgx_epc *e, u64 gpa)
{
    for (int s = 0; s < e->cfg.nsections; s++) {
        u64 b = e->cfg.section[s].base;
        if (gpa >= b && gpa - b < e->cfg.section[s].size)
            return (s64)(e->first_page[s] + ((gpa - b) >> 12));
    }
    return -1;
}
static inline u64 epc_gpa(const struct sgx_epc *e, u64 idx)
{
    for (int s = 0; s < e->cfg.nsections; s++) {
        u64 n = e->cfg.section[s].size >> 12;
        if (idx >= e->first_page[s] && idx - e->first_page[s] < n)
            return e->cfg.section[s].base + ((idx - e->first_page[s]) << 12);
    }
    return ~0ull;
}
static inline u8 *epc_page(const struct sgx_epc *e, u64 idx) { return e->bytes + idx * SGX_PAGE; }
static inline struct sgx_secs_private *secs_private(const struct sgx_epc *e, u64 secs_idx)
{
    return (struct sgx_secs_private *)(epc_page(e, secs_idx) + SECS_PRIVATE);
}

/* ---- per-vCPU state ---- */
/* The CPUID features the leaves depend on, looked up once (by index, not by name) */
enum sgx_feature { SGXF_SGX1, SGXF_SGX2, SGXF_EDECCSSA, SGXF_COUNT };
struct sgx_cpu {
    bool feature[SGXF_COUNT];
    struct sgx_epc *epc;
    struct cpu *cpu;
    u64 lepubkeyhash[4];
    /* enclave mode (c->enclave_mode says whether): the enclave and thread, and the
     * outside state EENTER/ERESUME saved for EEXIT and AEX */
    u64 secs;           /* CR_ACTIVE_SECS: page index */
    u64 tcs;            /* CR_TCS_PA: page index */
    u64 tcs_la;         /* CR_TCS_LA */
    u64 elrange_base, elrange_size;
    u64 aep;            /* CR_AEP */
    u64 ssa_first, ssa_last; /* page indices of the current SSA frame's first and last pages */
    struct seg save_fs, save_gs;
    u64 save_xcr0;
    bool save_tf;       /* CR_SAVE_TF: an opt-out entry cleared TF */
    u64 entry_epoch;    /* the enclave's tracking epoch when this thread entered */
    bool dbgoptin;      /* CR_DBGOPTIN */
};

/* ---- shared helpers ---- */
/* Reads/writes of little-endian fields in EPC or host buffers. */
static inline u64 rd64(const u8 *p, unsigned off) { u64 v; memcpy(&v, p + off, 8); return v; }
static inline u32 rd32(const u8 *p, unsigned off) { u32 v; memcpy(&v, p + off, 4); return v; }
static inline u16 rd16(const u8 *p, unsigned off) { u16 v; memcpy(&v, p + off, 2); return v; }
static inline void wr64(u8 *p, unsigned off, u64 v) { memcpy(p + off, &v, 8); }
static inline void wr32(u8 *p, unsigned off, u32 v) { memcpy(p + off, &v, 4); }
static inline void wr16(u8 *p, unsigned off, u16 v) { memcpy(p + off, &v, 2); }

/* The result of a leaf that reports through EAX and ZF: ZF set on an error, CF, PF, AF,
 * OF and SF cleared. */
static inline void leaf_status(struct cpu *c, u32 status)
{
    c->gpr[R_RAX] = status;
    flags_set(c, FL_ARITH, status ? FL_ZF : 0);
}
static inline _Noreturn void gp0(struct cpu *c) { cpu_fault(c, EXC_GP, 0); }

/* The FLAGS of a SECINFO read from memory (64 bytes); #GP(0) for a reserved bit set. */
static inline u64 secinfo_flags(struct cpu *c, const u8 *b)
{
    u64 flags = rd64(b, 0);
    if (flags & ~SECINFO_DEFINED)
        gp0(c);
    for (unsigned k = 8; k < SECINFO_SIZE; k++)
        if (b[k])
            gp0(c);
    return flags;
}

/* SECS.ATTRIBUTES bits and XFRM bits the guest's CPUID leaf 12h allows (sub-leaf 1), and
 * MISCSELECT bits (sub-leaf 0 EBX). */
u64 sgx_attributes_allowed(const struct cpu *c);
u64 sgx_xfrm_allowed(const struct cpu *c);
u32 sgx_miscselect_allowed(const struct cpu *c);
/* Size of the MISC region of an SSA frame for a MISCSELECT value. */
unsigned sgx_misc_size(u32 miscselect);
/* Size of the XSAVE region of an SSA frame for an XFRM value. */
unsigned sgx_xsave_size(u64 xfrm);

/* The memory operands of the leaves: DS-relative effective addresses (RBX/RCX/RDX),
 * translated with the one page walker as the SDM's accesses are. */
u64 sgx_operand_linear(struct cpu *c, u64 ea, unsigned size, bool write);
/* Translates an operand that must be an EPC page: its index, else #PF(as the SDM says:
 * not EPC -> #PF with the access's error code). */
u64 sgx_epc_operand(struct cpu *c, u64 linear, bool write);
/* Reads/writes of a non-EPC memory operand of n bytes (within one page or across). */
void sgx_read_operand(struct cpu *c, u64 linear, void *buf, unsigned n);
void sgx_write_operand(struct cpu *c, u64 linear, const void *buf, unsigned n);
/* Takes access away from every vCPU's cached translations (after EREMOVE, EBLOCK,
 * EMODPR, EMODT, EWB). */
void sgx_flush_translations(struct sgx_epc *e);
/* Is a thread that entered enclave secs before its current tracking epoch (ETRACK)
 * still inside it? */
bool sgx_enclave_has_old_threads(const struct sgx_epc *e, u64 secs);
/* Is a thread that entered enclave secs at or before tracking epoch `epoch` still
 * inside? (The round that began after `epoch` is complete when none is.) */
bool sgx_enclave_has_threads_from(const struct sgx_epc *e, u64 secs, u64 epoch);
/* Leaves enclave mode, restoring what EENTER saved of the outside (EEXIT and AEX). */
void sgx_leave_enclave(struct cpu *c);
/* The key derivation of EGETKEY/EREPORT/EINIT (keys.c). */
void sgx_einittoken_key(const struct cpu *c, const u8 *token, u8 key[16]);
void sgx_paging_key(const struct sgx_epc *e, u8 key[16]);

#endif
