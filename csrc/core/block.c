/* block.c -- iteration spaces of array records.
 *
 * A block describes z = op(x, y) over z's shape: broadcast inputs get stride
 * 0, dimensions of length 1 are dropped and contiguous runs of dimensions are
 * merged, so most records iterate over one or two dimensions. */
#include <stdlib.h>
#include <string.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "sad.h"

enum { MAXND = 64 };

/* The shadow array of an operand; with lanes, its leading axis is taken off
 * and its stride kept in b->ls[k] (every lane shadow has the same count). */
static sad_arr shadow_arr(const sad_arr *obj, int lanes, sad_block *b, int k)
{
    sad_arr a = sad_arr_get(obj);
    b->ls[k] = 0;
    if (lanes && a.data != NULL) {
        b->nlanes = a.shape[0];
        b->ls[k] = a.strides[0] / (int64_t)sizeof(double);
        a.nd -= 1;
        a.shape += 1;
        a.strides += 1;
    }
    return a;
}

static void operand_strides(int kind, const sad_arr *obj, const sad_arr *shadow,
                            const sad_arr *z, sad_block *b, int k, int lanes,
                            int64_t pst[MAXND], int64_t sst[MAXND])
{
    memset(pst, 0, sizeof(int64_t) * (size_t)z->nd); /* only z's dimensions are read */
    memset(sst, 0, sizeof(int64_t) * (size_t)z->nd);
    b->o[k].p = NULL;
    b->o[k].s = NULL;
    b->ls[k] = 0;
    if (kind == SAD_KX_ARR) {
        sad_arr a = sad_arr_get(obj), as = shadow_arr(shadow, lanes, b, k);
        b->o[k].p = a.data;
        b->o[k].s = as.data;
        for (int d = 0; d < z->nd; ++d) {
            int ad = d - (z->nd - a.nd);
            if (ad < 0 || a.shape[ad] == 1)
                continue; /* broadcast */
            pst[d] = a.strides[ad];
            if (as.data != NULL)
                sst[d] = as.strides[ad];
        }
    } else if (kind == SAD_KX_PAIR) {
        sad_pair *q = (sad_pair *)obj->data; /* a pair's descriptor (shadowad.h) */
        b->o[k].p = &q->v;
        b->o[k].s = &q->g;
    } else if (kind == SAD_KX_CONST) {
        b->o[k].p = &b->k;
    }
}

int sad_block_build(sad_block *b, int flags, const sad_arr *z, const sad_arr *zs,
                    const sad_arr *x, const sad_arr *xs, const sad_arr *y, const sad_arr *ys,
                    double k)
{
    const int lanes = (flags & SAD_F_LANES) != 0;
    b->nlanes = 1;
    sad_arr za = sad_arr_get(z), zsa = shadow_arr(zs, lanes, b, 0);
    int64_t st[6][MAXND];
    int64_t shape[MAXND];
    int nd = za.nd;
    if (nd > MAXND)
        return SAD_TOO_MANY_DIMS;
    b->k = k;
    b->o[0].slot = b->o[1].slot = b->o[2].slot = 0;
    b->o[0].p = za.data;
    b->o[0].s = zsa.data;
    for (int d = 0; d < nd; ++d) {
        shape[d] = za.shape[d];
        st[0][d] = za.strides[d];
        st[1][d] = zsa.data != NULL ? zsa.strides[d] : 0;
    }
    operand_strides(flags & 3, x, xs, &za, b, 1, lanes, st[2], st[3]);
    operand_strides((flags >> 2) & 3, y, ys, &za, b, 2, lanes, st[4], st[5]);

    /* drop length-1 dimensions, merge contiguous neighbours */
    int64_t cshape[MAXND], cst[6][MAXND];
    int cn = 0;
    int64_t n = 1;
    for (int d = 0; d < nd; ++d) {
        n *= shape[d];
        if (shape[d] == 1)
            continue;
        int merge = cn > 0;
        for (int j = 0; j < 6 && merge; ++j)
            merge = cst[j][cn - 1] == st[j][d] * shape[d];
        if (merge) {
            cshape[cn - 1] *= shape[d];
            for (int j = 0; j < 6; ++j)
                cst[j][cn - 1] = st[j][d];
        } else {
            cshape[cn] = shape[d];
            for (int j = 0; j < 6; ++j)
                cst[j][cn] = st[j][d];
            ++cn;
        }
    }
    if (cn == 0) { /* a single element */
        cshape[0] = 1;
        for (int j = 0; j < 6; ++j)
            cst[j][0] = 0;
        cn = 1;
    }
    if (cn > SAD_MAXDIM)
        return SAD_TOO_MANY_DIMS;
    b->ndim = cn;
    b->n = n;
    for (int d = 0; d < cn; ++d) {
        b->shape[d] = cshape[d];
        for (int o = 0; o < 3; ++o) {
            b->o[o].ps[d] = cst[2 * o][d] / (int64_t)sizeof(double);
            b->o[o].ss[d] = cst[2 * o + 1][d] / (int64_t)sizeof(double);
        }
    }
    return SAD_OK;
}

