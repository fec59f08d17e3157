/* fuse.c -- the reverse sweep of a run of elementwise records, block by block.
 *
 * sum(-log(X) - data/X) records five operations over the same n elements.
 * Swept one record at a time, every record streams its adjoints through
 * memory, and for large n that traffic, not arithmetic, is the cost.  A run of
 * consecutive elementwise records over the same n contiguous elements is swept
 * FUSE_BLOCK elements at a time instead, each record of the run on one block
 * before the next block: what a block passes from record to record stays in
 * cache, and the adjoint of a temporary created and consumed inside the run
 * only ever exists one block at a time (no memory, no traffic).
 *
 * The result is the same, bit for bit, as record by record: every element sees
 * the same operations in the same order.  That holds when records of the run
 * share memory only element for element (the same range, stride 1), only
 * read it, or share it shifted the right way (see admit); a run stops before
 * a record that would break this.
 */
#include <math.h>
#include <stdlib.h>

#include "sad.h"

enum { FUSE_BLOCK = 2048, FUSE_MAX = 32, FUSE_MIN_N = 4 * FUSE_BLOCK };

enum { READS, WRITES, ADDS };

/* Memory one record touches: bytes [lo, hi) of real memory (space 0) or of
 * lazy slot `space`, which has no memory yet. */
typedef struct region {
    int64_t space;
    intptr_t lo, hi;
    int kind, unit; /* unit: stride 1 over the run's n elements */
} region;

typedef struct run {
    const sad_tape *t;
    int64_t n;
    int len, nreg;
    region reg[FUSE_MAX * 6];
} run;

/* An elementwise record, or a sum (whose reverse spreads a scalar's adjoint
 * over its input), over n elements with unit or zero strides, of float64
 * arrays (float32 records are swept one by one). */
static int fusable(const sad_record *r, int64_t n)
{
    const int ew = r->op < SAD_N_EW && (r->flags & SAD_F_BLOCK);
    if (!(ew || r->op == SAD_SUM) || (r->flags & (SAD_F_LANES | SAD_F_F32)) ||
        r->u.a.scratch != NULL)
        return 0;
    return r->u.a.b->n == n && sad_block_one_run(r->u.a.b);
}

static void add_region(run *u, const double *base, int64_t stride, int64_t slot, int kind)
{
    region *g = &u->reg[u->nreg++];
    const sad_slot *s = slot ? &u->t->slots[slot - 1] : NULL;
    g->space = 0;
    g->lo = (intptr_t)base;
    if (s != NULL && s->p == NULL) { /* offsets within the slot */
        g->space = slot;
        g->lo = (intptr_t)base - (intptr_t)sad_slot_window(u->t, slot);
    } else if (s != NULL) { /* allocated: where the sweep will really touch */
        g->lo = (intptr_t)((double *)s->p + (base - sad_slot_window(u->t, slot)));
    }
    g->unit = stride == 1;
    g->hi = g->lo + (intptr_t)((stride == 1 ? u->n : 1) * (int64_t)sizeof(double));
    g->kind = kind;
}

/* Append record r's regions; refuse it (0) if one of them meets a region of an
 * earlier record of the run in a way that would reorder what an element sees.
 *
 * Two stride-1 regions of one space, the earlier record's starting at byte a
 * and r's at byte b, touch element e at iterations (e - a)/8 and (e - b)/8.
 * Blocks run in iteration order, each record of the run within a block in
 * sweep order, so the earlier record reaches e first exactly when a >= b:
 * then e sees the two in sweep order even when the regions are shifted
 * against each other (the heat equation's u[2:], u[1:-1], u[:-2] in the right
 * order; a == b is the element-for-element case). */
