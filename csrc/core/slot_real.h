/* slot_real.h -- the translation of a block's lazy shadows into memory
 * (slot.c), a template (real.h): included once per float type. */

/* Does operand k of b cover all of its slot, each element once, in order
 * (C order over b's shape, from the slot's start)? */
static int SAD_R(covers)(const sad_tape *t, const SAD_R(sad_block) *b, int k, const sad_slot *s)
{
    const SAD_R(sad_opnd) *o = &b->o[k];
    if (b->n != s->n || o->s != (sad_real *)sad_slot_window(t, o->slot))
        return 0;
    int64_t step = 1;
    for (int d = b->ndim - 1; d >= 0; --d) {
        if (o->ss[d] != step)
            return 0;
        step *= b->shape[d];
    }
    return 1;
}

/* Translate b's window addresses into memory, allocating slots the
 * sweep accumulates into.  assign[k] is set when operand k's slot is new and
 * b covers it whole: the sweep then stores its adjoint instead of adding it to
 * zeros (no zeroing pass, no read).  Returns 1, 0 when the output's slot was
 * never written (its adjoint is all zero: nothing to do), -1 when out of
 * memory. */
int SAD_R(sad_slot_resolve)(sad_tape *t, SAD_R(sad_block) *b, int need_output, int assign[3])
{
    for (int k = 0; k < 3; ++k) {
        SAD_R(sad_opnd) *o = &b->o[k];
        assign[k] = 0;
        if (o->slot == 0)
            continue;
        sad_slot *s = &t->slots[o->slot - 1];
        if (s->p == NULL) {
            if (k == 0 && need_output)
                return 0;
            assign[k] = k > 0 && SAD_R(covers)(t, b, k, s);
            s->p = take(t, memory_bytes(s->n, s->esize),
                        !assign[k] || memory_bytes(s->n, s->esize) > (size_t)(s->n * s->esize));
            if (s->p == NULL)
                return -1;
        }
        o->s = (sad_real *)s->p + (o->s - (sad_real *)sad_slot_window(t, o->slot));
    }
    return 1;
}

