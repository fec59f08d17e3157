/* sad.h -- internal declarations shared by the C sources of shadowad. */
#ifndef SAD_H
#define SAD_H

#include <stddef.h>
#include <stdint.h>

#include "ew_ops.h" /* before shadowad.h, as cdef reads them */
#include "shadowad.h"

enum { SAD_MAXDIM = 4, SAD_TILE = 256 };

/* A traced scalar: its value and its adjoint, at a fixed address. */
typedef struct sad_pair { double v, g; } sad_pair;

/* The hot loops of the sweep get an AVX2 clone besides the baseline (SSE2)
 * one, picked once at load time.  The clones do the same operations in the
 * same order (ISO C: no contraction into FMA), so the bits are the same. */
#if defined(__x86_64__) && defined(__linux__) && defined(__GNUC__) && !defined(__clang__)
#define SAD_HOT __attribute__((target_clones("avx2", "default")))
#else
#define SAD_HOT
#endif

/* The types and kernels that exist once per float type (real_types.h): for
 * float64 records (sad_block, ...) and float32 ones (sad_block_f32, ...,
 * records flagged SAD_F_F32). */
typedef struct sad_record sad_record;
#define SAD_FLOAT 64
#include "real.h"
#include "real_types.h"
#include "real_end.h"
#define SAD_FLOAT 32
#include "real.h"
#include "real_types.h"
#include "real_end.h"

typedef struct sad_record {
    int32_t op, flags;
    union {
        struct { sad_pair *z, *x, *y; double kx, ky; } s;            /* scalar ops */
        struct { double *p, *s; sad_pair *x; double old; } m;       /* LOAD/STORE */
        /* array records; scratch: room the reverse sweep needs when the output's
         * shadow overlaps an input's (allocated when recording: sweeps never
         * allocate) */
        struct { sad_block *b; double *saved; sad_pair *z; int64_t pyidx; double *scratch; } a;
        /* elementwise records of float32 arrays (SAD_F_F32): a, over floats */
        struct { sad_block_f32 *b; float *saved; sad_pair *z; int64_t pyidx; float *scratch; } a_f32;
        struct { sad_vec *v, *vs; sad_pair *x; double val, sval; int64_t i; sad_block *b; } v;
        struct { struct sad_crule *c; } c;                          /* SAD_CRULE */
    } u;
} sad_record;

/* Chunked allocation: what is handed out never moves. */
typedef struct sad_chunk {
    struct sad_chunk *next;
    size_t cap, used;
    size_t mapped; /* bytes mmap'd for it (0: from calloc) */
    double data[]; /* double for alignment */
} sad_chunk;

typedef struct sad_arena {
    sad_chunk *head;
    size_t bytes;     /* bytes handed out */
    size_t held;      /* bytes of its chunks, as allocated (tape.stats()) */
    size_t chunk_min; /* smallest chunk, in bytes */
    sad_pool *pool;   /* where large chunks come from and go back to (may be NULL):
                         only for arenas whose memory is always written before read */
    struct sad_tape *tape; /* whose budget its chunks count against */
} sad_arena;

/* The shadow of a large temporary, allocated only when the reverse sweep
 * first accumulates into it and released when the record that created the
 * temporary has been swept: peak memory stays near the live adjoints, and
 * released memory is reused (a fresh page costs a fault).  Until then records
 * point into its window: addresses in the tape's own reserved, inaccessible
 * range of address space (sad_slot_window), which no other memory can have,
 * so the overlap checks of recording stay exact; nothing reads through them
 * (the sweep translates them first).  External slots use memory Python
 * allocated (a shadow it needed as an array). */
typedef struct sad_slot {
    void *p;          /* NULL until first needed */
    int64_t n;        /* elements */
    int64_t esize;    /* bytes per element: 8, or 4 for a float32 temporary */
    intptr_t root;    /* the temporary's primal address (for view offsets) */
    size_t window;    /* its window's byte offset in the tape's reserved range */
    int external;
} sad_slot;

/* The bounds of a tape's lazy slots (sad_tape_set_slot_limits). */
enum { SAD_SLOTS_MAX = 1 << 24 };
#define SAD_SLOT_SPACE ((size_t)1 << 36) /* bytes of address space reserved, at most */

