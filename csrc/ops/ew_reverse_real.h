/* ew_reverse_real.h -- the reverse sweep of elementwise records
 * (ew_reverse.c), a template (real.h): included once per float type. */

#include "ew.h"

/* Constant partials (cx, cy) of a record whose reverse needs no primal
 * values: copies, negations, sums, differences, and products or quotients by
 * a constant.  Returns 0 for every other record. */
int SAD_R(sad_ew_linear)(const sad_record *r, sad_real *cx, sad_real *cy)
{
    const int kx = r->flags & 3, ky = (r->flags >> 2) & 3;
    const sad_real k = r->u.SAD_R(a).b->k;
    *cx = 0;
    *cy = 0;
    switch (r->op) {
    case SAD_COPY: *cx = 1; return 1;
    case SAD_NEG:  *cx = -1; return 1;
    case SAD_ADD:  *cx = 1; *cy = 1; return 1;
    case SAD_SUB:  *cx = 1; *cy = -1; return 1;
    case SAD_MUL:
        if (ky == SAD_KX_CONST) { *cx = k; return 1; }
        if (kx == SAD_KX_CONST) { *cy = k; return 1; }
        return 0;
    case SAD_DIV:
        if (ky == SAD_KX_CONST && k != 0 && isfinite(1 / k)) { *cx = 1 / k; return 1; }
        return 0;
    default:
        return 0;
    }
}

/* Can linear_reverse take this record?  Its loops multiply z's adjoint by
 * finite constants; a zero constant of an active input (x * 0, x / inf) goes
 * through the selects of the general loop instead, so that an infinite
 * adjoint gives that input nothing rather than 0 * inf = nan. */
static int SAD_R(linear_nonzero)(const SAD_R(sad_block) *b, sad_real cx, sad_real cy)
{
    return isfinite(cx) && isfinite(cy) && (cx != 0 || b->o[1].s == NULL) &&
           (cy != 0 || b->o[2].s == NULL);
}

/* One unit-stride row of linear_reverse where zs, xs and ys are disjoint:
 * restrict lets the compiler vectorize it.  A store into new memory adds to
 * +0.0 as the accumulation into zeros would (-0.0 stays +0.0). */
SAD_HOT static void SAD_R(linear_row)(sad_real *restrict zs, sad_real *restrict xs, sad_real *restrict ys,
                       int64_t m, sad_real cx, sad_real cy, int keep_zs, const int assign[3])
{
    if (assign[1] && assign[2])
        for (int64_t i = 0; i < m; ++i) {
            xs[i] = SAD_K(0.0) + cx * zs[i];
            ys[i] = SAD_K(0.0) + cy * zs[i];
        }
    else if (assign[1])
        for (int64_t i = 0; i < m; ++i) {
            xs[i] = SAD_K(0.0) + cx * zs[i];
            ys[i] += cy * zs[i];
        }
    else if (assign[2])
        for (int64_t i = 0; i < m; ++i) {
            xs[i] += cx * zs[i];
            ys[i] = SAD_K(0.0) + cy * zs[i];
        }
    else
        for (int64_t i = 0; i < m; ++i) {
            xs[i] += cx * zs[i];
            ys[i] += cy * zs[i];
        }
    if (!keep_zs)
        memset(zs, 0, (size_t)m * sizeof(sad_real));
}

static int SAD_R(disjoint)(const sad_real *a, const sad_real *b, int64_t m)
{
    return a + m <= b || b + m <= a;
}

/* One active input (the other a constant or inactive): as += c * zs. */
SAD_HOT static void SAD_R(linear_row1)(sad_real *restrict zs, sad_real *restrict as, int64_t m, sad_real c,
                        int keep_zs, int assign)
{
    if (assign)
        for (int64_t i = 0; i < m; ++i)
            as[i] = SAD_K(0.0) + c * zs[i];
    else
        for (int64_t i = 0; i < m; ++i)
            as[i] += c * zs[i];
    if (!keep_zs)
        memset(zs, 0, (size_t)m * sizeof(sad_real));
}

/* In place, z = x + c*y (x += c*y) with z's memory x's (ck, co: the
 * coefficients of x and of the other input): the other input takes its share
 * of z's adjoint, and z's memory turns into x's, in one pass. */
