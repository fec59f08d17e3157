/* block_real.h -- the kernels of block.c, a template (real.h): included
 * once per float type. */
/* The shadow array of an operand; with lanes, its leading axis is taken off
 * and its stride kept in b->ls[k] (every lane shadow has the same count). */
static sad_arr SAD_R(shadow_arr)(const sad_arr *obj, int lanes, SAD_R(sad_block) *b, int k)
{
    sad_arr a = sad_arr_get(obj);
    b->ls[k] = 0;
    if (lanes && a.data != NULL) {
        b->nlanes = a.shape[0];
        b->ls[k] = a.strides[0] / (int64_t)sizeof(sad_real);
        a.nd -= 1;
        a.shape += 1;
        a.strides += 1;
    }
    return a;
}

static void SAD_R(operand_strides)(int kind, const sad_arr *obj, const sad_arr *shadow,
                            const sad_arr *z, SAD_R(sad_block) *b, int k, int lanes,
                            int64_t pst[MAXND], int64_t sst[MAXND])
{
    memset(pst, 0, sizeof(int64_t) * (size_t)z->nd); /* only z's dimensions are read */
    memset(sst, 0, sizeof(int64_t) * (size_t)z->nd);
    b->o[k].p = NULL;
    b->o[k].s = NULL;
    b->ls[k] = 0;
    if (kind == SAD_KX_ARR) {
        sad_arr a = sad_arr_get(obj), as = SAD_R(shadow_arr)(shadow, lanes, b, k);
        b->o[k].p = (sad_real *)a.data;
        b->o[k].s = (sad_real *)as.data;
        for (int d = 0; d < z->nd; ++d) {
            int ad = d - (z->nd - a.nd);
            if (ad < 0 || a.shape[ad] == 1)
                continue; /* broadcast */
            pst[d] = a.strides[ad];
            if (as.data != NULL)
                sst[d] = as.strides[ad];
        }
    } else if (kind == SAD_KX_PAIR) {
#if !SAD_IS_F32 /* a pair is float64: float32 records take none (sad_block_build_f32) */
        sad_pair *q = (sad_pair *)obj->data; /* a pair's descriptor (shadowad.h) */
        b->o[k].p = &q->v;
        b->o[k].s = &q->g;
#endif
    } else if (kind == SAD_KX_CONST) {
        b->o[k].p = &b->k;
    }
}

int SAD_R(sad_block_build)(SAD_R(sad_block) *b, int flags, const sad_arr *z, const sad_arr *zs,
                    const sad_arr *x, const sad_arr *xs, const sad_arr *y, const sad_arr *ys,
                    double k)
{
    const int lanes = (flags & SAD_F_LANES) != 0;
#if SAD_IS_F32
    /* a traced scalar is a float64 pair, and numpy computes an operation
     * with one in float64 (NEP 50): it is never a float32 record's operand */
    if ((flags & 3) == SAD_KX_PAIR || ((flags >> 2) & 3) == SAD_KX_PAIR)
        return SAD_BAD_OPERAND;
#endif
    b->nlanes = 1;
    sad_arr za = sad_arr_get(z), zsa = SAD_R(shadow_arr)(zs, lanes, b, 0);
    int64_t st[6][MAXND];
    int64_t shape[MAXND];
    int nd = za.nd;
    if (nd > MAXND)
        return SAD_TOO_MANY_DIMS;
    b->k = (sad_real)k; /* a weak Python number, rounded as numpy rounds it */
    b->o[0].slot = b->o[1].slot = b->o[2].slot = 0;
    b->o[0].p = (sad_real *)za.data;
    b->o[0].s = (sad_real *)zsa.data;
    for (int d = 0; d < nd; ++d) {
        shape[d] = za.shape[d];
        st[0][d] = za.strides[d];
        st[1][d] = zsa.data != NULL ? zsa.strides[d] : 0;
    }
    SAD_R(operand_strides)(flags & 3, x, xs, &za, b, 1, lanes, st[2], st[3]);
    SAD_R(operand_strides)((flags >> 2) & 3, y, ys, &za, b, 2, lanes, st[4], st[5]);

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
            b->o[o].ps[d] = cst[2 * o][d] / (int64_t)sizeof(sad_real);
            b->o[o].ss[d] = cst[2 * o + 1][d] / (int64_t)sizeof(sad_real);
        }
    }
    return SAD_OK;
}

