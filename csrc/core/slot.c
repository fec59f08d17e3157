/* slot.c -- lazy shadows of large temporaries (see sad_slot in sad.h). */
#include <stdlib.h>
#include <string.h>

#include "sad.h"

/* Fake addresses: slot k's memory seems to start at k << 44, far apart for
 * every slot, so recording compares addresses as usual.  Nothing ever reads
 * through a fake address: the sweep translates it first. */
double *sad_slot_fake(int64_t slot) { return (double *)((uintptr_t)slot << 44); }

int64_t sad_slot_new(sad_tape *t, intptr_t z)
{
    if (t->nslots == t->capslots) {
        int64_t cap = t->capslots ? 2 * t->capslots : 64;
        sad_slot *s = realloc(t->slots, (size_t)cap * sizeof(sad_slot));
        if (s == NULL)
            return 0;
        t->slots = s;
        t->capslots = cap;
    }
    sad_arr a = sad_arr_of(z);
    int64_t n = 1;
    for (int d = 0; d < a.nd; ++d)
        n *= a.shape[d];
    sad_slot *s = &t->slots[t->nslots++];
    s->p = NULL;
    s->n = n;
    s->root = (intptr_t)a.data;
    s->external = 0;
    return t->nslots;
}

intptr_t sad_slot_memory(const sad_tape *t, int64_t slot)
{
    return (intptr_t)t->slots[slot - 1].p;
}

void sad_slot_bind(sad_tape *t, int64_t slot, intptr_t zs)
{
    sad_slot *s = &t->slots[slot - 1];
    s->p = sad_arr_of(zs).data;
    s->external = 1;
}

/* Memory for n doubles, zeroed unless the caller overwrites all of it. */
static double *take(sad_tape *t, int64_t n, int zero)
{
    for (sad_free_block **f = &t->free_blocks; *f != NULL; f = &(*f)->next)
        if ((*f)->n == n) {
            sad_free_block *b = *f;
            *f = b->next;
            if (zero)
                memset(b, 0, (size_t)n * sizeof(double));
            return (double *)b;
        }
    double *p = zero ? calloc((size_t)n, sizeof(double)) : malloc((size_t)n * sizeof(double));
    if (p != NULL)
        t->slot_bytes += n * (int64_t)sizeof(double);
    return p;
}

void sad_slot_release(sad_tape *t, int64_t slot)
{
    sad_slot *s = &t->slots[slot - 1];
    if (s->p == NULL || s->external)
        return;
    sad_free_block *b = (sad_free_block *)s->p;
    b->n = s->n < 2 ? 2 : s->n;
    b->next = t->free_blocks;
    t->free_blocks = b;
    s->p = NULL;
}

/* Does operand k of b cover all of its slot, each element once, in order
 * (C order over b's shape, from the slot's start)? */
static int covers(const sad_block *b, int k, const sad_slot *s)
{
    const sad_opnd *o = &b->o[k];
    if (b->n != s->n || o->s != sad_slot_fake(o->slot))
        return 0;
    int64_t step = 1;
    for (int d = b->ndim - 1; d >= 0; --d) {
        if (o->ss[d] != step)
            return 0;
        step *= b->shape[d];
    }
    return 1;
}

/* Translate b's fake shadow addresses into memory, allocating slots the
 * sweep accumulates into.  assign[k] is set when operand k's slot is new and
 * b covers it whole: the sweep then stores its adjoint instead of adding it to
 * zeros (no zeroing pass, no read).  Returns 1, 0 when the output's slot was
 * never written (its adjoint is all zero: nothing to do), -1 when out of
 * memory. */
int sad_slot_resolve(sad_tape *t, sad_block *b, int need_output, int assign[3])
{
    for (int k = 0; k < 3; ++k) {
        sad_opnd *o = &b->o[k];
        assign[k] = 0;
        if (o->slot == 0)
            continue;
        sad_slot *s = &t->slots[o->slot - 1];
        if (s->p == NULL) {
            if (k == 0 && need_output)
                return 0;
            assign[k] = k > 0 && covers(b, k, s);
            s->p = take(t, s->n < 2 ? 2 : s->n, !assign[k] || s->n < 2);
            if (s->p == NULL)
                return -1;
        }
        o->s = s->p + (o->s - sad_slot_fake(o->slot));
    }
    return 1;
}

void sad_slots_free(sad_tape *t)
{
    for (int64_t i = 0; i < t->nslots; ++i)
        if (!t->slots[i].external)
            free(t->slots[i].p);
    while (t->free_blocks != NULL) {
        sad_free_block *b = t->free_blocks;
        t->free_blocks = b->next;
        free(b);
    }
    free(t->slots);
}
