/* snapshot.c -- the byte comparisons and copies behind the snapshots of plain
 * arrays (shadowad/snapshots.py).  A record whose reverse reads a plain
 * (untraced) numpy array reads a copy of it, since a later write to that
 * memory never reaches the tape; the copy is made again only when the
 * array's bytes differ from the last copy's.  Bytes, not values: a NaN
 * equals itself here and -0.0 differs from 0.0, so the sweep reads exactly
 * the bits the operation read. */
#include <string.h>

#include "sad.h"

/* numpy's most dimensions (NPY_MAXDIMS: 64 since numpy 2, 32 before) */
enum { MAX_NDIM = 64 };

int sad_same_bytes(intptr_t a, intptr_t b, int64_t n)
{
    return memcmp((const void *)a, (const void *)b, (size_t)n) == 0;
}

void sad_copy_bytes(intptr_t dst, intptr_t src, int64_t n)
{
    memcpy((void *)dst, (const void *)src, (size_t)n);
}

int sad_same_elements(const sad_arr *arr, const void *block, int64_t itemsize)
{
    const sad_arr a = *arr;
    const char *q = (const char *)block;
    const size_t item = (size_t)itemsize;
    if (a.nd == 0)
        return memcmp(a.data, q, item) == 0;
    const int last = a.nd - 1;
    const int64_t n = a.shape[last], step = a.strides[last];
    int64_t idx[MAX_NDIM] = {0}, off = 0;
    for (int d = 0; d < a.nd; ++d)
        if (a.shape[d] == 0)
            return 1;
    for (;;) {
        const char *p = (const char *)a.data + off;
        if (step == itemsize) {
            if (memcmp(p, q, (size_t)n * item) != 0)
                return 0;
            q += (size_t)n * item;
        } else {
            for (int64_t j = 0; j < n; ++j, q += item)
                if (memcmp(p + j * step, q, item) != 0)
                    return 0;
        }
        int d = last - 1; /* the next row: an odometer over the other axes */
        for (; d >= 0; --d) {
            if (++idx[d] < a.shape[d]) {
                off += a.strides[d];
                break;
            }
            off -= (a.shape[d] - 1) * a.strides[d];
            idx[d] = 0;
        }
        if (d < 0)
            return 1;
    }
}