int64_t SAD_R(sad_block_rows)(const SAD_R(sad_block) *b)
{
    int64_t inner = b->shape[b->ndim - 1];
    return inner == 0 ? 0 : b->n / inner;
}

static void SAD_R(extent)(const sad_real *base, const int64_t *st, const SAD_R(sad_block) *b,
                   const sad_real **lo, const sad_real **hi)
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
int SAD_R(sad_block_output_dense)(const SAD_R(sad_block) *b)
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
void SAD_R(sad_block_output_extent)(const SAD_R(sad_block) *b, const sad_real **lo, const sad_real **hi)
{
    SAD_R(extent)(b->o[0].p, b->o[0].ps, b, lo, hi);
}

/* Is b one run of elements in memory order: 1-D, the output (and its
 * shadow, if any) at unit stride, the inputs at unit or zero strides?  Such a
 * record can be swept a piece at a time (fuse.c) or seen with any shape
 * (sad_ew_reverse_through). */
int SAD_R(sad_block_one_run)(const SAD_R(sad_block) *b)
{
    if (b->ndim != 1 || b->o[0].ps[0] != 1 || (b->o[0].s != NULL && b->o[0].ss[0] != 1))
        return 0;
    for (int k = 1; k < 3; ++k) {
        const SAD_R(sad_opnd) *o = &b->o[k];
        if ((o->p != NULL && o->ps[0] != 0 && o->ps[0] != 1) ||
            (o->s != NULL && o->ss[0] != 0 && o->ss[0] != 1))
            return 0;
    }
    return 1;
}

/* Does operand which_in (primal or shadow) share memory with operand
 * which_out in a way that element-by-element processing would get wrong,
 * i.e. overlap without being the very same elements in the same order? */
int SAD_R(sad_block_overlaps)(const SAD_R(sad_block) *b, int which_out, int out_shadow,
                       int which_in, int in_shadow)
{
    const SAD_R(sad_opnd) *o = &b->o[which_out], *i = &b->o[which_in];
    const sad_real *ob = out_shadow ? o->s : o->p, *ib = in_shadow ? i->s : i->p;
    const int64_t *ost = out_shadow ? o->ss : o->ps, *ist = in_shadow ? i->ss : i->ps;
    if (ob == NULL || ib == NULL || b->n == 0)
        return 0;
    if (ob == ib && memcmp(ost, ist, sizeof(int64_t) * (size_t)b->ndim) == 0)
        return 0;
    const sad_real *olo, *ohi, *ilo, *ihi;
    SAD_R(extent)(ob, ost, b, &olo, &ohi);
    SAD_R(extent)(ib, ist, b, &ilo, &ihi);
    return olo < ihi && ilo < ohi;
}

/* Are operand which_out's primal and operand which_in's primal apart in
 * memory (no element of one among the other's)?  An absent operand is. */
int SAD_R(sad_block_apart)(const SAD_R(sad_block) *b, int which_out, int which_in)
{
    const sad_real *ob = b->o[which_out].p, *ib = b->o[which_in].p;
    if (ob == NULL || ib == NULL || b->n == 0)
        return 1;
    const sad_real *olo, *ohi, *ilo, *ihi;
    SAD_R(extent)(ob, b->o[which_out].ps, b, &olo, &ohi);
    SAD_R(extent)(ib, b->o[which_in].ps, b, &ilo, &ihi);
    return ohi <= ilo || ihi <= olo;
}

/* Saved bytes are read again only by a sweep or an undo, long after (often
 * never: see sad_tape_restore_floor): large saves bypass the cache, which
 * also spares reading each destination line before writing it. */
static void SAD_R(copy_out)(sad_real *dst, const sad_real *src, int64_t m, int stream)
{
#if defined(__SSE2__)
    enum { LANE = 16 / sizeof(sad_real) }; /* elements per 16-byte store */
    if (stream && m * (int64_t)sizeof(sad_real) >= STREAM_MIN) {
        int64_t i = 0;
        for (; i < m && (uintptr_t)(dst + i) % 16 != 0; ++i) /* dst is element-aligned */
            dst[i] = src[i];
        for (; i + LANE <= m; i += LANE)
#if SAD_IS_F32
            _mm_stream_ps(dst + i, _mm_loadu_ps(src + i));
#else
            _mm_stream_pd(dst + i, _mm_loadu_pd(src + i));
#endif
        for (; i < m; ++i)
            dst[i] = src[i];
        return;
    }
#endif
    memcpy(dst, src, (size_t)m * sizeof(sad_real));
}