int64_t sad_block_rows(const sad_block *b)
{
    int64_t inner = b->shape[b->ndim - 1];
    return inner == 0 ? 0 : b->n / inner;
}

static void extent(const double *base, const int64_t *st, const sad_block *b,
                   const double **lo, const double **hi)
{
    int64_t a = 0, z = 0;
    for (int d = 0; d < b->ndim; ++d) {
        int64_t span = (b->shape[d] - 1) * st[d];
        if (span < 0)
            a += span;
        else
            z += span;
    }
    *lo = base + a;
    *hi = base + z + 1;
}

/* Does b's output fill its extent, every element once, in C order? */
int sad_block_output_dense(const sad_block *b)
{
    int64_t step = 1;
    for (int d = b->ndim - 1; d >= 0; --d) {
        if (b->shape[d] != 1 && b->o[0].ps[d] != step)
            return 0;
        step *= b->shape[d];
    }
    return 1;
}

/* The primal memory b's output spans: [*lo, *hi). */
void sad_block_output_extent(const sad_block *b, const double **lo, const double **hi)
{
    extent(b->o[0].p, b->o[0].ps, b, lo, hi);
}

/* Is b one run of elements in memory order: 1-D, the output (and its
 * shadow, if any) at unit stride, the inputs at unit or zero strides?  Such a
 * record can be swept a piece at a time (fuse.c) or seen with any shape
 * (sad_ew_reverse_through). */
int sad_block_one_run(const sad_block *b)
{
    if (b->ndim != 1 || b->o[0].ps[0] != 1 || (b->o[0].s != NULL && b->o[0].ss[0] != 1))
        return 0;
    for (int k = 1; k < 3; ++k) {
        const sad_opnd *o = &b->o[k];
        if ((o->p != NULL && o->ps[0] != 0 && o->ps[0] != 1) ||
            (o->s != NULL && o->ss[0] != 0 && o->ss[0] != 1))
            return 0;
    }
    return 1;
}

/* Does operand which_in (primal or shadow) share memory with operand
 * which_out in a way that element-by-element processing would get wrong,
 * i.e. overlap without being the very same elements in the same order? */
int sad_block_overlaps(const sad_block *b, int which_out, int out_shadow,
                       int which_in, int in_shadow)
{
    const sad_opnd *o = &b->o[which_out], *i = &b->o[which_in];
    const double *ob = out_shadow ? o->s : o->p, *ib = in_shadow ? i->s : i->p;
    const int64_t *ost = out_shadow ? o->ss : o->ps, *ist = in_shadow ? i->ss : i->ps;
    if (ob == NULL || ib == NULL || b->n == 0)
        return 0;
    if (ob == ib && memcmp(ost, ist, sizeof(int64_t) * (size_t)b->ndim) == 0)
        return 0;
    const double *olo, *ohi, *ilo, *ihi;
    extent(ob, ost, b, &olo, &ohi);
    extent(ib, ist, b, &ilo, &ihi);
    return olo < ihi && ilo < ohi;
}

/* Are operand which_out's primal and operand which_in's primal apart in
 * memory (no element of one among the other's)?  An absent operand is. */
int sad_block_apart(const sad_block *b, int which_out, int which_in)
{
    const double *ob = b->o[which_out].p, *ib = b->o[which_in].p;
    if (ob == NULL || ib == NULL || b->n == 0)
        return 1;
    const double *olo, *ohi, *ilo, *ihi;
    extent(ob, b->o[which_out].ps, b, &olo, &ohi);
    extent(ib, b->o[which_in].ps, b, &ilo, &ihi);
    return ohi <= ilo || ihi <= olo;
}

