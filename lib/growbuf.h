/* growbuf.h: the one way to grow a heap array, so the doubling, the overflow
 * check and the "keep the old block when realloc fails" rule are written once.
 *
 *     if (grow(&v->bytes, &cap, used + n)) return fail(e, "out of memory");
 *
 * grow(&array, &cap, need) makes cap >= need elements (size_t cap), doubling from
 * at least GROW_MIN.  The element size comes from the array's type, so passing
 * the array instead of its address does not compile.  On failure it returns -1
 * and leaves the array and cap as they were (the caller still owns the array). */
#ifndef RWKV7C_GROWBUF_H
#define RWKV7C_GROWBUF_H
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define GROW_MIN 16

#define grow(array_ptr, cap, need) grow_array((array_ptr), (cap), (need), sizeof **(array_ptr))

/* ptr is the address of the array pointer (any T **), elsize sizeof(T). */
static inline int grow_array(void *ptr, size_t *cap, size_t need, size_t elsize)
{
    if (need <= *cap) return 0;
    size_t c = *cap < GROW_MIN ? GROW_MIN : *cap;
    while (c < need) {
        if (c > SIZE_MAX / 2) { c = need; break; }
        c *= 2;
    }
    if (elsize && c > SIZE_MAX / elsize) return -1;
    void *old;
    memcpy(&old, ptr, sizeof old);
    void *p = realloc(old, c * elsize);
    if (!p) return -1;
    memcpy(ptr, &p, sizeof p);
    *cap = c;
    return 0;
}
#endif
