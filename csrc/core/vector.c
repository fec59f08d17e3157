/* vector.c -- growable float64 vectors in C memory, and their records.
 *
 * Records name a vector and an index, never a pointer into its data: push
 * may move the data.  The redo sweep re-applies pushes and pops to primal
 * vectors only: after the call a shadow vector holds the adjoint of the
 * vector as it was before the call, with that length.  Sweeps never allocate: a vector never shrinks its
 * capacity, so putting back what was popped always fits. */
#include <stdlib.h>
#include <string.h>

#include "sad.h"

sad_vec *sad_vec_new(int64_t cap)
{
    sad_vec *v = calloc(1, sizeof(sad_vec));
    if (v == NULL)
        return NULL;
    if (cap < 8)
        cap = 8;
    v->data = malloc((size_t)cap * sizeof(double));
    if (v->data == NULL) {
        free(v);
        return NULL;
    }
    v->cap = cap;
    return v;
}

void sad_vec_free(sad_vec *v)
{
    if (v != NULL)
        free(v->data);
    free(v);
}

int64_t sad_vec_len(const sad_vec *v) { return v->len; }
double *sad_vec_data(sad_vec *v) { return v->data; }

static int reserve(sad_vec *v, int64_t extra)
{
    if (v->len + extra <= v->cap)
        return SAD_OK;
    int64_t cap = v->cap * 2;
    if (cap < v->len + extra)
        cap = v->len + extra;
    double *d = realloc(v->data, (size_t)cap * sizeof(double));
    if (d == NULL)
        return SAD_NOMEM;
    v->data = d;
    v->cap = cap;
    return SAD_OK;
}

int sad_vec_push(sad_vec *v, double x)
{
    if (reserve(v, 1) != SAD_OK)
        return SAD_NOMEM;
    v->data[v->len++] = x;
    return SAD_OK;
}

double sad_vec_pop(sad_vec *v) { return v->data[--v->len]; }

int sad_vec_assign(sad_vec *v, const double *x, int64_t n)
{
    if (n > v->len && reserve(v, n - v->len) != SAD_OK)
        return SAD_NOMEM;
    if (n > 0)
        memcpy(v->data, x, (size_t)n * sizeof(double));
    v->len = n;
    return SAD_OK;
}

/* append the elements of array arr (any layout, C order) */
static int extend_block(sad_vec *v, const sad_block *b, int shadow)
{
    if (reserve(v, b->n) != SAD_OK)
        return SAD_NOMEM;
    if (shadow)
        sad_block_gather_shadow(b, 0, v->data + v->len);
    else
        sad_block_save(b, v->data + v->len, 1);
    v->len += b->n;
    return SAD_OK;
}

int sad_vec_extend(sad_vec *v, const sad_arr *arr)
{
    sad_block b;
    int rc = sad_block_build(&b, 0, arr, NULL, NULL, NULL, NULL, NULL, 0.0);
    return rc != SAD_OK ? rc : extend_block(v, &b, 0);
}

/* write the vector's elements into array arr (of as many elements) */
static int copyto(const sad_vec *v, const sad_arr *arr)
{
    sad_block b;
    int rc = sad_block_build(&b, 0, arr, NULL, NULL, NULL, NULL, NULL, 0.0);
    if (rc != SAD_OK)
        return rc;
    double *copy = malloc((size_t)(b.n ? b.n : 1) * sizeof(double));
    if (copy == NULL)
        return SAD_NOMEM;
    memcpy(copy, v->data, (size_t)b.n * sizeof(double));
    sad_block_swap(&b, copy); /* writes the vector into arr */
    free(copy);
    return SAD_OK;
}

int64_t sad_vec_nbytes(const sad_vec *v)
{
    return (int64_t)sizeof(sad_vec) + v->cap * (int64_t)sizeof(double);
}

