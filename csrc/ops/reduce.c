/* reduce.c -- full reductions to a scalar (sum, dot): recorded, their
 * tangents and their reverse sweep. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sad.h"

intptr_t sad_reduce(sad_tape *t, int op, double v, const sad_arr *x, const sad_arr *xs,
                    const sad_arr *y, const sad_arr *ys)
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
intptr_t sad_reduce_lazy(sad_tape *t, double v, const sad_arr *x, int64_t slot)
{
    if (!sad_slot_holds(t, slot, x, (int64_t)sizeof(double)))
        return SAD_BAD_SLOT;
    intptr_t z = sad_reduce(t, SAD_SUM, v, x, x, NULL, NULL);
    if (z == 0)
        return 0;
    sad_opnd *o = &t->rec[t->n - 1].u.a.b->o[1];
    const char *root = (const char *)t->slots[slot - 1].root;
    o->s = (double *)sad_slot_window(t, slot) + ((const char *)o->p - root) / (int64_t)sizeof(double);
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
            /* g * x under the zero-factor convention: a zero g (an inner
             * product that never reaches the result) adds nothing, even
             * against an infinite or NaN entry of the other operand; a finite
             * nonzero g needs no select (the loop is unswitched on it) */
            const int ieee = g != 0.0 && g - g == 0.0;
            for (int64_t i = 0; i < m; ++i) {
                if (s[1] != NULL) {
                    const double x = p[2][i * b->o[2].ps[last]];
                    s[1][i * b->o[1].ss[last]] += ieee ? g * x : sad_chain(g, x);
                }
                if (s[2] != NULL) {
                    const double x = p[1][i * b->o[1].ps[last]];
                    s[2][i * b->o[2].ss[last]] += ieee ? g * x : sad_chain(g, x);
                }
            }
        }
    }
}