/* Saved bytes are read again only by a sweep or an undo, long after (often
 * never: see sad_tape_restore_floor): large saves bypass the cache, which
 * also spares reading each destination line before writing it. */
enum { STREAM_MIN = 1 << 13 }; /* doubles: smaller saves stay cached */

static void copy_out(double *dst, const double *src, int64_t m)
{
#if defined(__SSE2__)
    if (m >= STREAM_MIN) {
        int64_t i = 0;
        if ((uintptr_t)dst % 16 != 0) /* dst is 8-aligned: one element to 16 */
            dst[i++] = src[0];
        for (; i + 2 <= m; i += 2)
            _mm_stream_pd(dst + i, _mm_loadu_pd(src + i));
        if (i < m)
            dst[i] = src[i];
        return;
    }
#endif
    memcpy(dst, src, (size_t)m * sizeof(double));
}

void sad_block_save(const sad_block *b, double *dst)
{
    int64_t rows = sad_block_rows(b), m = b->shape[b->ndim - 1];
    int64_t st = b->o[0].ps[b->ndim - 1];
    double *p[3], *s[3];
    sad_rows cursor;
    sad_rows_start(&cursor, b);
    for (int64_t r = 0; r < rows; ++r) {
        sad_rows_next(&cursor, p, s);
        if (st == 1) { /* the common case: one copy per row */
            copy_out(dst, p[0], m);
            dst += m;
            continue;
        }
        for (int64_t i = 0; i < m; ++i)
            *dst++ = p[0][i * st];
    }
#if defined(__SSE2__)
    _mm_sfence(); /* the streamed stores are ordered before anything after */
#endif
}

void sad_block_swap(const sad_block *b, double *saved)
{
    int64_t rows = sad_block_rows(b), m = b->shape[b->ndim - 1];
    int64_t st = b->o[0].ps[b->ndim - 1];
    double *p[3], *s[3];
    sad_rows cursor;
    sad_rows_start(&cursor, b);
    for (int64_t r = 0; r < rows; ++r) {
        sad_rows_next(&cursor, p, s);
        double *row = p[0];
        if (st == 1) { /* unit stride: a loop the compiler vectorizes */
            for (int64_t i = 0; i < m; ++i) {
                double tmp = row[i];
                row[i] = saved[i];
                saved[i] = tmp;
            }
            saved += m;
            continue;
        }
        for (int64_t i = 0; i < m; ++i, ++saved) {
            double tmp = row[i * st];
            row[i * st] = *saved;
            *saved = tmp;
        }
    }
}

/* The second half of a swap only: primal = saved (a last redo). */
void sad_block_put(const sad_block *b, const double *saved)
{
    int64_t rows = sad_block_rows(b), m = b->shape[b->ndim - 1];
    int64_t st = b->o[0].ps[b->ndim - 1];
    double *p[3], *s[3];
    sad_rows cursor;
    sad_rows_start(&cursor, b);
    for (int64_t r = 0; r < rows; ++r, saved += m) {
        sad_rows_next(&cursor, p, s);
        if (st == 1) {
            memcpy(p[0], saved, (size_t)m * sizeof(double));
            continue;
        }
        for (int64_t i = 0; i < m; ++i)
            p[0][i * st] = saved[i];
    }
}

void sad_block_zero_shadow(const sad_block *b, int which)
{
    if (b->o[which].s == NULL)
        return;
    int64_t rows = sad_block_rows(b), m = b->shape[b->ndim - 1];
    int64_t st = b->o[which].ss[b->ndim - 1];
    double *p[3], *s[3];
    sad_rows cursor;
    sad_rows_start(&cursor, b);
    for (int64_t r = 0; r < rows; ++r) {
        sad_rows_next(&cursor, p, s);
        for (int64_t i = 0; i < m; ++i)
            s[which][i * st] = 0.0;
    }
}

void sad_block_gather_shadow(const sad_block *b, int which, double *dst)
{
    int64_t rows = sad_block_rows(b), m = b->shape[b->ndim - 1];
    int64_t st = b->o[which].ss[b->ndim - 1];
    double *p[3], *s[3];
    sad_rows cursor;
    sad_rows_start(&cursor, b);
    for (int64_t r = 0; r < rows; ++r) {
        sad_rows_next(&cursor, p, s);
        for (int64_t i = 0; i < m; ++i)
            *dst++ = s[which][i * st];
    }
}
