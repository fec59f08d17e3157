/* outer.c -- z = np.outer(a, b) of two vectors as one record.
 *
 * An LU step `A[k+1:, k+1:] -= np.outer(A[k+1:, k], A[k, k+1:])` makes one per
 * step: as a Python record, recording and sweeping it cost more Python than
 * the product itself.  Here C computes the primal and the sweep runs in C.
 *
 * The record is an array record (u.a) whose block spans z's (m, n) shape with
 * o[0] = z, o[1] = a along axis 0 (stride 0 along axis 1) and o[2] = b along
 * axis 1, as the elementwise block of a[:, None] * b[None, :] would be; it is
 * never coalesced (ndim stays 2), so sad_slot_resolve can translate the lazy
 * shadows of all three and never finds an operand covered whole (it would
 * then ask for a store into uninitialised memory, see sad_slot_resolve). */
#include <fenv.h>
#include <math.h>
#include <string.h>

#include "sad.h"

/* Operand k of the block: 1-D array p (shadow s, lazy slot `slot` when > 0)
 * along `axis` of z; z itself (k = 0) is 2-D. */
static void set_operand(const sad_tape *t, sad_block *b, int k, const sad_arr *p, const sad_arr *s,
                        int64_t slot, int axis)
{
    sad_opnd *o = &b->o[k];
    const sad_arr pa = *p, sa = sad_arr_get(s);
    memset(o, 0, sizeof(*o));
    o->p = pa.data;
    for (int d = 0; d < pa.nd; ++d)
        o->ps[axis + d] = pa.strides[d] / (int64_t)sizeof(double);
    if (sa.data == NULL)
        return;
    o->s = sa.data;
    for (int d = 0; d < sa.nd; ++d)
        o->ss[axis + d] = sa.strides[d] / (int64_t)sizeof(double);
    if (slot > 0) { /* s has the slot's layout: the same offset from its root */
        const char *root = (const char *)t->slots[slot - 1].root;
        o->s = (double *)sad_slot_window(t, slot) + ((const char *)sa.data - root) / (int64_t)sizeof(double);
        o->slot = slot;
    }
}

/* z[i, j] = a[i] * b[j] as numpy's multiply(a[:, None], b[None, :]): one IEEE
 * product per element, so the same bits, except for NaNs: which operand's
 * NaN comes out is up to the machine code (see sad_outer). */
static void scale_row(double *restrict z, double ai, const double *restrict b, int64_t n)
{
    for (int64_t j = 0; j < n; ++j)
        z[j] = ai * b[j];
}

static void forward(const sad_block *b)
{
    const int64_t m = b->shape[0], n = b->shape[1];
    const sad_opnd *z = &b->o[0], *a = &b->o[1], *y = &b->o[2];
    for (int64_t i = 0; i < m; ++i) {
        double *zr = z->p + i * z->ps[0];
        const double ai = a->p[i * a->ps[0]];
        if (z->ps[1] == 1 && y->ps[1] == 1) {
            scale_row(zr, ai, y->p, n);
            continue;
        }
        for (int64_t j = 0; j < n; ++j)
            zr[j * z->ps[1]] = ai * y->p[j * y->ps[1]];
    }
}

/* The floating-point exceptions numpy reports (per np.errstate) after a
 * ufunc's loop; inexact it never reports. */
enum { REPORTED = FE_DIVBYZERO | FE_OVERFLOW | FE_UNDERFLOW | FE_INVALID };

static int has_nan(const sad_opnd *o, int axis, int64_t n)
{
    int nan = 0;
    for (int64_t i = 0; i < n; ++i)
        nan |= isnan(o->p[i * o->ps[axis]]);
    return nan;
}

/* Can C's primal stand for numpy's?  Not when numpy would warn or raise (per
 * np.errstate), nor with a NaN operand: numpy is then asked to compute it
 * again, and the rare case costs one more product. */
static int c_primal(const sad_block *b)
{
    if (has_nan(&b->o[1], 0, b->shape[0]) || has_nan(&b->o[2], 1, b->shape[1]))
        return 0;
    if (fetestexcept(REPORTED)) /* left by earlier C code (numpy clears its own) */
        feclearexcept(REPORTED);
    forward(b);
    return !fetestexcept(REPORTED);
}

int sad_outer(sad_tape *t, const sad_arr *z, const sad_arr *zs, int64_t zslot, const sad_arr *a,
              const sad_arr *as, int64_t aslot, const sad_arr *b, const sad_arr *bs,
              int64_t bslot)
{
    if ((zslot > 0 && !sad_slot_holds(t, zslot, zs, (int64_t)sizeof(double))) ||
        (aslot > 0 && as != NULL && !sad_slot_holds(t, aslot, as, (int64_t)sizeof(double))) ||
        (bslot > 0 && bs != NULL && !sad_slot_holds(t, bslot, bs, (int64_t)sizeof(double))))
        return SAD_BAD_SLOT;
    sad_block tmp;
    memset(&tmp, 0, sizeof(tmp));
    const sad_arr za = *z;
    tmp.ndim = 2;
    tmp.shape[0] = za.shape[0];
    tmp.shape[1] = za.shape[1];
    tmp.n = za.shape[0] * za.shape[1];
    tmp.nlanes = 1;
    set_operand(t, &tmp, 0, z, zs, zslot, 0);
    set_operand(t, &tmp, 1, a, as, aslot, 0);
    set_operand(t, &tmp, 2, b, bs, bslot, 1);
    if (tmp.n == 0)
        return SAD_OK;
    sad_block *blk = sad_arena_alloc(&t->blocks, sizeof(sad_block));
    sad_record *r = blk != NULL ? sad_push_record(t, SAD_OUTER, 0) : NULL;
    if (r == NULL)
        return sad_status(t, SAD_NOMEM);
    *blk = tmp;
    r->u.a.b = blk;
    return c_primal(blk) ? SAD_OK : SAD_NUMPY;
}

