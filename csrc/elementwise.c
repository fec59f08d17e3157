/* elementwise.c -- elementwise kernels.  For each operation, its primal value
 * and its partial derivatives sit side by side; the tangent (forward) and the
 * reverse sweep both use the same partials, so they cannot disagree. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sad.h"

int sad_ew_is_unary(int op) { return op < SAD_ADD; }

void sad_ew_values(int op, int64_t n, const double *restrict x, const double *restrict y,
                   double *restrict z)
{
    int64_t i;
    switch (op) {
    case SAD_COPY:   for (i = 0; i < n; ++i) z[i] = x[i]; break;
    case SAD_NEG:    for (i = 0; i < n; ++i) z[i] = -x[i]; break;
    case SAD_SQUARE: for (i = 0; i < n; ++i) z[i] = x[i] * x[i]; break;
    case SAD_SQRT:   for (i = 0; i < n; ++i) z[i] = sqrt(x[i]); break;
    case SAD_RECIP:  for (i = 0; i < n; ++i) z[i] = 1.0 / x[i]; break;
    case SAD_EXP:    for (i = 0; i < n; ++i) z[i] = exp(x[i]); break;
    case SAD_LOG:    for (i = 0; i < n; ++i) z[i] = log(x[i]); break;
    case SAD_LOG1P:  for (i = 0; i < n; ++i) z[i] = log1p(x[i]); break;
    case SAD_EXPM1:  for (i = 0; i < n; ++i) z[i] = expm1(x[i]); break;
    case SAD_SIN:    for (i = 0; i < n; ++i) z[i] = sin(x[i]); break;
    case SAD_COS:    for (i = 0; i < n; ++i) z[i] = cos(x[i]); break;
    case SAD_TAN:    for (i = 0; i < n; ++i) z[i] = tan(x[i]); break;
    case SAD_TANH:   for (i = 0; i < n; ++i) z[i] = tanh(x[i]); break;
    case SAD_SINH:   for (i = 0; i < n; ++i) z[i] = sinh(x[i]); break;
    case SAD_COSH:   for (i = 0; i < n; ++i) z[i] = cosh(x[i]); break;
    case SAD_ASIN:   for (i = 0; i < n; ++i) z[i] = asin(x[i]); break;
    case SAD_ACOS:   for (i = 0; i < n; ++i) z[i] = acos(x[i]); break;
    case SAD_ATAN:   for (i = 0; i < n; ++i) z[i] = atan(x[i]); break;
    case SAD_ABS:    for (i = 0; i < n; ++i) z[i] = fabs(x[i]); break;
    case SAD_ADD:    for (i = 0; i < n; ++i) z[i] = x[i] + y[i]; break;
    case SAD_SUB:    for (i = 0; i < n; ++i) z[i] = x[i] - y[i]; break;
    case SAD_MUL:    for (i = 0; i < n; ++i) z[i] = x[i] * y[i]; break;
    case SAD_DIV:    for (i = 0; i < n; ++i) z[i] = x[i] / y[i]; break;
    case SAD_POW:    for (i = 0; i < n; ++i) z[i] = pow(x[i], y[i]); break;
    case SAD_ATAN2:  for (i = 0; i < n; ++i) z[i] = atan2(x[i], y[i]); break;
    case SAD_HYPOT:  for (i = 0; i < n; ++i) z[i] = hypot(x[i], y[i]); break;
    case SAD_MAX:
        for (i = 0; i < n; ++i) z[i] = (x[i] >= y[i] || isnan(x[i])) ? x[i] : y[i];
        break;
    case SAD_MIN:
        for (i = 0; i < n; ++i) z[i] = (x[i] <= y[i] || isnan(x[i])) ? x[i] : y[i];
        break;
    case SAD_FMAX: /* numpy's fmax: a NaN is ignored unless both are NaN */
        for (i = 0; i < n; ++i) z[i] = (x[i] >= y[i] || isnan(y[i])) ? x[i] : y[i];
        break;
    case SAD_FMIN:
        for (i = 0; i < n; ++i) z[i] = (x[i] <= y[i] || isnan(y[i])) ? x[i] : y[i];
        break;
    default: break;
    }
}

/* dz/dx and dz/dy at (x, y) with z = op(x, y) already computed.  Ties of
 * max/min split the derivative evenly, as JAX and PyTorch do.  With one NaN
 * operand the whole derivative goes to the operand whose value z is: the NaN
 * for maximum/minimum (as the max/min reductions do), the number for
 * fmax/fmin; two NaNs are a tie. */
static void fill(double *dst, int64_t n, double v)
{
    if (dst != NULL)
        for (int64_t i = 0; i < n; ++i)
            dst[i] = v;
}

