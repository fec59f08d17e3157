/* fuse_real.h -- the fused sweep of a run of elementwise records (fuse.c),
 * a template (real.h): included once per float type. */

/* An elementwise record, or a sum (whose reverse spreads a scalar's adjoint
 * over its input; float64 only), over n elements with unit or zero strides,
 * of the instance's float type: a run is of one type. */
static int SAD_R(fusable)(const sad_record *r, int64_t n)
{
    const int ew = r->op < SAD_N_EW && (r->flags & SAD_F_BLOCK);
    if (!(ew || (r->op == SAD_SUM && !SAD_IS_F32)) || (r->flags & SAD_F_LANES) ||
        ((r->flags & SAD_F_F32) != 0) != SAD_IS_F32 || r->u.SAD_R(a).scratch != NULL)
        return 0;
    const SAD_R(sad_block) *b = r->u.SAD_R(a).b;
#if SAD_IS_F32
    /* a broadcast input's adjoint is a sum over the whole record, added once
     * (ew_reverse_real.h): swept a piece at a time it would round per piece */
    for (int k = 1; k < 3; ++k)
        if (b->o[k].s != NULL && b->o[k].ss[0] == 0 && b->n > 1)
            return 0;
#endif
    return b->n == n && SAD_R(sad_block_one_run)(b);
}

static void SAD_R(add_region)(run *u, const sad_real *base, int64_t stride, int64_t slot, int kind)
{
    region *g = &u->reg[u->nreg++];
    const sad_slot *s = slot ? &u->t->slots[slot - 1] : NULL;
    g->space = 0;
    g->lo = (intptr_t)base;
    if (s != NULL && s->p == NULL) { /* offsets within the slot */
        g->space = slot;
        g->lo = (intptr_t)base - (intptr_t)sad_slot_window(u->t, slot);
    } else if (s != NULL) { /* allocated: where the sweep will really touch */
        const sad_real *window = (const sad_real *)sad_slot_window(u->t, slot);
        g->lo = (intptr_t)((sad_real *)s->p + (base - window));
    }
    g->unit = stride == 1;
    g->hi = g->lo + (intptr_t)((stride == 1 ? u->n : 1) * (int64_t)sizeof(sad_real));
    g->kind = kind;
}

/* Append record r's regions; refuse it (0) if one of them meets a region of an
 * earlier record of the run in a way that would reorder what an element sees.
 *
 * Two stride-1 regions of one space, the earlier record's starting at byte a
 * and r's at byte b, touch element e at iterations (e - a)/size and
 * (e - b)/size (size: an element's bytes).  Blocks run in iteration order, each record of the run within a block in
 * sweep order, so the earlier record reaches e first exactly when a >= b:
 * then e sees the two in sweep order even when the regions are shifted
 * against each other (the heat equation's u[2:], u[1:-1], u[:-2] in the right
 * order; a == b is the element-for-element case). */