static int admit(run *u, const sad_record *r)
{
    const sad_block *b = r->u.a.b;
    double cx = 0.0, cy = 0.0;
    const int reads = r->op != SAD_SUM &&
                      (!sad_ew_linear(r, &cx, &cy) || !isfinite(cx) || !isfinite(cy));
    const int first = u->nreg;
    for (int k = 0; k < 3; ++k) {
        const sad_opnd *o = &b->o[k];
        if (o->p != NULL && k == 0 && r->u.a.saved != NULL)
            add_region(u, o->p, o->ps[0], 0, WRITES);
        else if (o->p != NULL && reads)
            add_region(u, o->p, o->ps[0], 0, READS);
        if (o->s != NULL)
            add_region(u, o->s, o->ss[0], o->slot, k == 0 ? WRITES : ADDS);
    }
    for (int a = first; a < u->nreg; ++a)
        for (int c = 0; c < first; ++c) {
            const region *x = &u->reg[a], *y = &u->reg[c];
            if (x->space != y->space || x->hi <= y->lo || y->hi <= x->lo)
                continue;
            if (x->kind == READS && y->kind == READS)
                continue;
            if (x->unit && y->unit && y->lo >= x->lo)
                continue;
            u->nreg = first;
            return 0;
        }
    u->len++;
    return 1;
}

/* A slot whose every use in the run is whole and element for element, and
 * which the run itself creates: its adjoint can live one block at a time. */
static int internal(const run *u, const sad_tape *t, int64_t top, int64_t slot)
{
    const int64_t bytes = u->n * (int64_t)sizeof(double);
    if (t->slots[slot - 1].n != u->n)
        return 0;
    for (int g = 0; g < u->nreg; ++g) {
        const region *x = &u->reg[g];
        if (x->space == slot && !(x->unit && x->lo == 0 && x->hi == bytes))
            return 0;
    }
    for (int q = 0; q < u->len; ++q) {
        const sad_record *r = &t->rec[top - q];
        if (r->u.a.b->o[0].slot == slot && (r->flags & SAD_F_FRESH))
            return 1;
    }
    return 0;
}

typedef struct member {
    sad_block b;            /* resolved, over the whole run */
    int assign[3], live;
    int scratch[3];         /* operand's shadow is internal scratch j + 1 (0: not) */
} member;

/* Which block of scratch each internal slot uses (phys[j] for slot j), and how
 * many blocks there are.  A slot's adjoint is live from its first use in
 * sweep order (a consumer adds into it) to the record that created it (which
 * reads it last): slots whose lives do not overlap share a block, so a long
 * run's temporaries need a few blocks, not one each, and stay in cache. */
static int share_scratch(const member *m, int len, int ninner, int phys[])
{
    int first[FUSE_MAX], last[FUSE_MAX], busy[FUSE_MAX] = {0}, nphys = 0;
    for (int j = 0; j < ninner; ++j)
        first[j] = last[j] = -1;
    for (int q = 0; q < len; ++q)
        for (int k = 0; k < 3; ++k)
            if (m[q].scratch[k]) {
                const int j = m[q].scratch[k] - 1;
                if (first[j] < 0)
                    first[j] = q;
                last[j] = q;
            }
    for (int q = 0; q < len; ++q) {
        for (int j = 0; j < ninner; ++j) /* lives starting here take a free block */
            if (first[j] == q) {
                int b = 0;
                while (b < nphys && busy[b])
                    ++b;
                if (b == nphys)
                    ++nphys;
                busy[b] = 1;
                phys[j] = b;
            }
        for (int j = 0; j < ninner; ++j) /* and those ending here free theirs after q */
            if (last[j] == q)
                busy[phys[j]] = 0;
    }
    return nphys;
}

/* Sweep records top, top - 1, ... as one run if at least two fuse: returns how
 * many records were swept (0: none, sweep record top alone; -1: out of memory
 * for a lazy shadow, records untouched). */
