/* ew_reverse.c -- the reverse sweep of elementwise records: linear records
 * by constant factors, the general case through the partials, and adjoints
 * passed straight through a record (sad_ew_reverse_through/summed). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sad.h"

/* The sweep, once for float64 records and once for float32 ones (SAD_F_F32). */
#define SAD_FLOAT 64
#include "real.h"
#include "ew_reverse_real.h"
#include "real_end.h"
#define SAD_FLOAT 32
#include "real.h"
#include "ew_reverse_real.h"
#include "real_end.h"

/* The shortcuts below take float64 records only. */

/* Is r a fresh elementwise record whose output is lazy slot `slot`, which no
 * record has written yet? */
static int fresh_unwritten(const sad_tape *t, const sad_record *r, int64_t slot)
{
    if (!(r->op < SAD_N_EW && (r->flags & SAD_F_BLOCK) && (r->flags & SAD_F_FRESH)) ||
        (r->flags & (SAD_F_LANES | SAD_F_F32)) || r->u.a.saved != NULL || r->u.a.scratch != NULL)
        return 0;
    return slot > 0 && r->u.a.b->o[0].slot == slot && t->slots[slot - 1].p == NULL;
}

/* Can record r's reverse read its output's adjoint from other memory laid
 * out over the output's shape: such a record, over one contiguous run
 * (unit or zero strides)? */
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

int sad_ew_reverse_through(sad_tape *t, int64_t i, int64_t slot, const sad_arr *g)
{
    if (i < 0 || i >= t->n || !through_ok(t, &t->rec[i], slot))
        return SAD_TOO_MANY_DIMS;
    const sad_record *r = &t->rec[i];
    const sad_arr ga = *g;
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
                          const sad_arr *g)
{
    if (i < 0 || i >= t->n || !fresh_unwritten(t, &t->rec[i], slot))
        return SAD_TOO_MANY_DIMS;
    const sad_record *r = &t->rec[i];
    const sad_block *b = r->u.a.b;
    const sad_arr ga = *g;
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