SAD_HOT static void SAD_R(linear_row_in_place)(sad_real *restrict zs, sad_real *restrict os, int64_t m, sad_real ck,
                                sad_real co, int assign)
{
    if (os == NULL)
        for (int64_t i = 0; i < m; ++i)
            zs[i] = SAD_K(0.0) + ck * zs[i]; /* as the general loop: no -0.0 */
    else if (assign)
        for (int64_t i = 0; i < m; ++i) {
            const sad_real g = zs[i];
            os[i] = SAD_K(0.0) + co * g;
            zs[i] = SAD_K(0.0) + ck * g;
        }
    else
        for (int64_t i = 0; i < m; ++i) {
            const sad_real g = zs[i];
            os[i] += co * g;
            zs[i] = SAD_K(0.0) + ck * g;
        }
}

/* One row of linear_reverse, any strides and any overlap: the checks of the
 * fast loops above, then element by element. */
static void SAD_R(linear_row_any)(sad_real *zs, sad_real *xs, sad_real *ys, int64_t m, int64_t zst,
                           int64_t xst, int64_t yst, sad_real cx, sad_real cy, int keep_zs,
                           const int assign[3])
{
    if (zst == 1 && xst == 1 && yst == 1 && xs != NULL && ys != NULL &&
        SAD_R(disjoint)(zs, xs, m) && SAD_R(disjoint)(zs, ys, m) && SAD_R(disjoint)(xs, ys, m)) {
        SAD_R(linear_row)(zs, xs, ys, m, cx, cy, keep_zs, assign);
        return;
    }
    if (zst == 1 && !keep_zs && (xs == zs || ys == zs)) {
        /* in place, z = x + c*y (x += c*y): the other input takes its share
         * of z's adjoint first, then z's memory turns into x's in place */
        const int k = xs == zs ? 1 : 2;
        sad_real *os = k == 1 ? ys : xs;
        const int64_t ost = k == 1 ? yst : xst;
        if ((k == 1 ? xst : yst) == 1 && !assign[k] &&
            (os == NULL || (ost == 1 && SAD_R(disjoint)(zs, os, m)))) {
            SAD_R(linear_row_in_place)(zs, os, m, k == 1 ? cx : cy, k == 1 ? cy : cx, assign[3 - k]);
            return;
        }
    }
    if ((xs == NULL) != (ys == NULL) && zst == 1) {
        const int k = xs != NULL ? 1 : 2;
        sad_real *as = k == 1 ? xs : ys;
        if ((k == 1 ? xst : yst) == 1 && SAD_R(disjoint)(zs, as, m)) {
            SAD_R(linear_row1)(zs, as, m, k == 1 ? cx : cy, keep_zs, assign[k]);
            return;
        }
    }
    const sad_real ax = assign[1] ? 0 : 1, ay = assign[2] ? 0 : 1;
    for (int64_t i = 0; i < m; ++i) {
        const sad_real g = zs[i * zst];
        if (!keep_zs)
            zs[i * zst] = 0;
        if (xs != NULL) /* ax * xs: 0 * (uninitialised memory) would be a nan */
            xs[i * xst] = (ax != 0 ? xs[i * xst] : 0) + cx * g;
        if (ys != NULL)
            ys[i * yst] = (ay != 0 ? ys[i * yst] : 0) + cy * g;
    }
}

/* A plane: `rows` rows of m elements, operand k's row r at s[k] + r * rs[k],
 * its elements st[k] apart. */
typedef struct SAD_R(plane) {
    sad_real *s[3];
    int64_t rs[3], st[3], rows, m;
} SAD_R(plane);

/* The memory operand k's shadow spans over the plane: [*lo, *hi). */
static void SAD_R(plane_span)(const SAD_R(plane) *q, int k, const sad_real **lo, const sad_real **hi)
{
    const int64_t a = (q->rows - 1) * q->rs[k], e = (q->m - 1) * q->st[k];
    *lo = q->s[k] + (a < 0 ? a : 0) + (e < 0 ? e : 0);
    *hi = q->s[k] + (a > 0 ? a : 0) + (e > 0 ? e : 0) + 1;
}