/* ---- recorded operations ---------------------------------------------- */
int sad_vpush(sad_tape *t, sad_vec *v, sad_vec *vs, intptr_t x, double vx)
{
    if (reserve(v, 1) != SAD_OK || (vs != NULL && reserve(vs, 1) != SAD_OK))
        return SAD_NOMEM; /* the vectors' memory: the caller's, not the tape's */
    sad_record *r = sad_push_record(t, SAD_VPUSH, 0);
    if (r == NULL)
        return sad_status(t, SAD_NOMEM);
    r->u.v.v = v;
    r->u.v.vs = vs;
    r->u.v.x = (sad_pair *)x;
    r->u.v.val = vx;
    v->data[v->len++] = vx;
    if (vs != NULL)
        vs->data[vs->len++] = 0.0;
    return SAD_OK;
}

int sad_vpusha(sad_tape *t, sad_vec *v, sad_vec *vs, const sad_arr *x, const sad_arr *xs)
{
    sad_block tmp;
    int rc = sad_block_build(&tmp, 0, x, xs, NULL, NULL, NULL, NULL, 0.0);
    if (rc != SAD_OK)
        return rc;
    if (reserve(v, tmp.n) != SAD_OK || (vs != NULL && reserve(vs, tmp.n) != SAD_OK))
        return SAD_NOMEM; /* the vectors' memory: the caller's, not the tape's */
    sad_block *b = sad_arena_alloc(&t->blocks, sizeof(sad_block));
    double *saved = b != NULL ? sad_arena_alloc(&t->saves, (size_t)(tmp.n ? tmp.n : 1) * sizeof(double)) : NULL;
    sad_record *r = saved != NULL ? sad_push_record(t, SAD_VPUSHA, 0) : NULL;
    if (r == NULL)
        return sad_status(t, SAD_NOMEM);
    *b = tmp;
    sad_block_save(b, saved, !t->saves_soon);
    r->u.v.v = v;
    r->u.v.vs = vs;
    r->u.v.b = b;
    r->u.v.i = b->n;
    r->u.v.x = (sad_pair *)saved; /* the pushed values, for redo */
    memcpy(v->data + v->len, saved, (size_t)b->n * sizeof(double));
    v->len += b->n;
    if (vs != NULL) {
        memset(vs->data + vs->len, 0, (size_t)b->n * sizeof(double));
        vs->len += b->n;
    }
    return SAD_OK;
}

intptr_t sad_vpop(sad_tape *t, sad_vec *v, sad_vec *vs, double *value)
{
    sad_pair *z = vs != NULL ? sad_new_pair(t, v->data[v->len - 1]) : NULL;
    sad_record *r = (vs == NULL || z != NULL) ? sad_push_record(t, SAD_VPOP, 0) : NULL;
    if (r == NULL)
        return 0;
    r->u.v.v = v;
    r->u.v.vs = vs;
    r->u.v.x = z;
    r->u.v.val = *value = v->data[--v->len];
    if (vs != NULL)
        r->u.v.sval = vs->data[--vs->len];
    return z != NULL ? (intptr_t)z : 1;
}

intptr_t sad_vload(sad_tape *t, sad_vec *vs, int64_t i, double v)
{
    sad_pair *z = sad_new_pair(t, v);
    sad_record *r = z != NULL ? sad_push_record(t, SAD_VLOAD, 0) : NULL;
    if (r == NULL)
        return 0;
    r->u.v.vs = vs;
    r->u.v.i = i;
    r->u.v.x = z;
    return (intptr_t)z;
}

int sad_vstore(sad_tape *t, sad_vec *v, sad_vec *vs, int64_t i, intptr_t x, double vx)
{
    sad_record *r = sad_push_record(t, SAD_VSTORE, 0);
    if (r == NULL)
        return sad_status(t, SAD_NOMEM);
    r->u.v.v = v;
    r->u.v.vs = vs;
    r->u.v.i = i;
    r->u.v.x = (sad_pair *)x;
    r->u.v.val = v->data[i];
    v->data[i] = vx;
    return SAD_OK;
}

