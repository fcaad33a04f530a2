/* The guest's view of memory from the CPU: segmentation checks, then the software TLB,
 * then on a miss the one page walker. Physical accesses reach RAM through the bounds-
 * checked guest memory (a TLB entry caches the host pointer of a RAM page only after
 * mem_ptr() validated the whole page); anything else becomes an EV_MMIO intercept. */
#include <string.h>

#include "cpu/exec.h"
#include "cpu/nested.h"
#include "cpu/sgx/sgx.h"
#include "cpu/vmx/vmx.h"
#include "machine/mem.h"

/* A write reached guest RAM page with generation word gen: code decoded from it is
 * stale, and if the vCPU runs a decoded block it leaves it after this instruction. */
static void code_written(struct cpu *c, u32 *gen)
{
    if (*gen & PAGE_GEN_CODE) {
        mem_code_write(gen);
        c->in->exits |= EXIT_BLOCK_END;
    }
}

/* ---- segmentation ---- */
static _Noreturn void seg_fault(struct cpu *c, int seg)
{
    cpu_fault(c, seg == SEG_SS ? EXC_SS : EXC_GP, 0);
}

u64 seg_linear(struct cpu *c, int seg, u64 off, unsigned size, bool write)
{
    const struct seg *s = &c->seg[seg];
    if (cpu_is_long64(c)) {
        u64 lin = off + ((seg == SEG_FS || seg == SEG_GS) ? s->base : 0);
        if (unlikely(!cpu_canonical(c, lin) || !cpu_canonical(c, lin + size - 1)))
            seg_fault(c, seg);
        return lin;
    }
    if (cpu_is_prot(c)) {
        u32 a = s->attr;
        if (unlikely(a & SEG_ATTR_UNUSABLE))
            seg_fault(c, seg);
        unsigned type = SEG_ATTR_TYPE(a);
        if (type & 8) { /* code: never writable, readable only if R */
            if (write || !(type & 2))
                seg_fault(c, seg);
        } else if (write && !(type & 2)) {
            seg_fault(c, seg);
        }
        if (!(type & 8) && (type & 4)) { /* expand-down data */
            u64 upper = (a & SEG_ATTR_DB) ? 0xffffffffull : 0xffffull;
            if (off <= s->limit || off + size - 1 > upper)
                seg_fault(c, seg);
            return (s->base + off) & 0xffffffffull;
        }
    }
    /* real, V86 and expand-up protected segments */
    if (unlikely(off + size - 1 > s->limit))
        seg_fault(c, seg);
    return (s->base + off) & 0xffffffffull;
}

/* ---- paging parameters ---- */
/* With EPT or nested paging (L2 of a guest hypervisor), the guest's paging-structure
 * entries are at guest-physical addresses that L1's tables translate first: an exit, or
 * for a copy that must not exit (in->walk_no_exit) a failed read. */
static bool pte_address(struct cpu *c, u64 *pa, unsigned access)
{
    if (likely(!cpu_in_l2(c)))
        return true;
    if (c->in->walk_no_exit)
        return nested_peek(c, *pa, access, pa);
    *pa = nested_translate(c, *pa, access, c->in->walk_linear, true);
    return true;
}

int phys_entry_read(void *opaque, u64 pa, unsigned size, u64 *val)
{
    struct cpu *c = opaque;
    u8 *p = mem_ptr(c->mem, pa, size);
    if (!p)
        return -1;
    u64 v = 0;
    memcpy(&v, p, size);
    *val = v;
    return 0;
}

int phys_entry_cmpxchg(void *opaque, u64 pa, unsigned size, u64 old, u64 newv)
{
    struct cpu *c = opaque;
    /* a page table in a read-only frame: the flag update is lost like on open bus */
    u8 *p = mem_ptr_write(c->mem, pa, size);
    if (!p)
        return -1;
    u64 cur = 0;
    memcpy(&cur, p, size);
    if (cur != old)
        return 1;
    memcpy(p, &newv, size);
    code_written(c, mem_page_gen(c->mem, pa));
    return 0;
}