SAD_HOT void sad_ew_partials(int op, int64_t n, const double *restrict x, const double *restrict y,
                     const double *restrict z, double *restrict px, double *restrict py)
{
    int64_t i;
    switch (op) {
    case SAD_COPY:   for (i = 0; i < n; ++i) px[i] = 1.0; break;
    case SAD_NEG:    for (i = 0; i < n; ++i) px[i] = -1.0; break;
    case SAD_SQUARE: for (i = 0; i < n; ++i) px[i] = 2.0 * x[i]; break;
    case SAD_SQRT:   for (i = 0; i < n; ++i) px[i] = 0.5 / z[i]; break;
    case SAD_RECIP:  for (i = 0; i < n; ++i) px[i] = -z[i] * z[i]; break;
    case SAD_EXP:    for (i = 0; i < n; ++i) px[i] = z[i]; break;
    case SAD_LOG:    for (i = 0; i < n; ++i) px[i] = 1.0 / x[i]; break;
    case SAD_LOG1P:  for (i = 0; i < n; ++i) px[i] = 1.0 / (1.0 + x[i]); break;
    case SAD_EXPM1:  for (i = 0; i < n; ++i) px[i] = z[i] + 1.0; break;
    case SAD_SIN:    for (i = 0; i < n; ++i) px[i] = cos(x[i]); break;
    case SAD_COS:    for (i = 0; i < n; ++i) px[i] = -sin(x[i]); break;
    case SAD_TAN:    for (i = 0; i < n; ++i) px[i] = 1.0 + z[i] * z[i]; break;
    case SAD_TANH:   for (i = 0; i < n; ++i) px[i] = 1.0 - z[i] * z[i]; break;
    case SAD_SINH:   for (i = 0; i < n; ++i) px[i] = cosh(x[i]); break;
    case SAD_COSH:   for (i = 0; i < n; ++i) px[i] = sinh(x[i]); break;
    case SAD_ASIN:   for (i = 0; i < n; ++i) px[i] = 1.0 / sqrt(1.0 - x[i] * x[i]); break;
    case SAD_ACOS:   for (i = 0; i < n; ++i) px[i] = -1.0 / sqrt(1.0 - x[i] * x[i]); break;
    case SAD_ATAN:   for (i = 0; i < n; ++i) px[i] = 1.0 / (1.0 + x[i] * x[i]); break;
    case SAD_ABS:
        for (i = 0; i < n; ++i) px[i] = x[i] > 0 ? 1.0 : (x[i] < 0 ? -1.0 : 0.0);
        break;
    /* add, sub, mul, div, pow: px or py may be NULL when that partial is not
     * needed (an inactive operand), which spares a division, pow or log */
    case SAD_ADD: fill(px, n, 1.0); fill(py, n, 1.0); break;
    case SAD_SUB: fill(px, n, 1.0); fill(py, n, -1.0); break;
    case SAD_MUL:
        if (px != NULL) for (i = 0; i < n; ++i) px[i] = y[i];
        if (py != NULL) for (i = 0; i < n; ++i) py[i] = x[i];
        break;
    case SAD_DIV:
        if (px != NULL) for (i = 0; i < n; ++i) px[i] = 1.0 / y[i];
        if (py != NULL) for (i = 0; i < n; ++i) py[i] = -x[i] / (y[i] * y[i]);
        break;
    case SAD_POW:
        if (px != NULL)
            for (i = 0; i < n; ++i) px[i] = y[i] == 0.0 ? 0.0 : y[i] * pow(x[i], y[i] - 1.0);
        if (py != NULL)
            for (i = 0; i < n; ++i) py[i] = x[i] == 0.0 ? 0.0 : z[i] * log(x[i]);
        break;
    case SAD_ATAN2:
        for (i = 0; i < n; ++i) {
            double r = x[i] * x[i] + y[i] * y[i];
            px[i] = r == 0.0 ? 0.0 : y[i] / r;
            py[i] = r == 0.0 ? 0.0 : -x[i] / r;
        }
        break;
    case SAD_HYPOT:
        for (i = 0; i < n; ++i) {
            px[i] = z[i] == 0.0 ? 0.0 : x[i] / z[i];
            py[i] = z[i] == 0.0 ? 0.0 : y[i] / z[i];
        }
        break;
    case SAD_MAX: case SAD_MIN: case SAD_FMAX: case SAD_FMIN: {
        const int lo = op == SAD_MIN || op == SAD_FMIN, f = op == SAD_FMAX || op == SAD_FMIN;
        for (i = 0; i < n; ++i) {
            const int nx = isnan(x[i]) != 0, ny = isnan(y[i]) != 0;
            const double a = lo ? y[i] : x[i], b = lo ? x[i] : y[i];
            px[i] = a > b ? 1.0 : (a < b ? 0.0 : (nx == ny ? 0.5 : (nx != f ? 1.0 : 0.0)));
            py[i] = 1.0 - px[i];
        }
        break;
    }
    default: break;
    }
}

double sad_partial(int op, int which, double x, double y, double z)
{
    double px = 0.0, py = 0.0;
    sad_ew_partials(op, 1, &x, &y, &z, &px, &py);
    return which ? py : px;
}

/* Which values the partials of op read: x (1), y (2), z (4). */
int sad_ew_partials_read(int op)
{
    switch (op) {
    case SAD_COPY: case SAD_NEG: case SAD_ADD: case SAD_SUB:
        return 0;
    case SAD_SQRT: case SAD_RECIP: case SAD_EXP: case SAD_EXPM1: case SAD_TAN: case SAD_TANH:
        return 4;
    case SAD_MUL: case SAD_DIV: case SAD_ATAN2: case SAD_MAX: case SAD_MIN: case SAD_FMAX:
    case SAD_FMIN:
        return 3;
    case SAD_POW: case SAD_HYPOT:
        return 7;
    default: /* the other unary functions read x */
        return 1;
    }
}

/* The m values at src (stride st): src itself when contiguous, else a copy in
 * dst. */
static const double *values(double *dst, const double *src, int64_t st, int64_t m)
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

/* A tangent's terms.  The first term is 0.0 + t * p and each later one is
 * added to the sum so far, where a zero factor contributes nothing: a zero
 * tangent t through an infinite partial p (sqrt at 0), and a zero partial
 * against an infinite or NaN tangent (sqrt(x)**2 at 0), as in the reverse
 * sweep.  The same values as a branch per element, but branch-free, so that
 * gcc vectorizes the loops: only a zero factor times an infinite or NaN one
 * makes a NaN there, which the last pick drops, and otherwise a zero factor
 * adds a zero, which changes no sum (nor the +0.0 a sum starts from).
 *
 * Which NaN comes out of an operation on two NaNs depends on the operand
 * order gcc picks, and vectorized code picks differently from the scalar
 * loop these replace.  So no operation here meets two NaNs: a NaN tangent
 * is multiplied by 1.0, and a NaN sum gets 0.0 added, giving the tangent's
 * NaN before the partial's and the sum's before the term's, as that loop
 * did.  The picks are bitwise: written as ?: selects, gcc moved the
 * operations into branches and the loops stayed scalar. */
static inline uint64_t mask_if(int c) { return (uint64_t)0 - (uint64_t)c; }

static inline double pick(uint64_t m, double a, double b)
{
    uint64_t ua, ub;
    memcpy(&ua, &a, sizeof ua);
    memcpy(&ub, &b, sizeof ub);
    ua = (ua & m) | (ub & ~m);
    memcpy(&a, &ua, sizeof a);
    return a;
}

static inline uint64_t zero_factor(double t, double p)
{
    return mask_if(t == 0.0) | mask_if(p == 0.0);
}

static inline double tangent_first(double t, double p)
{
    const double a = 0.0 + t * pick(mask_if(t != t), 1.0, p);
    return pick(mask_if(a != a) & zero_factor(t, p), 0.0, a);
}

static inline double tangent_next(double d, double t, double p)
{
    const double q = t * pick(mask_if(t != t), 1.0, p), e = d + pick(mask_if(d != d), 0.0, q);
    return pick(mask_if(e != e) & zero_factor(t, p), d, e);
}

/* One unit-stride tile of one lane's tangent: dz = px * dx + py * dy (dx or
 * dy NULL: an operand without tangents). */
SAD_HOT static void tangent_tile(double *dz, const double *dx, const double *px,
                                 const double *dy, const double *py, int64_t c)
{
    if (dy == NULL)
        for (int64_t i = 0; i < c; ++i)
            dz[i] = tangent_first(dx[i], px[i]);
    else if (dx == NULL)
        for (int64_t i = 0; i < c; ++i)
            dz[i] = tangent_first(dy[i], py[i]);
    else
        for (int64_t i = 0; i < c; ++i)
            dz[i] = tangent_next(tangent_first(dx[i], px[i]), dy[i], py[i]);
}

/* Does one of the c values at v hold a NaN?  (A mask, not isnan into an
 * int: that loop stayed scalar.) */
SAD_HOT static int any_nan(const double *v, int64_t c)
{
    uint64_t m = 0;
    for (int64_t i = 0; i < c; ++i)
        m |= mask_if(v[i] != v[i]);
    return m != 0;
}

