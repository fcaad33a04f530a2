/* The checks of VM entry (SDM Vol. 3C 27.2 and 27.3.1), as a list of small named checks,
 * each citing its section. The first that fails decides the outcome: VMfailValid with
 * VM-instruction error 7 (controls) or 8 (host state), or a VM-entry failure exit 33 with
 * its qualification (guest state; 27.8). */
#ifndef NESTOR_CPU_VMX_ENTRY_CHECKS_H
#define NESTOR_CPU_VMX_ENTRY_CHECKS_H

#include "cpu/vmx/vmx_internal.h"

struct vmx_check_failure {
    const char *name;            /* the check that failed (for traces and tests) */
    enum vmx_insn_error insn_error; /* controls / host state: 7 or 8 */
    u64 qual;                    /* guest state: exit qualification (0, 2 PDPTEs, 3 NMI in
                                    an STI shadow, 4 link pointer) */
};

/* 27.2.1 (controls) and 27.2.2-27.2.4 (host state): false with *fail set. */
bool vmx_entry_check_controls_host(struct cpu *c, struct vmx_check_failure *fail);
/* 27.3.1 (guest state), 27.3.1.5 (link pointer): false with *fail set. */
bool vmx_entry_check_guest(struct cpu *c, struct vmx_check_failure *fail);

/* The list, for the unit tests: how many checks there are, and row k's function name,
 * class ("control", "host" or "guest"), SDM section and exit qualification. */
struct vmx_check_info {
    const char *name, *cls, *sdm;
    u8 qual;
};
int vmx_entry_check_count(void);
bool vmx_entry_check_info(int k, struct vmx_check_info *info);

#endif
