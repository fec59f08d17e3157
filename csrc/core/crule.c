/* crule.c -- records of C custom rules (shadowad/rule.h).
 *
 * One record per call: the rule, the arguments' descriptors copied into tape
 * memory, the rule's own tape, and the bytes of the mutated arguments from
 * before the call.  Going backwards the record swaps those bytes in (so the
 * rule's reverse, and every earlier record, read memory as before the call)
 * and calls the reverse; going forwards it swaps them out again.  Nothing
 * here calls Python. */
#include <stdlib.h>
#include <string.h>

#include "sad.h"
#include "../../shadowad/include/shadowad/rule.h" /* the public header, one copy */

struct sad_crule {
    const sad_rule *rule;
    int32_t nargs, nmut;
    sad_rule_array *args;
    const int32_t *mut;  /* positions of the mutated arguments */
    double **saved;      /* per mutated argument: its elements, C order */
    void *rtape;         /* the rule's tape, owned by the rule */
    int64_t rtape_bytes;
};

enum { GATHER = 0, SWAP = 1, PUT = 2 };

static int64_t count(const sad_rule_array *a)
{
    int64_t n = 1;
    for (int d = 0; d < a->ndim; ++d)
        n *= a->shape[d];
    return n;
}

/* Moves array a's elements (C order) to, from or with buf. */
static void move(const sad_rule_array *a, double *buf, int how)
{
    const int64_t n = count(a);
    int64_t idx[SAD_CRULE_MAXDIM] = {0};
    char *p = (char *)a->data;
    for (int64_t k = 0; k < n; ++k) {
        double *e = (double *)p;
        if (how == GATHER)
            buf[k] = *e;
        else if (how == PUT)
            *e = buf[k];
        else {
            const double tmp = *e;
            *e = buf[k];
            buf[k] = tmp;
        }
        for (int d = a->ndim - 1; d >= 0; --d) {
            if (++idx[d] < a->shape[d]) {
                p += a->strides[d];
                break;
            }
            p -= (a->shape[d] - 1) * a->strides[d];
            idx[d] = 0;
        }
    }
}

static void move_all(const struct sad_crule *c, int how)
{
    for (int32_t j = 0; j < c->nmut; ++j)
        move(&c->args[c->mut[j]], c->saved[j], how);
}

/* Tape copies of the descriptors: shape and strides live in the blocks arena
 * (the caller's arrays are its own). */
static sad_rule_array *copy_args(sad_tape *t, int32_t nargs, const sad_arr *args,
                                 const sad_arr *shadows)
{
    sad_rule_array *out = sad_arena_alloc(&t->blocks, (size_t)nargs * sizeof(sad_rule_array));
    if (out == NULL)
        return NULL;
    for (int32_t k = 0; k < nargs; ++k) {
        const int nd = args[k].nd;
        int64_t *dims = sad_arena_alloc(&t->blocks, 3 * (size_t)(nd > 0 ? nd : 1) *
                                                        sizeof(int64_t));
        if (dims == NULL)
            return NULL;
        for (int d = 0; d < nd; ++d) {
            dims[d] = args[k].shape[d];
            dims[nd + d] = args[k].strides[d];
            dims[2 * nd + d] = shadows[k].data != NULL ? shadows[k].strides[d] : 0;
        }
        out[k].data = args[k].data;
        out[k].shadow = shadows[k].data;
        out[k].ndim = nd;
        out[k].reserved = 0;
        out[k].shape = dims;
        out[k].strides = dims + nd;
        out[k].shadow_strides = shadows[k].data != NULL ? dims + 2 * nd : NULL;
    }
    return out;
}

/* Fills descriptors without a tape (forward mode, plain calls). */
static void fill(sad_rule_array *out, int64_t *dims, int32_t nargs, const sad_arr *args,
                 const sad_arr *shadows)
{
    for (int32_t k = 0; k < nargs; ++k) {
        const int nd = args[k].nd;
        const int has = shadows != NULL && shadows[k].data != NULL;
        int64_t *sst = dims + (size_t)k * SAD_CRULE_MAXDIM;
        for (int d = 0; d < nd; ++d)
            sst[d] = has ? shadows[k].strides[d] : 0;
        out[k].data = args[k].data;
        out[k].shadow = has ? shadows[k].data : NULL;
        out[k].ndim = nd;
        out[k].reserved = 0;
        out[k].shape = args[k].shape;
        out[k].strides = args[k].strides;
        out[k].shadow_strides = has ? sst : NULL;
    }
}

int sad_crule_call(const void *rule, int tangent, int32_t nargs, const sad_arr *args,
                   const sad_arr *shadows)
{
    const sad_rule *r = rule;
    if (nargs > SAD_CRULE_MAXARGS)
        return SAD_TOO_MANY_DIMS;
    sad_rule_array a[SAD_CRULE_MAXARGS];
    int64_t dims[SAD_CRULE_MAXARGS * SAD_CRULE_MAXDIM];
    fill(a, dims, nargs, args, tangent ? shadows : NULL);
    return tangent ? r->tangent(r->user, nargs, a) : r->primal(r->user, nargs, a);
}