static int SAD_R(planes_apart)(const SAD_R(plane) *q, int j, int k)
{
    const sad_real *jl, *jh, *kl, *kh;
    SAD_R(plane_span)(q, j, &jl, &jh);
    SAD_R(plane_span)(q, k, &kl, &kh);
    return jh <= kl || kh <= jl;
}

/* as += c * (z's adjoint) over a plane whose shadows are all apart, for the
 * active input k (into new memory when assign: as adding to +0 would).
 * Each element of as takes its terms in the order of the row-by-row loop, so
 * the bits are the same; what changes is where the running sums live. */
SAD_HOT static void SAD_R(plane_input)(const SAD_R(plane) *q, int k, sad_real c, int assign)
{
    const sad_real *restrict zs = q->s[0];
    sad_real *restrict as = q->s[k];
    const int64_t m = q->m, rows = q->rows, zr = q->rs[0], ar = q->rs[k], st = q->st[k];
    if (st == 0) { /* broadcast along the row: a sum in a register */
        for (int64_t r = 0; r < rows; ++r) {
            const sad_real *z = zs + r * zr;
            sad_real *a = as + r * ar, acc = assign ? 0 : a[0];
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
            sad_real acc[8];
            for (int u = 0; u < 8; ++u)
                acc[u] = as[j + u];
            for (int64_t r = 0; r < rows; ++r)
                for (int u = 0; u < 8; ++u)
                    acc[u] += c * zs[r * zr + j + u];
            for (int u = 0; u < 8; ++u)
                as[j + u] = acc[u];
        }
        for (; j < m; ++j) {
            sad_real acc = as[j];
            for (int64_t r = 0; r < rows; ++r)
                acc += c * zs[r * zr + j];
            as[j] = acc;
        }
        return;
    }
    for (int64_t r = 0; r < rows; ++r) {
        const sad_real *z = zs + r * zr;
        sad_real *a = as + r * ar;
        if (st == 1 && assign)
            for (int64_t i = 0; i < m; ++i)
                a[i] = SAD_K(0.0) + c * z[i];
        else if (st == 1)
            for (int64_t i = 0; i < m; ++i)
                a[i] += c * z[i];
        else if (assign)
            for (int64_t i = 0; i < m; ++i)
                a[i * st] = SAD_K(0.0) + c * z[i];
        else
            for (int64_t i = 0; i < m; ++i)
                a[i * st] += c * z[i];
    }
}

static void SAD_R(linear_plane)(const SAD_R(plane) *q, sad_real cx, sad_real cy, int keep_zs, const int assign[3])
{
    sad_real *zs = q->s[0], *xs = q->s[1], *ys = q->s[2];
    int apart = q->st[0] == 1 && (xs == NULL || SAD_R(planes_apart)(q, 0, 1)) &&
                (ys == NULL || SAD_R(planes_apart)(q, 0, 2)) &&
                (xs == NULL || ys == NULL || SAD_R(planes_apart)(q, 1, 2));
    if (apart) { /* each input takes its share in its own pass */
        if (xs != NULL)
            SAD_R(plane_input)(q, 1, cx, assign[1]);
        if (ys != NULL)
            SAD_R(plane_input)(q, 2, cy, assign[2]);
        if (!keep_zs)
            for (int64_t r = 0; r < q->rows; ++r)
                memset(zs + r * q->rs[0], 0, (size_t)q->m * sizeof(sad_real));
        return;
    }
    for (int64_t r = 0; r < q->rows; ++r)
        SAD_R(linear_row_any)(zs + r * q->rs[0], xs != NULL ? xs + r * q->rs[1] : NULL,
                       ys != NULL ? ys + r * q->rs[2] : NULL, q->m, q->st[0], q->st[1],
                       q->st[2], cx, cy, keep_zs, assign);
}

/* The reverse of a linear record with finite constant partials, plane by
 * plane (the last two axes): the checks that pick a loop run once per plane
 * instead of once per row (25000 rows of 10 in W6's x - means).  z may be x
 * itself (in place), whose rows then take the row-by-row loop, which reads
 * and clears each adjoint before adding it anywhere.  assign[k]: operand k's
 * shadow is new memory this record overwrites whole (see sad_slot_resolve). */
