/* ew.h -- what the elementwise kernels (ew_forward_real.h, ew_reverse_real.h)
 * share, a template (real.h): included once per float type. */

/* The m values at src (stride st): src itself when contiguous, else a copy in
 * dst. */
static inline const sad_real *SAD_R(values)(sad_real *dst, const sad_real *src, int64_t st,
                                            int64_t m)
{
    if (st == 1)
        return src;
    if (st == 0) { /* a broadcast value: a fill, which gcc vectorizes */
        const sad_real v = src[0];
        for (int64_t i = 0; i < m; ++i)
            dst[i] = v;
        return dst;
    }
    for (int64_t i = 0; i < m; ++i)
        dst[i] = src[i * st];
    return dst;
}