/* Primal and (when tangents are present in the shadow slots) tangents of
 * z = op(x, y) over block b, one tangent per lane (z itself is written only
 * when write_z is set).  The partials of a tile are computed once and applied
 * to every lane.  Unsafe overlap of the output with
 * an input is handled by computing everything first and writing afterwards.
 *
 * Contiguous inputs are read where they lie (a copy per tile was a pass of
 * its own), and only what is needed is computed: z's values when they
 * are written or the partials read them (C's own values, as before, so the
 * tangent's bits do not depend on numpy's libm), x and y when either needs
 * them, and the partial of an operand without tangents not at all where
 * sad_ew_partials allows it.  nan (or NULL): set when a value of z is a NaN,
 * found tile by tile while the tile is in cache. */
static int forward(int op, const sad_block *b, int tangent, int write_z, int *nan)
{
    int unsafe = 0;
    for (int k = 1; k <= 2; ++k) {
        if (write_z)
            unsafe |= sad_block_overlaps(b, 0, 0, k, 0);
        if (tangent)
            unsafe |= sad_block_overlaps(b, 0, 1, k, 1) | sad_block_overlaps(b, 0, 1, k, 0);
    }
    const int64_t lanes = tangent ? b->nlanes : 0, n = b->n ? b->n : 1;
    double *zbuf = NULL, *dzbuf = NULL;
    if (unsafe) {
        zbuf = malloc((size_t)n * sizeof(double));
        dzbuf = lanes ? malloc((size_t)(n * lanes) * sizeof(double)) : NULL;
        if (zbuf == NULL || (lanes && dzbuf == NULL)) {
            free(zbuf);
            free(dzbuf);
            return SAD_NOMEM;
        }
    }
    const int last = b->ndim - 1;
    const int64_t rows = sad_block_rows(b), m = b->shape[last];
    const int64_t zst = b->o[0].ss[last], xst = b->o[1].ss[last], yst = b->o[2].ss[last];
    const int64_t zps = b->o[0].ps[last], xps = b->o[1].ps[last], yps = b->o[2].ps[last];
    const int reads = lanes ? sad_ew_partials_read(op) : 0;
    const int need_z = write_z || (reads & 4);
    const int need_x = need_z || (reads & 1), need_y = need_z || (reads & 2);
    /* z's values go straight into z when z shares no memory with an input */
    const int direct = write_z && !unsafe && zps == 1 && sad_block_apart(b, 0, 1) &&
                       sad_block_apart(b, 0, 2);
    const int skip = op == SAD_MUL || op == SAD_DIV || op == SAD_POW;
    double tx[SAD_TILE], ty[SAD_TILE], tz[SAD_TILE], px[SAD_TILE], py[SAD_TILE];
    double tdx[SAD_TILE], tdy[SAD_TILE], tdz[SAD_TILE];
    double *p[3], *s[3];
    int64_t pos = 0;
    for (int pass = 0; pass < (unsafe ? 2 : 1); ++pass) {
        pos = 0;
        sad_rows cursor;
        sad_rows_start(&cursor, b);
        for (int64_t r = 0; r < rows; ++r) {
            sad_rows_next(&cursor, p, s);
            for (int64_t i0 = 0; i0 < m; i0 += SAD_TILE) {
                int64_t c = m - i0 < SAD_TILE ? m - i0 : SAD_TILE;
                double *zp = p[0] + i0 * zps;
                if (pass == 1) { /* write back what pass 0 computed */
                    for (int64_t i = 0; i < c && write_z; ++i)
                        zp[i * zps] = zbuf[pos + i];
                    for (int64_t l = 0; l < lanes; ++l) {
                        double *zs = s[0] + l * b->ls[0] + i0 * zst;
                        for (int64_t i = 0; i < c; ++i)
                            zs[i * zst] = dzbuf[l * n + pos + i];
                    }
                    pos += c;
                    continue;
                }
                const double *vx = tx, *vy = ty;
                double *vz = direct ? zp : tz;
                if (need_x)
                    vx = values(tx, p[1] + i0 * xps, xps, c);
                if (need_y && p[2] != NULL)
                    vy = values(ty, p[2] + i0 * yps, yps, c);
                if (need_z)
                    sad_ew_values(op, c, vx, vy, vz);
                if (nan != NULL && write_z)
                    *nan |= any_nan(vz, c);
                if (lanes)
                    sad_ew_partials(op, c, vx, vy, vz, skip && s[1] == NULL ? NULL : px,
                                    skip && s[2] == NULL ? NULL : py);
                /* tangents at other strides (a broadcast lane is stride 0) go
                 * through tiles, so that every lane takes the vectorized loop */
                for (int64_t l = 0; l < lanes; ++l) {
                    const double *xs = s[1] != NULL ? s[1] + l * b->ls[1] + i0 * xst : NULL;
                    const double *ys = s[2] != NULL ? s[2] + l * b->ls[2] + i0 * yst : NULL;
                    const int64_t st = unsafe ? 1 : zst;
                    double *zs = unsafe ? dzbuf + l * n + pos : s[0] + l * b->ls[0] + i0 * zst;
                    double *dz = st == 1 ? zs : tdz;
                    if (xs == NULL && ys == NULL) /* constant inputs: a zero tangent */
                        memset(dz, 0, (size_t)c * sizeof(double));
                    else
                        tangent_tile(dz, xs != NULL ? values(tdx, xs, xst, c) : NULL, px,
                                     ys != NULL ? values(tdy, ys, yst, c) : NULL, py, c);
                    for (int64_t i = 0; i < c && dz != zs; ++i)
                        zs[i * st] = tdz[i];
                }
                if (unsafe && write_z)
                    memcpy(zbuf + pos, vz, (size_t)c * sizeof(double));
                else if (write_z && !direct)
                    for (int64_t i = 0; i < c; ++i)
                        zp[i * zps] = tz[i];
                pos += c;
            }
        }
    }
    free(zbuf);
    free(dzbuf);
    return SAD_OK;
}

int sad_ew_primal_nan(int op, int flags, intptr_t z, intptr_t x, intptr_t y, double k, int *nan)
{
    sad_block b;
    int rc = sad_block_build(&b, flags, z, 0, x, 0, y, 0, k);
    *nan = 0;
    return rc != SAD_OK ? rc : forward(op, &b, 0, 1, nan);
}

int sad_ew_tangent(int op, int flags, intptr_t z, intptr_t dz, intptr_t x,
                   intptr_t dx, intptr_t y, intptr_t dy, double k)
{
    sad_block b;
    int rc = sad_block_build(&b, flags, z, dz, x, dx, y, dy, k);
    return rc != SAD_OK ? rc : forward(op, &b, 1, (flags & SAD_F_PRIMAL) != 0, NULL);
}

