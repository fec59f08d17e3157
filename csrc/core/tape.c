/* tape.c -- the tape: records, scalar pairs, saved bytes, and the sweeps.
 *
 * Reverse, undo and redo are one loop over the records: each record swaps its
 * saved bytes with memory (which restores the primal going backwards and puts
 * the result back going forwards), and the reverse sweep also accumulates. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sad.h"

sad_tape *sad_tape_new(void)
{
    sad_tape *t = calloc(1, sizeof(sad_tape));
    if (t == NULL)
        return NULL;
    t->pairs.tape = t->blocks.tape = t->saves.tape = t;
    t->pairs.chunk_min = 4096 * sizeof(sad_pair);
    t->blocks.chunk_min = 64 * sizeof(sad_block);
    t->saves.chunk_min = (size_t)1 << 16;
    t->fuse = 1;
    return t;
}

void sad_tape_free(sad_tape *t)
{
    if (t == NULL)
        return;
    for (int64_t i = 0; i < t->n; ++i)
        if (t->rec[i].op == SAD_CRULE)
            sad_crule_release(t, &t->rec[i]);
    sad_arena_free(&t->pairs);
    sad_arena_free(&t->blocks);
    sad_arena_free(&t->saves); /* large chunks go back to the pool first */
    sad_pool_release(t->saves.pool);
    sad_slots_free(t);
    free(t->rec);
    free(t);
}

/* The save stack is the one arena whose memory is always written before it is
 * read (saved bytes, scratch gathered from shadows): pooled chunks need no zeroing. */
void sad_tape_use_pool(sad_tape *t, sad_pool *p)
{
    if (t->saves.pool != NULL || t->saves.head != NULL || p == NULL)
        return; /* one pool per tape, chosen before anything is saved */
    sad_pool_retain(p);
    t->saves.pool = p;
}

int64_t sad_tape_len(const sad_tape *t) { return t->n; }
void sad_tape_set_fuse(sad_tape *t, int on) { t->fuse = on; }

int sad_tape_set_saves_soon(sad_tape *t, int on)
{
    const int was = t->saves_soon;
    t->saves_soon = on != 0;
    return was;
}
int64_t sad_tape_fused(const sad_tape *t) { return t->fused; }

void sad_tape_sizes(const sad_tape *t, sad_tape_bytes *out)
{
    out->records = (int64_t)sizeof(sad_tape) + t->cap * (int64_t)sizeof(sad_record) +
                   t->capslots * (int64_t)sizeof(sad_slot) + (int64_t)t->pairs.held +
                   (int64_t)t->blocks.held;
    out->saved = (int64_t)t->saves.bytes + t->rule_bytes;
    out->save_room = (int64_t)(t->saves.held - t->saves.bytes);
    out->shadows = t->slot_bytes;
}

sad_record *sad_push_record(sad_tape *t, int op, int flags)
{
    if (t->n == t->cap) {
        const int64_t want = t->cap ? t->cap : 1024;
        const size_t grow = sad_tape_fit(t, (size_t)want * sizeof(sad_record), sizeof(sad_record));
        if (!sad_tape_admit(t, grow))
            return NULL;
        const int64_t cap = t->cap + (int64_t)(grow / sizeof(sad_record));
        sad_record *rec = realloc(t->rec, (size_t)cap * sizeof(sad_record));
        if (rec == NULL)
            return NULL;
        t->rec = rec;
        t->cap = cap;
    }
    sad_record *r = &t->rec[t->n++];
    memset(r, 0, sizeof(*r));
    r->op = op;
    r->flags = flags;
    return r;
}

sad_pair *sad_new_pair(sad_tape *t, double v)
{
    sad_pair *q = sad_arena_alloc(&t->pairs, sizeof(sad_pair));
    if (q != NULL)
        q->v = v;
    return q;
}

