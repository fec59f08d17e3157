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
void *sad_slot_window(const sad_tape *t, int64_t slot)
{
    return t->slot_space + t->slots[slot - 1].window;
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

/* The bytes of a slot's memory: its elements', and at least room for the
 * free block it becomes once released. */
static size_t memory_bytes(int64_t n, int64_t esize)
{
    const size_t bytes = (size_t)n * (size_t)esize;
    return bytes < sizeof(sad_free_block) ? sizeof(sad_free_block) : bytes;
}

int64_t sad_slot_new(sad_tape *t, const sad_arr *z, int64_t esize)
{
    if (t->slot_space == NULL && reserve(t) < 0)
        return SAD_SLOTS_FULL;
    const sad_arr a = *z;
    int64_t n = 1;
    for (int d = 0; d < a.nd; ++d)
        n *= a.shape[d];
    /* a window of the shadow's bytes (as many as its memory), rounded up to a
     * cache line */
    const size_t bytes = (memory_bytes(n, esize) + 63) & ~(size_t)63;
    if (t->nslots >= t->max_slots || bytes > t->slot_space_bytes - t->slot_space_used)
        return SAD_SLOTS_FULL;
    if (t->nslots == t->capslots) {
        const int64_t want = t->capslots ? t->capslots : 64;
        const size_t grow = sad_tape_fit(t, (size_t)want * sizeof(sad_slot), sizeof(sad_slot));
        if (!sad_tape_admit(t, grow))
            return SAD_OVER_BUDGET;
        const int64_t cap = t->capslots + (int64_t)(grow / sizeof(sad_slot));
        sad_slot *s = realloc(t->slots, (size_t)cap * sizeof(sad_slot));
        if (s == NULL)
            return SAD_NOMEM;
        t->slots = s;
        t->capslots = cap;
    }
    sad_slot *s = &t->slots[t->nslots++];
    s->p = NULL;
    s->n = n;
    s->esize = esize;
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

int sad_slot_holds(const sad_tape *t, int64_t slot, const sad_arr *z, int64_t esize)
{
    if (!sad_slot_valid(t, slot) || t->slots[slot - 1].esize != esize)
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
    return off + lo >= 0 && off + hi + esize <= s->n * esize;
}

/* Is slot a slot of t for a temporary of n elements of esize bytes? */
static int slot_of(const sad_tape *t, int64_t slot, int64_t n, int64_t esize)
{
    return sad_slot_valid(t, slot) && t->slots[slot - 1].n == n && t->slots[slot - 1].esize == esize;
}

intptr_t sad_slot_memory(const sad_tape *t, int64_t slot, int64_t n, int64_t esize)
{
    if (!slot_of(t, slot, n, esize))
        return SAD_BAD_SLOT;
    return (intptr_t)t->slots[slot - 1].p;
}

int sad_slot_bind(sad_tape *t, int64_t slot, const sad_arr *zs, int64_t esize)
{
    if (!sad_slot_valid(t, slot))
        return SAD_BAD_SLOT;
    const sad_arr a = *zs;
    sad_slot *s = &t->slots[slot - 1];
    if (size_of(&a) != s->n || esize != s->esize)
        return SAD_BAD_SLOT;
    s->p = a.data;
    s->external = 1;
    return SAD_OK;
}

/* Memory of `bytes` bytes (memory_bytes), zeroed unless the caller
 * overwrites all of it. */
static void *take(sad_tape *t, size_t bytes, int zero)
{
    for (sad_free_block **f = &t->free_blocks; *f != NULL; f = &(*f)->next)
        if ((*f)->bytes == bytes) {
            sad_free_block *b = *f;
            *f = b->next;
            if (zero)
                memset(b, 0, bytes);
            return b;
        }
    if (!sad_tape_admit(t, bytes))
        return NULL;
    void *p = zero ? calloc(bytes, 1) : malloc(bytes);
    if (p != NULL)
        t->slot_bytes += (int64_t)bytes;
    return p;
}

intptr_t sad_slot_alloc(sad_tape *t, int64_t slot, int64_t n, int64_t esize, int zero)
{
    if (!slot_of(t, slot, n, esize))
        return SAD_BAD_SLOT;
    sad_slot *s = &t->slots[slot - 1];
    if (s->p == NULL) {
        const size_t bytes = memory_bytes(s->n, s->esize);
        s->p = take(t, bytes, zero || bytes > (size_t)(s->n * s->esize));
    }
    return (intptr_t)s->p;
}

int sad_slot_release(sad_tape *t, int64_t slot)
{
    if (!sad_slot_valid(t, slot))
        return SAD_BAD_SLOT;
    sad_slot *s = &t->slots[slot - 1];
    if (s->p == NULL || s->external)
        return SAD_OK;
    sad_free_block *b = (sad_free_block *)s->p;
    b->bytes = memory_bytes(s->n, s->esize);
    b->next = t->free_blocks;
    t->free_blocks = b;
    s->p = NULL;
    return SAD_OK;
}

/* sad_slot_resolve, for both kinds of block */
#define SAD_FLOAT 64
#include "real.h"
#include "slot_real.h"
#include "real_end.h"
#define SAD_FLOAT 32
#include "real.h"
#include "slot_real.h"
#include "real_end.h"

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