typedef struct sad_free_block { struct sad_free_block *next; size_t bytes; } sad_free_block;

/* Primal memory [lo, hi), every byte of it, whose bytes before record `rec`
 * wrote them that record saved (see sad_tape_save_covered). */
typedef struct sad_cover {
    const char *lo, *hi;
    int64_t rec;
} sad_cover;
enum { SAD_COVERS = 4 };

struct sad_tape {
    sad_record *rec;
    int64_t n, cap;
    sad_arena pairs, blocks, saves;
    sad_slot *slots;
    int64_t nslots, capslots;
    int64_t max_slots;           /* slots a tape may make (0: SAD_SLOTS_MAX) */
    char *slot_space;            /* the reserved range of the slots' windows */
    size_t slot_space_bytes, slot_space_used, max_slot_space;
    sad_free_block *free_blocks; /* released slot memory, reused by size */
    int64_t slot_bytes;          /* held by slots and free blocks now */
    int fuse;                    /* sweep runs of elementwise records block by block */
    int saves_soon;              /* saves are read back soon: copied through the cache */
    int64_t floor;               /* no record below it reads primal values (see
                                    sad_tape_restore_floor); found lazily */
    int64_t fused;               /* records swept in fused runs so far */
    sad_cover covers[SAD_COVERS]; /* the latest saves that later writes may share */
    int ncovers, next_cover;
    int64_t rule_bytes;          /* held by the tapes of C rules (crule.c) */
    int rule_error;              /* the code of the C rule reverse that stopped a sweep */
    int64_t rule_error_rec;
    /* budget.c (sad_tape_set_budget): the bound on the tape's bytes (0: none),
     * what Python counted it holds and its estimate of what it added since,
     * the bytes at which Python counts again (0: never), and the bytes of the
     * last allocation the budget refused (0: none since) */
    int64_t budget, outside, pending, mark, refused;
};

struct sad_vec {
    double *data;
    int64_t len, cap;
};

/* budget.c: may the tape take `bytes` more (each call that allocates asks
 * first; a refusal sets t->refused)?  sad_tape_fit: the bytes to allocate for
 * a growth that wants `want` and needs `least`: want, or under a budget that
 * leaves less room (Python's estimate included), half the room (at least
 * `least`).  sad_tape_room: the bytes the budget leaves (SIZE_MAX without
 * one). */
int sad_tape_admit(sad_tape *t, size_t bytes);
size_t sad_tape_fit(const sad_tape *t, size_t want, size_t least);
size_t sad_tape_room(const sad_tape *t);
/* rc of a call on t, SAD_NOMEM made SAD_OVER_BUDGET when the budget refused */
static inline int sad_status(const sad_tape *t, int rc)
{
    return rc == SAD_NOMEM && t != NULL && t->refused ? SAD_OVER_BUDGET : rc;
}

/* arena.c */
void *sad_arena_alloc(sad_arena *a, size_t bytes); /* zeroed, unless it came from a pool */
/* Give back what was handed out since the arena stood at (head, used, bytes):
 * newer chunks are freed (to the pool, if any).  What is handed out again
 * from the head chunk is not zeroed: only for arenas whose memory is written
 * before it is read (blocks, saves). */
void sad_arena_rewind(sad_arena *a, sad_chunk *head, size_t used, size_t bytes);
void sad_pool_retain(sad_pool *p);
void sad_arena_free(sad_arena *a);

/* tape.c */
sad_record *sad_push_record(sad_tape *t, int op, int flags);
int sad_tape_save_covered(sad_tape *t, const sad_record *r, const char *lo, const char *hi);
void sad_tape_note_save(sad_tape *t, const sad_record *r, const char *lo, const char *hi,
                        int dense);
sad_pair *sad_new_pair(sad_tape *t, double v);

/* *a, or the empty descriptor (data NULL) for no array */
static inline sad_arr sad_arr_get(const sad_arr *a)
{
    const sad_arr none = {NULL, 0, NULL, NULL};
    return a != NULL ? *a : none;
}

/* elementwise.c */
int sad_ew_is_unary(int op);
int sad_ew_partials_read(int op);
/* z = op(x, y) without a tape, saying whether z holds a NaN (*nan). */
int sad_ew_primal_nan(int op, int flags, const sad_arr *z, const sad_arr *x, const sad_arr *y,
                      double k, int *nan);
