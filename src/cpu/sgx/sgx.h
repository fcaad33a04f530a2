/* Intel SGX in software (SDM Vol. 3D, chapters 34-41): the Enclave Page Cache and its map
 * (EPCM), the ENCLS and ENCLU leaves of SGX1 and SGX2, enclave mode with its access
 * rules and asynchronous exits, and Launch Control.
 *
 * The EPC is one machine-wide store (struct sgx_epc), shared by every vCPU, outside guest
 * RAM: nothing but the engine's SGX code and a vCPU in enclave mode reaches its bytes.
 * Any other access to an EPC address (a vCPU outside its enclave, a device, a hypercall
 * copy) finds no RAM there and sees the abort page: reads all ones, writes dropped.
 *
 * Each vCPU with SGX in its model has a struct sgx_cpu (c->sgx): enclave mode and what
 * EENTER/ERESUME saved of the outside world, and its Launch Control hash MSRs. */
#ifndef NESTOR_CPU_SGX_SGX_H
#define NESTOR_CPU_SGX_SGX_H

#include "common.h"

struct cpu;
struct insn;
struct state_registry;

/* ---- the EPC and its configuration (machine-wide) ---- */
#define SGX_MAX_SECTIONS 8

struct sgx_config {
    /* EPC sections: guest-physical base and size (4K multiples), in address order */
    struct { u64 base, size; } section[SGX_MAX_SECTIONS];
    int nsections;
    /* the host lets enclaves have the provisioning key (what /dev/sgx_provision is to a
     * Linux host): without it ECREATE with ATTRIBUTES.PROVISIONKEY fails */
    bool provision_allowed;
    /* the per-machine root secret keys derive from (-sgx-key FILE), else random */
    u8 root_secret[32];
    bool root_secret_set;
    /* -icount: runs repeat bit for bit, their keys too (a fixed secret unless
     * root_secret_set) */
    bool deterministic;
};

struct sgx_epc;
/* Creates the EPC of cfg (zeroed pages, every EPCM entry invalid). NULL: out of memory. */
struct sgx_epc *sgx_epc_create(const struct sgx_config *cfg);
void sgx_epc_destroy(struct sgx_epc *e);
/* Machine reset: every EPC page becomes invalid (EPCM cleared) and the keys' root secret
 * stays (it is the machine's, not the run's). */
void sgx_epc_reset(struct sgx_epc *e);
/* Registers the EPC's state (EPCM and the bytes of its valid pages). */
void sgx_epc_state_register(struct sgx_epc *e, struct state_registry *r);

/* ---- per vCPU ---- */
/* Attaches the machine's EPC to vCPU c (its model has SGX). 0, or -1 out of memory. */
int sgx_cpu_init(struct cpu *c, struct sgx_epc *epc);
void sgx_cpu_destroy(struct cpu *c);
/* RESET (power_on) and INIT: outside any enclave; at RESET the hash MSRs take their
 * power-on value (Intel's launch enclave key hash). */
void sgx_cpu_reset(struct cpu *c, bool power_on);
void sgx_cpu_state_register(struct cpu *c, struct state_registry *r);
/* The descriptions (k = 0, 1, ...; NULL past the last), for the coverage tests. */
struct state_desc;
const struct state_desc *sgx_state_descs(int k);

/* IA32_SGXLEPUBKEYHASH0-3 (8Ch-8Fh): false = #GP */
bool sgx_msr_read(struct cpu *c, u32 index, u64 *value);
bool sgx_msr_write(struct cpu *c, u32 index, u64 value);
#define MSR_SGXLEPUBKEYHASH0 0x8cu
#define MSR_SGXLEPUBKEYHASH3 0x8fu
/* IA32_FEATURE_CONTROL bits of SGX */
#define FEATURE_CONTROL_SGX_LC BIT(17)
#define FEATURE_CONTROL_SGX BIT(18)

/* ---- what the engine calls (inside cpu_run only) ---- */
/* The ENCLS and ENCLU handlers (the handler table registers them). */
void sgx_insn_encls(struct cpu *c, const struct insn *i);
void sgx_insn_enclu(struct cpu *c, const struct insn *i);
/* The TLB fill found no RAM at gpa, or runs in enclave mode: decides what the access of
 * linear (ACC_* flags) reaches. Returns the host page (an EPC page of the running enclave
 * that the EPCM allows this access to) with its code-generation word, or NULL (the abort
 * page, or ordinary MMIO). Faults as the SDM says: #PF with PFEC.SGX for an EPCM
 * violation, #GP(0) for a fetch outside ELRANGE in enclave mode. */
u8 *sgx_translate(struct cpu *c, u64 linear, u64 gpa, unsigned access, u8 *host, u32 **gen);
/* An event is delivered while the vCPU is in enclave mode: the asynchronous enclave exit
 * (SDM 39.4) saves the enclave's state in the current SSA frame, loads the synthetic state
 * and leaves enclave mode. Returns the address the event's frame returns to (the AEP). */
u64 sgx_aex(struct cpu *c, u8 vector, int type, bool has_error, u32 error, u64 return_rip);
/* The host page and code-generation word of EPC page gpa, for a vCPU's TLB restored
 * inside an enclave; NULL when gpa is not in the EPC. */
u8 *sgx_epc_host_page(struct cpu *c, u64 gpa, u32 **gen);
/* Is the instruction Zydis decoded as d (operands op) illegal in enclave mode (#UD, SDM
 * 39.6.1)? Decode time: blocks decoded in enclave mode run in enclave mode only. */
struct ZydisDecodedInstruction_;
struct ZydisDecodedOperand_;
bool sgx_insn_illegal_in_enclave(const struct ZydisDecodedInstruction_ *d,
                                 const struct ZydisDecodedOperand_ *op, const struct cpu *c);
/* Tells the EPC how to make every vCPU forget its translations (after an EPCM change
 * that takes access away: EREMOVE, EBLOCK, EWB, EMODPR, EMODT). */
void sgx_epc_set_flush(struct sgx_epc *e, void (*fn)(void *opaque), void *opaque);

/* Inside an enclave the guest's own breakpoints (DR0-DR3) do not see code outside the
 * enclave, and nothing at all after an opt-out entry (SDM 42.2): true when the one at
 * linear (an instruction fetch, or a data access) is suppressed. */
bool sgx_breakpoints_suppressed(const struct cpu *c, u64 linear, bool exec);

/* The #PF error code bit of a fault the EPCM caused (SDM 4.7). */
#define PFEC_SGX BIT(15)

#endif