int sad_ew_tangent_duals(int op, int flags, intptr_t z, intptr_t dz, intptr_t x, intptr_t dx,
                         intptr_t y, intptr_t dy, double k, double *const dlanes[2],
                         const int64_t lstride[2])
{
    sad_block b;
    int rc = sad_block_build(&b, flags, z, dz, x, dx, y, dy, k);
    if (rc != SAD_OK)
        return rc;
    for (int j = 0; j < 2; ++j)
        if (dlanes[j] != NULL) { /* lane l's tangent at dlanes[j] + l * lstride[j] */
            b.o[1 + j].s = dlanes[j];
            b.ls[1 + j] = lstride[j];
        }
    return forward(op, &b, 1, (flags & SAD_F_PRIMAL) != 0, NULL);
}

int sad_ew(sad_tape *t, int op, int flags, intptr_t z, intptr_t zs,
           intptr_t x, intptr_t xs, intptr_t y, intptr_t ys, double k)
{
    return sad_ew_slots(t, op, flags, z, zs, x, xs, y, ys, k, NULL);
}

/* sad_ew where slots[j] > 0 marks operand j's shadow as lazy slot slots[j];
 * its shadow argument is then an array with the shadow's layout (its primal). */
int sad_ew_slots(sad_tape *t, int op, int flags, intptr_t z, intptr_t zs, intptr_t x,
                 intptr_t xs, intptr_t y, intptr_t ys, double k, const int64_t slots[3])
{
    sad_block tmp;
    int rc = sad_block_build(&tmp, flags, z, zs, x, xs, y, ys, k);
    if (rc != SAD_OK)
        return rc;
    for (int j = 0; slots != NULL && j < 3; ++j)
        if (slots[j] > 0 && tmp.o[j].s != NULL) {
            const char *root = (const char *)t->slots[slots[j] - 1].root;
            tmp.o[j].s = sad_slot_fake(slots[j]) + ((const char *)tmp.o[j].s - root) /
                                                       (int64_t)sizeof(double);
            tmp.o[j].slot = slots[j];
        }
    if (tmp.n == 0)
        return SAD_OK;
    /* y[i:j] += v ends in numpy's y[i:j] = <that same view>: nothing to do */
    if (op == SAD_COPY && tmp.o[1].p == tmp.o[0].p && tmp.o[1].s == tmp.o[0].s &&
        memcmp(tmp.o[1].ps, tmp.o[0].ps, sizeof(int64_t) * (size_t)tmp.ndim) == 0)
        return SAD_OK;
    sad_block *b = sad_arena_alloc(&t->blocks, sizeof(sad_block));
    double *saved = NULL;
    if (b == NULL)
        return SAD_NOMEM;
    *b = tmp;
    for (int k2 = 1; k2 <= 2; ++k2) /* a constant's pointer must follow the copy */
        if (((flags >> (2 * (k2 - 1))) & 3) == SAD_KX_CONST)
            b->o[k2].p = &b->k;
    const int shared = (flags & SAD_F_SAVE) && (flags & SAD_F_CLEAN_FAIL) &&
                       sad_tape_save_covered(t, op, flags, b);
    if ((flags & SAD_F_SAVE) && !shared) {
        saved = sad_arena_alloc(&t->saves, (size_t)b->n * sizeof(double));
        if (saved == NULL)
            return SAD_NOMEM;
        sad_block_save(b, saved);
    }
    double *scratch = NULL;
    if (b->o[0].s != NULL &&
        (sad_block_overlaps(b, 0, 1, 1, 1) || sad_block_overlaps(b, 0, 1, 2, 1))) {
        scratch = sad_arena_alloc(&t->saves, (size_t)b->n * sizeof(double));
        if (scratch == NULL)
            return SAD_NOMEM;
    }
    sad_record *r = sad_push_record(t, op, flags | SAD_F_BLOCK);
    if (r == NULL)
        return SAD_NOMEM;
    r->u.a.b = b;
    r->u.a.saved = saved;
    r->u.a.scratch = scratch;
    if (saved != NULL)
        sad_tape_note_save(t, op, flags, b);
    if (flags & SAD_F_PRIMAL)
        return forward(op, b, 0, 1, NULL);
    return SAD_OK;
}

/* Constant partials (cx, cy) of a record whose reverse needs no primal
 * values: copies, negations, sums, differences, and products or quotients by
 * a constant.  Returns 0 for every other record. */
int sad_ew_linear(const sad_record *r, double *cx, double *cy)
{
    const int kx = r->flags & 3, ky = (r->flags >> 2) & 3;
    const double k = r->u.a.b->k;
    *cx = 0.0;
    *cy = 0.0;
    switch (r->op) {
    case SAD_COPY: *cx = 1.0; return 1;
    case SAD_NEG:  *cx = -1.0; return 1;
    case SAD_ADD:  *cx = 1.0; *cy = 1.0; return 1;
    case SAD_SUB:  *cx = 1.0; *cy = -1.0; return 1;
    case SAD_MUL:
        if (ky == SAD_KX_CONST) { *cx = k; return 1; }
        if (kx == SAD_KX_CONST) { *cy = k; return 1; }
        return 0;
    case SAD_DIV:
        if (ky == SAD_KX_CONST && k != 0.0 && isfinite(1.0 / k)) { *cx = 1.0 / k; return 1; }
        return 0;
    default:
        return 0;
    }
}

/* Can linear_reverse take this record?  Its loops multiply z's adjoint by
 * finite constants; a zero constant of an active input (x * 0, x / inf) goes
 * through the selects of the general loop instead, so that an infinite
 * adjoint gives that input nothing rather than 0 * inf = nan. */
static int linear_nonzero(const sad_block *b, double cx, double cy)
{
    return isfinite(cx) && isfinite(cy) && (cx != 0.0 || b->o[1].s == NULL) &&
           (cy != 0.0 || b->o[2].s == NULL);
}

/* One unit-stride row of linear_reverse where zs, xs and ys are disjoint:
 * restrict lets the compiler vectorize it.  A store into new memory adds to
 * +0.0 as the accumulation into zeros would (-0.0 stays +0.0). */
SAD_HOT static void linear_row(double *restrict zs, double *restrict xs, double *restrict ys,
                       int64_t m, double cx, double cy, int keep_zs, const int assign[3])
{
    if (assign[1] && assign[2])
        for (int64_t i = 0; i < m; ++i) {
            xs[i] = 0.0 + cx * zs[i];
            ys[i] = 0.0 + cy * zs[i];
        }
    else if (assign[1])
        for (int64_t i = 0; i < m; ++i) {
            xs[i] = 0.0 + cx * zs[i];
            ys[i] += cy * zs[i];
        }
    else if (assign[2])
        for (int64_t i = 0; i < m; ++i) {
            xs[i] += cx * zs[i];
            ys[i] = 0.0 + cy * zs[i];
        }
    else
        for (int64_t i = 0; i < m; ++i) {
            xs[i] += cx * zs[i];
            ys[i] += cy * zs[i];
        }
    if (!keep_zs)
        memset(zs, 0, (size_t)m * sizeof(double));
}

