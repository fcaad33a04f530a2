/* Options as QEMU spells them: "NAME,key=value,..." (-device, -netdev) or
 * "key=value,..." (-drive), parsed once into a list that the option's owner reads. */
#ifndef NESTOR_MACHINE_OPTS_H
#define NESTOR_MACHINE_OPTS_H

#include "common.h"

#define OPTS_MAX_PROPS 12

struct opts {
    char buf[512];
    const char *what;   /* the option, for messages: "-device" */
    const char *name;   /* the leading NAME (NULL for key=value lists) */
    int n;
    const char *key[OPTS_MAX_PROPS], *value[OPTS_MAX_PROPS];
};

/* named: the first item is a NAME. 0, or -1 with a message. */
int opts_parse(struct opts *o, const char *what, const char *spec, bool named);
/* A property's value (the last one given counts, as in QEMU), or NULL */
const char *opts_get(const struct opts *o, const char *key);
/* A number (C syntax: 0x.. hex, decimal) within [0, max]; *out keeps its default when
 * the property is absent. 0, or -1 with a message. */
int opts_num(const struct opts *o, const char *key, u64 max, u64 *out);
/* on/off (also yes/no, true/false); *out keeps its default when absent */
int opts_bool(const struct opts *o, const char *key, bool *out);
/* Every key is one of known (NULL-terminated; "id" is always known): 0, or -1 with a
 * message naming the first that is not */
int opts_check_known(const struct opts *o, const char *const *known);

#endif
