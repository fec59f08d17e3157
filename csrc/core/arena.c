/* arena.c -- chunked zeroed allocation: memory handed out never moves, so
 * records can hold raw pointers into it, and nothing saved is ever copied. */
#define _DEFAULT_SOURCE /* mmap's MAP_ANONYMOUS, madvise */
#include <pthread.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "sad.h"

/* Chunks given back by freed tapes.  The lock is the pool's own: tapes of
 * several threads may share it, and cffi runs these calls without the GIL. */
struct sad_pool {
    pthread_mutex_t lock;
    sad_chunk *free;
    size_t bytes, max;
    int64_t refs; /* Python's reference and one per tape using the pool */
};

/* Chunks from 4 MiB up are mapped directly and asked to live on huge pages: a
 * large save stack is written once, front to back, and with 4 KiB pages every
 * page costs a fault on first touch. */
enum { SAD_HUGE_CHUNK = 4 << 20, SAD_HUGE_PAGE = 2 << 20 };

/* The smallest pooled chunk of at least `bytes` and at most `most`, or NULL. */
static sad_chunk *pool_take(sad_pool *p, size_t bytes, size_t most)
{
    pthread_mutex_lock(&p->lock);
    sad_chunk **best = NULL;
    for (sad_chunk **c = &p->free; *c != NULL; c = &(*c)->next)
        if ((*c)->mapped >= bytes && (*c)->mapped <= most &&
            (best == NULL || (*c)->mapped < (*best)->mapped))
            best = c;
    sad_chunk *out = NULL;
    if (best != NULL) {
        out = *best;
        *best = out->next;
        p->bytes -= out->mapped;
    }
    pthread_mutex_unlock(&p->lock);
    return out;
}

static void unmap(sad_chunk *c)
{
#if defined(MAP_ANONYMOUS) && defined(MADV_HUGEPAGE)
    munmap(c, c->mapped);
#else
    (void)c;
#endif
}

/* Keep mapped chunk c for later tapes if the pool has room, else unmap it. */
static void pool_give(sad_pool *p, sad_chunk *c)
{
    pthread_mutex_lock(&p->lock);
    const int keep = p->bytes + c->mapped <= p->max;
    if (keep) {
        c->next = p->free;
        p->free = c;
        p->bytes += c->mapped;
    }
    pthread_mutex_unlock(&p->lock);
    if (!keep)
        unmap(c);
}

sad_pool *sad_pool_new(int64_t max_bytes)
{
    sad_pool *p = calloc(1, sizeof(sad_pool));
    if (p == NULL)
        return NULL;
    if (pthread_mutex_init(&p->lock, NULL) != 0) {
        free(p);
        return NULL;
    }
    p->max = max_bytes > 0 ? (size_t)max_bytes : 0;
    p->refs = 1;
    return p;
}

void sad_pool_trim(sad_pool *p, int64_t max_bytes)
{
    sad_chunk *drop = NULL;
    pthread_mutex_lock(&p->lock);
    p->max = max_bytes > 0 ? (size_t)max_bytes : 0;
    while (p->free != NULL && p->bytes > p->max) {
        sad_chunk *c = p->free;
        p->free = c->next;
        p->bytes -= c->mapped;
        c->next = drop;
        drop = c;
    }
    pthread_mutex_unlock(&p->lock);
    while (drop != NULL) {
        sad_chunk *next = drop->next;
        unmap(drop);
        drop = next;
    }
}

int64_t sad_pool_bytes(sad_pool *p)
{
    pthread_mutex_lock(&p->lock);
    int64_t n = (int64_t)p->bytes;
    pthread_mutex_unlock(&p->lock);
    return n;
}

void sad_pool_retain(sad_pool *p)
{
    pthread_mutex_lock(&p->lock);
    ++p->refs;
    pthread_mutex_unlock(&p->lock);
}

void sad_pool_release(sad_pool *p)
{
    if (p == NULL)
        return;
    pthread_mutex_lock(&p->lock);
    const int64_t left = --p->refs;
    pthread_mutex_unlock(&p->lock);
    if (left > 0)
        return;
    sad_pool_trim(p, 0);
    pthread_mutex_destroy(&p->lock);
    free(p);
}

/* A chunk of `bytes` bytes, or a pooled one of up to `most`. */
static sad_chunk *chunk_new(sad_arena *a, size_t bytes, size_t most)
{
#if defined(MAP_ANONYMOUS) && defined(MADV_HUGEPAGE)
    if (bytes >= SAD_HUGE_CHUNK) {
        if (a->pool != NULL) { /* pages already there: no faults, no zeroing */
            sad_chunk *c = pool_take(a->pool, bytes, most);
            if (c != NULL)
                return c;
        }
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
#else
    (void)most;
#endif
    sad_chunk *c = calloc(1, bytes);
    if (c != NULL)
        c->mapped = 0;
    return c;
}

static void chunk_free(sad_arena *a, sad_chunk *c)
{
    if (c->mapped) {
        if (a->pool != NULL)
            pool_give(a->pool, c);
        else
            unmap(c);
        return;
    }
    free(c);
}

void *sad_arena_alloc(sad_arena *a, size_t bytes)
{
    size_t words = (bytes + sizeof(double) - 1) / sizeof(double);
    sad_chunk *c = a->head;
    if (c == NULL || c->cap - c->used < words) {
        size_t cap = a->chunk_min / sizeof(double);
        /* grow geometrically up to 128 MiB chunks; a segment that is
         * swept and dropped right after (saves_soon) frees its chunks at
         * once, so it takes only what it needs */
        if (c != NULL && c->cap * 2 > cap && c->cap < ((size_t)1 << 24) &&
            !(a->tape != NULL && a->tape->saves_soon))
            cap = c->cap * 2;
        if (cap < words)
            cap = words;
        /* under a budget: a smaller chunk if that one would not fit, and a
         * pooled one only as large as the budget allows */
        const size_t fit = sad_tape_fit(a->tape, sizeof(sad_chunk) + cap * sizeof(double),
                                        sizeof(sad_chunk) + words * sizeof(double));
        cap = (fit - sizeof(sad_chunk)) / sizeof(double);
        const size_t bytes_new = sizeof(sad_chunk) + cap * sizeof(double);
        if (!sad_tape_admit(a->tape, bytes_new))
            return NULL;
        sad_chunk *fresh = chunk_new(a, bytes_new, sad_tape_room(a->tape));
        if (fresh == NULL)
            return NULL;
        fresh->cap = fresh->mapped ? (fresh->mapped - sizeof(sad_chunk)) / sizeof(double) : cap;
        a->held += fresh->mapped ? fresh->mapped : sizeof(sad_chunk) + cap * sizeof(double);
        fresh->used = 0;
        fresh->next = c;
        a->head = c = fresh;
    }
    void *out = c->data + c->used;
    c->used += words;
    a->bytes += words * sizeof(double);
    return out;
}

void sad_arena_rewind(sad_arena *a, sad_chunk *head, size_t used, size_t bytes)
{
    while (a->head != NULL && a->head != head) {
        sad_chunk *c = a->head;
        a->head = c->next;
        a->held -= c->mapped ? c->mapped : sizeof(sad_chunk) + c->cap * sizeof(double);
        chunk_free(a, c);
    }
    if (a->head != NULL)
        a->head->used = used;
    a->bytes = bytes;
}

void sad_arena_free(sad_arena *a)
{
    sad_chunk *c = a->head;
    while (c != NULL) {
        sad_chunk *next = c->next;
        chunk_free(a, c);
        c = next;
    }
    a->head = NULL;
    a->bytes = 0;
    a->held = 0;
}
