/* ew_forward_real.h -- the primal and tangent kernels of elementwise
 * records and their recording (ew_forward.c), a template (real.h): included
 * once per float type. */

#include "ew.h"

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
static inline sad_bits SAD_R(mask_if)(int c) { return (sad_bits)0 - (sad_bits)c; }

static inline sad_real SAD_R(pick)(sad_bits m, sad_real a, sad_real b)
{
    sad_bits ua, ub;
    memcpy(&ua, &a, sizeof ua);
    memcpy(&ub, &b, sizeof ub);
    ua = (ua & m) | (ub & ~m);
    memcpy(&a, &ua, sizeof a);
    return a;
}

static inline sad_bits SAD_R(zero_factor)(sad_real t, sad_real p)
{
    return SAD_R(mask_if)(t == 0) | SAD_R(mask_if)(p == 0);
}

static inline sad_real SAD_R(tangent_first)(sad_real t, sad_real p)
{
    const sad_real a = SAD_K(0.0) + t * SAD_R(pick)(SAD_R(mask_if)(t != t), 1, p);
    return SAD_R(pick)(SAD_R(mask_if)(a != a) & SAD_R(zero_factor)(t, p), 0, a);
}

static inline sad_real SAD_R(tangent_next)(sad_real d, sad_real t, sad_real p)
{
    const sad_real q = t * SAD_R(pick)(SAD_R(mask_if)(t != t), 1, p),
                   e = d + SAD_R(pick)(SAD_R(mask_if)(d != d), 0, q);
    return SAD_R(pick)(SAD_R(mask_if)(e != e) & SAD_R(zero_factor)(t, p), d, e);
}

/* One unit-stride tile of one lane's tangent: dz = px * dx + py * dy (dx or
 * dy NULL: an operand without tangents). */
SAD_HOT static void SAD_R(tangent_tile)(sad_real *dz, const sad_real *dx, const sad_real *px,
                                 const sad_real *dy, const sad_real *py, int64_t c)
{
    if (dy == NULL)
        for (int64_t i = 0; i < c; ++i)
            dz[i] = SAD_R(tangent_first)(dx[i], px[i]);
    else if (dx == NULL)
        for (int64_t i = 0; i < c; ++i)
            dz[i] = SAD_R(tangent_first)(dy[i], py[i]);
    else
        for (int64_t i = 0; i < c; ++i)
            dz[i] = SAD_R(tangent_next)(SAD_R(tangent_first)(dx[i], px[i]), dy[i], py[i]);
}

/* Does one of the c values at v hold a NaN?  (A mask, not isnan into an
 * int: that loop stayed scalar.) */
SAD_HOT static int SAD_R(any_nan)(const sad_real *v, int64_t c)
{
    sad_bits m = 0;
    for (int64_t i = 0; i < c; ++i)
        m |= SAD_R(mask_if)(v[i] != v[i]);
    return m != 0;
}

/* Primal and (when tangents are present in the shadow slots) tangents of
 * z = op(x, y) over block b, one tangent per lane (z itself is written only
 * when write_z is set).  The partials of a tile are computed once and applied
 * to every lane.  Unsafe overlap of the output with
 * an input is handled by computing everything first and writing afterwards.
 *
 * Contiguous inputs are read where they lie (a copy per tile was a pass of
 * its own), and only what is needed is computed: z's values when they are
 * written, x and y when either needs them, and the partial of an operand
 * without tangents not at all where sad_ew_partials allows it.  When z is
 * not written it holds the primal numpy computed, and partials that read z
 * read those values, as the reverse sweep does: C's libm may differ from
 * numpy's in the last bit (exp, tan, ...), and the derivative is the one of
 * the value the caller got.  nan (or NULL): set when a value of z is a NaN,
 * found tile by tile while the tile is in cache. */