intptr_t sad_pair_new(sad_tape *t, double v) { return (intptr_t)sad_new_pair(t, v); }
double sad_pair_grad(intptr_t pair) { return ((sad_pair *)pair)->g; }
void sad_pair_add(intptr_t pair, double g) { ((sad_pair *)pair)->g += g; }

void sad_tape_zero_adjoints(sad_tape *t)
{
    /* the pairs arena holds nothing but pairs, packed from each chunk's start
     * (used counts doubles, two per pair) */
    for (sad_chunk *c = t->pairs.head; c != NULL; c = c->next) {
        sad_pair *q = (sad_pair *)c->data;
        for (size_t i = 0; i < c->used / 2; ++i)
            q[i].g = 0.0;
    }
}

/* ---- scalar records ---------------------------------------------------- */
intptr_t sad_s2(sad_tape *t, int op, double z, intptr_t x, double vx, intptr_t y,
                double vy)
{
    sad_pair *q = sad_new_pair(t, z);
    sad_record *r = q != NULL ? sad_push_record(t, op, 0) : NULL;
    if (r == NULL)
        return 0;
    r->u.s.z = q;
    r->u.s.x = (sad_pair *)x;
    r->u.s.y = (sad_pair *)y;
    r->u.s.kx = vx;
    r->u.s.ky = vy;
    return (intptr_t)q;
}

intptr_t sad_s1(sad_tape *t, int op, double z, intptr_t x, double vx)
{
    return sad_s2(t, op, z, x, vx, 0, 0.0);
}

static void scalar_reverse(const sad_record *r)
{
    double px, py, g = r->u.s.z->g;
    if (g == 0.0)
        return;
    if (r->op == SAD_LIN) {
        px = r->u.s.kx;
        py = r->u.s.ky;
    } else {
        sad_ew_partials(r->op, 1, &r->u.s.kx, &r->u.s.ky, &r->u.s.z->v, &px, &py);
    }
    if (r->u.s.x != NULL && sad_contributes(g, px))
        r->u.s.x->g += g * px;
    if (r->u.s.y != NULL && sad_contributes(g, py))
        r->u.s.y->g += g * py;
}

intptr_t sad_load(sad_tape *t, const sad_arr *s, int64_t off, double v)
{
    sad_pair *q = sad_new_pair(t, v);
    sad_record *r = q != NULL ? sad_push_record(t, SAD_LOAD, 0) : NULL;
    if (r == NULL)
        return 0;
    r->u.m.s = (double *)((char *)s->data + off);
    r->u.m.x = q;
    return (intptr_t)q;
}

int sad_store(sad_tape *t, const sad_arr *p, const sad_arr *s, int64_t poff, int64_t soff,
              intptr_t x, double v)
{
    sad_record *r = sad_push_record(t, SAD_STORE, 0);
    if (r == NULL)
        return sad_status(t, SAD_NOMEM);
    double *pp = (double *)((char *)p->data + poff);
    r->u.m.p = pp;
    r->u.m.s = s != NULL ? (double *)((char *)s->data + soff) : NULL;
    r->u.m.x = (sad_pair *)x;
    r->u.m.old = *pp;
    *pp = v;
    return SAD_OK;
}

/* ---- python records ---------------------------------------------------- */
int sad_py(sad_tape *t, int64_t pyidx, int flags)
{
    sad_record *r = sad_push_record(t, SAD_PY, flags);
    if (r == NULL)
        return sad_status(t, SAD_NOMEM);
    r->u.a.pyidx = pyidx;
    return SAD_OK;
}

int64_t sad_record_pyidx(const sad_tape *t, int64_t i) { return t->rec[i].u.a.pyidx; }

/* ---- sweeps ------------------------------------------------------------ */
/* Does r's reverse read primal values: its partials (a nonlinear elementwise
 * record, a dot or outer product, y += a*x), or a Python pullback, which may read
 * anything?  Unknown kinds count as readers. */