static void SAD_R(linear_reverse)(const SAD_R(sad_block) *b, sad_real cx, sad_real cy, int keep_zs,
                           const int assign[3])
{
    const int last = b->ndim - 1;
    SAD_R(plane) q;
    q.m = b->shape[last];
    q.rows = last > 0 ? b->shape[last - 1] : 1;
    for (int k = 0; k < 3; ++k) {
        q.st[k] = b->o[k].ss[last];
        q.rs[k] = last > 0 ? b->o[k].ss[last - 1] : 0;
    }
    if (last == 0) {
        for (int k = 0; k < 3; ++k)
            q.s[k] = b->o[k].s;
        SAD_R(linear_plane)(&q, cx, cy, keep_zs, assign);
        return;
    }
    if (b->n == 0)
        return;
    /* the planes' first rows: b without its last axis walks them */
    SAD_R(sad_block) outer = *b;
    outer.ndim = last;
    outer.n = b->n / q.m;
    sad_real *p[3];
    SAD_R(sad_rows) cursor;
    SAD_R(sad_rows_start)(&cursor, &outer);
    const int64_t planes = SAD_R(sad_block_rows)(&outer);
    for (int64_t i = 0; i < planes; ++i) {
        SAD_R(sad_rows_next)(&cursor, p, q.s);
        SAD_R(linear_plane)(&q, cx, cy, keep_zs, assign);
    }
}

/* Reverse of z = op(x, y): restore z's primal if it was overwritten, then move
 * z's adjoint into x's and y's (zs is consumed, and zeroed unless z is a fresh
 * temporary nobody reads again, whose lazy shadow is then released).
 * Returns -1, having done nothing, when a lazy shadow finds no memory. */
int SAD_R(sad_ew_reverse)(sad_tape *t, const sad_record *r, int accumulate, int keep)
{
    sad_real *saved = keep ? NULL : r->u.SAD_R(a).saved; /* keep: leave z's primal as it is */
    const SAD_R(sad_block) *b = r->u.SAD_R(a).b;
    SAD_R(sad_block) resolved;
    int live = 1, assign[3] = {0, 0, 0};
    const int64_t zslot = b->o[0].slot;
    if (accumulate && (zslot | b->o[1].slot | b->o[2].slot)) {
        resolved = *b;
        live = SAD_R(sad_slot_resolve)(t, &resolved, 1, assign);
        if (live < 0)
            return -1;
        b = &resolved;
    }
    if (!accumulate || !live) {
        if (saved != NULL)
            SAD_R(sad_block_swap)(b, saved);
        return 0;
    }
    if (SAD_R(sad_ew_reverse_block)(r, b, saved, assign) < 0)
        return -1;
    if (zslot && (r->flags & SAD_F_FRESH))
        sad_slot_release(t, zslot);
    return 0;
}

#if SAD_IS_F32
/* A float32 record's input broadcast over its block (a zero stride along an
 * axis of length > 1) has an adjoint that sums many terms, and a float sum of
 * n terms loses about n/2^24 of its value (16777216 + 1 is 16777216 in
 * float; numpy's float32 sum is pairwise).  Its terms are added in doubles
 * instead, one per element of the input's extent, from -0.0 (which adds
 * nothing, not even a sign), and each sum goes into the float shadow once,
 * when the record is swept: in every loop, over every axis. */
typedef struct wide_sum {
    double *acc;  /* the sums, for element offsets lo.. of the input's shadow */
    int64_t lo;
} wide_sum;

static int broadcast_input(const sad_block_f32 *b, int k)
{
    if (b->o[k].s == NULL)
        return 0;
    for (int d = 0; d < b->ndim; ++d)
        if (b->o[k].ss[d] == 0 && b->shape[d] > 1)
            return 1;
    return 0;
}

static int wide_new(const sad_block_f32 *b, int k, wide_sum *w)
{
    int64_t lo = 0, hi = 0;
    for (int d = 0; d < b->ndim; ++d) {
        const int64_t span = (b->shape[d] - 1) * b->o[k].ss[d];
        if (span < 0)
            lo += span;
        else
            hi += span;
    }
    const int64_t n = hi - lo + 1;
    w->lo = lo;
    w->acc = malloc((size_t)n * sizeof(double));
    if (w->acc == NULL)
        return -1;
    for (int64_t i = 0; i < n; ++i)
        w->acc[i] = -0.0;
    return 0;
}