/* The guest's paging-structure entries: RAM only, through EPT for an L2. */
static int pte_read(void *opaque, u64 pa, unsigned size, u64 *val)
{
    if (!pte_address(opaque, &pa, ACC_READ))
        return -1;
    return phys_entry_read(opaque, pa, size, val);
}

static int pte_cmpxchg(void *opaque, u64 pa, unsigned size, u64 old, u64 newv)
{
    if (!pte_address(opaque, &pa, ACC_WRITE))
        return -1;
    return phys_entry_cmpxchg(opaque, pa, size, old, newv);
}

void mmu_params_update(struct cpu *c)
{
    struct paging_ctx *pg = &c->in->pg;
    const struct cpuid_fastbits *fb = c->in->fb;
    enum paging_format fmt = PG_NONE;
    if ((c->cr0 & CR0_PG) && (c->cr0 & CR0_PE)) {
        if (!(c->cr4 & CR4_PAE))
            fmt = PG_32;
        else if (c->efer & EFER_LMA)
            fmt = (c->cr4 & CR4_LA57) ? PG_LONG5 : PG_LONG4;
        else
            fmt = PG_PAE;
    }
    pg->fmt = fmt;
    pg->root = c->cr3;
    pg->maxphyaddr = c->model->phys_bits;
    pg->wp = c->cr0 & CR0_WP;
    pg->pse = c->cr4 & CR4_PSE;
    pg->nxe = c->efer & EFER_NXE;
    pg->smep = c->cr4 & CR4_SMEP;
    pg->smap = c->cr4 & CR4_SMAP;
    pg->pdpe1gb = fb->has[CF_PDPE1GB];
    pg->ops = (struct paging_ops){ pte_read, pte_cmpxchg, c };
}

void mmu_update(struct cpu *c)
{
    mmu_params_update(c);
    tlb_flush_all(&c->tlb);
}

/* ---- translation ---- */
static inline unsigned access_class(const struct cpu *c, unsigned access)
{
    if (access & ACC_IMPLICIT)
        return 0;
    if (c->cpl == 3)
        return 1;
    return (access & ACC_USER) ? 1 : 0;
}