static int reads_values(const sad_record *r)
{
    double cx, cy;
    switch (r->op) {
    case SAD_LOAD: case SAD_STORE: case SAD_SUM:
        return 0;
    case SAD_DOT: case SAD_AXPY: case SAD_PY:
    case SAD_VPUSH: case SAD_VPOP: case SAD_VLOAD: case SAD_VSTORE:
    case SAD_VPUSHA: case SAD_VCOPY: case SAD_OUTER: case SAD_CRULE:
        return 1;
    default:
        if (!(r->flags & SAD_F_BLOCK)) /* scalar records keep their values in pairs */
            return 0;
        if (r->flags & SAD_F_F32) {
            float fx, fy;
            return !(sad_ew_linear_f32(r, &fx, &fy) && isfinite(fx) && isfinite(fy));
        }
        return !(sad_ew_linear(r, &cx, &cy) && isfinite(cx) && isfinite(cy));
    }
}

/* Can the record about to be pushed (r, its output, the bytes [lo, hi),
 * overwritten in place) leave the bytes it overwrites unsaved?  Yes when it
 * and every record before it read no primal values, so that they all stay
 * below the restore floor for good (no sweep restores them, and no redo
 * reaches them), and an earlier record below the floor saved a dense run of
 * memory that holds all of its output.  Those saved bytes are what that
 * memory held before any of these writes: an undo, which runs back through
 * every record to that one, puts them back, and with them the bytes of every
 * later write inside them.  W2's heat equation overwrites u[1:-1] a hundred
 * times; it saves it once.  The caller guarantees that a failed operation
 * leaves a record it keeps or memory it never wrote (SAD_F_CLEAN_FAIL). */
int sad_tape_save_covered(sad_tape *t, const sad_record *r, const char *lo, const char *hi)
{
    if (reads_values(r) || sad_tape_restore_floor(t) < t->n)
        return 0;
    for (int i = 0; i < t->ncovers; ++i) {
        const sad_cover *c = &t->covers[i];
        if (c->rec < t->n && c->lo <= lo && hi <= c->hi)
            return 1;
    }
    return 0;
}

/* The record just pushed (the tape's last, r) saved all of its output, the
 * bytes [lo, hi) (dense: every one of them): below the floor, with a dense
 * output, later writes inside it may share that save
 * (sad_tape_save_covered).  The latest few are remembered. */
void sad_tape_note_save(sad_tape *t, const sad_record *r, const char *lo, const char *hi,
                        int dense)
{
    if (t->n < 1 || reads_values(r) || sad_tape_restore_floor(t) < t->n || !dense)
        return;
    sad_cover *c = &t->covers[t->next_cover];
    t->next_cover = (t->next_cover + 1) % SAD_COVERS;
    if (t->ncovers < SAD_COVERS)
        ++t->ncovers;
    c->lo = lo;
    c->hi = hi;
    c->rec = t->n - 1;
}

/* The reverse sweep restores the primal memory a record overwrote only so
 * that the records before it read the values they saw.  Below the first
 * record that reads any value, nobody does: there the sweep leaves memory as
 * it is, and a final redo (or a redo between sweeps) starts at the floor
 * (W2's heat equation is all linear: no restoring and no redo at all).
 * sad_undo(t, floor) restores the rest when the caller wants f's inputs back. */
int64_t sad_tape_restore_floor(sad_tape *t)
{
    if (t->floor > t->n)
        t->floor = t->n;
    while (t->floor < t->n && !reads_values(&t->rec[t->floor]))
        ++t->floor;
    return t->floor;
}

/* The bytes a last redo from record `from` on copies back into primal
 * memory, or -1 when a record there does more than copy saved bytes back
 * (Python records that undo in Python, Vector records): what Python weighs
 * against putting back a copy of the final memory instead (driver.py). */
