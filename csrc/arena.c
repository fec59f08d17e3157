/* arena.c -- chunked zeroed allocation: memory handed out never moves, so
 * records can hold raw pointers into it, and nothing saved is ever copied. */
#define _DEFAULT_SOURCE /* mmap's MAP_ANONYMOUS, madvise */
#include <stdlib.h>
#include <sys/mman.h>

#include "sad.h"

/* Chunks from 4 MiB up are mapped directly and asked to live on huge pages: a
 * large save stack is written once, front to back, and with 4 KiB pages every
 * page costs a fault on first touch (W2's 80 MB stack: 20000 faults; the
 * gradient is ~15% faster on huge pages). */
enum { SAD_HUGE_CHUNK = 4 << 20, SAD_HUGE_PAGE = 2 << 20 };

static sad_chunk *chunk_new(size_t bytes)
{
#if defined(MAP_ANONYMOUS) && defined(MADV_HUGEPAGE)
    if (bytes >= SAD_HUGE_CHUNK) {
        /* over-map by one huge page so that the chunk starts on a 2 MiB boundary */
        size_t len = bytes + SAD_HUGE_PAGE;
        char *raw = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (raw == MAP_FAILED)
            return NULL;
        size_t pad = (SAD_HUGE_PAGE - (uintptr_t)raw % SAD_HUGE_PAGE) % SAD_HUGE_PAGE;
        if (pad)
            munmap(raw, pad);
        if (len - pad > bytes)
            munmap(raw + pad + bytes, len - pad - bytes);
        sad_chunk *c = (sad_chunk *)(raw + pad); /* anonymous pages are zero */
        madvise(c, bytes, MADV_HUGEPAGE);        /* advice only: 4 KiB pages if refused */
        c->mapped = bytes;
        return c;
    }
#endif
    sad_chunk *c = calloc(1, bytes);
    if (c != NULL)
        c->mapped = 0;
    return c;
}

static void chunk_free(sad_chunk *c)
{
#if defined(MAP_ANONYMOUS) && defined(MADV_HUGEPAGE)
    if (c->mapped) {
        munmap(c, c->mapped);
        return;
    }
#endif
    free(c);
}

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
        sad_chunk *fresh = chunk_new(sizeof(sad_chunk) + cap * sizeof(double));
        if (fresh == NULL)
            return NULL;
        fresh->cap = cap;
        fresh->used = 0;
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
        chunk_free(c);
        c = next;
    }
    a->head = NULL;
    a->bytes = 0;
}