/* Walks and fills the TLB entry for linear; returns the entry. */
static struct tlb_entry *tlb_fill(struct cpu *c, u64 linear, unsigned access)
{
    struct cpu_internal *in = c->in;
    unsigned cls = access_class(c, access);
    if (cls)
        access |= ACC_USER;
    in->pg.ac = c->rflags & FL_AC;
    struct paging_result r;
    in->walk_linear = linear;
    paging_walk(&in->pg, linear, access, &r);
    if (r.fault != PAGING_OK)
        cpu_page_fault(c, linear, r.pfec);
    u64 gpa = r.pa & ~0xfffull;
    bool apic_access = false;
    if (unlikely(cpu_in_l2(c))) { /* L2's guest-physical address through EPT or NPT */
        gpa = nested_translate(c, r.pa, access, linear, false) & ~0xfffull;
        /* the APIC-access page: every access goes through the intercept */
        if (c->vmx_non_root && vmx_apic_access_page(c, gpa)) {
            if (access & ACC_EXEC)
                vmx_apic_access_fetch(c, gpa | (linear & 0xfff));
            apic_access = true;
        }
    }
    u32 *page_gen = NULL;
    bool readonly = false;
    u8 *host = mem_page(c->mem, gpa, &page_gen, &readonly);
    if (unlikely(apic_access))
        host = NULL;
    /* SGX: what enclave mode and the EPCM let this access reach (an EPC page is never
     * RAM: outside its enclave it is the abort page) */
    if (unlikely(c->sgx != NULL) && (!host || c->enclave_mode))
        host = sgx_translate(c, linear, gpa, access, host, &page_gen);
    /* A write to a read-only frame (Xen's p2m_grant_map_ro, the only kind): the nested
     * page fault Xen 4.17 turns into #GP(0) (its emulator refuses grant frames), after the
     * guest's own walk succeeded. A read fill never sets tag_write, so every write to
     * such a page comes through a write fill: the check costs TLB misses only. */
    if (unlikely(readonly) && (access & ACC_WRITE))
        cpu_fault(c, EXC_GP, 0);
    u64 vpn = (linear >> 12) | c->tlb.ctx; /* the tag: page and context */
    struct tlb_entry *e;
    if (access & ACC_NO_AD) {
        /* a peek: do not cache, hand back a scratch entry */
        static _Thread_local struct tlb_entry scratch;
        e = &scratch;
    } else {
        e = tlb_entry_for_fill(&c->tlb, cls, vpn);
    }
    /* keep the other kinds of access this entry allows only if it is the same page */
    bool same = (e->tag_read == vpn || e->tag_write == vpn || e->tag_exec == vpn) && e->gpa == gpa;
    if (!same)
        e->tag_read = e->tag_write = e->tag_exec = TLB_INVALID;
    e->gpa = gpa;
    e->host = host;
    e->page_gen = host ? page_gen : NULL;
    e->global = r.global;
    e->pcid = (c->cr4 & CR4_PCIDE) ? (c->cr3 & 0xfff) : 0;
    /* A supervisor entry for a user page under SMAP depends on EFLAGS.AC: never cache it. */
    bool cacheable = !(in->pg.smap && r.user && cls == 0 && !(access & ACC_IMPLICIT) && in->pg.fmt != PG_NONE);
    if (cacheable && !(access & ACC_NO_AD)) {
        if (access & ACC_EXEC) {
            e->tag_exec = vpn;
        } else {
            e->tag_read = vpn;
            /* only a walk for a write proves the write allowed and the D bit set; a
             * write to a page holding decoded code invalidates that code first */
            if (access & ACC_WRITE) {
                if (e->page_gen)
                    code_written(c, e->page_gen);
                if (host)
                    mem_mark_dirty(c->mem, gpa, 4096);
                e->tag_write = vpn;
            }
        }
        /* Large pages: the engine flushes everything on INVLPG of such an address. */
        if (r.page_size > 4096)
            in->large_pages_cached = true;
    }
    return e;
}

u64 lin_translate(struct cpu *c, u64 linear, unsigned access)
{
    unsigned cls = access_class(c, access);
    u64 vpn = linear >> 12;
    struct tlb_entry *e = &c->tlb.e[cls][vpn & (TLB_SIZE - 1)];
    u64 tag = (access & ACC_EXEC) ? e->tag_exec : (access & ACC_WRITE) ? e->tag_write : e->tag_read;
    if (tag != (vpn | c->tlb.ctx))
        e = tlb_fill(c, linear, access);
    return e->gpa | (linear & 0xfff);
}

/* Host pointer for an access within one page, or NULL for MMIO (then *gpa is set). */
static inline u8 *lin_page(struct cpu *c, u64 linear, unsigned access, u64 *gpa)
{
    unsigned cls = access_class(c, access);
    u64 vpn = linear >> 12;
    struct tlb_entry *e = &c->tlb.e[cls][vpn & (TLB_SIZE - 1)];
    u64 tag = (access & ACC_EXEC) ? e->tag_exec : (access & ACC_WRITE) ? e->tag_write : e->tag_read;
    if (unlikely(tag != (vpn | c->tlb.ctx)))
        e = tlb_fill(c, linear, access);
    *gpa = e->gpa | (linear & 0xfff);
    return e->host ? e->host + (linear & 0xfff) : NULL;
}

const struct tlb_entry *lin_code_entry(struct cpu *c, u64 linear)
{
    unsigned cls = c->cpl == 3 ? 1 : 0;
    u64 vpn = linear >> 12;
    struct tlb_entry *e = &c->tlb.e[cls][vpn & (TLB_SIZE - 1)];
    if (unlikely(e->tag_exec != (vpn | c->tlb.ctx)))
        e = tlb_fill(c, linear, ACC_EXEC);
    return e;
}

