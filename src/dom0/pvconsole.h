/* The guest's PV console (hvc0), domain 0's side: what xenconsoled does for a Xen
 * HVM/PVH domU. The ring (xen/io/console.h's struct xencons_interface) is the toolstack's
 * special page SPECIALPAGE_CONSOLE with a guest port allocated for domain 0, named by
 * HVM_PARAM_CONSOLE_PFN and _EVTCHN. The guest's output goes to nestor's console; nestor's
 * console input goes into the ring (as well as to the serial port), so console=hvc0 is
 * interactive and serial and hvc0 work side by side. */
#ifndef NESTOR_DOM0_PVCONSOLE_H
#define NESTOR_DOM0_PVCONSOLE_H

#include <stddef.h>

#include "common.h"

struct xen;
struct pvconsole;
struct state_registry;

/* Sets up the ring and channel (after xenstore's: libxl allocates the store's port first,
 * then the console's); output goes to out_fd (-1: nowhere). NULL if out of memory. */
struct pvconsole *pvconsole_create(struct xen *x, int out_fd);
void pvconsole_destroy(struct pvconsole *pc);
/* Bytes typed for the guest: as many as the ring has room for (returned); room says how
 * many that is now. */
size_t pvconsole_input(struct pvconsole *pc, const u8 *buf, size_t n);
size_t pvconsole_input_room(const struct pvconsole *pc);
/* Save and restore: domain 0's port (the ring's page is the Xen interface's special page,
 * saved with it) */
void pvconsole_state_register(struct pvconsole *pc, struct state_registry *r);

#endif
