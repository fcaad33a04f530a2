/* The EPC and EPCM, the vCPU's SGX state and MSRs, and enclave-mode memory access: what
 * a linear address reaches in and out of an enclave (SDM Vol. 3D 37.3, 37.5). */
#include <stdlib.h>
#include <string.h>
#include <openssl/rand.h>

#include "cpu/sgx/sgx_internal.h"

struct sgx_epc *sgx_epc_create(const struct sgx_config *cfg)
{
    struct sgx_epc *e = calloc(1, sizeof(*e));
    if (!e)
        return NULL;
    e->cfg = *cfg;
    for (int s = 0; s < cfg->nsections; s++) {
        e->first_page[s] = e->npages;
        e->npages += cfg->section[s].size >> 12;
    }
    e->bytes = calloc(e->npages ? e->npages : 1, SGX_PAGE);
    e->gen = calloc(e->npages ? e->npages : 1, sizeof(u32));
    e->epcm = calloc(e->npages ? e->npages : 1, sizeof(struct sgx_epcm));
    if (!e->bytes || !e->gen || !e->epcm) {
        sgx_epc_destroy(e);
        return NULL;
    }
    if (!e->cfg.root_secret_set && e->cfg.deterministic) {
        static const char label[] = "nestor -icount SGX root secret";
        sgx_sha256(label, sizeof(label) - 1, e->cfg.root_secret);
    } else if (!e->cfg.root_secret_set &&
               RAND_bytes(e->cfg.root_secret, sizeof(e->cfg.root_secret)) != 1) {
        sgx_epc_destroy(e);
        return NULL;
    }
    /* the security version of this "microcode": one, as a first release's */
    e->cpusvn[0] = 1;
    e->next_eid = 1;
    return e;
}

void sgx_epc_destroy(struct sgx_epc *e)
{
    if (!e)
        return;
    free(e->bytes);
    free(e->gen);
    free(e->epcm);
    free(e);
}

void sgx_epc_reset(struct sgx_epc *e)
{
    memset(e->epcm, 0, e->npages * sizeof(*e->epcm));
    memset(e->bytes, 0, e->npages * SGX_PAGE);
    for (u64 i = 0; i < e->npages; i++)
        mem_code_write(&e->gen[i]);
}

void sgx_epc_set_flush(struct sgx_epc *e, void (*fn)(void *opaque), void *opaque)
{
    e->flush_all = fn;
    e->flush_opaque = opaque;
}

void sgx_flush_translations(struct sgx_epc *e)
{
    if (e->flush_all)
        e->flush_all(e->flush_opaque);
}

/* ---- per vCPU ---- */
/* IA32_SGXLEPUBKEYHASH at power-on: the SHA-256 of Intel's launch enclave signing key,
 * what processors with Launch Control start with (SDM Vol. 4, MSR 8Ch-8Fh). */
static const u64 intel_le_hash[4] = {
    0xa6053e051270b7acull, 0x6cfbe8ba8b3b413dull, 0xc4916d99f2b3735dull, 0xd4f8c05909f9bb3bull,
};

int sgx_cpu_init(struct cpu *c, struct sgx_epc *epc)
{
    c->sgx = calloc(1, sizeof(*c->sgx));
    if (!c->sgx)
        return -1;
    c->sgx->epc = epc;
    c->sgx->cpu = c;
    c->sgx->feature[SGXF_SGX1] = cpuid_has(c->model, "sgx1");
    c->sgx->feature[SGXF_SGX2] = cpuid_has(c->model, "sgx2");
    c->sgx->feature[SGXF_EDECCSSA] = cpuid_has(c->model, "sgx-edeccssa");
    if (epc->ncpus < (int)ARRAY_SIZE(epc->cpus))
        epc->cpus[epc->ncpus++] = c->sgx;
    c->msr_feature_control = 0; /* unlocked: firmware (or the kernel) enables SGX */
    sgx_cpu_reset(c, true);
    return 0;
}

void sgx_cpu_destroy(struct cpu *c)
{
    free(c->sgx);
    c->sgx = NULL;
}

void sgx_cpu_reset(struct cpu *c, bool power_on)
{
    struct sgx_cpu *s = c->sgx;
    if (!s)
        return;
    if (c->enclave_mode) {
        /* the thread is no longer in its enclave (its TCS may be entered again) */
        wr64(epc_page(s->epc, s->tcs), TCS_STATE, 0);
        struct sgx_secs_private *p = secs_private(s->epc, s->secs);
        if (p->active_threads)
            p->active_threads--;
        c->enclave_mode = false;
    }
    if (power_on)
        memcpy(s->lepubkeyhash, intel_le_hash, sizeof(s->lepubkeyhash));
}

bool sgx_msr_read(struct cpu *c, u32 index, u64 *value)
{
    if (!c->sgx || !cpuid_has(c->model, "sgx_lc") || index < MSR_SGXLEPUBKEYHASH0 ||
        index > MSR_SGXLEPUBKEYHASH3)
        return false;
    *value = c->sgx->lepubkeyhash[index - MSR_SGXLEPUBKEYHASH0];
    return true;
}

/* Writable only once firmware locked FEATURE_CONTROL with Launch Control enabled (SDM
 * Vol. 4: "write permitted if CPUID.(EAX=07H,ECX=0H):ECX[30]=1 and IA32_FEATURE_CONTROL[17]
 * = 1 and IA32_FEATURE_CONTROL[0] = 1"). */
