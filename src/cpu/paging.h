/* The one page walker of nestor. Parameterized by format and number of levels, it serves
 * the MMU (32-bit, PAE, 4-level, 5-level), nested paging (EPT 4/5-level, NPT) and
 * hypercall argument copying. Table entries are read (and accessed/dirty bits set)
 * through callbacks, so a walk can itself go through another translation. */
#ifndef NESTOR_CPU_PAGING_H
#define NESTOR_CPU_PAGING_H

#include "common.h"

enum paging_format {
    PG_NONE,   /* paging off: linear = physical */
    PG_32,     /* 2 levels, 4-byte entries, 4M pages with CR4.PSE (PSE-36 high bits) */
    PG_PAE,    /* PDPTEs (cached at CR3 load) + 2 levels, 8-byte entries */
    PG_LONG4,  /* 4-level */
    PG_LONG5,  /* 5-level (CR4.LA57) */
    PG_EPT4,   /* Intel EPT, 4-level */
    PG_EPT5,   /* Intel EPT, 5-level */
};

/* What the access is. */
#define ACC_READ 0u
#define ACC_WRITE BIT(0)
#define ACC_EXEC BIT(1)
#define ACC_USER BIT(2)      /* a user-mode access (CPL 3, not an implicit supervisor one) */
#define ACC_IMPLICIT BIT(3)  /* implicit supervisor access (GDT/IDT/TSS) */
#define ACC_NO_AD BIT(4)     /* do not set accessed/dirty (debugger/trace peeks) */
#define ACC_EPCM_UNCHECKED BIT(5) /* an SGX leaf's own look at an enclave page: the
                                     translation without enclave mode's EPCM rules
                                     (with ACC_NO_AD, so that nothing is cached) */

struct paging_ops {
    /* Read an entry of size bytes (4 or 8) at physical address pa. Return 0, or -1 if the
     * address is not memory (the walker then sees all-ones, as open bus reads). */
    int (*read)(void *opaque, u64 pa, unsigned size, u64 *val);
    /* Atomically replace old by new at pa (for A/D bits); return 0 on success, 1 if the
     * entry changed meanwhile (the walker then restarts), -1 if not memory. */
    int (*cmpxchg)(void *opaque, u64 pa, unsigned size, u64 old, u64 newv);
    void *opaque;
};

struct paging_ctx {
    enum paging_format fmt;
    u64 root;       /* CR3 (or EPTP) with flag bits; the walker masks what it needs */
    u64 pdpte[4];   /* PG_PAE: the PDPTE registers loaded at MOV CR3 */
    u8 maxphyaddr;  /* physical address width (bits), e.g. 40 */
    bool wp;        /* CR0.WP */
    bool pse;       /* CR4.PSE (PG_32 only; PAE/long always allow large pages) */
    bool nxe;       /* EFER.NXE */
    bool smep, smap;/* CR4.SMEP / CR4.SMAP */
    bool ac;        /* EFLAGS.AC (SMAP override for explicit supervisor accesses) */
    bool pdpe1gb;   /* 1G pages allowed (CPUID), else PS in a PDPTE is reserved; for EPT
                     * formats: IA32_VMX_EPT_VPID_CAP bit 17 (1G EPT pages) */
    bool ept_ad;    /* EPT: accessed/dirty flags enabled (EPTP bit 6) */
    struct paging_ops ops;
};

enum paging_fault {
    PAGING_OK,
    PAGING_PF,            /* #PF with error code pfec */
    PAGING_EPT_VIOLATION, /* qualification bits in ept_qual */
    PAGING_EPT_MISCONFIG,
};

struct paging_result {
    enum paging_fault fault;
    u32 pfec;          /* #PF error code (P W U RSVD I) when fault == PAGING_PF */
    u64 ept_qual;      /* EPT violation qualification bits 0..5 */
    u64 pa;            /* translated physical address (when OK) */
    u64 page_size;     /* 4K, 2M, 4M or 1G */
    /* Effective permissions of the whole walk, for TLB filling: user = U/S set at every
     * level, writable = R/W set at every level, executable = no XD at any level (always
     * with !nxe or PG_32), readable = always for non-EPT formats. For EPT: readable /
     * writable / executable are R / W / X ANDed over all levels and user is true. The
     * walker does not fold in CR0.WP, SMEP or SMAP: those depend on the access. */
    bool user, writable, executable, global, readable;
    bool dirty;        /* the leaf is dirty (writes need no further walk) */
    u8 memtype;        /* EPT leaf memory type */
    bool ipat;         /* EPT leaf ignore-PAT bit */
};

/* Translates linear (or guest-physical for EPT) address addr for access, setting A/D bits
 * as the architecture says. Never touches memory except through ctx->ops.
 * - A not-present entry ends the walk (#PF with P=0, or EPT violation); a present entry
 *   with reserved bits ends it with #PF P|RSVD (or EPT misconfiguration); then the
 *   access rights of the complete translation are checked (#PF with P=1).
 * - A/D: only an access that succeeds sets A in every entry used (and D in the leaf for
 *   a write; EPT only with ept_ad); any fault leaves the tables untouched. Updates use
 *   ops.cmpxchg; a concurrent change restarts the walk.
 * - EPT: execute-only translations are allowed (IA32_VMX_EPT_VPID_CAP bit 0); a
 *   guest-physical address with bits set above those the EPT translates (bit 48 with
 *   4 levels) is an EPT violation; protection keys and mode-based execute are not
 *   modelled. For a write to guest paging structures with ept_ad, pass ACC_WRITE. */
void paging_walk(const struct paging_ctx *ctx, u64 addr, unsigned access,
                 struct paging_result *res);

/* Loads the four PAE PDPTEs from CR3; returns false if one has reserved bits set (the
 * MOV CR3/CR0/CR4 that caused the load must then #GP). */
bool paging_load_pdptes(const struct paging_ctx *ctx, u64 cr3, u64 pdpte[4]);

/* Do two contexts translate alike (a TLB filled under one is valid under the other: the
 * cached permissions depend on all of it)? The access-dependent AC flag is left out. */
bool paging_same_regime(const struct paging_ctx *a, const struct paging_ctx *b);

#endif
