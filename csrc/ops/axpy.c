/* axpy.c -- y += a*x: recorded, its tangents and its reverse sweep.
 * Block operands: o[0] = y (in and out), o[1] = x, o[2] = a. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sad.h"

static void axpy_forward(const sad_block *b)
{
    const int last = b->ndim - 1;
    const int64_t rows = sad_block_rows(b), m = b->shape[last];
    double *p[3], *s[3];
    sad_rows cursor;
    sad_rows_start(&cursor, b);
    for (int64_t r = 0; r < rows; ++r) {
        sad_rows_next(&cursor, p, s);
        const double a = p[2][0];
        for (int64_t i = 0; i < m; ++i)
            p[0][i * b->o[0].ps[last]] += a * p[1][i * b->o[1].ps[last]];
    }
}

int sad_axpy(sad_tape *t, int flags, intptr_t a, double va, const sad_arr *x,
             const sad_arr *xs, const sad_arr *y, const sad_arr *ys)
{
    sad_block tmp;
    const sad_arr pair = {(double *)a, 0, NULL, NULL}; /* a's descriptor (shadowad.h) */
    int rc = sad_block_build(&tmp, flags, y, ys, x, xs, &pair, NULL, va);
    if (rc != SAD_OK)
        return rc;
    if (tmp.n == 0)
        return SAD_OK;
    sad_block *b = t != NULL ? sad_arena_alloc(&t->blocks, sizeof(sad_block)) : &tmp;
    if (b == NULL)
        return sad_status(t, SAD_NOMEM);
    *b = tmp;
    if ((flags & 12) == SAD_KY_CONST)
        b->o[2].p = &b->k;
    int unsafe = sad_block_overlaps(b, 0, 0, 1, 0);
    double *xcopy = NULL;
    if (unsafe) { /* x overlaps y but not elementwise: read x before writing */
        xcopy = malloc((size_t)b->n * sizeof(double));
        if (xcopy == NULL)
            return sad_status(t, SAD_NOMEM);
    }
    if (t != NULL) {
        const int need_scratch = b->o[0].s != NULL && sad_block_overlaps(b, 0, 1, 1, 1);
        double *saved = sad_arena_alloc(&t->saves, (size_t)b->n * sizeof(double));
        double *scratch = saved != NULL && need_scratch
                              ? sad_arena_alloc(&t->saves, (size_t)b->n * sizeof(double)) : NULL;
        sad_record *r = saved != NULL && (scratch != NULL || !need_scratch)
                            ? sad_push_record(t, SAD_AXPY, flags) : NULL;
        if (r == NULL) {
            free(xcopy);
            return sad_status(t, SAD_NOMEM);
        }
        sad_block_save(b, saved, !t->saves_soon);
        r->u.a.b = b;
        r->u.a.saved = saved;
        r->u.a.scratch = scratch;
    }
    if (unsafe) {
        sad_block c = *b; /* view x as the "output" to gather it */
        c.o[0] = b->o[1];
        sad_block_save(&c, xcopy, 1);
        c = *b;
        c.o[1].p = xcopy;
        /* xcopy is laid out in iteration order */
        int64_t st = 1;
        for (int d = c.ndim - 1; d >= 0; --d) {
            c.o[1].ps[d] = st;
            st *= c.shape[d];
        }
        axpy_forward(&c);
        free(xcopy);
    } else {
        axpy_forward(b);
    }
    return SAD_OK;
}

/* y += va*x and, lane by lane, dy += va*dx + da*x.  Partial aliasing of x
 * and y (or of their tangents) is refused: the caller splits the work. */
static int axpy_tangents(double va, const double *da, const sad_arr *x, const sad_arr *dx,
                         const sad_arr *y, const sad_arr *dy, int flags)
{
    sad_block b;
    int rc = sad_block_build(&b, SAD_KX_ARR | flags, y, dy, x, dx, NULL, NULL, 0.0);
    if (rc != SAD_OK)
        return rc;
    if (sad_block_overlaps(&b, 0, 0, 1, 0) || sad_block_overlaps(&b, 0, 1, 1, 1))
        return SAD_TOO_MANY_DIMS;
    const int last = b.ndim - 1;
    const int64_t rows = sad_block_rows(&b), m = b.shape[last];
    const int64_t yst = b.o[0].ss[last], xst = b.o[1].ss[last], pst = b.o[1].ps[last];
    double *p[3], *s[3];
    sad_rows cursor;
    sad_rows_start(&cursor, &b);
    for (int64_t r = 0; r < rows; ++r) {
        sad_rows_next(&cursor, p, s);
        for (int64_t l = 0; s[0] != NULL && l < b.nlanes; ++l) {
            double *ys = s[0] + l * b.ls[0];
            const double *xs = s[1] != NULL ? s[1] + l * b.ls[1] : NULL;
            const double dal = da != NULL ? da[l] : 0.0;
            for (int64_t i = 0; i < m; ++i)
                ys[i * yst] += sad_chain(dal, p[1][i * pst]) +
                               (xs != NULL ? sad_chain(va, xs[i * xst]) : 0.0);
        }
        for (int64_t i = 0; i < m; ++i)
            p[0][i * b.o[0].ps[last]] += va * p[1][i * pst];
    }
    return SAD_OK;
}

int sad_axpy_tangents(double va, const double *da, const sad_arr *x, const sad_arr *dx,
                      const sad_arr *y, const sad_arr *dy)
{
    return axpy_tangents(va, da, x, dx, y, dy, SAD_F_LANES);
}

void sad_axpy_reverse(const sad_record *r, int accumulate)
{
    const sad_block *b = r->u.a.b;
    sad_block_swap(b, r->u.a.saved);
    if (!accumulate || b->o[0].s == NULL)
        return;
    /* ybar passes through unchanged; xbar += a*ybar; abar += sum(ybar*x) */
    double *gbuf = r->u.a.scratch; /* set when ys overlaps xs unsafely */
    if (gbuf != NULL)
        sad_block_gather_shadow(b, 0, gbuf);
    const int last = b->ndim - 1;
    const int64_t rows = sad_block_rows(b), m = b->shape[last];
    double *p[3], *s[3];
    int64_t pos = 0;
    sad_rows cursor;
    sad_rows_start(&cursor, b);
    for (int64_t rr = 0; rr < rows; ++rr) {
        sad_rows_next(&cursor, p, s);
        const double a = p[2][0];
        double abar = 0.0;
        for (int64_t i = 0; i < m; ++i, ++pos) {
            double g = gbuf != NULL ? gbuf[pos] : s[0][i * b->o[0].ss[last]];
            if (s[1] != NULL)
                s[1][i * b->o[1].ss[last]] += sad_chain(a, g);
            abar += sad_chain(g, p[1][i * b->o[1].ps[last]]);
        }
        if (s[2] != NULL)
            s[2][0] += abar;
    }
}