/* ---- reverse ------------------------------------------------------------
 * ga[i] += sum_j gz[i, j] * b[j] and gb[j] += a[i] * gz[i, j], one pass over
 * gz, row by row.  The sweep reads no shadow but gz and every contribution is
 * one += into ga or gb, so ga and gb may share memory in any way (np.outer(x,
 * x), overlapping views of one array): each contribution still lands once.
 * A zero adjoint contributes nothing, even through an infinite operand, as in
 * the elementwise records (no 0 * inf = nan). */

enum { ACC = 8 }; /* independent partial sums: a row sum is not one long chain */

/* Unit strides, all of a row's operands finite: a zero adjoint's terms are
 * zeros, so the rows need no test per element and vectorize.  restrict holds:
 * gz is a fresh temporary's shadow, and no shadow shares memory with a
 * primal.  Returns the row's sum for ga[i] and adds ai * g into gb. */
static double row_both(const double *restrict g, const double *restrict y,
                       double *restrict gb, double ai, int64_t n)
{
    double acc[ACC] = {0.0};
    int64_t j = 0;
    for (; j + ACC <= n; j += ACC)
        for (int k = 0; k < ACC; ++k) {
            acc[k] += g[j + k] * y[j + k];
            gb[j + k] += ai * g[j + k];
        }
    for (; j < n; ++j) {
        acc[0] += g[j] * y[j];
        gb[j] += ai * g[j];
    }
    return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

static double row_sum(const double *restrict g, const double *restrict y, int64_t n)
{
    double acc[ACC] = {0.0};
    int64_t j = 0;
    for (; j + ACC <= n; j += ACC)
        for (int k = 0; k < ACC; ++k)
            acc[k] += g[j + k] * y[j + k];
    for (; j < n; ++j)
        acc[0] += g[j] * y[j];
    return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

static void row_axpy(const double *restrict g, double *restrict gb, double ai, int64_t n)
{
    for (int64_t j = 0; j < n; ++j)
        gb[j] += ai * g[j];
}

/* Any strides and values, element by element (gb may have stride 0: a
 * broadcast view's shadow, where every j adds into one element). */
static double row_any(const double *g, int64_t gst, const double *y, int64_t yst, double *gb,
                      int64_t gbst, double ai, int64_t n, int want_sum)
{
    double acc = 0.0;
    for (int64_t j = 0; j < n; ++j) {
        const double gj = g[j * gst];
        if (gj == 0.0)
            continue;
        if (want_sum)
            acc += sad_chain(gj, y[j * yst]);
        if (gb != NULL)
            gb[j * gbst] += sad_chain(ai, gj);
    }
    return acc;
}

static int all_finite(const double *y, int64_t st, int64_t n)
{
    double s = 0.0;
    for (int64_t j = 0; j < n; ++j)
        s += y[j * st] * 0.0; /* NaN exactly when some y[j] is not finite */
    return s == 0.0;
}

/* The reverse over block b, whose shadows are real memory. */
static void pull(const sad_block *b)
{
    const int64_t m = b->shape[0], n = b->shape[1];
    const sad_opnd *z = &b->o[0], *a = &b->o[1], *y = &b->o[2];
    double *ga = a->s, *gb = y->s;
    if (ga == NULL && gb == NULL)
        return;
    const int64_t gst = z->ss[1], yst = y->ps[1], gbst = y->ss[1];
    /* b's values matter only to ga's sums, a's only to gb */
    const int fast = gst == 1 && yst == 1 && (gb == NULL || gbst == 1) &&
                     (ga == NULL || all_finite(y->p, yst, n));
    for (int64_t i = 0; i < m; ++i) {
        const double *g = z->s + i * z->ss[0];
        const double ai = a->p[i * a->ps[0]];
        double sum = 0.0;
        /* an infinite adjoint meets a zero a[i] only in gb's terms, and a zero
         * y[j] only in the sum (then NaN): those rows take the convention */
        if (!fast || (gb != NULL && (!isfinite(ai) || ai == 0.0)))
            sum = row_any(g, gst, y->p, yst, gb, gbst, ai, n, ga != NULL);
        else if (ga == NULL)
            row_axpy(g, gb, ai, n);
        else if (gb == NULL)
            sum = row_sum(g, y->p, n);
        else
            sum = row_both(g, y->p, gb, ai, n);
        if (sum != sum) /* a zero y[j] against an infinite adjoint, or a NaN one */
            sum = row_any(g, gst, y->p, yst, NULL, 0, ai, n, 1);
        if (ga != NULL)
            ga[i * a->ss[0]] += sum;
    }
}

/* Returns -1, having done nothing, when a lazy shadow finds no memory. */
int sad_outer_reverse(sad_tape *t, const sad_record *r)
{
    const sad_block *b = r->u.a.b;
    const int64_t zslot = b->o[0].slot;
    sad_block resolved;
    int assign[3];
    if (zslot | b->o[1].slot | b->o[2].slot) {
        resolved = *b;
        const int live = sad_slot_resolve(t, &resolved, 1, assign);
        if (live <= 0)
            return live; /* 0: nobody added into z's adjoint, which is zero */
        b = &resolved;
    }
    pull(b);
    if (zslot) /* z is a fresh temporary: its adjoint is dead now */
        sad_slot_release(t, zslot);
    return 0;
}