bool sgx_msr_write(struct cpu *c, u32 index, u64 value)
{
    if (!c->sgx || !cpuid_has(c->model, "sgx_lc") || index < MSR_SGXLEPUBKEYHASH0 ||
        index > MSR_SGXLEPUBKEYHASH3)
        return false;
    u64 fc = c->msr_feature_control;
    if (!(fc & BIT(0)) || !(fc & FEATURE_CONTROL_SGX_LC))
        return false;
    c->sgx->lepubkeyhash[index - MSR_SGXLEPUBKEYHASH0] = value;
    return true;
}

/* ---- what CPUID leaf 12h lets enclaves have ---- */
u64 sgx_attributes_allowed(const struct cpu *c)
{
    struct cpuid_result r = cpuid_query(c->model, 0x12, 1, (u32)c->id, false, true, 0);
    return r.eax | (u64)r.ebx << 32;
}

u64 sgx_xfrm_allowed(const struct cpu *c)
{
    struct cpuid_result r = cpuid_query(c->model, 0x12, 1, (u32)c->id, false, true, 0);
    return r.ecx | (u64)r.edx << 32;
}

u32 sgx_miscselect_allowed(const struct cpu *c)
{
    return cpuid_query(c->model, 0x12, 0, (u32)c->id, false, true, 0).ebx;
}

unsigned sgx_misc_size(u32 miscselect)
{
    return (miscselect & MISC_EXINFO) ? EXINFO_SIZE : 0;
}

/* The engine's XSAVE components are x87 and SSE: the legacy region and the header. */
unsigned sgx_xsave_size(u64 xfrm)
{
    (void)xfrm;
    return 512 + 64;
}

/* ---- memory operands ---- */
u64 sgx_operand_linear(struct cpu *c, u64 ea, unsigned size, bool write)
{
    /* every leaf's operands are DS-relative, whatever prefixes say (SDM 42.3.2); outside
     * 64-bit mode addresses are 32 bits */
    if (!cpu_is_long64(c))
        ea &= 0xffffffffull;
    return seg_linear(c, SEG_DS, ea, size, write);
}

u64 sgx_epc_operand(struct cpu *c, u64 linear, bool write)
{
    u64 gpa = lin_translate(c, linear, write ? ACC_WRITE : ACC_READ);
    s64 idx = epc_index(c->sgx->epc, gpa);
    if (idx < 0) /* "if DS:RCX does not resolve to an EPC page": #PF */
        cpu_page_fault(c, linear, PFEC_P | (write ? PFEC_W : 0) | (c->cpl == 3 ? PFEC_U : 0) |
                                      PFEC_SGX);
    return (u64)idx;
}

void sgx_read_operand(struct cpu *c, u64 linear, void *buf, unsigned n)
{
    lin_read_bytes(c, linear, buf, n, 0);
}

void sgx_write_operand(struct cpu *c, u64 linear, const void *buf, unsigned n)
{
    lin_write_bytes(c, linear, buf, n, 0);
}

u8 *sgx_epc_host_page(struct cpu *c, u64 gpa, u32 **gen)
{
    struct sgx_epc *e = c->sgx->epc;
    s64 idx = epc_index(e, gpa);
    if (idx < 0)
        return NULL;
    *gen = &e->gen[idx];
    return epc_page(e, (u64)idx);
}

/* Is a thread that entered enclave secs before its current epoch still inside? */
bool sgx_enclave_has_old_threads(const struct sgx_epc *e, u64 secs)
{
    u64 epoch = secs_private(e, secs)->epoch;
    for (int k = 0; k < e->ncpus; k++) {
        const struct sgx_cpu *s = e->cpus[k];
        if (s->cpu->enclave_mode && s->secs == secs && s->entry_epoch < epoch)
            return true;
    }
    return false;
}

bool sgx_enclave_has_threads_from(const struct sgx_epc *e, u64 secs, u64 epoch)
{
    for (int k = 0; k < e->ncpus; k++) {
        const struct sgx_cpu *s = e->cpus[k];
        if (s->cpu->enclave_mode && s->secs == secs && s->entry_epoch <= epoch)
            return true;
    }
    return false;
}

/* ---- enclave-mode translation ---- */
u8 *sgx_translate(struct cpu *c, u64 linear, u64 gpa, unsigned access, u8 *host, u32 **gen)
{
    struct sgx_cpu *s = c->sgx;
    struct sgx_epc *e = s->epc;
    s64 idx = epc_index(e, gpa);
    if (!c->enclave_mode)
        return idx >= 0 ? NULL : host; /* outside an enclave EPC is the abort page */
    bool inside = linear - s->elrange_base < s->elrange_size;
    if (access & ACC_EPCM_UNCHECKED)
        return NULL;
    if (!inside) {
        /* code runs only from the enclave's own pages */
        if (access & ACC_EXEC)
            cpu_fault(c, EXC_GP, 0);
        return idx >= 0 ? NULL : host;
    }
    u32 pfec = PFEC_P | PFEC_SGX | ((access & ACC_WRITE) ? PFEC_W : 0) |
               ((access & ACC_EXEC) ? PFEC_I : 0) | (c->cpl == 3 ? PFEC_U : 0);
    if (idx < 0)
        cpu_page_fault(c, linear, pfec);
    const struct sgx_epcm *m = &e->epcm[idx];
    unsigned need = (access & ACC_EXEC) ? SECINFO_X : (access & ACC_WRITE) ? SECINFO_W : SECINFO_R;
    if (!m->valid || m->type != PT_REG || m->secs != s->secs ||
        m->linaddr != (linear & ~0xfffull) || m->blocked || m->pending || m->modified ||
        !(m->perms & need))
        cpu_page_fault(c, linear, pfec);
    *gen = &e->gen[idx];
    return epc_page(e, (u64)idx);
}