/* Copies len bytes between buf and the linear address space page by page, each page
 * walked (one page walker, the vCPU's current paging mode, ACC_USER added at CPL 3,
 * EFLAGS.AC for SMAP) before any byte of it is copied; only RAM is reachable and
 * nothing faults into the guest. -1 if some byte does not translate or is not RAM. */
static int linear_copy(struct cpu *c, u64 linear, void *buf, size_t len, unsigned access,
                       bool to_guest)
{
    struct cpu_internal *in = c->in;
    u8 *p = buf;
    bool lma = c->efer & EFER_LMA;
    while (len) {
        size_t n = 4096 - (size_t)(linear & 0xfff);
        if (n > len)
            n = len;
        if (lma && !cpu_canonical(c, linear))
            return -1;
        struct paging_result r;
        in->pg.ac = c->rflags & FL_AC;
        bool no_exit = in->walk_no_exit;
        in->walk_no_exit = true;
        paging_walk(&in->pg, linear,
                    access | (c->cpl == 3 && !(access & ACC_IMPLICIT) ? ACC_USER : 0), &r);
        if (r.fault == PAGING_OK && cpu_in_l2(c) && !nested_peek(c, r.pa, access, &r.pa))
            r.fault = PAGING_EPT_VIOLATION;
        in->walk_no_exit = no_exit;
        if (r.fault != PAGING_OK)
            return -1;
        /* frames the hypervisor's own copies do not reach (Xen's grant mappings) */
        if (!mem_frame_hv_copy_ok(c->mem, r.pa >> 12))
            return -1;
        if (to_guest) {
            if (!mem_ptr(c->mem, r.pa, n) || mem_write(c->mem, r.pa, p, n) < 0)
                return -1;
            in->exits |= EXIT_BLOCK_END; /* the write may have hit decoded code */
        } else if (mem_read(c->mem, r.pa, p, n) < 0) {
            return -1;
        }
        p += n;
        linear += n;
        len -= n;
    }
    return 0;
}

bool lin_peek(struct cpu *c, u64 linear, void *buf, unsigned size)
{
    return linear_copy(c, linear, buf, size, ACC_READ | ACC_NO_AD, false) == 0;
}

/* ---- physical ---- */
u64 phys_read(struct cpu *c, u64 gpa, unsigned size)
{
    u8 *p = mem_ptr(c->mem, gpa, size);
    if (p) {
        u64 v = 0;
        memcpy(&v, p, size);
        return v;
    }
    struct cpu_event ev = { .kind = EV_MMIO, .u.mmio = { gpa, (u8)size, false, 0 } };
    if (cpu_intercept(c, &ev) == INTERCEPT_DEFAULT)
        return size_mask(size); /* open bus */
    return ev.u.mmio.value & size_mask(size);
}

void phys_write(struct cpu *c, u64 gpa, unsigned size, u64 value)
{
    /* a read-only frame is not written: the write goes where nothing answers */
    u8 *p = mem_ptr_write(c->mem, gpa, size);
    if (p) {
        memcpy(p, &value, size);
        code_written(c, mem_page_gen(c->mem, gpa));
        if (((gpa & 0xfff) + size) > 4096)
            code_written(c, mem_page_gen(c->mem, gpa + size - 1));
        return;
    }
    struct cpu_event ev = { .kind = EV_MMIO, .u.mmio = { gpa, (u8)size, true, value } };
    cpu_intercept(c, &ev);
}