static int SAD_R(forward)(int op, const SAD_R(sad_block) *b, int tangent, int write_z, int *nan)
{
    int unsafe = 0;
    for (int k = 1; k <= 2; ++k) {
        if (write_z)
            unsafe |= SAD_R(sad_block_overlaps)(b, 0, 0, k, 0);
        if (tangent)
            unsafe |= SAD_R(sad_block_overlaps)(b, 0, 1, k, 1) | SAD_R(sad_block_overlaps)(b, 0, 1, k, 0);
    }
    const int64_t lanes = tangent ? b->nlanes : 0, n = b->n ? b->n : 1;
    sad_real *zbuf = NULL, *dzbuf = NULL;
    if (unsafe) {
        zbuf = malloc((size_t)n * sizeof(sad_real));
        dzbuf = lanes ? malloc((size_t)(n * lanes) * sizeof(sad_real)) : NULL;
        if (zbuf == NULL || (lanes && dzbuf == NULL)) {
            free(zbuf);
            free(dzbuf);
            return SAD_NOMEM;
        }
    }
    const int last = b->ndim - 1;
    const int64_t rows = SAD_R(sad_block_rows)(b), m = b->shape[last];
    const int64_t zst = b->o[0].ss[last], xst = b->o[1].ss[last], yst = b->o[2].ss[last];
    const int64_t zps = b->o[0].ps[last], xps = b->o[1].ps[last], yps = b->o[2].ps[last];
    const int reads = lanes ? sad_ew_partials_read(op) : 0;
    const int read_z = !write_z && (reads & 4); /* numpy's z, from memory */
    const int need_x = write_z || (reads & 1), need_y = write_z || (reads & 2);
    /* z's values go straight into z when z shares no memory with an input */
    const int direct = write_z && !unsafe && zps == 1 && SAD_R(sad_block_apart)(b, 0, 1) &&
                       SAD_R(sad_block_apart)(b, 0, 2);
    const int skip = op == SAD_MUL || op == SAD_DIV || op == SAD_POW;
    sad_real tx[SAD_TILE], ty[SAD_TILE], tz[SAD_TILE], px[SAD_TILE], py[SAD_TILE];
    sad_real tdx[SAD_TILE], tdy[SAD_TILE], tdz[SAD_TILE];
    sad_real *p[3], *s[3];
    int64_t pos = 0;
    for (int pass = 0; pass < (unsafe ? 2 : 1); ++pass) {
        pos = 0;
        SAD_R(sad_rows) cursor;
        SAD_R(sad_rows_start)(&cursor, b);
        for (int64_t r = 0; r < rows; ++r) {
            SAD_R(sad_rows_next)(&cursor, p, s);
            for (int64_t i0 = 0; i0 < m; i0 += SAD_TILE) {
                int64_t c = m - i0 < SAD_TILE ? m - i0 : SAD_TILE;
                sad_real *zp = p[0] + i0 * zps;
                if (pass == 1) { /* write back what pass 0 computed */
                    for (int64_t i = 0; i < c && write_z; ++i)
                        zp[i * zps] = zbuf[pos + i];
                    for (int64_t l = 0; l < lanes; ++l) {
                        sad_real *zs = s[0] + l * b->ls[0] + i0 * zst;
                        for (int64_t i = 0; i < c; ++i)
                            zs[i * zst] = dzbuf[l * n + pos + i];
                    }
                    pos += c;
                    continue;
                }
                const sad_real *vx = tx, *vy = ty, *cz = tz;
                sad_real *vz = direct ? zp : tz;
                if (need_x)
                    vx = SAD_R(values)(tx, p[1] + i0 * xps, xps, c);
                if (need_y && p[2] != NULL)
                    vy = SAD_R(values)(ty, p[2] + i0 * yps, yps, c);
                if (write_z) {
                    SAD_R(sad_ew_values)(op, c, vx, vy, vz);
                    cz = vz;
                } else if (read_z) {
                    cz = SAD_R(values)(tz, zp, zps, c);
                }
                if (nan != NULL && write_z)
                    *nan |= SAD_R(any_nan)(vz, c);
                if (lanes)
                    SAD_R(sad_ew_partials)(op, c, vx, vy, cz, skip && s[1] == NULL ? NULL : px,
                                    skip && s[2] == NULL ? NULL : py);
                /* tangents at other strides (a broadcast lane is stride 0) go
                 * through tiles, so that every lane takes the vectorized loop */
                for (int64_t l = 0; l < lanes; ++l) {
                    const sad_real *xs = s[1] != NULL ? s[1] + l * b->ls[1] + i0 * xst : NULL;
                    const sad_real *ys = s[2] != NULL ? s[2] + l * b->ls[2] + i0 * yst : NULL;
                    const int64_t st = unsafe ? 1 : zst;
                    sad_real *zs = unsafe ? dzbuf + l * n + pos : s[0] + l * b->ls[0] + i0 * zst;
                    sad_real *dz = st == 1 ? zs : tdz;
                    if (xs == NULL && ys == NULL) /* constant inputs: a zero tangent */
                        memset(dz, 0, (size_t)c * sizeof(sad_real));
                    else
                        SAD_R(tangent_tile)(dz, xs != NULL ? SAD_R(values)(tdx, xs, xst, c) : NULL, px,
                                     ys != NULL ? SAD_R(values)(tdy, ys, yst, c) : NULL, py, c);
                    for (int64_t i = 0; i < c && dz != zs; ++i)
                        zs[i * st] = tdz[i];
                }
                if (unsafe && write_z)
                    memcpy(zbuf + pos, vz, (size_t)c * sizeof(sad_real));
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


/* z = op(x, y) without a tape, saying whether z holds a NaN (*nan). */
static int SAD_R(primal_nan)(int op, int flags, const sad_arr *z, const sad_arr *x,
                             const sad_arr *y, double k, int *nan)
{
    SAD_R(sad_block) b;
    int rc = SAD_R(sad_block_build)(&b, flags, z, NULL, x, NULL, y, NULL, k);
    *nan = 0;
    return rc != SAD_OK ? rc : SAD_R(forward)(op, &b, 0, 1, nan);
}

/* sad_ew_tangent of the instance's arrays. */
static int SAD_R(tangent)(int op, int flags, const sad_arr *z, const sad_arr *dz,
                          const sad_arr *x, const sad_arr *dx, const sad_arr *y,
                          const sad_arr *dy, double k)
{
    SAD_R(sad_block) b;
    int rc = SAD_R(sad_block_build)(&b, flags, z, dz, x, dx, y, dy, k);
    return rc != SAD_OK ? rc : SAD_R(forward)(op, &b, 1, (flags & SAD_F_PRIMAL) != 0, NULL);
}

/* sad_ew_slots of the instance's arrays. */
static int SAD_R(record)(sad_tape *t, int op, int flags, const sad_arr *z, const sad_arr *zs,
                         const sad_arr *x, const sad_arr *xs, const sad_arr *y,
                         const sad_arr *ys, double k, const int64_t slots[3])
{
    const sad_arr *const layout[3] = {zs, xs, ys};
    for (int j = 0; slots != NULL && j < 3; ++j)
        if (slots[j] != 0 && (slots[j] < 0 || (layout[j] != NULL &&
                                               !sad_slot_holds(t, slots[j], layout[j],
                                                               (int64_t)sizeof(sad_real)))))
            return SAD_BAD_SLOT;
    SAD_R(sad_block) tmp;
    int rc = SAD_R(sad_block_build)(&tmp, flags, z, zs, x, xs, y, ys, k);
    if (rc != SAD_OK)
        return rc;
    for (int j = 0; slots != NULL && j < 3; ++j)
        if (slots[j] > 0 && tmp.o[j].s != NULL) {
            const char *root = (const char *)t->slots[slots[j] - 1].root;
            tmp.o[j].s = (sad_real *)sad_slot_window(t, slots[j]) +
                         ((const char *)tmp.o[j].s - root) / (int64_t)sizeof(sad_real);
            tmp.o[j].slot = slots[j];
        }
    if (tmp.n == 0)
        return SAD_OK;
    /* a shadow at its primal's address is a lazy one's layout without a slot
     * (a slot number 0 from Python): adding adjoints there would write the primal */
    for (int j = 0; j < 3; ++j)
        if (tmp.o[j].s != NULL && tmp.o[j].s == tmp.o[j].p && (slots == NULL || slots[j] <= 0))
            return SAD_BAD_SLOT;
    /* y[i:j] += v ends in numpy's y[i:j] = <that same view>: nothing to do */
    if (op == SAD_COPY && tmp.o[1].p == tmp.o[0].p && tmp.o[1].s == tmp.o[0].s &&
        memcmp(tmp.o[1].ps, tmp.o[0].ps, sizeof(int64_t) * (size_t)tmp.ndim) == 0)
        return SAD_OK;
    SAD_R(sad_block) *b = sad_arena_alloc(&t->blocks, sizeof(SAD_R(sad_block)));
    sad_real *saved = NULL;
    if (b == NULL)
        return sad_status(t, SAD_NOMEM);
    *b = tmp;
    for (int k2 = 1; k2 <= 2; ++k2) /* a constant's pointer must follow the copy */
        if (((flags >> (2 * (k2 - 1))) & 3) == SAD_KX_CONST)
            b->o[k2].p = &b->k;
    /* the record to be, for the tape's questions about it */
    sad_record probe = {.op = op, .flags = flags | SAD_F_BLOCK};
    probe.u.SAD_R(a).b = b;
    const sad_real *lo, *hi;
    SAD_R(sad_block_output_extent)(b, &lo, &hi);
    const int shared = (flags & SAD_F_SAVE) && (flags & SAD_F_CLEAN_FAIL) &&
                       sad_tape_save_covered(t, &probe, (const char *)lo, (const char *)hi);
    if ((flags & SAD_F_SAVE) && !shared) {
        saved = sad_arena_alloc(&t->saves, (size_t)b->n * sizeof(sad_real));
        if (saved == NULL)
            return sad_status(t, SAD_NOMEM);
        SAD_R(sad_block_save)(b, saved, !t->saves_soon);
    }
    sad_real *scratch = NULL;
    if (b->o[0].s != NULL &&
        (SAD_R(sad_block_overlaps)(b, 0, 1, 1, 1) || SAD_R(sad_block_overlaps)(b, 0, 1, 2, 1))) {
        scratch = sad_arena_alloc(&t->saves, (size_t)b->n * sizeof(sad_real));
        if (scratch == NULL)
            return sad_status(t, SAD_NOMEM);
    }
    sad_record *r = sad_push_record(t, op, flags | SAD_F_BLOCK);
    if (r == NULL)
        return sad_status(t, SAD_NOMEM);
    r->u.SAD_R(a).b = b;
    r->u.SAD_R(a).saved = saved;
    r->u.SAD_R(a).scratch = scratch;
    if (saved != NULL)
        sad_tape_note_save(t, &probe, (const char *)lo, (const char *)hi,
                           SAD_R(sad_block_output_dense)(b));
    if (flags & SAD_F_PRIMAL)
        return SAD_R(forward)(op, b, 0, 1, NULL);
    return SAD_OK;
}
