/* real_types.h -- what exists once per float type (real.h): the zero-factor
 * products, the iteration space of an array record and its row walker, and
 * the kernels written once for both.  sad.h instantiates it for float64
 * (sad_block, sad_rows, sad_ew_partials, ...) and float32 (sad_block_f32,
 * ..., SAD_F_F32 records).  No include guard: it is meant to be included
 * once per instance. */

/* The zero-factor convention of the chain rule's products (DESIGN.md: a zero
 * adjoint contributes nothing, never NaN): a zero factor gives zero even
 * against an infinite or NaN one, in every sweep and in the tangents.
 *
 * sad_contributes: does adjoint g through partial p add to the input's
 * adjoint?  Not when g is zero, nor when p is zero and g infinite or NaN.  (A
 * zero partial times a finite g still adds its signed zero.)
 * sad_zero_factor: t, the product a * b or a sum that adds it to zeros,
 * made 0.0 where only a zero factor made it NaN; sad_chain: a * b so. */
static inline int SAD_R(sad_contributes)(sad_real g, sad_real p)
{
    return g != 0 && (p != 0 || g - g == 0);
}

static inline sad_real SAD_R(sad_zero_factor)(sad_real t, sad_real a, sad_real b)
{
    return t != t && (a == 0 || b == 0) ? 0 : t;
}

static inline sad_real SAD_R(sad_chain)(sad_real a, sad_real b)
{
    return SAD_R(sad_zero_factor)(a * b, a, b);
}

/* One operand of an array record: primal and shadow base pointers and their
 * element strides over the record's (coalesced) iteration shape. */
typedef struct SAD_R(sad_opnd) {
    sad_real *p, *s;
    int64_t ps[SAD_MAXDIM], ss[SAD_MAXDIM];
    int64_t slot; /* s is a fake address in lazy shadow slot-1 (0: a real one) */
} SAD_R(sad_opnd);

/* Iteration space of an array record: o[0] is the output, o[1] and o[2] the
 * inputs (stride 0 along broadcast dimensions). */
typedef struct SAD_R(sad_block) {
    int ndim;
    int64_t shape[SAD_MAXDIM];
    int64_t n;
    SAD_R(sad_opnd) o[3];
    sad_real k; /* storage of a constant operand */
    /* SAD_F_LANES: shadows hold nlanes tangents, lane l of operand o at
     * s + l * ls[o] (elements) */
    int64_t nlanes, ls[3];
} SAD_R(sad_block);

/* Walks a block's rows (every axis but the last) in order.  The row offsets
 * move by increments: dividing the row number per row cost more than the row
 * itself for the short rows of broadcasts (a (K, n, d) block with d = 10). */
typedef struct SAD_R(sad_rows) {
    const SAD_R(sad_block) *b;
    int64_t i[SAD_MAXDIM];
    int64_t op[3], os[3]; /* the current row's offsets, in elements */
} SAD_R(sad_rows);

static inline void SAD_R(sad_rows_start)(SAD_R(sad_rows) *c, const SAD_R(sad_block) *b)
{
    c->b = b;
    for (int d = 0; d < SAD_MAXDIM; ++d)
        c->i[d] = 0;
    for (int k = 0; k < 3; ++k)
        c->op[k] = c->os[k] = 0;
}

/* The current row's first elements (NULL for absent operands), then a step to
 * the next row. */
static inline void SAD_R(sad_rows_next)(SAD_R(sad_rows) *c, sad_real *p[3], sad_real *s[3])
{
    const SAD_R(sad_block) *b = c->b;
    for (int k = 0; k < 3; ++k) {
        p[k] = b->o[k].p != NULL ? b->o[k].p + c->op[k] : NULL;
        s[k] = b->o[k].s != NULL ? b->o[k].s + c->os[k] : NULL;
    }
    for (int d = b->ndim - 2; d >= 0; --d) {
        if (++c->i[d] < b->shape[d]) {
            for (int k = 0; k < 3; ++k) {
                c->op[k] += b->o[k].ps[d];
                c->os[k] += b->o[k].ss[d];
            }
            return;
        }
        c->i[d] = 0; /* carry: back to this axis's start */
        for (int k = 0; k < 3; ++k) {
            c->op[k] -= (b->shape[d] - 1) * b->o[k].ps[d];
            c->os[k] -= (b->shape[d] - 1) * b->o[k].ss[d];
        }
    }
}

/* block.c (block_real.h): building, extents, saves */
int SAD_R(sad_block_build)(SAD_R(sad_block) *b, int flags, const sad_arr *z, const sad_arr *zs,
                           const sad_arr *x, const sad_arr *xs, const sad_arr *y,
                           const sad_arr *ys, double k);
int64_t SAD_R(sad_block_rows)(const SAD_R(sad_block) *b);
int SAD_R(sad_block_one_run)(const SAD_R(sad_block) *b);
int SAD_R(sad_block_output_dense)(const SAD_R(sad_block) *b);
/* The primal memory b's output spans: [*lo, *hi). */
void SAD_R(sad_block_output_extent)(const SAD_R(sad_block) *b, const sad_real **lo,
                                    const sad_real **hi);
int SAD_R(sad_block_overlaps)(const SAD_R(sad_block) *b, int which_out, int out_shadow,
                              int which_in, int in_shadow);
int SAD_R(sad_block_apart)(const SAD_R(sad_block) *b, int which_out, int which_in);
void SAD_R(sad_block_save)(const SAD_R(sad_block) *b, sad_real *dst, int stream);
void SAD_R(sad_block_swap)(const SAD_R(sad_block) *b, sad_real *saved);
void SAD_R(sad_block_put)(const SAD_R(sad_block) *b, const sad_real *saved);
void SAD_R(sad_block_zero_shadow)(const SAD_R(sad_block) *b, int which);
void SAD_R(sad_block_gather_shadow)(const SAD_R(sad_block) *b, int which, sad_real *dst);

/* ew_partials.c (ew_partials_real.h) */
void SAD_R(sad_ew_values)(int op, int64_t n, const sad_real *restrict x,
                          const sad_real *restrict y, sad_real *restrict z);
void SAD_R(sad_ew_partials)(int op, int64_t n, const sad_real *restrict x,
                            const sad_real *restrict y, const sad_real *restrict z,
                            sad_real *restrict px, sad_real *restrict py);

/* ew_reverse.c (ew_reverse_real.h): an elementwise record's reverse, or its
 * undo (!accumulate); its constant partials when it is linear.  The record
 * is the instance's (r->u.a, or r->u.a_f32 for SAD_F_F32). */
int SAD_R(sad_ew_reverse)(sad_tape *t, const sad_record *r, int accumulate, int keep);
int SAD_R(sad_ew_reverse_block)(const sad_record *r, const SAD_R(sad_block) *b,
                                sad_real *saved, const int assign[3]);
int SAD_R(sad_ew_linear)(const sad_record *r, sad_real *cx, sad_real *cy);

/* slot.c (slot_real.h): a block's lazy shadows, translated into memory */
int SAD_R(sad_slot_resolve)(sad_tape *t, SAD_R(sad_block) *b, int need_output, int assign[3]);