/* ---- linear ---- */
static void lin_access_bytes(struct cpu *c, u64 linear, u8 *buf, unsigned size,
                             unsigned access, bool write)
{
    /* Translate every page first, so a fault on a later page leaves memory untouched. */
    u64 gpa[2];
    u8 *host[2];
    unsigned first = 4096 - (linear & 0xfff);
    if (first > size)
        first = size;
    host[0] = lin_page(c, linear, access, &gpa[0]);
    if (first < size) {
        if (size - first > 4096)
            nestor_panic("linear access of %u bytes", size);
        host[1] = lin_page(c, linear + first, access, &gpa[1]);
        /* the first page's entry may have been evicted by the second fill: refresh */
        host[0] = lin_page(c, linear, access, &gpa[0]);
    }
    unsigned done = 0;
    for (int p = 0; done < size; p++) {
        unsigned n = p == 0 ? first : size - first;
        if (host[p]) {
            if (write) {
                memcpy(host[p], buf + done, n);
            } else {
                memcpy(buf + done, host[p], n);
            }
        } else {
            /* MMIO: split into naturally sized pieces of at most 8 bytes */
            for (unsigned k = 0; k < n;) {
                unsigned piece = n - k >= 8 ? 8 : n - k >= 4 ? 4 : n - k >= 2 ? 2 : 1;
                if (write) {
                    u64 v = 0;
                    memcpy(&v, buf + done + k, piece);
                    phys_write(c, gpa[p] + k, piece, v);
                } else {
                    u64 v = phys_read(c, gpa[p] + k, piece);
                    memcpy(buf + done + k, &v, piece);
                }
                k += piece;
            }
        }
        done += n;
    }
    if (unlikely(c->in->dr_data_active) && !(access & ACC_IMPLICIT))
        debug_check_data(c, linear, size, write);
}

u64 lin_read(struct cpu *c, u64 linear, unsigned size, unsigned access)
{
    if (likely(((linear & 0xfff) + size) <= 4096)) {
        u64 gpa;
        u8 *p = lin_page(c, linear, access, &gpa);
        u64 v;
        if (likely(p != NULL))
            v = load_le(p, size);
        else
            v = phys_read(c, gpa, size);
        if (unlikely(c->in->dr_data_active) && !(access & ACC_IMPLICIT))
            debug_check_data(c, linear, size, false);
        return v;
    }
    u64 v = 0;
    lin_access_bytes(c, linear, (u8 *)&v, size, access, false);
    return v;
}

void lin_write(struct cpu *c, u64 linear, unsigned size, u64 value, unsigned access)
{
    access |= ACC_WRITE;
    if (likely(((linear & 0xfff) + size) <= 4096)) {
        u64 gpa;
        u8 *p = lin_page(c, linear, access, &gpa);
        if (likely(p != NULL)) {
            store_le(p, size, value);
        } else {
            phys_write(c, gpa, size, value);
        }
        if (unlikely(c->in->dr_data_active) && !(access & ACC_IMPLICIT))
            debug_check_data(c, linear, size, true);
        return;
    }
    lin_access_bytes(c, linear, (u8 *)&value, size, access, true);
}

void lin_read_bytes(struct cpu *c, u64 linear, void *buf, unsigned size, unsigned access)
{
    while (size) {
        unsigned n = 4096 - (linear & 0xfff);
        if (n > size)
            n = size;
        lin_access_bytes(c, linear, buf, n, access, false);
        linear += n;
        buf = (u8 *)buf + n;
        size -= n;
    }
}

void lin_write_bytes(struct cpu *c, u64 linear, const void *buf, unsigned size, unsigned access)
{
    access |= ACC_WRITE;
    /* check every page before storing anything */
    for (u64 a = linear & ~0xfffull; a < linear + size; a += 4096)
        lin_translate(c, a < linear ? linear : a, access);
    while (size) {
        unsigned n = 4096 - (linear & 0xfff);
        if (n > size)
            n = size;
        lin_access_bytes(c, linear, (u8 *)buf, n, access, true);
        linear += n;
        buf = (const u8 *)buf + n;
        size -= n;
    }
}

