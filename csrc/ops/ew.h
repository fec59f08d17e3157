/* ew.h -- what the elementwise kernels (ew_forward.c, ew_reverse.c) share. */
#ifndef SAD_EW_H
#define SAD_EW_H

#include "sad.h"

/* The m values at src (stride st): src itself when contiguous, else a copy in
 * dst. */
static inline const double *values(double *dst, const double *src, int64_t st, int64_t m)
{
    if (st == 1)
        return src;
    if (st == 0) { /* a broadcast value: a fill, which gcc vectorizes */
        const double v = src[0];
        for (int64_t i = 0; i < m; ++i)
            dst[i] = v;
        return dst;
    }
    for (int64_t i = 0; i < m; ++i)
        dst[i] = src[i * st];
    return dst;
}

#endif