/* sad_ew_tangent where an operand passed as a pair (x: 0, y: 1) is a dual
 * scalar whose tangent has lanes: dlanes[j] with lane stride lstride[j]
 * (elements); dlanes[j] NULL: the pair's own tangent serves every lane.
 * Pairs are float64: with SAD_F_F32 there is none (SAD_BAD_OPERAND). */
int sad_ew_tangent_duals(int op, int flags, const sad_arr *z, const sad_arr *dz,
                         const sad_arr *x, const sad_arr *dx, const sad_arr *y,
                         const sad_arr *dy, double k, double *const dlanes[2],
                         const int64_t lstride[2]);

/* fuse.c: runs of elementwise records swept block by block */
/* records top, top - 1, ... down to lo at most */
int64_t sad_fuse_reverse(sad_tape *t, int64_t top, int64_t floor, int64_t lo);
int sad_ew_slots(sad_tape *t, int op, int flags, const sad_arr *z, const sad_arr *zs,
                 const sad_arr *x, const sad_arr *xs, const sad_arr *y, const sad_arr *ys,
                 double k, const int64_t slots[3]);

/* slot.c: lazy shadows of temporaries */
/* the first byte of slot `slot`'s window */
void *sad_slot_window(const sad_tape *t, int64_t slot);
void sad_slots_free(sad_tape *t);
void sad_axpy_reverse(const sad_record *r, int accumulate);
int sad_reduce_reverse(sad_tape *t, const sad_record *r);
void sad_reduce_reverse_block(const sad_record *r, const sad_block *b, const int assign[3]);

/* crule.c */
struct sad_crule;
int sad_crule_step(sad_tape *t, sad_record *r, int dir, int64_t i);
void sad_crule_release(sad_tape *t, sad_record *r);
int64_t sad_crule_saved_bytes(const sad_record *r);
int sad_crule_writes(const sad_record *r, intptr_t lo, intptr_t hi);

/* outer.c */
int sad_outer_reverse(sad_tape *t, const sad_record *r);

/* vector.c */
void sad_vec_reverse(sad_record *r, int dir);

/* ---- entry points only the extension calls (through struct sad_api) ---- */
/* Are the elements of array arr (any dtype of itemsize bytes, any strides,
 * at most 64 dimensions; data as bytes), in C order, the bytes of the
 * contiguous block at `block`? (snapshot.c) */
int sad_same_elements(const sad_arr *arr, const void *block, int64_t itemsize);
/* Sweep elementwise record i now, reading its output's adjoint from array g
 * (the output's shape, with zero strides where an axis sum broadcasts its
 * adjoint) instead of from the output's lazy slot `slot`, which no record has
 * written: the sum's pullback passes its adjoint straight through the record
 * that made its operand, and the broadcast never reaches memory.  When the
 * sweep reaches record i, the slot is still unwritten and the record does
 * nothing.  SAD_TOO_MANY_DIMS: record i is not such a record (the caller adds
 * into the slot instead). */
int sad_ew_reverse_through(sad_tape *t, int64_t i, int64_t slot, const sad_arr *g);
/* Sweep linear elementwise record i now, its output's adjoint already summed
 * along axis ax (of length len): g holds those sums, laid out as the output
 * with ax of length 1.  Only when every active input of record i repeats along
 * ax (a broadcast), so that the sums are all it takes: a matrix product's
 * pullback then sums its adjoint before the product, not after (W6's
 * (x - means) @ Q^T).  As for sad_ew_reverse_through, the output's lazy slot
 * `slot` must be unwritten, and stays so; SAD_TOO_MANY_DIMS otherwise. */
int sad_ew_reverse_summed(sad_tape *t, int64_t i, int64_t slot, int ax, int64_t len,
                          const sad_arr *g);

/* record flag set on elementwise records that iterate over a block */
enum { SAD_F_BLOCK = 1 << 8 };

/* SAD_DIR_REDO_LAST: a redo after which the tape is freed: saved bytes are
 * copied back instead of swapped (nothing will undo it), half the traffic */
enum sad_dir { SAD_DIR_REVERSE = 0, SAD_DIR_UNDO = 1, SAD_DIR_REDO = 2, SAD_DIR_REDO_LAST = 3 };

#endif