int sad_vcopy(sad_tape *t, sad_vec *v, sad_vec *vs, const sad_arr *z, const sad_arr *zs)
{
    sad_block tmp;
    int rc = sad_block_build(&tmp, 0, z, zs, NULL, NULL, NULL, NULL, 0.0);
    if (rc != SAD_OK)
        return rc;
    if (tmp.n != v->len || (vs != NULL && vs->len != v->len))
        return SAD_TOO_MANY_DIMS; /* z must have the vector's length */
    rc = copyto(v, z);
    if (rc != SAD_OK || vs == NULL)
        return rc;
    sad_block *b = sad_arena_alloc(&t->blocks, sizeof(sad_block));
    sad_record *r = b != NULL ? sad_push_record(t, SAD_VCOPY, 0) : NULL;
    if (r == NULL)
        return sad_status(t, SAD_NOMEM);
    *b = tmp;
    r->u.v.v = v;
    r->u.v.vs = vs;
    r->u.v.b = b;
    return SAD_OK;
}

void sad_vec_reverse(sad_record *r, int dir)
{
    sad_vec *v = r->u.v.v, *vs = r->u.v.vs;
    const int acc = dir == SAD_DIR_REVERSE, redo = dir == SAD_DIR_REDO;
    switch (r->op) {
    case SAD_VPUSH:
        if (redo) { /* shadows stay the adjoint of the state before the call */
            v->data[v->len++] = r->u.v.val;
            return;
        }
        --v->len;
        if (vs != NULL) {
            double g = vs->data[--vs->len];
            if (acc && r->u.v.x != NULL)
                r->u.v.x->g += g;
        }
        return;
    case SAD_VPUSHA: {
        const sad_block *b = r->u.v.b;
        int64_t n = r->u.v.i;
        if (redo) {
            memcpy(v->data + v->len, (double *)r->u.v.x, (size_t)n * sizeof(double));
            v->len += n;
            return;
        }
        v->len -= n;
        if (vs == NULL)
            return;
        vs->len -= n;
        if (!acc || b->o[0].s == NULL)
            return;
        const double *g = vs->data + vs->len;
        const int last = b->ndim - 1;
        const int64_t rows = sad_block_rows(b), m = b->shape[last];
        double *p[3], *s[3];
        sad_rows cursor;
        sad_rows_start(&cursor, b);
        for (int64_t rr = 0; rr < rows; ++rr) {
            sad_rows_next(&cursor, p, s);
            for (int64_t i = 0; i < m; ++i)
                s[0][i * b->o[0].ss[last]] += *g++;
        }
        return;
    }
    case SAD_VPOP:
        if (redo) {
            --v->len;
            return;
        }
        v->data[v->len++] = r->u.v.val;
        if (vs != NULL)
            vs->data[vs->len++] = r->u.v.sval + (acc && r->u.v.x != NULL ? r->u.v.x->g : 0.0);
        return;
    case SAD_VLOAD:
        if (acc)
            vs->data[r->u.v.i] += r->u.v.x->g;
        return;
    case SAD_VSTORE: {
        double tmp = v->data[r->u.v.i];
        v->data[r->u.v.i] = r->u.v.val;
        r->u.v.val = tmp;
        if (acc && vs != NULL) {
            double g = vs->data[r->u.v.i];
            vs->data[r->u.v.i] = 0.0;
            if (r->u.v.x != NULL)
                r->u.v.x->g += g;
        }
        return;
    }
    case SAD_VCOPY:
        if (acc) {
            const sad_block *b = r->u.v.b;
            const int last = b->ndim - 1;
            const int64_t rows = sad_block_rows(b), m = b->shape[last];
            double *p[3], *s[3];
            int64_t k = 0;
            sad_rows cursor;
            sad_rows_start(&cursor, b);
            for (int64_t rr = 0; rr < rows; ++rr) {
                sad_rows_next(&cursor, p, s);
                for (int64_t i = 0; i < m; ++i, ++k) {
                    vs->data[k] += s[0][i * b->o[0].ss[last]];
                    s[0][i * b->o[0].ss[last]] = 0.0;
                }
            }
        }
        return;
    default:
        return;
    }
}