static int disjoint(const double *a, const double *b, int64_t m)
{
    return a + m <= b || b + m <= a;
}

/* One active input (the other a constant or inactive): as += c * zs. */
SAD_HOT static void linear_row1(double *restrict zs, double *restrict as, int64_t m, double c,
                        int keep_zs, int assign)
{
    if (assign)
        for (int64_t i = 0; i < m; ++i)
            as[i] = 0.0 + c * zs[i];
    else
        for (int64_t i = 0; i < m; ++i)
            as[i] += c * zs[i];
    if (!keep_zs)
        memset(zs, 0, (size_t)m * sizeof(double));
}

/* In place, z = x + c*y (x += c*y) with z's memory x's (ck, co: the
 * coefficients of x and of the other input): the other input takes its share
 * of z's adjoint, and z's memory turns into x's, in one pass. */
SAD_HOT static void linear_row_in_place(double *restrict zs, double *restrict os, int64_t m, double ck,
                                double co, int assign)
{
    if (os == NULL)
        for (int64_t i = 0; i < m; ++i)
            zs[i] = 0.0 + ck * zs[i]; /* as the general loop: no -0.0 */
    else if (assign)
        for (int64_t i = 0; i < m; ++i) {
            const double g = zs[i];
            os[i] = 0.0 + co * g;
            zs[i] = 0.0 + ck * g;
        }
    else
        for (int64_t i = 0; i < m; ++i) {
            const double g = zs[i];
            os[i] += co * g;
            zs[i] = 0.0 + ck * g;
        }
}

/* One row of linear_reverse, any strides and any overlap: the checks of the
 * fast loops above, then element by element. */
static void linear_row_any(double *zs, double *xs, double *ys, int64_t m, int64_t zst,
                           int64_t xst, int64_t yst, double cx, double cy, int keep_zs,
                           const int assign[3])
{
    if (zst == 1 && xst == 1 && yst == 1 && xs != NULL && ys != NULL &&
        disjoint(zs, xs, m) && disjoint(zs, ys, m) && disjoint(xs, ys, m)) {
        linear_row(zs, xs, ys, m, cx, cy, keep_zs, assign);
        return;
    }
    if (zst == 1 && !keep_zs && (xs == zs || ys == zs)) {
        /* in place, z = x + c*y (x += c*y): the other input takes its share
         * of z's adjoint first, then z's memory turns into x's in place */
        const int k = xs == zs ? 1 : 2;
        double *os = k == 1 ? ys : xs;
        const int64_t ost = k == 1 ? yst : xst;
        if ((k == 1 ? xst : yst) == 1 && !assign[k] &&
            (os == NULL || (ost == 1 && disjoint(zs, os, m)))) {
            linear_row_in_place(zs, os, m, k == 1 ? cx : cy, k == 1 ? cy : cx, assign[3 - k]);
            return;
        }
    }
    if ((xs == NULL) != (ys == NULL) && zst == 1) {
        const int k = xs != NULL ? 1 : 2;
        double *as = k == 1 ? xs : ys;
        if ((k == 1 ? xst : yst) == 1 && disjoint(zs, as, m)) {
            linear_row1(zs, as, m, k == 1 ? cx : cy, keep_zs, assign[k]);
            return;
        }
    }
    const double ax = assign[1] ? 0.0 : 1.0, ay = assign[2] ? 0.0 : 1.0;
    for (int64_t i = 0; i < m; ++i) {
        const double g = zs[i * zst];
        if (!keep_zs)
            zs[i * zst] = 0.0;
        if (xs != NULL) /* ax * xs: 0 * (uninitialised memory) would be a nan */
            xs[i * xst] = (ax != 0.0 ? xs[i * xst] : 0.0) + cx * g;
        if (ys != NULL)
            ys[i * yst] = (ay != 0.0 ? ys[i * yst] : 0.0) + cy * g;
    }
}

/* A plane: `rows` rows of m elements, operand k's row r at s[k] + r * rs[k],
 * its elements st[k] apart. */
typedef struct plane {
    double *s[3];
    int64_t rs[3], st[3], rows, m;
} plane;

/* The memory operand k's shadow spans over the plane: [*lo, *hi). */
static void plane_span(const plane *q, int k, const double **lo, const double **hi)
{
    const int64_t a = (q->rows - 1) * q->rs[k], e = (q->m - 1) * q->st[k];
    *lo = q->s[k] + (a < 0 ? a : 0) + (e < 0 ? e : 0);
    *hi = q->s[k] + (a > 0 ? a : 0) + (e > 0 ? e : 0) + 1;
}

static int planes_apart(const plane *q, int j, int k)
{
    const double *jl, *jh, *kl, *kh;
    plane_span(q, j, &jl, &jh);
    plane_span(q, k, &kl, &kh);
    return jh <= kl || kh <= jl;
}

/* as += c * (z's adjoint) over a plane whose shadows are all apart, for the
 * active input k (into new memory when assign: as adding to +0.0 would).
 * Each element of as takes its terms in the order of the row-by-row loop, so
 * the bits are the same; what changes is where the running sums live. */
SAD_HOT static void plane_input(const plane *q, int k, double c, int assign)
{
    const double *restrict zs = q->s[0];
    double *restrict as = q->s[k];
    const int64_t m = q->m, rows = q->rows, zr = q->rs[0], ar = q->rs[k], st = q->st[k];
    if (st == 0) { /* broadcast along the row: a sum in a register */
        for (int64_t r = 0; r < rows; ++r) {
            const double *z = zs + r * zr;
            double *a = as + r * ar, acc = assign ? 0.0 : a[0];
            for (int64_t i = 0; i < m; ++i)
                acc += c * z[i];
            a[0] = acc;
        }
        return;
    }
    if (st == 1 && ar == 0 && !assign && rows > 1) {
        /* the same row for every row of z's (a broadcast mean of short rows):
         * columns of sums in registers, 8 at a time, instead of a chain of
         * stores and loads through one row per row of z */
        int64_t j = 0;
        for (; j + 8 <= m; j += 8) {
            double acc[8];
            for (int u = 0; u < 8; ++u)
                acc[u] = as[j + u];
            for (int64_t r = 0; r < rows; ++r)
                for (int u = 0; u < 8; ++u)
                    acc[u] += c * zs[r * zr + j + u];
            for (int u = 0; u < 8; ++u)
                as[j + u] = acc[u];
        }
        for (; j < m; ++j) {
            double acc = as[j];
            for (int64_t r = 0; r < rows; ++r)
                acc += c * zs[r * zr + j];
            as[j] = acc;
        }
        return;
    }
    for (int64_t r = 0; r < rows; ++r) {
        const double *z = zs + r * zr;
        double *a = as + r * ar;
        if (st == 1 && assign)
            for (int64_t i = 0; i < m; ++i)
                a[i] = 0.0 + c * z[i];
        else if (st == 1)
            for (int64_t i = 0; i < m; ++i)
                a[i] += c * z[i];
        else if (assign)
            for (int64_t i = 0; i < m; ++i)
                a[i * st] = 0.0 + c * z[i];
        else
            for (int64_t i = 0; i < m; ++i)
                a[i * st] += c * z[i];
    }
}