int sad_crule_adjoint(const void *rule, int32_t nargs, const sad_arr *work, const sad_arr *args,
                      const sad_arr *shadows, int *part)
{
    const sad_rule *r = rule;
    if (nargs > SAD_CRULE_MAXARGS)
        return SAD_TOO_MANY_DIMS;
    sad_rule_array a[SAD_CRULE_MAXARGS];
    int64_t dims[SAD_CRULE_MAXARGS * SAD_CRULE_MAXDIM];
    void *rtape = NULL;
    int64_t rtape_bytes = 0;
    *part = 0;
    if (r->augmented_primal != NULL) {
        fill(a, dims, nargs, work, NULL);
        const int rc = r->augmented_primal(r->user, nargs, a, &rtape, &rtape_bytes);
        if (rc != 0) {
            if (rtape != NULL && r->free_tape != NULL)
                r->free_tape(r->user, rtape);
            return rc;
        }
    }
    fill(a, dims, nargs, args, shadows);
    const int rc = r->reverse(r->user, nargs, a, rtape);
    if (rtape != NULL && r->free_tape != NULL)
        r->free_tape(r->user, rtape);
    if (rc != 0)
        *part = 1;
    return rc;
}

int sad_crule(sad_tape *t, const void *rule, int32_t nargs, const sad_arr *args,
              const sad_arr *shadows, int32_t nmut, const int32_t *mut, int *code)
{
    const sad_rule *r = rule;
    *code = 0;
    struct sad_crule *c = sad_arena_alloc(&t->blocks, sizeof(struct sad_crule));
    int32_t *m = c != NULL ? sad_arena_alloc(&t->blocks, (size_t)(nmut > 0 ? nmut : 1) *
                                                         sizeof(int32_t)) : NULL;
    double **saved = m != NULL ? sad_arena_alloc(&t->blocks, (size_t)(nmut > 0 ? nmut : 1) *
                                                                 sizeof(double *)) : NULL;
    if (saved == NULL)
        return sad_status(t, SAD_NOMEM);
    c->rule = r;
    c->nargs = nargs;
    c->nmut = nmut;
    c->mut = m;
    c->saved = saved;
    c->args = copy_args(t, nargs, args, shadows);
    if (c->args == NULL)
        return sad_status(t, SAD_NOMEM);
    for (int32_t j = 0; j < nmut; ++j) {
        m[j] = mut[j];
        const int64_t n = count(&c->args[mut[j]]);
        saved[j] = sad_arena_alloc(&t->saves, (size_t)(n > 0 ? n : 1) * sizeof(double));
        if (saved[j] == NULL)
            return sad_status(t, SAD_NOMEM);
        move(&c->args[mut[j]], saved[j], GATHER);
    }
    sad_record *rec = sad_push_record(t, SAD_CRULE, 0);
    if (rec == NULL)
        return sad_status(t, SAD_NOMEM);
    c->rtape = NULL;
    c->rtape_bytes = 0;
    int rc = r->augmented_primal != NULL
                 ? r->augmented_primal(r->user, nargs, c->args, &c->rtape, &c->rtape_bytes)
                 : r->primal(r->user, nargs, c->args);
    if (rc != 0) {
        if (c->rtape != NULL && r->free_tape != NULL)
            r->free_tape(r->user, c->rtape);
        move_all(c, PUT);
        --t->n;
        *code = rc;
        return SAD_RULE_FAILED;
    }
    if (c->rtape_bytes < 0)
        c->rtape_bytes = 0;
    t->rule_bytes += c->rtape_bytes;
    rec->u.c.c = c;
    return SAD_OK;
}

/* Record r going in direction dir (tape.c step); returns 0, or 3 when the
 * rule's reverse failed (its code in the tape; memory as before the step). */
int sad_crule_step(sad_tape *t, sad_record *r, int dir, int64_t i)
{
    struct sad_crule *c = r->u.c.c;
    if (dir == SAD_DIR_REDO_LAST)
        move_all(c, PUT);
    else
        move_all(c, SWAP);
    if (dir != SAD_DIR_REVERSE)
        return 0;
    const sad_rule *rule = c->rule;
    const int rc = rule->reverse(rule->user, c->nargs, c->args, c->rtape);
    if (rc != 0) {
        move_all(c, SWAP);
        t->rule_error = rc;
        t->rule_error_rec = i;
        return 3;
    }
    return 0;
}

void sad_crule_release(sad_tape *t, sad_record *r)
{
    struct sad_crule *c = r->u.c.c;
    if (c->rtape != NULL && c->rule->free_tape != NULL)
        c->rule->free_tape(c->rule->user, c->rtape);
    c->rtape = NULL;
    t->rule_bytes -= c->rtape_bytes;
    c->rtape_bytes = 0;
}

int64_t sad_crule_saved_bytes(const sad_record *r)
{
    const struct sad_crule *c = r->u.c.c;
    int64_t n = 0;
    for (int32_t j = 0; j < c->nmut; ++j)
        n += count(&c->args[c->mut[j]]);
    return n * (int64_t)sizeof(double);
}

/* Does record r write primal bytes in [lo, hi)? */
int sad_crule_writes(const sad_record *r, intptr_t lo, intptr_t hi)
{
    const struct sad_crule *c = r->u.c.c;
    for (int32_t j = 0; j < c->nmut; ++j) {
        const sad_rule_array *a = &c->args[c->mut[j]];
        intptr_t wlo = (intptr_t)a->data, whi = (intptr_t)a->data + 8;
        if (count(a) == 0)
            continue;
        for (int d = 0; d < a->ndim; ++d) {
            const intptr_t ext = (intptr_t)((a->shape[d] - 1) * a->strides[d]);
            if (ext < 0)
                wlo += ext;
            else
                whi += ext;
        }
        if (wlo < hi && lo < whi)
            return 1;
    }
    return 0;
}

int sad_tape_rule_error(const sad_tape *t, int64_t *rec)
{
    *rec = t->rule_error_rec;
    return t->rule_error;
}