/* ---- segment-relative ---- */
static inline void check_align(struct cpu *c, u64 lin, unsigned size)
{
    /* #AC: CR0.AM, EFLAGS.AC and CPL 3, for misaligned data accesses */
    if (unlikely((c->cr0 & CR0_AM) && (c->rflags & FL_AC) && c->cpl == 3 && (lin & (size - 1)) &&
                 size <= 8))
        cpu_fault(c, EXC_AC, 0);
}

u64 vmem_read_slow(struct cpu *c, int seg, u64 offset, unsigned size)
{
    u64 lin = seg_linear(c, seg, offset, size, false);
    check_align(c, lin, size);
    return lin_read(c, lin, size, 0);
}

void vmem_write_slow(struct cpu *c, int seg, u64 offset, unsigned size, u64 value)
{
    u64 lin = seg_linear(c, seg, offset, size, true);
    check_align(c, lin, size);
    lin_write(c, lin, size, value, 0);
}

void vmem_read_bytes(struct cpu *c, int seg, u64 offset, void *buf, unsigned size)
{
    u64 lin = seg_linear(c, seg, offset, size, false);
    lin_read_bytes(c, lin, buf, size, 0);
}

void vmem_write_bytes(struct cpu *c, int seg, u64 offset, const void *buf, unsigned size)
{
    u64 lin = seg_linear(c, seg, offset, size, true);
    lin_write_bytes(c, lin, buf, size, 0);
}

void vmem_check_write(struct cpu *c, int seg, u64 offset, unsigned size)
{
    u64 lin = seg_linear(c, seg, offset, size, true);
    check_align(c, lin, size);
    lin_translate(c, lin, ACC_WRITE);
    if (((lin & 0xfff) + size) > 4096)
        lin_translate(c, lin + size - 1, ACC_WRITE);
}

u8 *vmem_span(struct cpu *c, int seg, u64 offset, u64 *len, bool write)
{
    if ((c->rflags & FL_AC) || c->in->dr_data_active || *len == 0)
        return NULL;
    u64 lin = seg_linear(c, seg, offset, 1, write);
    u64 in_page = 4096 - (lin & 0xfff);
    if (*len > in_page)
        *len = in_page;
    seg_linear(c, seg, offset, (unsigned)*len, write);
    u64 gpa;
    return lin_page(c, lin, write ? ACC_WRITE : 0, &gpa);
}

/* ---- hypervisor-interface copies ----
 * A hypervisor interface (Xen's hypercalls) reads and writes its guest's arguments by
 * linear address, as the guest's kernel sees them: the one page walker with the vCPU's
 * current paging mode, as a supervisor data access at the current CPL (EFLAGS.AC for
 * SMAP as the guest left it), accessed and dirty bits set as the processor would. Each
 * page is walked before any byte of it is copied; only RAM is reachable (mem_read /
 * mem_write are bounds-checked and see code written). Nothing faults into the guest:
 * the caller turns -1 into its own error (-EFAULT for Xen). Outside 64-bit paging the
 * linear address space ends at 4 GiB. */
static int copy_checked(struct cpu *c, u64 linear, void *buf, size_t len, unsigned access,
                        bool to_guest)
{
    if (!(c->efer & EFER_LMA) && (linear > 0xffffffffull || len > 0x100000000ull - linear))
        return -1;
    return linear_copy(c, linear, buf, len, access, to_guest);
}

int cpu_copy_guest(struct cpu *c, u64 linear, void *buf, size_t len, bool to_guest)
{
    return copy_checked(c, linear, buf, len, to_guest ? ACC_WRITE : ACC_READ, to_guest);
}

/* A debugger's access (cpu.h): the same path, as the kernel would see the address
 * (an implicit supervisor access, at any CPL), without accessed/dirty bits. */
int cpu_debug_access(struct cpu *c, u64 linear, void *buf, size_t len, bool write)
{
    unsigned access = (write ? ACC_WRITE : ACC_READ) | ACC_NO_AD | ACC_IMPLICIT;
    return copy_checked(c, linear, buf, len, access, write);
}
