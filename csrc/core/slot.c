/* slot.c -- lazy shadows of large temporaries (see sad_slot in sad.h). */
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS, MAP_NORESERVE */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "sad.h"

/* Windows: each slot gets the next bytes of a range of address space the
 * tape reserves inaccessible (PROT_NONE: no memory behind it, and no other
 * mapping can take it), as many as its shadow would take.  Records address
 * a lazy shadow inside its window, so recording compares addresses as usual
 * and two shadows meet exactly when they do; nothing reads through a window
 * (the sweep translates it to the slot's memory first).  The range and the
 * slot table are bounded: past either bound sad_slot_new says so
 * (SAD_SLOTS_FULL) instead of handing out an address that could alias. */
double *sad_slot_window(const sad_tape *t, int64_t slot)
{
    return (double *)(t->slot_space + t->slots[slot - 1].window);
}

void sad_tape_set_slot_limits(sad_tape *t, int64_t max_slots, int64_t max_bytes)
{
    t->max_slots = max_slots > 0 && max_slots < SAD_SLOTS_MAX ? max_slots : SAD_SLOTS_MAX;
    t->max_slot_space = max_bytes > 0 && (size_t)max_bytes < SAD_SLOT_SPACE ? (size_t)max_bytes
                                                                           : SAD_SLOT_SPACE;
}

/* Reserve the windows' range (once): as much of the bound as the system
 * grants, halving down to 1 GiB (or the bound, if smaller).  0, or -1. */
static int reserve(sad_tape *t)
{
    if (t->max_slots == 0)
        sad_tape_set_slot_limits(t, 0, 0);
    const size_t least = t->max_slot_space < ((size_t)1 << 30) ? t->max_slot_space
                                                                : (size_t)1 << 30;
    for (size_t bytes = t->max_slot_space; bytes >= least && bytes > 0; bytes /= 2) {
        void *p = mmap(NULL, bytes, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (p != MAP_FAILED) {
            t->slot_space = p;
            t->slot_space_bytes = bytes;
            return 0;
        }
    }
    return -1;
}

int64_t sad_slot_new(sad_tape *t, const sad_arr *z)
{
    if (t->slot_space == NULL && reserve(t) < 0)
        return SAD_SLOTS_FULL;
    const sad_arr a = *z;
    int64_t n = 1;
    for (int d = 0; d < a.nd; ++d)
        n *= a.shape[d];
    /* a window of the shadow's bytes (at least 2 doubles, as its memory),
     * rounded up to a cache line */
    const size_t bytes = (((size_t)(n < 2 ? 2 : n) * sizeof(double)) + 63) & ~(size_t)63;
    if (t->nslots >= t->max_slots || bytes > t->slot_space_bytes - t->slot_space_used)
        return SAD_SLOTS_FULL;
    if (t->nslots == t->capslots) {
        int64_t cap = t->capslots ? 2 * t->capslots : 64;
        sad_slot *s = realloc(t->slots, (size_t)cap * sizeof(sad_slot));
        if (s == NULL)
            return SAD_NOMEM;
        t->slots = s;
        t->capslots = cap;
    }
    sad_slot *s = &t->slots[t->nslots++];
    s->p = NULL;
    s->n = n;
    s->root = (intptr_t)a.data;
    s->window = t->slot_space_used;
    s->external = 0;
    t->slot_space_used += bytes;
    return t->nslots;
}

int sad_slot_valid(const sad_tape *t, int64_t slot)
{
    return slot > 0 && slot <= t->nslots;
}

static int64_t size_of(const sad_arr *a)
{
    int64_t n = 1;
    for (int d = 0; d < a->nd; ++d)
        n *= a->shape[d];
    return n;
}

int sad_slot_holds(const sad_tape *t, int64_t slot, const sad_arr *z)
{
    if (!sad_slot_valid(t, slot))
        return 0;
    const sad_slot *s = &t->slots[slot - 1];
    const sad_arr a = *z;
    if (size_of(&a) == 0)
        return 1;
    /* the byte range z's elements span, against the temporary's */
    int64_t lo = 0, hi = 0;
    for (int d = 0; d < a.nd; ++d) {
        const int64_t step = a.strides[d] * (a.shape[d] - 1);
        if (step < 0)
            lo += step;
        else
            hi += step;
    }
    const int64_t off = (int64_t)((uintptr_t)a.data - (uintptr_t)s->root);
    return off + lo >= 0 && off + hi + (int64_t)sizeof(double) <= s->n * (int64_t)sizeof(double);
}

intptr_t sad_slot_memory(const sad_tape *t, int64_t slot, int64_t n)
{
    if (!sad_slot_valid(t, slot) || t->slots[slot - 1].n != n)
        return SAD_BAD_SLOT;
    return (intptr_t)t->slots[slot - 1].p;
}

int sad_slot_bind(sad_tape *t, int64_t slot, const sad_arr *zs)
{
    if (!sad_slot_valid(t, slot))
        return SAD_BAD_SLOT;
    const sad_arr a = *zs;
    sad_slot *s = &t->slots[slot - 1];
    if (size_of(&a) != s->n)
        return SAD_BAD_SLOT;
    s->p = a.data;
    s->external = 1;
    return SAD_OK;
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

int sad_slot_release(sad_tape *t, int64_t slot)
{
    if (!sad_slot_valid(t, slot))
        return SAD_BAD_SLOT;
    sad_slot *s = &t->slots[slot - 1];
    if (s->p == NULL || s->external)
        return SAD_OK;
    sad_free_block *b = (sad_free_block *)s->p;
    b->n = s->n < 2 ? 2 : s->n;
    b->next = t->free_blocks;
    t->free_blocks = b;
    s->p = NULL;
    return SAD_OK;
}

/* Does operand k of b cover all of its slot, each element once, in order
 * (C order over b's shape, from the slot's start)? */
static int covers(const sad_tape *t, const sad_block *b, int k, const sad_slot *s)
{
    const sad_opnd *o = &b->o[k];
    if (b->n != s->n || o->s != sad_slot_window(t, o->slot))
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
            assign[k] = k > 0 && covers(t, b, k, s);
            s->p = take(t, s->n < 2 ? 2 : s->n, !assign[k] || s->n < 2);
            if (s->p == NULL)
                return -1;
        }
        o->s = s->p + (o->s - sad_slot_window(t, o->slot));
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
    if (t->slot_space != NULL)
        munmap(t->slot_space, t->slot_space_bytes);
}
