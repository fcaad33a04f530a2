/* The calls of the toolstack and of dom0 that Xen 4.17's HVM hypercall table still
 * lets a domU make (xen/include/hypercall-defs.c): platform_op, sysctl, domctl,
 * paging_domctl_cont, dm_op, hypfs_op, mmuext_op, xenpmu_op. A domU is refused, each
 * with the error and in the order of Xen's own checks, so that a guest probing them
 * learns what it would on Xen: a bad argument block -EFAULT, a wrong interface version
 * -EACCES, a domain that does not exist -ESRCH, then the XSM dummy policy's -EPERM.
 * nestor's dom0 (its backends, in the host) exists and is a PV domain, as the dom0 of
 * a Xen host usually is. */
#include <string.h>

/* domctl.h and sysctl.h are the tools' interface: their guard asks for this, and
 * <xen/xen.h> then defines the 64-bit guest handles they use */
#define __XEN_TOOLS__ 1
#include "hv/xen/xen_internal.h"

#include <xen/domctl.h>
#include <xen/sysctl.h>
#include <xen/platform.h>
#include <xen/hvm/dm_op.h>

/* The domains rcu_lock_domain_by_id finds: this guest (by its own id only: DOMID_SELF
 * is not an id) and dom0. */
static bool domain_exists(const struct xen *x, u16 domid)
{
    return domid == x->cfg.domid || domid == 0;
}

/* The leading words every tools structure starts with (cmd, interface_version), and
 * for domctl the domain after them: read as the whole structure is, so a block that
 * does not fit is -EFAULT as Xen's copy_from_guest of it is. */
static long copy_op(struct xcall *k, u64 arg, size_t size, u32 *cmd, u32 *version)
{
    u8 buf[sizeof(struct xen_domctl)];
    _Static_assert(sizeof(struct xen_domctl) >= sizeof(struct xen_sysctl) &&
                       sizeof(struct xen_domctl) >= sizeof(struct xen_platform_op),
                   "buffer for the largest tools structure");
    if (xen_copy_from(k, arg, buf, size))
        return -EFAULT;
    memcpy(cmd, buf, 4);
    memcpy(version, buf + 4, 4);
    return 0;
}

/* do_platform_op (xen/arch/x86/platform_hypercall.c): the structure's layout is the
 * same in both ABIs (a 128-byte union after two words) */
long xen_do_platform_op(struct xcall *k)
{
    u32 cmd, version;
    if (copy_op(k, k->arg[0], sizeof(struct xen_platform_op), &cmd, &version))
        return -EFAULT;
    if (version != XENPF_INTERFACE_VERSION)
        return -EACCES;
    return -EPERM; /* xsm_platform_op(XSM_PRIV) */
}

/* do_sysctl (xen/common/sysctl.c) */
long xen_do_sysctl(struct xcall *k)
{
    u32 cmd, version;
    if (copy_op(k, k->arg[0], sizeof(struct xen_sysctl), &cmd, &version))
        return -EFAULT;
    if (version != XEN_SYSCTL_INTERFACE_VERSION)
        return -EACCES;
    return -EPERM; /* xsm_sysctl(XSM_PRIV) */
}

/* do_domctl (xen/common/domctl.c), and paging_domctl_cont
 * (xen/arch/x86/mm/paging.c), which checks the same way: the commands that name no
 * domain go straight to the policy, the others look their domain up first. */
static long domctl_checks(struct xcall *k, bool continuation)
{
    u8 buf[sizeof(struct xen_domctl)];
    if (xen_copy_from(k, k->arg[0], buf, sizeof(buf)))
        return -EFAULT;
    struct xen_domctl op;
    memcpy(&op, buf, sizeof(op));
    if (op.interface_version != XEN_DOMCTL_INTERFACE_VERSION)
        return -EACCES;
    bool names_domain = true;
    if (!continuation) {
        switch (op.cmd) {
        case XEN_DOMCTL_createdomain:
        case XEN_DOMCTL_gdbsx_guestmemio:
            names_domain = false;
            break;
        case XEN_DOMCTL_test_assign_device:
        case XEN_DOMCTL_assign_device:
        case XEN_DOMCTL_deassign_device:
            names_domain = op.domain != DOMID_INVALID;
            break;
        default:
            break;
        }
    }
    if (names_domain && !domain_exists(k->x, op.domain))
        return -ESRCH;
    return -EPERM; /* xsm_domctl: XSM_PRIV (or DM/XS_PRIV: a domU is neither) */
}

long xen_do_domctl(struct xcall *k)
{
    return domctl_checks(k, false);
}

long xen_do_paging_domctl_cont(struct xcall *k)
{
    return domctl_checks(k, true);
}

/* do_dm_op / compat_dm_op (xen/arch/x86/hvm/dm.c): at most two buffers, their
 * descriptors read (16 bytes each natively, handle and size as 32-bit words in the
 * compat layout), then the target: a device model serves another domain, so this
 * guest naming itself is -EPERM, an unknown domain -ESRCH, and dom0, not an HVM
 * domain, -EINVAL. */
long xen_do_dm_op(struct xcall *k)
{
    u16 domid = (u16)k->arg[0];
    u32 nr_bufs = (u32)k->arg[1];
    u64 bufs = k->arg[2];
    if (nr_bufs > 2)
        return -E2BIG;
    u8 desc[2 * sizeof(struct xen_dm_op_buf)];
    size_t desc_size = k->compat ? 8 : sizeof(struct xen_dm_op_buf);
    if (nr_bufs && xen_copy_from(k, bufs, desc, nr_bufs * desc_size))
        return -EFAULT;
    if (!domain_exists(k->x, domid))
        return -ESRCH;
    if (domid == k->x->cfg.domid)
        return -EPERM;
    return -EINVAL;
}

/* do_hypfs_op (xen/common/hypfs.c): the policy is asked before anything is read */
long xen_do_hypfs_op(struct xcall *k)
{
    (void)k;
    return -EPERM; /* xsm_hypfs_op(XSM_PRIV) */
}

/* do_mmuext_op (xen/arch/x86/mm.c): the page owner is looked up (get_pg_owner: this
 * guest only as DOMID_SELF; its own id is refused as -ESRCH), then must be a PV
 * domain (so never this guest: -EINVAL), then the policy refuses a domU acting on
 * another (dom0, DOMID_IO, DOMID_XEN: -EPERM). Nothing of the op array is read
 * before; an HVM caller's array is always "okay". */
long xen_do_mmuext_op(struct xcall *k)
{
    u16 foreigndom = (u16)k->arg[3];
    if (foreigndom == DOMID_SELF)
        return -EINVAL;
    if (foreigndom == DOMID_IO || foreigndom == DOMID_XEN || foreigndom == 0)
        return -EPERM;
    return -ESRCH;
}

/* do_xenpmu_op (xen/arch/x86/cpu/vpmu.c): a guest with a virtual local APIC uses the
 * PMU through its MSRs; the hypercall is for PV guests */
long xen_do_xenpmu_op(struct xcall *k)
{
    (void)k;
    return -EOPNOTSUPP;
}
