/* multicall (xen/common/multicall.c): a batch of hypercalls in one. */
#include <string.h>

#include "hv/xen/xen_internal.h"
#include "cpu/exec.h"

/* Entries run before the multicall yields to the machine's loop (Xen's preemption): the
 * vCPU then executes the VMCALL/VMMCALL again for the rest, so a batch of any length
 * neither stalls timers, other vCPUs and the console nor the host. */
#define MULTICALL_BATCH 256u

/* The 32-bit ABI's multicall_entry: Xen's compat_multicall_entry, struct multicall_entry
 * with x86_32's xen_ulong_t (32 bits). libxen-dev's foreign headers do not carry it. */
struct multicall_entry_x86_32 {
    uint32_t op, result;
    uint32_t args[6];
};
_Static_assert(sizeof(struct multicall_entry_x86_32) == 32, "x86_32 multicall_entry");

/* multicall(call_list, nr_calls), as Xen's do_multicall() for an HVM vCPU: each entry is
 * read (-EFAULT ends the batch), performed through xen_call() in the caller's ABI, and
 * its result written back to its result field (-EFAULT ends the batch). A multicall
 * inside a multicall is refused with -EINVAL (that entry's result). A call that shuts
 * the domain down ends the batch. A long batch is continued as Xen's
 * hypercall_create_continuation() does for HVM: the argument registers are moved past the
 * entries done, RAX keeps the hypercall's number, and the instruction runs again. */
long xen_do_multicall(struct xcall *k)
{
    struct xen *x = k->x;
    struct xen_vcpu *v = &x->vcpu[k->c->id];
    if (v->in_multicall)
        return -EINVAL;
    u64 list = k->arg[0];
    u32 nr = (u32)k->arg[1];
    size_t size = k->compat ? sizeof(struct multicall_entry_x86_32) : sizeof(struct multicall_entry);
    long rc = 0;
    v->in_multicall = true;
    u32 i;
    for (i = 0; i < nr && !rc && !x->shut_down; i++) {
        if (i == MULTICALL_BATCH) {
            /* continuation: call_list and nr_calls are the first two argument registers
             * of either ABI (rdi, rsi / ebx, ecx) */
            struct cpu *c = k->c;
            u64 rest = list + (u64)i * size;
            c->gpr[k->compat ? R_RBX : R_RDI] = k->compat ? (u32)rest : rest;
            c->gpr[k->compat ? R_RCX : R_RSI] = nr - i;
            cpu_branch(c, c->rip);
            v->in_multicall = false;
            return __HYPERVISOR_multicall;
        }
        /* a 32-bit caller's addresses wrap at 4 GiB */
        u64 entry = list + (u64)i * size;
        if (k->compat)
            entry = (u32)entry;
        /* an entry is op, result, args[6], each a word of the ABI's width */
        unsigned w = k->compat ? 4 : 8;
        u8 raw[sizeof(struct multicall_entry)];
        if (xen_copy_from(k, entry, raw, size)) {
            rc = -EFAULT;
            break;
        }
        u64 op = 0, args[6] = { 0 };
        memcpy(&op, raw, w);
        for (int a = 0; a < 6; a++)
            memcpy(&args[a], raw + (2 + a) * w, w);
        long result = xen_call(x, k->c, k->compat, op, args);
        if (k->compat) {
            uint32_t r32 = (uint32_t)result;
            if (xen_copy_to(k, entry + offsetof(struct multicall_entry_x86_32, result), &r32, sizeof(r32)))
                rc = -EFAULT;
        } else {
            xen_ulong_t r64 = (xen_ulong_t)result;
            if (xen_copy_to(k, entry + offsetof(struct multicall_entry, result), &r64, sizeof(r64)))
                rc = -EFAULT;
        }
    }
    v->in_multicall = false;
    return rc;
}