int64_t sad_tape_redo_bytes(const sad_tape *t, int64_t from)
{
    int64_t bytes = 0;
    for (int64_t i = from < 0 ? 0 : from; i < t->n; ++i) {
        const sad_record *r = &t->rec[i];
        switch (r->op) {
        case SAD_LOAD: case SAD_SUM: case SAD_DOT: case SAD_OUTER:
            break;
        case SAD_STORE:
            bytes += (int64_t)sizeof(double);
            break;
        case SAD_CRULE:
            bytes += sad_crule_saved_bytes(r);
            break;
        case SAD_PY:
            if (r->flags & SAD_F_PYUNDO)
                return -1;
            break;
        case SAD_VPUSH: case SAD_VPOP: case SAD_VLOAD: case SAD_VSTORE:
        case SAD_VPUSHA: case SAD_VCOPY:
            return -1;
        case SAD_AXPY:
            bytes += r->u.a.b->n * (int64_t)sizeof(double);
            break;
        default:
            if ((r->flags & SAD_F_BLOCK) && (r->flags & SAD_F_F32) && r->u.a_f32.saved != NULL)
                bytes += r->u.a_f32.b->n * (int64_t)sizeof(float);
            else if ((r->flags & SAD_F_BLOCK) && !(r->flags & SAD_F_F32) && r->u.a.saved != NULL)
                bytes += r->u.a.b->n * (int64_t)sizeof(double);
            break;
        }
    }
    return bytes;
}

/* The saved bytes of array record r back into the primal: swapped, so that
 * the record can be undone again, except in a last redo. */
static void put_back(const sad_record *r, int dir)
{
    if (r->flags & SAD_F_F32) {
        if (dir == SAD_DIR_REDO_LAST)
            sad_block_put_f32(r->u.a_f32.b, r->u.a_f32.saved);
        else
            sad_block_swap_f32(r->u.a_f32.b, r->u.a_f32.saved);
        return;
    }
    if (dir == SAD_DIR_REDO_LAST)
        sad_block_put(r->u.a.b, r->u.a.saved);
    else
        sad_block_swap(r->u.a.b, r->u.a.saved);
}

/* Apply record r (number i) in direction dir; returns 1 if Python must take
 * over, 2 when a lazy shadow found no memory, 3 when a C rule's reverse
 * failed (r untouched in both). */
static int step(sad_tape *t, sad_record *r, int64_t i, int dir, int keep)
{
    const int acc = dir == SAD_DIR_REVERSE;
    const int redo = dir == SAD_DIR_REDO || dir == SAD_DIR_REDO_LAST;
    switch (r->op) {
    case SAD_LOAD:
        if (acc)
            *r->u.m.s += r->u.m.x->g;
        return 0;
    case SAD_STORE: {
        if (!keep) {
            double tmp = *r->u.m.p;
            *r->u.m.p = r->u.m.old;
            r->u.m.old = tmp;
        }
        if (acc && r->u.m.s != NULL) {
            double g = *r->u.m.s;
            *r->u.m.s = 0.0;
            if (r->u.m.x != NULL)
                r->u.m.x->g += g;
        }
        return 0;
    }
    case SAD_SUM:
    case SAD_DOT:
        if (acc && sad_reduce_reverse(t, r) < 0)
            return 2;
        return 0;
    case SAD_OUTER: /* a fresh output: nothing saved, nothing to undo or redo */
        if (acc && sad_outer_reverse(t, r) < 0)
            return 2;
        return 0;
    case SAD_AXPY:
        if (redo)
            put_back(r, dir);
        else
            sad_axpy_reverse(r, acc);
        return 0;
    case SAD_PY:
        return acc || (r->flags & SAD_F_PYUNDO);
    case SAD_CRULE:
        return sad_crule_step(t, r, dir, i);
    case SAD_VPUSH: case SAD_VPOP: case SAD_VLOAD: case SAD_VSTORE:
    case SAD_VPUSHA: case SAD_VCOPY:
        sad_vec_reverse(r, dir == SAD_DIR_REDO_LAST ? SAD_DIR_REDO : dir);
        return 0;
    default:
        if (!(r->flags & SAD_F_BLOCK)) { /* scalar */
            if (acc)
                scalar_reverse(r);
        } else if (r->flags & SAD_F_F32) {
            if (redo && r->u.a_f32.saved != NULL)
                put_back(r, dir);
            else if (!redo && sad_ew_reverse_f32(t, r, acc, keep) < 0)
                return 2;
        } else if (redo) {
            if (r->u.a.saved != NULL)
                put_back(r, dir);
        } else if (sad_ew_reverse(t, r, acc, keep) < 0) {
            return 2;
        }
        return 0;
    }
}