int64_t sad_fuse_reverse(sad_tape *t, int64_t top, int64_t floor)
{
    const sad_record *r0 = &t->rec[top];
    if (!(r0->op < SAD_N_EW && (r0->flags & SAD_F_BLOCK)) && r0->op != SAD_SUM)
        return 0;
    run u;
    u.t = t;
    u.n = r0->u.a.b->n;
    u.len = u.nreg = 0;
    if (u.n < FUSE_MIN_N || !fusable(r0, u.n))
        return 0;
    while (u.len < FUSE_MAX && top - u.len >= 0 && fusable(&t->rec[top - u.len], u.n) &&
           admit(&u, &t->rec[top - u.len]))
        ;
    if (u.len < 2)
        return 0;

    /* the slots whose adjoints live one block at a time */
    int64_t inner[FUSE_MAX];
    int ninner = 0;
    for (int g = 0; g < u.nreg; ++g) {
        int64_t slot = u.reg[g].space, seen = 0;
        for (int j = 0; j < ninner && !seen; ++j)
            seen = inner[j] == slot;
        if (slot != 0 && !seen && ninner < FUSE_MAX && internal(&u, t, top, slot))
            inner[ninner++] = slot;
    }
    member *m = malloc((size_t)u.len * sizeof(member));
    if (m == NULL)
        return 0; /* sweep record by record instead */

    /* resolve the other slots in sweep order, as record by record would */
    int touched[FUSE_MAX] = {0};
    for (int q = 0; q < u.len; ++q) {
        member *e = &m[q];
        e->b = *t->rec[top - q].u.a.b;
        int64_t held[3];
        for (int k = 0; k < 3; ++k) {
            held[k] = e->b.o[k].slot;
            e->scratch[k] = 0;
            for (int j = 0; j < ninner; ++j)
                if (held[k] == inner[j]) {
                    e->scratch[k] = j + 1;
                    e->b.o[k].slot = 0;
                }
        }
        /* a temporary nobody used has a zero adjoint: as record by record,
         * nothing to do and no input slot is allocated */
        e->live = e->scratch[0] ? touched[e->scratch[0] - 1] : 1;
        if (e->live)
            e->live = sad_slot_resolve(t, &e->b, 1, e->assign);
        if (e->live < 0) {
            free(m);
            return -1;
        }
        /* the first use of a scratch covers it whole: it stores, the later
         * ones add (so scratch is never zeroed) */
        for (int k = 1; k < 3 && e->live; ++k)
            if (e->scratch[k]) {
                e->assign[k] = !touched[e->scratch[k] - 1];
                touched[e->scratch[k] - 1] = 1;
            }
        for (int k = 0; k < 3; ++k)
            e->b.o[k].slot = held[k];
    }

    int phys[FUSE_MAX];
    const int nphys = share_scratch(m, u.len, ninner, phys);
    double *scratch = malloc(((size_t)nphys + 1) * FUSE_BLOCK * sizeof(double));
    if (scratch == NULL) {
        free(m);
        return 0;
    }

    for (int64_t lo = 0; lo < u.n; lo += FUSE_BLOCK) {
        const int64_t c = u.n - lo < FUSE_BLOCK ? u.n - lo : FUSE_BLOCK;
        for (int q = 0; q < u.len; ++q) {
            const sad_record *r = &t->rec[top - q];
            sad_block piece = m[q].b;
            piece.shape[0] = piece.n = c;
            /* below the floor, z's primal stays as it is (see tape.c) */
            double *saved = r->u.a.saved != NULL && top - q >= floor ? r->u.a.saved + lo : NULL;
            if (!m[q].live) { /* only its primal to restore */
                if (saved != NULL) {
                    piece.o[0].p += lo;
                    sad_block_swap(&piece, saved);
                }
                continue;
            }
            for (int k = 0; k < 3; ++k) {
                sad_opnd *o = &piece.o[k];
                if (o->p != NULL && o->ps[0] == 1)
                    o->p += lo;
                if (m[q].scratch[k])
                    o->s = scratch + phys[m[q].scratch[k] - 1] * FUSE_BLOCK;
                else if (o->s != NULL && o->ss[0] == 1)
                    o->s += lo;
            }
            if (r->op == SAD_SUM)
                sad_reduce_reverse_block(r, &piece, m[q].assign);
            else
                sad_ew_reverse_block(r, &piece, saved, m[q].assign);
        }
    }

    for (int q = 0; q < u.len; ++q) { /* dead temporaries: their memory is reusable */
        const sad_record *r = &t->rec[top - q];
        if ((r->flags & SAD_F_FRESH) && m[q].live && !m[q].scratch[0] && r->u.a.b->o[0].slot)
            sad_slot_release(t, r->u.a.b->o[0].slot);
    }
    free(m);
    free(scratch);
    t->fused += u.len;
    return u.len;
}