/* Each element of input k once (its non-broadcast axes): shadow += its sum. */
static void wide_add(const sad_block_f32 *b, int k, const wide_sum *w)
{
    int64_t idx[SAD_MAXDIM] = {0};
    float *s = b->o[k].s;
    for (;;) {
        int64_t off = 0;
        for (int d = 0; d < b->ndim; ++d)
            off += idx[d] * b->o[k].ss[d];
        s[off] += (float)w->acc[off - w->lo];
        int d = b->ndim - 1;
        for (; d >= 0; --d) {
            if (b->o[k].ss[d] != 0 && ++idx[d] < b->shape[d])
                break;
            idx[d] = 0;
        }
        if (d < 0)
            return;
    }
}
#endif

/* The reverse of r over block b (all of r's block, or a piece of it in a
 * fused run), whose shadows are real memory: restore z's primal from saved
 * (in b's element order) and move z's adjoint into x's and y's.  -1, having
 * done nothing, when out of memory (a float32 record's broadcast sums). */
SAD_HOT int SAD_R(sad_ew_reverse_block)(const sad_record *r, const SAD_R(sad_block) *b,
                                        sad_real *saved, const int assign[3])
{
    int op = r->op;
    int wide = 0;
#if SAD_IS_F32
    wide_sum sums[3] = {{NULL, 0}, {NULL, 0}, {NULL, 0}};
    for (int k = 1; k <= 2 && b->o[0].s != NULL; ++k)
        if (broadcast_input(b, k)) {
            if (wide_new(b, k, &sums[k]) < 0) {
                free(sums[1].acc);
                return -1;
            }
            wide = 1;
        }
#endif
    if (saved != NULL)
        SAD_R(sad_block_swap)(b, saved);
    if (b->o[0].s == NULL)
        return 0;
    sad_real *gbuf = r->u.SAD_R(a).scratch; /* set when zs overlaps xs or ys unsafely */
    const int unsafe = gbuf != NULL, keep_zs = (r->flags & SAD_F_FRESH) != 0;
    if (unsafe) {
        SAD_R(sad_block_gather_shadow)(b, 0, gbuf);
        if (!keep_zs)
            SAD_R(sad_block_zero_shadow)(b, 0);
    }
    sad_real cx, cy;
    const int lin = SAD_R(sad_ew_linear)(r, &cx, &cy);
    if (lin && !unsafe && !wide && SAD_R(linear_nonzero)(b, cx, cy)) {
        SAD_R(linear_reverse)(b, cx, cy, keep_zs, assign);
        return 0;
    }
    const int last = b->ndim - 1;
    const int64_t rows = SAD_R(sad_block_rows)(b), m = b->shape[last];
    /* the partials read numpy's z, as forward mode does: in z's memory, or,
     * once the swap above restored what z overwrote, in saved, which now
     * holds z's values in the order this loop visits them */
    sad_real tx[SAD_TILE], ty[SAD_TILE], tz[SAD_TILE], px[SAD_TILE], py[SAD_TILE], gt[SAD_TILE];
    sad_real *p[3], *s[3];
    int64_t pos = 0;
    if (lin)
        for (int64_t i = 0; i < SAD_TILE; ++i) {
            px[i] = cx;
            py[i] = cy;
        }
    SAD_R(sad_rows) cursor;
    SAD_R(sad_rows_start)(&cursor, b);
    for (int64_t rr = 0; rr < rows; ++rr) {
        SAD_R(sad_rows_next)(&cursor, p, s);
        for (int64_t i0 = 0; i0 < m; i0 += SAD_TILE) {
            int64_t c = m - i0 < SAD_TILE ? m - i0 : SAD_TILE;
            /* a tile of z's adjoint: a local copy that nothing else aliases,
             * so the compiler keeps it in registers and vectorizes the loop */
            sad_real *g = gt;
            if (unsafe) {
                memcpy(g, gbuf + pos, (size_t)c * sizeof(sad_real));
            } else {
                sad_real *zs = s[0] + i0 * b->o[0].ss[last];
                int64_t st = b->o[0].ss[last];
                if (st == 1)
                    memcpy(g, zs, (size_t)c * sizeof(sad_real));
                else
                    for (int64_t i = 0; i < c; ++i)
                        g[i] = zs[i * st];
                if (!keep_zs)
                    for (int64_t i = 0; i < c; ++i)
                        zs[i * st] = 0;
            }
            const int64_t at = pos;
            pos += c;
            if (s[1] == NULL && s[2] == NULL)
                continue;
            if (!lin) { /* the partials depend on the values */
                const sad_real *vx = tx, *vy = ty, *vz = tz;
                const int need = sad_ew_partials_read(op);
                if (need & 1)
                    vx = SAD_R(values)(tx, p[1] + i0 * b->o[1].ps[last], b->o[1].ps[last], c);
                if ((need & 2) && p[2] != NULL)
                    vy = SAD_R(values)(ty, p[2] + i0 * b->o[2].ps[last], b->o[2].ps[last], c);
                if ((need & 4) && saved != NULL)
                    vz = saved + at;
                else if (need & 4)
                    vz = SAD_R(values)(tz, p[0] + i0 * b->o[0].ps[last], b->o[0].ps[last], c);
                /* the partial of an inactive operand is not computed (where
                 * sad_ew_partials allows it) */
                const int skip = op == SAD_MUL || op == SAD_DIV || op == SAD_POW;
                SAD_R(sad_ew_partials)(op, c, vx, vy, vz, skip && s[1] == NULL ? NULL : px,
                                skip && s[2] == NULL ? NULL : py);
            }
            /* a zero factor contributes nothing: a zero adjoint through an
             * infinite partial (sqrt at 0), a zero partial against an
             * infinite adjoint; as in the scalar sweep and the tangents */
            for (int k = 1; k <= 2; ++k) {
                if (s[k] == NULL)
                    continue;
                sad_real *as = s[k] + i0 * b->o[k].ss[last];
                const sad_real *pk = k == 1 ? px : py;
                int64_t st = b->o[k].ss[last];
#if SAD_IS_F32
                if (sums[k].acc != NULL) {
                    double *ad = sums[k].acc + ((as - b->o[k].s) - sums[k].lo);
                    for (int64_t i = 0; i < c; ++i)
                        if (SAD_R(sad_contributes)(g[i], pk[i]))
                            ad[i * st] += (double)(g[i] * pk[i]);
                    continue;
                }
#endif
                if (assign[k] && st == 1) /* the same values, as a select gcc
                                             * vectorizes: only a zero factor
                                             * times an infinite one is nan */
                    for (int64_t i = 0; i < c; ++i)
                        as[i] = SAD_R(sad_zero_factor)(SAD_K(0.0) + g[i] * pk[i], g[i], pk[i]);
                else if (assign[k]) /* into new memory: as adding to +0 would */
                    for (int64_t i = 0; i < c; ++i)
                        as[i * st] = SAD_R(sad_zero_factor)(SAD_K(0.0) + g[i] * pk[i], g[i], pk[i]);
                else if (st == 1) /* a select, not a branch: it vectorizes */
                    for (int64_t i = 0; i < c; ++i)
                        as[i] = SAD_R(sad_contributes)(g[i], pk[i]) ? as[i] + g[i] * pk[i] : as[i];
                else if (st == 0) { /* broadcast along the row: the same sums in
                                     * the same order, in a register instead of
                                     * a store-to-load chain through memory */
                    sad_real acc = as[0];
                    for (int64_t i = 0; i < c; ++i)
                        if (SAD_R(sad_contributes)(g[i], pk[i]))
                            acc += g[i] * pk[i];
                    as[0] = acc;
                } else
                    for (int64_t i = 0; i < c; ++i)
                        if (SAD_R(sad_contributes)(g[i], pk[i]))
                            as[i * st] += g[i] * pk[i];
            }
        }
    }
#if SAD_IS_F32
    for (int k = 1; k <= 2; ++k)
        if (sums[k].acc != NULL) {
            wide_add(b, k, &sums[k]);
            free(sums[k].acc);
        }
#endif
    return 0;
}