static void linear_plane(const plane *q, double cx, double cy, int keep_zs, const int assign[3])
{
    double *zs = q->s[0], *xs = q->s[1], *ys = q->s[2];
    int apart = q->st[0] == 1 && (xs == NULL || planes_apart(q, 0, 1)) &&
                (ys == NULL || planes_apart(q, 0, 2)) &&
                (xs == NULL || ys == NULL || planes_apart(q, 1, 2));
    if (apart) { /* each input takes its share in its own pass */
        if (xs != NULL)
            plane_input(q, 1, cx, assign[1]);
        if (ys != NULL)
            plane_input(q, 2, cy, assign[2]);
        if (!keep_zs)
            for (int64_t r = 0; r < q->rows; ++r)
                memset(zs + r * q->rs[0], 0, (size_t)q->m * sizeof(double));
        return;
    }
    for (int64_t r = 0; r < q->rows; ++r)
        linear_row_any(zs + r * q->rs[0], xs != NULL ? xs + r * q->rs[1] : NULL,
                       ys != NULL ? ys + r * q->rs[2] : NULL, q->m, q->st[0], q->st[1],
                       q->st[2], cx, cy, keep_zs, assign);
}

/* The reverse of a linear record with finite constant partials, plane by
 * plane (the last two axes): the checks that pick a loop run once per plane
 * instead of once per row (25000 rows of 10 in W6's x - means).  z may be x
 * itself (in place), whose rows then take the row-by-row loop, which reads
 * and clears each adjoint before adding it anywhere.  assign[k]: operand k's
 * shadow is new memory this record overwrites whole (see sad_slot_resolve). */
static void linear_reverse(const sad_block *b, double cx, double cy, int keep_zs,
                           const int assign[3])
{
    const int last = b->ndim - 1;
    plane q;
    q.m = b->shape[last];
    q.rows = last > 0 ? b->shape[last - 1] : 1;
    for (int k = 0; k < 3; ++k) {
        q.st[k] = b->o[k].ss[last];
        q.rs[k] = last > 0 ? b->o[k].ss[last - 1] : 0;
    }
    if (last == 0) {
        for (int k = 0; k < 3; ++k)
            q.s[k] = b->o[k].s;
        linear_plane(&q, cx, cy, keep_zs, assign);
        return;
    }
    if (b->n == 0)
        return;
    /* the planes' first rows: b without its last axis walks them */
    sad_block outer = *b;
    outer.ndim = last;
    outer.n = b->n / q.m;
    double *p[3];
    sad_rows cursor;
    sad_rows_start(&cursor, &outer);
    const int64_t planes = sad_block_rows(&outer);
    for (int64_t i = 0; i < planes; ++i) {
        sad_rows_next(&cursor, p, q.s);
        linear_plane(&q, cx, cy, keep_zs, assign);
    }
}

/* Reverse of z = op(x, y): restore z's primal if it was overwritten, then move
 * z's adjoint into x's and y's (zs is consumed, and zeroed unless z is a fresh
 * temporary nobody reads again, whose lazy shadow is then released).
 * Returns -1, having done nothing, when a lazy shadow finds no memory. */
int sad_ew_reverse(sad_tape *t, const sad_record *r, int accumulate, int keep)
{
    double *saved = keep ? NULL : r->u.a.saved; /* keep: leave z's primal as it is */
    const sad_block *b = r->u.a.b;
    sad_block resolved;
    int live = 1, assign[3] = {0, 0, 0};
    const int64_t zslot = b->o[0].slot;
    if (accumulate && (zslot | b->o[1].slot | b->o[2].slot)) {
        resolved = *b;
        live = sad_slot_resolve(t, &resolved, 1, assign);
        if (live < 0)
            return -1;
        b = &resolved;
    }
    if (!accumulate || !live) {
        if (saved != NULL)
            sad_block_swap(b, saved);
        return 0;
    }
    sad_ew_reverse_block(r, b, saved, assign);
    if (zslot && (r->flags & SAD_F_FRESH))
        sad_slot_release(t, zslot);
    return 0;
}

/* Can record r's reverse read its output's adjoint from other memory laid
 * out over the output's shape: a fresh elementwise output in a lazy slot
 * nobody has written, over contiguous memory (unit or zero strides)? */
/* Is r a fresh elementwise record whose output is lazy slot `slot`, which no
 * record has written yet? */
static int fresh_unwritten(const sad_tape *t, const sad_record *r, int64_t slot)
{
    if (!(r->op < SAD_N_EW && (r->flags & SAD_F_BLOCK) && (r->flags & SAD_F_FRESH)) ||
        (r->flags & SAD_F_LANES) || r->u.a.saved != NULL || r->u.a.scratch != NULL)
        return 0;
    return slot > 0 && r->u.a.b->o[0].slot == slot && t->slots[slot - 1].p == NULL;
}

static int through_ok(const sad_tape *t, const sad_record *r, int64_t slot)
{
    return fresh_unwritten(t, r, slot) && sad_block_one_run(r->u.a.b);
}

/* Block c with its output's adjoint read from array g instead of the
 * output's slot, and its inputs' lazy slots given memory: what a shortcut
 * sweeps.  SAD_OK, or SAD_NOMEM. */
static int read_adjoint_from(sad_tape *t, sad_block *c, const sad_arr *ga, int assign[3])
{
    c->o[0].s = ga->data;
    c->o[0].slot = 0;
    for (int d = 0; d < ga->nd; ++d)
        c->o[0].ss[d] = ga->strides[d] / (int64_t)sizeof(double);
    return sad_slot_resolve(t, c, 0, assign) < 0 ? SAD_NOMEM : SAD_OK;
}