/* Records [lo, from), last first, in direction dir. */
static int64_t backwards(sad_tape *t, int64_t from, int64_t lo, int dir)
{
    const int64_t floor = dir == SAD_DIR_REVERSE ? sad_tape_restore_floor(t) : 0;
    for (int64_t i = from - 1; i >= lo; --i) {
        if (dir == SAD_DIR_REVERSE && t->fuse) {
            int64_t k = sad_fuse_reverse(t, i, floor, lo);
            if (k < 0)
                return -2 - i;
            if (k > 0) {
                i -= k - 1;
                continue;
            }
        }
        int rc = step(t, &t->rec[i], i, dir, i < floor);
        if (rc)
            return rc >= 2 ? -2 - i : i;
    }
    return -1;
}

int64_t sad_reverse(sad_tape *t, int64_t from)
{
    t->rule_error = 0;
    return backwards(t, from, 0, SAD_DIR_REVERSE);
}

int64_t sad_reverse_range(sad_tape *t, int64_t from, int64_t lo)
{
    t->rule_error = 0;
    return backwards(t, from, lo < 0 ? 0 : lo, SAD_DIR_REVERSE);
}

int64_t sad_undo(sad_tape *t, int64_t from) { return backwards(t, from, 0, SAD_DIR_UNDO); }

int64_t sad_undo_range(sad_tape *t, int64_t from, int64_t lo)
{
    return backwards(t, from, lo < 0 ? 0 : lo, SAD_DIR_UNDO);
}

static int64_t forwards(sad_tape *t, int64_t from, int dir)
{
    for (int64_t i = from; i < t->n; ++i)
        if (step(t, &t->rec[i], i, dir, 0))
            return i;
    return -1;
}

int64_t sad_redo(sad_tape *t, int64_t from) { return forwards(t, from, SAD_DIR_REDO); }
int64_t sad_redo_last(sad_tape *t, int64_t from) { return forwards(t, from, SAD_DIR_REDO_LAST); }

void sad_truncate(sad_tape *t, int64_t n)
{
    for (int64_t i = t->n - 1; i >= n; --i) {
        step(t, &t->rec[i], i, SAD_DIR_UNDO, 0);
        if (t->rec[i].op == SAD_CRULE)
            sad_crule_release(t, &t->rec[i]);
    }
    if (n < t->n)
        t->n = n;
    for (int i = 0; i < t->ncovers; ++i) /* a save dropped covers nothing again */
        if (t->covers[i].rec >= n)
            t->covers[i].rec = INT64_MAX;
}

/* ---- segments ---------------------------------------------------------- */
void sad_tape_get_mark(const sad_tape *t, sad_tape_mark *m)
{
    m->n = t->n;
    m->nslots = t->nslots;
    m->slot_space_used = (int64_t)t->slot_space_used;
    m->saves_head = (intptr_t)t->saves.head;
    m->saves_used = t->saves.head != NULL ? (int64_t)t->saves.head->used : 0;
    m->saves_bytes = (int64_t)t->saves.bytes;
    m->blocks_head = (intptr_t)t->blocks.head;
    m->blocks_used = t->blocks.head != NULL ? (int64_t)t->blocks.head->used : 0;
    m->blocks_bytes = (int64_t)t->blocks.bytes;
}