static int SAD_R(admit)(run *u, const sad_record *r)
{
    const SAD_R(sad_block) *b = r->u.SAD_R(a).b;
    sad_real cx = 0, cy = 0;
    const int reads = r->op != SAD_SUM &&
                      (!SAD_R(sad_ew_linear)(r, &cx, &cy) || !isfinite(cx) || !isfinite(cy));
    const int first = u->nreg;
    for (int k = 0; k < 3; ++k) {
        const SAD_R(sad_opnd) *o = &b->o[k];
        if (o->p != NULL && k == 0 && r->u.SAD_R(a).saved != NULL)
            SAD_R(add_region)(u, o->p, o->ps[0], 0, WRITES);
        else if (o->p != NULL && reads)
            SAD_R(add_region)(u, o->p, o->ps[0], 0, READS);
        if (o->s != NULL)
            SAD_R(add_region)(u, o->s, o->ss[0], o->slot, k == 0 ? WRITES : ADDS);
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
static int SAD_R(internal)(const run *u, const sad_tape *t, int64_t top, int64_t slot)
{
    const int64_t bytes = u->n * (int64_t)sizeof(sad_real);
    if (t->slots[slot - 1].n != u->n)
        return 0;
    for (int g = 0; g < u->nreg; ++g) {
        const region *x = &u->reg[g];
        if (x->space == slot && !(x->unit && x->lo == 0 && x->hi == bytes))
            return 0;
    }
    for (int q = 0; q < u->len; ++q) {
        const sad_record *r = &t->rec[top - q];
        if (r->u.SAD_R(a).b->o[0].slot == slot && (r->flags & SAD_F_FRESH))
            return 1;
    }
    return 0;
}

typedef struct SAD_R(member) {
    SAD_R(sad_block) b;            /* resolved, over the whole run */
    int assign[3], live;
    int scratch[3];         /* operand's shadow is internal scratch j + 1 (0: not) */
} SAD_R(member);

/* Which block of scratch each internal slot uses (phys[j] for slot j), and how
 * many blocks there are.  A slot's adjoint is live from its first use in
 * sweep order (a consumer adds into it) to the record that created it (which
 * reads it last): slots whose lives do not overlap share a block, so a long
 * run's temporaries need a few blocks, not one each, and stay in cache. */
static int SAD_R(share_scratch)(const SAD_R(member) *m, int len, int ninner, int phys[])
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
static int64_t SAD_R(fuse_run)(sad_tape *t, int64_t top, int64_t floor, int64_t lo)
{
    const sad_record *r0 = &t->rec[top];
    if (!(r0->op < SAD_N_EW && (r0->flags & SAD_F_BLOCK)) && r0->op != SAD_SUM)
        return 0;
    run u;
    u.t = t;
    u.n = r0->u.SAD_R(a).b->n;
    u.len = u.nreg = 0;
    if (u.n < FUSE_MIN_N || !SAD_R(fusable)(r0, u.n))
        return 0;
    while (u.len < FUSE_MAX && top - u.len >= lo && SAD_R(fusable)(&t->rec[top - u.len], u.n) &&
           SAD_R(admit)(&u, &t->rec[top - u.len]))
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
        if (slot != 0 && !seen && ninner < FUSE_MAX && SAD_R(internal)(&u, t, top, slot))
            inner[ninner++] = slot;
    }
    SAD_R(member) *m = malloc((size_t)u.len * sizeof(SAD_R(member)));
    if (m == NULL)
        return 0; /* sweep record by record instead */

    /* resolve the other slots in sweep order, as record by record would */
    int touched[FUSE_MAX] = {0};
    for (int q = 0; q < u.len; ++q) {
        SAD_R(member) *e = &m[q];
        e->b = *t->rec[top - q].u.SAD_R(a).b;
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
            e->live = SAD_R(sad_slot_resolve)(t, &e->b, 1, e->assign);
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
    const int nphys = SAD_R(share_scratch)(m, u.len, ninner, phys);
    sad_real *scratch = malloc(((size_t)nphys + 1) * FUSE_BLOCK * sizeof(sad_real));
    if (scratch == NULL) {
        free(m);
        return 0;
    }

    for (int64_t lo = 0; lo < u.n; lo += FUSE_BLOCK) {
        const int64_t c = u.n - lo < FUSE_BLOCK ? u.n - lo : FUSE_BLOCK;
        for (int q = 0; q < u.len; ++q) {
            const sad_record *r = &t->rec[top - q];
            SAD_R(sad_block) piece = m[q].b;
            piece.shape[0] = piece.n = c;
            /* below the floor, z's primal stays as it is (see tape.c) */
            sad_real *saved = r->u.SAD_R(a).saved != NULL && top - q >= floor ? r->u.SAD_R(a).saved + lo : NULL;
            if (!m[q].live) { /* only its primal to restore */
                if (saved != NULL) {
                    piece.o[0].p += lo;
                    SAD_R(sad_block_swap)(&piece, saved);
                }
                continue;
            }
            for (int k = 0; k < 3; ++k) {
                SAD_R(sad_opnd) *o = &piece.o[k];
                if (o->p != NULL && o->ps[0] == 1)
                    o->p += lo;
                if (m[q].scratch[k])
                    o->s = scratch + phys[m[q].scratch[k] - 1] * FUSE_BLOCK;
                else if (o->s != NULL && o->ss[0] == 1)
                    o->s += lo;
            }
#if !SAD_IS_F32
            if (r->op == SAD_SUM) {
                sad_reduce_reverse_block(r, &piece, m[q].assign);
                continue;
            }
#endif
            /* (never fails here: records with a broadcast sum are not fused) */
            SAD_R(sad_ew_reverse_block)(r, &piece, saved, m[q].assign);
        }
    }

    for (int q = 0; q < u.len; ++q) { /* dead temporaries: their memory is reusable */
        const sad_record *r = &t->rec[top - q];
        if ((r->flags & SAD_F_FRESH) && m[q].live && !m[q].scratch[0] && r->u.SAD_R(a).b->o[0].slot)
            sad_slot_release(t, r->u.SAD_R(a).b->o[0].slot);
    }
    free(m);
    free(scratch);
    t->fused += u.len;
    return u.len;
}