int sad_ew_reverse_through(sad_tape *t, int64_t i, int64_t slot, intptr_t g)
{
    if (i < 0 || i >= t->n || !through_ok(t, &t->rec[i], slot))
        return SAD_TOO_MANY_DIMS;
    const sad_record *r = &t->rec[i];
    const sad_arr ga = sad_arr_of(g);
    int64_t n = 1;
    for (int d = 0; d < ga.nd; ++d)
        n *= ga.shape[d];
    if (ga.nd < 1 || ga.nd > SAD_MAXDIM || n != r->u.a.b->n)
        return SAD_TOO_MANY_DIMS;
    /* r's one contiguous run of elements, seen with g's shape: unit strides
     * become the C-order strides of that shape, zero strides stay zero */
    sad_block c = *r->u.a.b;
    int64_t unit[SAD_MAXDIM], step = 1;
    c.ndim = ga.nd;
    for (int d = ga.nd - 1; d >= 0; --d) {
        c.shape[d] = ga.shape[d];
        unit[d] = step;
        step *= ga.shape[d];
    }
    for (int k = 0; k < 3; ++k) {
        sad_opnd *o = &c.o[k];
        const int pu = o->ps[0] == 1, su = o->ss[0] == 1;
        for (int d = 0; d < ga.nd; ++d) {
            o->ps[d] = pu ? unit[d] : 0;
            o->ss[d] = su ? unit[d] : 0;
        }
    }
    int assign[3];
    if (read_adjoint_from(t, &c, &ga, assign) != SAD_OK)
        return SAD_NOMEM;
    sad_ew_reverse_block(r, &c, NULL, assign); /* fresh: g is only read */
    return SAD_OK;
}

int sad_ew_reverse_summed(sad_tape *t, int64_t i, int64_t slot, int ax, int64_t len,
                          intptr_t g)
{
    if (i < 0 || i >= t->n || !fresh_unwritten(t, &t->rec[i], slot))
        return SAD_TOO_MANY_DIMS;
    const sad_record *r = &t->rec[i];
    const sad_block *b = r->u.a.b;
    const sad_arr ga = sad_arr_of(g);
    double cx, cy;
    if (!sad_ew_linear(r, &cx, &cy) || !linear_nonzero(b, cx, cy) || len < 1 ||
        ga.nd != b->ndim || ax < 0 || ax >= b->ndim || ga.shape[ax] != 1)
        return SAD_TOO_MANY_DIMS;
    /* the block is the output laid out in C order (its axes are g's), and
     * every active input repeats along ax */
    int64_t step = 1;
    for (int d = b->ndim - 1; d >= 0; --d) {
        if (b->shape[d] != (d == ax ? len : ga.shape[d]) || b->o[0].ps[d] != step)
            return SAD_TOO_MANY_DIMS;
        step *= b->shape[d];
    }
    for (int k = 1; k <= 2; ++k)
        if (b->o[k].s != NULL && b->o[k].ss[ax] != 0)
            return SAD_TOO_MANY_DIMS;
    sad_block c = *b;
    c.shape[ax] = 1;
    c.n = b->n / len;
    int assign[3];
    if (read_adjoint_from(t, &c, &ga, assign) != SAD_OK)
        return SAD_NOMEM;
    linear_reverse(&c, cx, cy, 1, assign); /* g is only read */
    return SAD_OK;
}

/* The reverse of r over block b (all of r's block, or a piece of it in a
 * fused run), whose shadows are real memory: restore z's primal from saved
 * (in b's element order) and move z's adjoint into x's and y's. */
SAD_HOT void sad_ew_reverse_block(const sad_record *r, const sad_block *b, double *saved,
                          const int assign[3])
{
    int op = r->op;
    if (saved != NULL)
        sad_block_swap(b, saved);
    if (b->o[0].s == NULL)
        return;
    double *gbuf = r->u.a.scratch; /* set when zs overlaps xs or ys unsafely */
    const int unsafe = gbuf != NULL, keep_zs = (r->flags & SAD_F_FRESH) != 0;
    if (unsafe) {
        sad_block_gather_shadow(b, 0, gbuf);
        if (!keep_zs)
            sad_block_zero_shadow(b, 0);
    }
    double cx, cy;
    const int lin = sad_ew_linear(r, &cx, &cy);
    if (lin && !unsafe && linear_nonzero(b, cx, cy)) {
        linear_reverse(b, cx, cy, keep_zs, assign);
        return;
    }
    const int last = b->ndim - 1;
    const int64_t rows = sad_block_rows(b), m = b->shape[last];
    const int have_z = r->u.a.saved == NULL; /* z still holds op(x, y) */
    double tx[SAD_TILE], ty[SAD_TILE], tz[SAD_TILE], px[SAD_TILE], py[SAD_TILE], gt[SAD_TILE];
    double *p[3], *s[3];
    int64_t pos = 0;
    if (lin)
        for (int64_t i = 0; i < SAD_TILE; ++i) {
            px[i] = cx;
            py[i] = cy;
        }
    sad_rows cursor;
    sad_rows_start(&cursor, b);
    for (int64_t rr = 0; rr < rows; ++rr) {
        sad_rows_next(&cursor, p, s);
        for (int64_t i0 = 0; i0 < m; i0 += SAD_TILE) {
            int64_t c = m - i0 < SAD_TILE ? m - i0 : SAD_TILE;
            /* a tile of z's adjoint: a local copy that nothing else aliases
             * (reading zs in place was 4x slower on W6's squares) */
            double *g = gt;
            if (unsafe) {
                memcpy(g, gbuf + pos, (size_t)c * sizeof(double));
            } else {
                double *zs = s[0] + i0 * b->o[0].ss[last];
                int64_t st = b->o[0].ss[last];
                if (st == 1)
                    memcpy(g, zs, (size_t)c * sizeof(double));
                else
                    for (int64_t i = 0; i < c; ++i)
                        g[i] = zs[i * st];
                if (!keep_zs)
                    for (int64_t i = 0; i < c; ++i)
                        zs[i * st] = 0.0;
            }
            pos += c;
            if (s[1] == NULL && s[2] == NULL)
                continue;
            if (!lin) { /* the partials depend on the values */
                const double *vx = tx, *vy = ty, *vz = tz;
                int need = sad_ew_partials_read(op);
                if ((need & 4) && !have_z)
                    need |= sad_ew_is_unary(op) ? 1 : 3;
                if (need & 1)
                    vx = values(tx, p[1] + i0 * b->o[1].ps[last], b->o[1].ps[last], c);
                if ((need & 2) && p[2] != NULL)
                    vy = values(ty, p[2] + i0 * b->o[2].ps[last], b->o[2].ps[last], c);
                if (need & 4) {
                    if (have_z) {
                        vz = values(tz, p[0] + i0 * b->o[0].ps[last], b->o[0].ps[last], c);
                    } else {
                        sad_ew_values(op, c, vx, vy, tz);
                        vz = tz;
                    }
                }
                /* the partial of an inactive operand is not computed (where
                 * sad_ew_partials allows it) */
                const int skip = op == SAD_MUL || op == SAD_DIV || op == SAD_POW;
                sad_ew_partials(op, c, vx, vy, vz, skip && s[1] == NULL ? NULL : px,
                                skip && s[2] == NULL ? NULL : py);
            }
            /* a zero factor contributes nothing: a zero adjoint through an
             * infinite partial (sqrt at 0), a zero partial against an
             * infinite adjoint; as in the scalar sweep and the tangents */
            for (int k = 1; k <= 2; ++k) {
                if (s[k] == NULL)
                    continue;
                double *as = s[k] + i0 * b->o[k].ss[last];
                const double *pk = k == 1 ? px : py;
                int64_t st = b->o[k].ss[last];
                if (assign[k] && st == 1) /* the same values, as a select gcc
                                             * vectorizes: only a zero factor
                                             * times an infinite one is nan */
                    for (int64_t i = 0; i < c; ++i)
                        as[i] = sad_zero_factor(0.0 + g[i] * pk[i], g[i], pk[i]);
                else if (assign[k]) /* into new memory: as adding to +0.0 would */
                    for (int64_t i = 0; i < c; ++i)
                        as[i * st] = sad_zero_factor(0.0 + g[i] * pk[i], g[i], pk[i]);
                else if (st == 1) /* a select, not a branch: it vectorizes */
                    for (int64_t i = 0; i < c; ++i)
                        as[i] = sad_contributes(g[i], pk[i]) ? as[i] + g[i] * pk[i] : as[i];
                else if (st == 0) { /* broadcast along the row: the same sums in
                                     * the same order, in a register instead of
                                     * a store-to-load chain through memory */
                    double acc = as[0];
                    for (int64_t i = 0; i < c; ++i)
                        if (sad_contributes(g[i], pk[i]))
                            acc += g[i] * pk[i];
                    as[0] = acc;
                } else
                    for (int64_t i = 0; i < c; ++i)
                        if (sad_contributes(g[i], pk[i]))
                            as[i * st] += g[i] * pk[i];
            }
        }
    }
}