void sad_tape_drop(sad_tape *t, const sad_tape_mark *m)
{
    if (m->n > t->n || m->nslots > t->nslots)
        return; /* not a mark of this tape's past: nothing to forget */
    for (int64_t i = m->n; i < t->n; ++i)
        if (t->rec[i].op == SAD_CRULE)
            sad_crule_release(t, &t->rec[i]);
    t->n = m->n;
    for (int64_t k = m->nslots + 1; k <= t->nslots; ++k)
        sad_slot_release(t, k); /* its memory to the free blocks, for later slots */
    t->nslots = m->nslots;
    t->slot_space_used = (size_t)m->slot_space_used;
    sad_arena_rewind(&t->saves, (sad_chunk *)m->saves_head, (size_t)m->saves_used,
                     (size_t)m->saves_bytes);
    sad_arena_rewind(&t->blocks, (sad_chunk *)m->blocks_head, (size_t)m->blocks_used,
                     (size_t)m->blocks_bytes);
    if (t->floor > t->n)
        t->floor = t->n;
    for (int i = 0; i < t->ncovers; ++i) /* a save forgotten covers nothing */
        if (t->covers[i].rec >= t->n)
            t->covers[i].rec = INT64_MAX;
}

/* The last record in [from, to) that may have written primal bytes in
 * [lo, hi) (a nested differentiation asks whether memory it read was written
 * since, nested_trace.py), or -1.  An array record writes its output's
 * extent (a fresh output cannot overlap memory the caller holds); a STORE
 * one element.  A Python record whose undo runs in Python names its memory
 * only in Python: -2 - i hands record i over, to ask and go on below it. */
int64_t sad_tape_vector_write(const sad_tape *t, int64_t from, int64_t to,
                              sad_vec *const *allowed, int64_t nallowed)
{
    if (to > t->n)
        to = t->n;
    for (int64_t i = from < 0 ? 0 : from; i < to; ++i)
        switch (t->rec[i].op) {
        case SAD_VPUSH: case SAD_VPOP: case SAD_VSTORE: case SAD_VPUSHA: {
            int64_t k = 0;
            while (k < nallowed && allowed[k] != t->rec[i].u.v.v)
                ++k;
            if (k == nallowed)
                return i;
            break;
        }
        default:
            break;
        }
    return -1;
}

/* The primal bytes [*lo, *hi) that array record r (of either float type)
 * writes. */
static void output_bytes(const sad_record *r, intptr_t *lo, intptr_t *hi)
{
    if (r->flags & SAD_F_F32) {
        const float *a, *b;
        sad_block_output_extent_f32(r->u.a_f32.b, &a, &b);
        *lo = (intptr_t)a;
        *hi = (intptr_t)b;
    } else {
        const double *a, *b;
        sad_block_output_extent(r->u.a.b, &a, &b);
        *lo = (intptr_t)a;
        *hi = (intptr_t)b;
    }
}

int64_t sad_tape_last_write(const sad_tape *t, int64_t from, int64_t to, intptr_t lo, intptr_t hi)
{
    if (to > t->n)
        to = t->n;
    for (int64_t i = to - 1; i >= from && i >= 0; --i) {
        const sad_record *r = &t->rec[i];
        intptr_t wlo, whi;
        switch (r->op) {
        case SAD_STORE:
            wlo = (intptr_t)r->u.m.p;
            whi = (intptr_t)(r->u.m.p + 1);
            break;
        case SAD_PY:
            if (r->flags & SAD_F_PYUNDO)
                return -2 - i;
            continue;
        case SAD_CRULE:
            if (sad_crule_writes(r, lo, hi))
                return i;
            continue;
        case SAD_LOAD: case SAD_SUM: case SAD_DOT: case SAD_OUTER:
        case SAD_VPUSH: case SAD_VPOP: case SAD_VLOAD: case SAD_VSTORE:
        case SAD_VPUSHA: case SAD_VCOPY:
            continue;
        case SAD_AXPY:
            output_bytes(r, &wlo, &whi);
            break;
        default:
            if (!(r->flags & SAD_F_BLOCK)) /* scalar records write pairs only */
                continue;
            output_bytes(r, &wlo, &whi);
            break;
        }
        if (wlo < hi && lo < whi)
            return i;
    }
    return -1;
}
