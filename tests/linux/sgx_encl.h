/* What the Linux SGX test's enclave (tests/linux/sgx_encl.S, sgx_encl.c) and its loader
 * (tests/linux/sgx_test.c) agree on: the enclave's fixed layout, which
 * tests/linux/sgx_encl.lds and tests/linux/sgx_encl.layout follow, and the commands an
 * entry carries (RDI: the command, RSI: its argument block in the loader's memory,
 * which the enclave reads and writes from inside). */
#ifndef SGX_ENCL_H
#define SGX_ENCL_H

/* ---- the layout (offsets from the enclave's base) ---- */
#define ENCL_TCS0 0x00000        /* two threads: TCS 0 and 1 */
#define ENCL_TCS1 0x01000
#define ENCL_TEXT 0x02000        /* code and read-only data, 6 pages, r-x */
#define ENCL_DATA 0x08000        /* data and bss, 4 pages, rw- */
#define ENCL_COUNTER ENCL_DATA   /* CMD_COUNT's counter comes first */
#define ENCL_TLS0 0x0c000        /* each thread's block (its FS and GS base), rw- */
#define ENCL_TLS1 0x0d000
#define ENCL_STACK0 0x0e000      /* 4 pages each, rw-, not measured */
#define ENCL_STACK1 0x12000
#define ENCL_STACK_SIZE 0x4000
#define ENCL_SSA0 0x16000        /* 2 SSA frames of 1 page each, rw-, not measured */
#define ENCL_SSA1 0x18000
#define ENCL_NSSA 2
#define ENCL_SSA_FRAME 0x1000    /* SSAFRAMESIZE 1 */
#define ENCL_END 0x1a000         /* the pages EADD adds end here */
/* the rest of ELRANGE has pages only as the enclave asks for them (SGX2: the kernel's
 * EAUG when the enclave's EACCEPT faults there) */
#define ENCL_DYN 0x20000         /* 16 pages for EAUG, EMODPR/EMODPE, EMODT and removal */
#define ENCL_DYN_PAGES 16
#define ENCL_BIG 0x100000        /* more pages than the EPC holds (the kernel pages them
                                  * out and in), rw-, not measured: their contents are the
                                  * loader's, not the image's */
#define ENCL_BIG_PAGES 18432     /* 72 MiB, for an EPC of 64 MiB */
#define ENCL_SIZE 0x8000000      /* ELRANGE: 128 MiB */

/* a thread block: what its entry needs (offsets from the base) and what it keeps */
#define TLS_STACK_TOP 0          /* the thread's stack */
#define TLS_HANDLER_TOP 8        /* the exception handler's stack: the block's end */
#define TLS_SSA 16               /* the thread's SSA frame 0 */

/* GPRSGX, the last 184 bytes of an SSA frame (SDM Vol. 3D 35.9.1) */
#define GPRSGX_SIZE 184
#define GPRSGX_RAX 0
#define GPRSGX_RSP 32
#define GPRSGX_RFLAGS 128
#define GPRSGX_RIP 136
#define GPRSGX_URSP 144
#define GPRSGX_URBP 152
#define GPRSGX_EXITINFO 160

/* the identity tests/linux/linux.mk signs the enclave with */
#define ENCL_ISVPRODID 0x4e53
#define ENCL_ISVSVN 3

/* ---- the commands ---- */
#define CMD_TRANSFORM 1 /* struct cmd_transform */
#define CMD_COUNT 2     /* struct cmd_count */
#define CMD_KEYS 3      /* struct cmd_keys */
#define CMD_REPORT 4    /* struct cmd_report */
#define CMD_UD2 5       /* struct cmd_ud2 */
#define CMD_SPIN 6      /* struct cmd_spin */
#define CMD_DYN 7       /* struct cmd_dyn */
#define CMD_HANDLER 8   /* the entry at CSSA 1: struct handler_info */

#ifndef __ASSEMBLER__
#include <stdint.h>

/* every block starts with the enclave's status: ENCL_OK when the command ran */
#define ENCL_OK 0x600d
#define ENCL_BAD_CMD 0xbad0

#define ENCL_NOT_HANDLER 0xbad1 /* a command entered at CSSA 1: an exception is pending */

/* an entry at CSSA 1 (after an exception) runs the enclave's handler, which reports here
 * what it found in SSA frame 0 and what it did: a #UD at a ud2 is skipped; a #PF on a
 * page of ENCL_DYN that lacks W (EMODPR took it) gets W back with EMODPE and is retried
 * at ERESUME; any other exception abandons the command (ERESUME goes to the way out,
 * the command's status left unset) */
#define HANDLED_UD2 1
#define HANDLED_EMODPE 2
#define HANDLED_ABORT 3
struct handler_info {
    uint64_t status;
    uint64_t action;          /* HANDLED_*, or 0 */
    uint64_t exitinfo;        /* GPRSGX.EXITINFO */
    uint64_t maddr, errcd;    /* EXINFO (MISCSELECT bit 0): #PF's address and error code */
};

