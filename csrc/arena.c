/* arena.c -- chunked zeroed allocation: memory handed out never moves, so
 * records can hold raw pointers into it, and nothing saved is ever copied. */
#include <stdlib.h>

#include "sad.h"

void *sad_arena_alloc(sad_arena *a, size_t bytes)
{
    size_t words = (bytes + sizeof(double) - 1) / sizeof(double);
    sad_chunk *c = a->head;
    if (c == NULL || c->cap - c->used < words) {
        size_t cap = a->chunk_min / sizeof(double);
        if (c != NULL && c->cap * 2 > cap && c->cap < ((size_t)1 << 24))
            cap = c->cap * 2; /* grow geometrically up to 128 MiB chunks */
        if (cap < words)
            cap = words;
        sad_chunk *fresh = calloc(1, sizeof(sad_chunk) + cap * sizeof(double));
        if (fresh == NULL)
            return NULL;
        fresh->cap = cap;
        fresh->next = c;
        a->head = c = fresh;
    }
    void *out = c->data + c->used;
    c->used += words;
    a->bytes += words * sizeof(double);
    return out;
}

void sad_arena_free(sad_arena *a)
{
    sad_chunk *c = a->head;
    while (c != NULL) {
        sad_chunk *next = c->next;
        free(c);
        c = next;
    }
    a->head = NULL;
    a->bytes = 0;
}
