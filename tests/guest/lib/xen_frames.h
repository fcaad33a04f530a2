/* Guest-physical frames as the -xen memory tests look at them: low memory is mapped
 * one to one, so frame gfn's words are at address gfn << 12. A frame Xen left empty
 * reads all-ones. */
#ifndef NESTOR_TESTS_GUEST_XEN_FRAMES_H
#define NESTOR_TESTS_GUEST_XEN_FRAMES_H

#include "rt.h"

static inline volatile u32 *frame_at(u64 gfn)
{
    return (volatile u32 *)(ulong)(gfn << 12);
}

/* every word of the frame is v */
static inline bool frame_is(u64 gfn, u32 v)
{
    for (int i = 0; i < 1024; i++)
        if (frame_at(gfn)[i] != v)
            return false;
    return true;
}

static inline void frame_fill(u64 gfn, u32 v)
{
    for (int i = 0; i < 1024; i++)
        frame_at(gfn)[i] = v;
}

#endif