/* the enclave copies len bytes of in (outside) into its own memory, and writes to out
 * (outside) out[i] = rotl8(in[len-1-i], 3) ^ key; sum: FNV-1a 64 of in */
#define TRANSFORM_MAX 8192
struct cmd_transform {
    uint64_t status;
    const uint8_t *in;
    uint8_t *out;
    uint64_t len;
    uint64_t key;
    uint64_t sum; /* out */
};

/* a counter in the enclave's data (at ENCL_COUNTER, for the loader's debugger reads and
 * writes), initialized by the image: each call adds one */
#define COUNT_START 1000
struct cmd_count {
    uint64_t status;
    uint64_t value; /* out: the counter after the increment */
};

/* EGETKEY: the seal key by MRENCLAVE twice, by MRSIGNER, and by MRENCLAVE with another
 * KEYID; the report key; and a request EGETKEY must refuse (an ISVSVN above the
 * enclave's). Only comparisons leave the enclave. */
struct cmd_keys {
    uint64_t status;
    uint64_t egetkey_rax[4];  /* out: EGETKEY's status for each of the first four */
    uint64_t seal_same;       /* out: the two MRENCLAVE seal keys are equal */
    uint64_t signer_differs;  /* out: the MRSIGNER key differs from the MRENCLAVE one */
    uint64_t keyid_differs;   /* out: the other KEYID gives another key */
    uint64_t nonzero;         /* out: no key is all zero */
    uint64_t bad_svn_rax;     /* out: EGETKEY's status for ISVSVN too high (64) */
};

/* EREPORT: one with a zero TARGETINFO (to learn its own identity), one targeted at
 * itself, whose MAC the enclave checks with EGETKEY's report key and its own AES-CMAC
 * (after checking that CMAC against RFC 4493), one targeted at another MRENCLAVE, whose
 * MAC must not check; the self-targeted report goes out whole */
struct cmd_report {
    uint64_t status;
    uint8_t reportdata[64];   /* in */
    uint8_t report[432];      /* out */
    uint64_t cmac_selftest;   /* out: RFC 4493's examples 1 and 2 */
    uint64_t mac_ok;          /* out: the self-targeted report's MAC checks */
    uint64_t other_mac_bad;   /* out: the other-targeted one's does not */
    uint64_t key_rax;         /* out: EGETKEY's status for the report key */
};

/* ud2 inside the enclave: an AEX with #UD; the loader enters again (CSSA 1: the
 * handler), which checks the exception in SSA frame 0 and moves its RIP past the ud2;
 * the loader's ERESUME continues the command after it */
struct cmd_ud2 {
    uint64_t status;
    uint64_t before, after;   /* out: set before and after the ud2 */
    uint64_t handled;         /* out: handler runs so far */
    uint64_t exitinfo;        /* out: EXITINFO the handler found */
    uint64_t handler_cssa;    /* out: RAX at the handler's entry */
};

/* a loop of iterations that mixes a 64-bit LCG into general registers and into an XMM
 * register, until the enclave has seen want AEXs (its SSA frame 0's RIP written behind
 * its back) or max iterations; the loader recomputes the result for the iterations done */
struct cmd_spin {
    uint64_t status;
    uint64_t seed, want, max; /* in */
    uint64_t iterations;      /* out */
    uint64_t x, lo, hi;       /* out: the LCG state and the XMM register's two halves */
    uint64_t aex_seen;        /* out */
    uint64_t rip_in_loop;     /* out: every AEX seen was inside the loop */
};

/* pages of the dynamic part of ELRANGE, npages from offset (ENCL_DYN or ENCL_BIG) */
#define DYN_ACCEPT 1      /* EACCEPT each (pending, RW: the kernel's EAUG), check that it
                           * reads zero, write the page's pattern */
#define DYN_CHECK 2       /* check each page's pattern */
#define DYN_ACCEPT_PR 3   /* EACCEPT the restriction to R (the kernel's EMODPR), check */
#define DYN_WRITE 4       /* write the pattern again (faults where W is missing) */
#define DYN_ACCEPT_TRIM 5 /* EACCEPT the type change to PT_TRIM (the kernel's EMODT) */
#define DYN_REWRITE 6     /* check each page's pattern (seed), write another (seed + 1) */
/* a page's pattern: its first quadword, and the complement in its last */
static inline uint64_t encl_pattern(uint64_t seed, uint64_t offset)
{
    return (seed ^ offset) * 0x9e3779b97f4a7c15ull;
}

struct cmd_dyn {
    uint64_t status;
    uint64_t op, offset, npages, seed; /* in */
    uint64_t stride;                   /* in: 0 or 1 every page, n every nth */
    uint64_t rax;                      /* out: the first failing EACCEPT's status */
    uint64_t bad, first_bad;           /* out: pages that read wrong, the first's offset */
};
#endif
#endif
