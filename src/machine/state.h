/* The one state description. Every component with state (the vCPUs, each device, the
 * clock, the virtualization extensions, the hypervisor interfaces) describes its state
 * once, as a table of named fields of its own struct plus, where the state is not a
 * fixed set of fields (a table of variable length), a save and a load function. Save and
 * restore, migration and the determinism tests all serialise through these descriptions.
 *
 * A serialised component (a section) is self-describing: its name, instance and version,
 * then every field by name and size. A loader accepts a section only when its version,
 * field names and sizes are exactly those of the running nestor, so a file from another
 * version is refused with a message naming what differs rather than misread.
 *
 * Every member of a described struct is either a field or explicitly "not state" (a
 * pointer, a cache rebuilt on load): state_desc_check() finds members that are neither,
 * so a member added later without its description fails the unit tests. */
#ifndef NESTOR_MACHINE_STATE_H
#define NESTOR_MACHINE_STATE_H

#include <stddef.h>

#include "common.h"

struct state_desc;
struct state_field {
    const char *name; /* NULL: a member that is not state (pointer, cache, host handle) */
    size_t offset, size;
    /* A struct member (or an array of them) is serialised through its own description,
     * member by member: padding bytes, whose contents C leaves unspecified, never reach
     * a file or a digest. */
    const struct state_desc *sub;
    /* bool members (and arrays of them): a loader accepts only 0 and 1, the values C
     * allows a bool to hold */
    bool is_bool;
};
#define STATE_IS_BOOL(x) _Generic((x), bool: true, bool *: true, default: false)
#define STATE_FIELD(type, member) \
    { #member, offsetof(type, member), sizeof(((type *)0)->member), NULL, \
      STATE_IS_BOOL(((type *)0)->member) }
#define STATE_STRUCT(type, member, sub_desc) \
    { #member, offsetof(type, member), sizeof(((type *)0)->member), &(sub_desc), false }
#define STATE_NOT_STATE(type, member) \
    { NULL, offsetof(type, member), sizeof(((type *)0)->member), NULL, false }

/* A growable byte buffer that sections are written to, and a cursor that reads them. */
struct state_buf {
    u8 *p;
    size_t len, cap;
    bool oom; /* an allocation failed: the buffer is incomplete */
};
struct state_cursor {
    const u8 *p;
    size_t len, pos;
    bool bad; /* read past the end, or a load function refused what it read */
    bool bad_bool; /* a bool field held something other than 0 or 1 */
};

struct state_desc {
    const char *name;   /* the section's name ("pit", "lapic", "cpu") */
    u32 version;        /* bump when the meaning of a field changes */
    size_t size;        /* sizeof the described struct (coverage check) */
    const struct state_field *fields;
    size_t nfields;
    /* Optional: the variable part, written after the fields. load returns 0 or -1 with
     * a message in err (the object may then be half loaded: the caller discards it). */
    void (*save)(void *obj, struct state_buf *b);
    int (*load)(void *obj, struct state_cursor *c, char *err, size_t errlen);
    /* Optional: after every section is loaded, check what the loaded state may not hold
     * (values the code indexes or shifts by: a state file is untrusted input) and
     * rebuild what is derived (caches, host pointers). 0, or -1 with a message. */
    int (*post_load)(void *obj, char *err, size_t errlen);
    /* A cache whose contents the architecture lets a processor drop at any time (the
     * TLB): saved and restored, but not part of a state digest, since what it holds
     * also depends on the engine's own caches. */
    bool cache;
};
#define STATE_DESC(NAME, VERSION, TYPE, FIELDS, ...) \
    { .name = NAME, .version = VERSION, .size = sizeof(TYPE), .fields = FIELDS, \
      .nfields = sizeof(FIELDS) / sizeof((FIELDS)[0]), __VA_ARGS__ }

/* The components of one machine, in registration order (which is also the load order
 * and the order post_load runs in). */
struct state_entry {
    const struct state_desc *desc;
    u32 instance;
    void *obj;
};
struct state_registry {
    struct state_entry *e;
    size_t n, cap;
};

void state_register(struct state_registry *r, const struct state_desc *d, u32 instance, void *obj);
void state_registry_free(struct state_registry *r);

/* Every member of the struct covered by exactly one field or not-state entry (gaps only
 * where the compiler pads), and so for the descriptions of its struct members: 0, or -1
 * with the first problem in err. */
int state_desc_check(const struct state_desc *d, char *err, size_t errlen);

/* Serialises every registered component into b (appending); without_caches leaves out
 * the sections of caches (for digests). */
void state_save_all(const struct state_registry *r, struct state_buf *b);
void state_save_all_but_caches(const struct state_registry *r, struct state_buf *b);
/* Loads components serialised by state_save_all into the registered ones: every section
 * must match a registered component and every component must be present. Then runs the
 * post_load functions. 0, or -1 with a message. */
int state_load_all(const struct state_registry *r, const u8 *p, size_t len, char *err, size_t errlen);

/* A struct through its description, in a save or load function (a value computed for
 * the save rather than the live one): its named fields, packed. */
void state_put_struct(struct state_buf *b, const struct state_desc *d, const void *obj);
/* false on truncation or a bool out of range */
bool state_get_struct(struct state_cursor *c, const struct state_desc *d, void *obj);

/* Building blocks for a description's save and load functions. */
void state_put(struct state_buf *b, const void *p, size_t n);
void state_put_u8(struct state_buf *b, u8 v);
void state_put_u32(struct state_buf *b, u32 v);
void state_put_u64(struct state_buf *b, u64 v);
void state_put_str(struct state_buf *b, const char *s);
void state_buf_free(struct state_buf *b);
/* Readers return 0 (and zeroes, setting c->bad) past the end. */
bool state_get(struct state_cursor *c, void *p, size_t n);
u8 state_get_u8(struct state_cursor *c);
u32 state_get_u32(struct state_cursor *c);
u64 state_get_u64(struct state_cursor *c);
/* A string written by state_put_str into buf (NUL-terminated, at most cap-1 bytes):
 * false when it does not fit or runs past the end. */
bool state_get_str(struct state_cursor *c, char *buf, size_t cap);

#endif