/* stream: 0 when the sweep reads the save back soon (tape->saves_soon), so
 * that it stays in the cache. */
void SAD_R(sad_block_save)(const SAD_R(sad_block) *b, sad_real *dst, int stream)
{
    int64_t rows = SAD_R(sad_block_rows)(b), m = b->shape[b->ndim - 1];
    int64_t st = b->o[0].ps[b->ndim - 1];
    sad_real *p[3], *s[3];
    SAD_R(sad_rows) cursor;
    SAD_R(sad_rows_start)(&cursor, b);
    for (int64_t r = 0; r < rows; ++r) {
        SAD_R(sad_rows_next)(&cursor, p, s);
        if (st == 1) { /* the common case: one copy per row */
            SAD_R(copy_out)(dst, p[0], m, stream);
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

void SAD_R(sad_block_swap)(const SAD_R(sad_block) *b, sad_real *saved)
{
    int64_t rows = SAD_R(sad_block_rows)(b), m = b->shape[b->ndim - 1];
    int64_t st = b->o[0].ps[b->ndim - 1];
    sad_real *p[3], *s[3];
    SAD_R(sad_rows) cursor;
    SAD_R(sad_rows_start)(&cursor, b);
    for (int64_t r = 0; r < rows; ++r) {
        SAD_R(sad_rows_next)(&cursor, p, s);
        sad_real *row = p[0];
        if (st == 1) { /* unit stride: a loop the compiler vectorizes */
            for (int64_t i = 0; i < m; ++i) {
                sad_real tmp = row[i];
                row[i] = saved[i];
                saved[i] = tmp;
            }
            saved += m;
            continue;
        }
        for (int64_t i = 0; i < m; ++i, ++saved) {
            sad_real tmp = row[i * st];
            row[i * st] = *saved;
            *saved = tmp;
        }
    }
}

/* The second half of a swap only: primal = saved (a last redo). */
void SAD_R(sad_block_put)(const SAD_R(sad_block) *b, const sad_real *saved)
{
    int64_t rows = SAD_R(sad_block_rows)(b), m = b->shape[b->ndim - 1];
    int64_t st = b->o[0].ps[b->ndim - 1];
    sad_real *p[3], *s[3];
    SAD_R(sad_rows) cursor;
    SAD_R(sad_rows_start)(&cursor, b);
    for (int64_t r = 0; r < rows; ++r, saved += m) {
        SAD_R(sad_rows_next)(&cursor, p, s);
        if (st == 1) {
            memcpy(p[0], saved, (size_t)m * sizeof(sad_real));
            continue;
        }
        for (int64_t i = 0; i < m; ++i)
            p[0][i * st] = saved[i];
    }
}

void SAD_R(sad_block_zero_shadow)(const SAD_R(sad_block) *b, int which)
{
    if (b->o[which].s == NULL)
        return;
    int64_t rows = SAD_R(sad_block_rows)(b), m = b->shape[b->ndim - 1];
    int64_t st = b->o[which].ss[b->ndim - 1];
    sad_real *p[3], *s[3];
    SAD_R(sad_rows) cursor;
    SAD_R(sad_rows_start)(&cursor, b);
    for (int64_t r = 0; r < rows; ++r) {
        SAD_R(sad_rows_next)(&cursor, p, s);
        for (int64_t i = 0; i < m; ++i)
            s[which][i * st] = 0;
    }
}

void SAD_R(sad_block_gather_shadow)(const SAD_R(sad_block) *b, int which, sad_real *dst)
{
    int64_t rows = SAD_R(sad_block_rows)(b), m = b->shape[b->ndim - 1];
    int64_t st = b->o[which].ss[b->ndim - 1];
    sad_real *p[3], *s[3];
    SAD_R(sad_rows) cursor;
    SAD_R(sad_rows_start)(&cursor, b);
    for (int64_t r = 0; r < rows; ++r) {
        SAD_R(sad_rows_next)(&cursor, p, s);
        for (int64_t i = 0; i < m; ++i)
            *dst++ = s[which][i * st];
    }
}