/* ---- y += a*x ------------------------------------------------------------
 * Block operands: o[0] = y (in and out), o[1] = x, o[2] = a. */
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

int sad_axpy(sad_tape *t, int flags, intptr_t a, double va, intptr_t x,
             intptr_t xs, intptr_t y, intptr_t ys)
{
    sad_block tmp;
    int rc = sad_block_build(&tmp, flags, y, ys, x, xs, a, 0, va);
    if (rc != SAD_OK)
        return rc;
    if (tmp.n == 0)
        return SAD_OK;
    sad_block *b = t != NULL ? sad_arena_alloc(&t->blocks, sizeof(sad_block)) : &tmp;
    if (b == NULL)
        return SAD_NOMEM;
    *b = tmp;
    if ((flags & 12) == SAD_KY_CONST)
        b->o[2].p = &b->k;
    int unsafe = sad_block_overlaps(b, 0, 0, 1, 0);
    double *xcopy = NULL;
    if (unsafe) { /* x overlaps y but not elementwise: read x before writing */
        xcopy = malloc((size_t)b->n * sizeof(double));
        if (xcopy == NULL)
            return SAD_NOMEM;
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
            return SAD_NOMEM;
        }
        sad_block_save(b, saved);
        r->u.a.b = b;
        r->u.a.saved = saved;
        r->u.a.scratch = scratch;
    }
    if (unsafe) {
        sad_block c = *b; /* view x as the "output" to gather it */
        c.o[0] = b->o[1];
        sad_block_save(&c, xcopy);
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
static int axpy_tangents(double va, const double *da, intptr_t x, intptr_t dx,
                         intptr_t y, intptr_t dy, int flags)
{
    sad_block b;
    int rc = sad_block_build(&b, SAD_KX_ARR | flags, y, dy, x, dx, 0, 0, 0.0);
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

int sad_axpy_tangents(double va, const double *da, intptr_t x, intptr_t dx,
                      intptr_t y, intptr_t dy)
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

/* ---- full reductions to a scalar ------------------------------------- */
intptr_t sad_reduce(sad_tape *t, int op, double v, intptr_t x, intptr_t xs,
                    intptr_t y, intptr_t ys)
{
    sad_block tmp;
    int flags = SAD_KX_ARR | (op == SAD_DOT ? SAD_KY_ARR : 0);
    /* iterate over x's shape: x is the "output" slot for the layout */
    int rc = sad_block_build(&tmp, flags, x, xs, x, xs, y, ys, 0.0);
    if (rc != SAD_OK)
        return 0;
    sad_block *b = sad_arena_alloc(&t->blocks, sizeof(sad_block));
    sad_pair *z = sad_new_pair(t, v);
    sad_record *r = (b != NULL && z != NULL) ? sad_push_record(t, op, flags) : NULL;
    if (r == NULL)
        return 0;
    *b = tmp;
    b->o[0].s = NULL; /* slot 0 only carries the layout */
    r->u.a.b = b;
    r->u.a.z = z;
    return (intptr_t)z;
}

/* sum(x) when x's shadow is lazy slot `slot` (laid out as x's primal): the
 * sweep allocates it, or stores into it, only then. */
intptr_t sad_reduce_lazy(sad_tape *t, double v, intptr_t x, int64_t slot)
{
    intptr_t z = sad_reduce(t, SAD_SUM, v, x, x, 0, 0);
    if (z == 0)
        return 0;
    sad_opnd *o = &t->rec[t->n - 1].u.a.b->o[1];
    const char *root = (const char *)t->slots[slot - 1].root;
    o->s = sad_slot_fake(slot) + ((const char *)o->p - root) / (int64_t)sizeof(double);
    o->slot = slot;
    return z;
}

/* Returns -1, having done nothing, when a lazy shadow finds no memory. */
int sad_reduce_reverse(sad_tape *t, const sad_record *r)
{
    const sad_block *b = r->u.a.b;
    sad_block resolved;
    int assign[3] = {0, 0, 0};
    if (b->o[1].slot) {
        resolved = *b;
        if (sad_slot_resolve(t, &resolved, 0, assign) < 0)
            return -1;
        b = &resolved;
    }
    sad_reduce_reverse_block(r, b, assign);
    return 0;
}

/* The reverse of a full reduction over block b (its shadows real memory);
 * assign[1]: x's shadow is new memory that b covers, stored into. */
void sad_reduce_reverse_block(const sad_record *r, const sad_block *b, const int assign[3])
{
    const double g = r->u.a.z->g;
    const int last = b->ndim - 1;
    const int64_t rows = sad_block_rows(b), m = b->shape[last];
    double *p[3], *s[3];
    sad_rows cursor;
    sad_rows_start(&cursor, b);
    for (int64_t rr = 0; rr < rows; ++rr) {
        sad_rows_next(&cursor, p, s);
        if (r->op == SAD_SUM) {
            const int64_t st = b->o[1].ss[last];
            if (assign[1])
                for (int64_t i = 0; i < m; ++i)
                    s[1][i * st] = 0.0 + g;
            else
                for (int64_t i = 0; i < m; ++i)
                    s[1][i * st] += g;
        } else {
            for (int64_t i = 0; i < m; ++i) {
                if (s[1] != NULL)
                    s[1][i * b->o[1].ss[last]] += g * p[2][i * b->o[2].ps[last]];
                if (s[2] != NULL)
                    s[2][i * b->o[2].ss[last]] += g * p[1][i * b->o[1].ps[last]];
            }
        }
    }
}
