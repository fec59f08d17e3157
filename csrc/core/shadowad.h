/* shadowad.h -- the contract of the cffi module shadowad._csad, the core.
 * (What touches Python objects is the extension shadowad._fast, csrc/ext.)
 *
 * cffi's cdef reads this file verbatim, so it has no include guards, no #include
 * and no #if.  C sources include it through sad.h.
 *
 * Conventions
 *  - Arrays cross the boundary as descriptors (sad_arr: data pointer, shape,
 *    byte strides); the core knows no Python object.  The extension
 *    (csrc/ext) makes them from the ndarrays it is given and holds those for
 *    the call; it has checked their dtype (float64, float32 under SAD_F_F32)
 *    and alignment.  The data a record keeps pointing into stays alive
 *    through the tape's keep list.  NULL means "no array" (e.g. no shadow).
 *    An operand that the flags say is a pair (SAD_KX_PAIR, SAD_KY_PAIR) is
 *    passed as a descriptor whose data is the pair's address (nd 0).
 *  - A traced scalar is a "pair" {value, adjoint} that lives in tape memory and
 *    never moves; it crosses the boundary as its address.
 *  - Python validates everything; C trusts its inputs.
 */

/* An array as C reads it: element 0 at data, nd lengths and byte strides. */
typedef struct sad_arr {
    double *data;
    int nd;
    const int64_t *shape;
    const int64_t *strides;
} sad_arr;

typedef struct sad_tape sad_tape;
typedef struct sad_vec sad_vec;
typedef struct sad_pool sad_pool;

/* Record kinds.  The elementwise ones (enum sad_ew_op, 0 .. SAD_N_EW - 1) are
 * in ew_ops.h, generated from the partials table; cdef reads that file
 * first.  Each elementwise op has a primal and a partial-derivative rule
 * (shared by the tangent and the reverse sweep). */
enum sad_op {
    /* record kinds that are not elementwise */
    SAD_LOAD = 64, SAD_STORE = 65, SAD_SUM = 66, SAD_DOT = 67, SAD_AXPY = 68,
    SAD_PY = 69, SAD_VPUSH = 70, SAD_VPOP = 71, SAD_VLOAD = 72, SAD_VSTORE = 73,
    SAD_VPUSHA = 74, SAD_VCOPY = 75,
    /* scalar record z = f(x, y) with known partials: vx = df/dx, vy = df/dy */
    SAD_LIN = 76,
    /* z = np.outer(a, b) of two vectors (outer.c) */
    SAD_OUTER = 77,
    /* a call of a C custom rule (crule.c, shadowad/rule.h) */
    SAD_CRULE = 78
};

/* How an operand of sad_ew / sad_axpy is passed, and what the call must do. */
enum sad_flag {
    SAD_KX_ARR = 1, SAD_KX_PAIR = 2, SAD_KX_CONST = 3,   /* operand x */
    SAD_KY_ARR = 4, SAD_KY_PAIR = 8, SAD_KY_CONST = 12,  /* operand y */
    SAD_F_SAVE = 16,     /* the output is overwritten in place: save its bytes */
    SAD_F_PRIMAL = 32,   /* C computes the primal output (else numpy does) */
    SAD_F_PYUNDO = 64,   /* python record whose undo/redo runs in Python */
    SAD_F_LANES = 128,   /* tangent arrays carry a leading axis of lanes */
    SAD_F_FRESH = 512,   /* the output is a fresh temporary: its shadow is dead
                          * once this record is swept, so it is not zeroed */
    SAD_F_CLEAN_FAIL = 1024, /* with SAD_F_SAVE: should computing the output fail,
                          * the caller keeps the record if memory was written
                          * and drops it only if not; the save may then be
                          * shared with an earlier one (sad_tape_save_covered) */
    SAD_F_F32 = 2048     /* every array of the call is float32 (the data of its
                          * descriptors are floats): the kernels run in float */
};

/* Return codes of the recording calls.  SAD_NUMPY: recorded, but the primal
 * is numpy's to compute (it would report a floating-point exception, or its
 * NaN bits are the machine code's). */
enum sad_status { SAD_OK = 0, SAD_TOO_MANY_DIMS = 1, SAD_NUMPY = 2, SAD_NOMEM = -1,
                  SAD_RULE_FAILED = 3, /* a C rule's function returned non-zero */
                  SAD_BAD_OPERAND = 4, /* a traced scalar (a float64 pair) given to a
                                        * float32 call: numpy computes that in float64 */
                  SAD_OVER_BUDGET = -4 /* the tape's budget refused memory (see
                                        * sad_tape_set_budget); nothing was recorded */ };


/* The core's entry points as one constant table of function pointers
 * (api.c; struct sad_api in sad_api.h): the extension shadowad._fast calls
 * the core through it, so the core's code exists once, in this module. */
struct sad_api;
const struct sad_api *sad_api(void);

/* Snapshots of plain arrays that records read (snapshot.c): are the n bytes
 * at addresses a and b (data of arrays the caller holds) equal; copy n bytes
 * from src to dst?  (Comparing an array's
 * elements with a block is the extension's same_elements.) */
int sad_same_bytes(intptr_t a, intptr_t b, int64_t n);
void sad_copy_bytes(intptr_t dst, intptr_t src, int64_t n);

/* ---- tape -------------------------------------------------------------- */
sad_tape *sad_tape_new(void);
void sad_tape_free(sad_tape *t);

/* A pool of large save-stack chunks that outlives tapes: a tape that uses one
 * takes its large chunks from it and gives them back when freed, so that
 * repeated calls reuse memory whose pages are already there instead of
 * having the kernel fault in and zero new ones.  It keeps at most max_bytes
 * and is shared safely between threads.  Python holds one reference
 * (sad_pool_release drops it); every tape using the pool holds another. */
sad_pool *sad_pool_new(int64_t max_bytes);
void sad_pool_release(sad_pool *p);
int64_t sad_pool_bytes(sad_pool *p);           /* held now, for nobody */
void sad_pool_trim(sad_pool *p, int64_t max_bytes); /* a new limit; frees the excess */
void sad_tape_use_pool(sad_tape *t, sad_pool *p);
int64_t sad_tape_len(const sad_tape *t);
/* 0: sweep record by record, never fusing runs of elementwise records (fuse.c;
 * shadowad.testing.check_fused_sweep compares both sweeps bit for bit).  New
 * tapes fuse. */
void sad_tape_set_fuse(sad_tape *t, int on);
int64_t sad_tape_fused(const sad_tape *t); /* records swept in fused runs */
/* 1: the records made from now on are swept soon after (a checkpointed
 * loop's step, taped and reversed at once), so their saves are copied
 * through the cache; 0 (new tapes): around it, as a whole tape's saves are
 * read long after, if ever. */
int sad_tape_set_saves_soon(sad_tape *t, int on); /* returns what it was */
/* The C memory a tape holds, in bytes, as allocated (tape.stats() in
 * shadowad/tape.py adds what Python holds):
 *  records:   the tape, its record array and slot table (their capacity), and
 *             the chunks of scalar pairs and iteration blocks, whole;
 *  saved:     the save stack in use: overwritten bytes, and room some
 *             records' sweeps need beside them;
 *  save_room: the save stack's chunks beyond that (allocated, not yet used);
 *  shadows:   lazy shadows' memory the sweep allocated (released blocks
 *             included: the tape reuses them), none while recording. */
typedef struct sad_tape_bytes {
    int64_t records, saved, save_room, shadows;
} sad_tape_bytes;
void sad_tape_sizes(const sad_tape *t, sad_tape_bytes *out);
/* Their sum: every byte of the tape the core holds. */
int64_t sad_tape_held(const sad_tape *t);

/* Bounds and marks (budget.c).  tape.stats()'s nbytes is sad_tape_held plus
 * what Python holds for the tape.  A budget (> 0; 0: none) bounds that sum:
 * an allocation of the core (records, chunks of pairs, blocks and saved
 * bytes, slots, lazy shadows' memory in the sweep) that would take the
 * core's bytes plus `outside` past it is refused, and the call fails with
 * SAD_OVER_BUDGET (sad_slot_new returns it too; the calls that return a
 * pair return 0); sad_tape_refused then says how many bytes it asked for.
 * Geometric growth shrinks to fit under a budget (half the room left, at
 * least what the call needs).  `outside` is what Python counted it holds,
 * last time it counted (sad_tape_counted, which also clears refused);
 * sad_tape_grew adds Python's estimate of what it has added since and says
 * whether the tape may now hold `mark` bytes (mark > 0), when Python counts
 * again (its budget, a progress report, a memory warning).  Memory a C
 * rule's tape holds is counted once the rule returns (rule_bytes): never
 * refused, it makes the next count due. */
void sad_tape_set_budget(sad_tape *t, int64_t budget);
void sad_tape_set_mark(sad_tape *t, int64_t mark);
void sad_tape_counted(sad_tape *t, int64_t outside);
int sad_tape_grew(sad_tape *t, int64_t bytes);
int64_t sad_tape_refused(const sad_tape *t);

/* ---- scalars ----------------------------------------------------------- */
intptr_t sad_pair_new(sad_tape *t, double v);
double sad_pair_grad(intptr_t pair);
void sad_pair_add(intptr_t pair, double g);
/* Zero the adjoint of every pair of the tape (before sweeping it again). */
void sad_tape_zero_adjoints(sad_tape *t);

/* z = op(x) / op(x, y) on scalars; x or y == 0 marks a constant whose value
 * is vx / vy.  Returns the new pair of z, 0 when out of memory. */
intptr_t sad_s1(sad_tape *t, int op, double z, intptr_t x, double vx);
intptr_t sad_s2(sad_tape *t, int op, double z, intptr_t x, double vx,
                intptr_t y, double vy);
/* Read element (byte offset off) of an active array: a new pair of value v. */
intptr_t sad_load(sad_tape *t, const sad_arr *s, int64_t off, double v);
/* Write v (the value of pair x, or a constant when x == 0) to the element at
 * byte offset poff of primal p (soff of shadow s, which may be NULL), saving the
 * old value in the record. */
int sad_store(sad_tape *t, const sad_arr *p, const sad_arr *s, int64_t poff, int64_t soff,
              intptr_t x, double v);

/* ---- arrays ------------------------------------------------------------ */
/* z = op(x[, y]) elementwise with broadcasting.  z/zs: output array and its
 * shadow; x, y: arrays (with shadows xs, ys, NULL when inactive), pairs, or the
 * constant k, as the flags say.  Records one tape entry. */
int sad_ew(sad_tape *t, int op, int flags, const sad_arr *z, const sad_arr *zs,
           const sad_arr *x, const sad_arr *xs, const sad_arr *y, const sad_arr *ys, double k);
/* Same computation without a tape: the tangent dz = dop/dx dx + dop/dy dy
 * (dx, dy may be NULL), which also writes z = op(x, y) when SAD_F_PRIMAL is in
 * flags.  Else z must already hold the value (numpy's): partials that read
 * z (sqrt, exp, tanh, ...) read it there, as the reverse sweep does. */
int sad_ew_tangent(int op, int flags, const sad_arr *z, const sad_arr *dz, const sad_arr *x,
                   const sad_arr *dx, const sad_arr *y, const sad_arr *dy, double k);
/* With SAD_F_LANES in flags, dz, dx and dy have one leading axis more than
 * z, x and y: one lane per tangent direction, all propagated in one call. */
/* One partial derivative of z = op(x, y) at one point: dz/dx (which = 0) or
 * dz/dy (which = 1); forward mode's scalar path. */
double sad_partial(int op, int which, double x, double y, double z);
/* Full reductions to a new scalar pair of value v: SAD_SUM (x) or SAD_DOT (x, y);
 * sad_reduce_lazy sums an x whose shadow is lazy slot `slot` (see slot.c). */
intptr_t sad_reduce_lazy(sad_tape *t, double v, const sad_arr *x, int64_t slot);
intptr_t sad_reduce(sad_tape *t, int op, double v, const sad_arr *x, const sad_arr *xs,
                    const sad_arr *y, const sad_arr *ys);
/* y += a*x, computed in C; a is a pair or the constant va (flags KY_*),
 * x an array or a pair (flags KX_*). */
int sad_axpy(sad_tape *t, int flags, intptr_t a, double va, const sad_arr *x,
             const sad_arr *xs, const sad_arr *y, const sad_arr *ys);
/* Its tangents without a tape: y += va*x with dy += va*dx + da*x (dx may be
 * NULL), where dx and dy have a leading axis of lanes and da points to one
 * tangent of a per lane (NULL: a is constant). */
int sad_axpy_tangents(double va, const double *da, const sad_arr *x, const sad_arr *dx,
                      const sad_arr *y, const sad_arr *dy);
/* z = np.outer(a, b) of 1-D arrays a and b (shadows as, bs; NULL when inactive):
 * C writes z[i, j] = a[i] * b[j] (numpy's bits) into z, a fresh C-contiguous
 * (len(a), len(b)) array, and records it; the sweep adds z's adjoint (shadow
 * zs) into as and bs.  A slot > 0 marks that shadow as a lazy slot (see
 * sad_slot_new); its shadow argument is then the array with its layout (its
 * primal, z for zs).  Records nothing when z is empty.  SAD_NUMPY: an operand
 * holds a NaN or a product raised a floating-point exception; the record is
 * made, and numpy computes z again (the record is the tape's last). */
int sad_outer(sad_tape *t, const sad_arr *z, const sad_arr *zs, int64_t zslot, const sad_arr *a,
              const sad_arr *as, int64_t aslot, const sad_arr *b, const sad_arr *bs,
              int64_t bslot);

/* A record whose pullback runs in Python (index pyidx in Python's list);
 * flags: SAD_F_PYUNDO or 0. */
int sad_py(sad_tape *t, int64_t pyidx, int flags);

/* C custom rules (crule.c).  `rule` is a `const sad_rule *` (shadowad/rule.h,
 * not read by cdef); Python has checked its ABI, nargs <= SAD_CRULE_MAXARGS,
 * every nd <= SAD_CRULE_MAXDIM and that the function it calls exists.
 * shadows[k].data is NULL for an inactive argument (then its strides are not
 * read), else its shadow, shaped as args[k].
 * sad_crule records a call: saves the mutated arguments (positions mut),
 * runs the augmented primal (or the primal) and keeps its tape.  On
 * SAD_RULE_FAILED *code is the rule's code, the mutated bytes are back and
 * nothing is recorded.  sad_crule_call runs the primal (tangent 0) or the
 * tangent (tangent 1, shadows the tangents of one lane) without a tape.
 * sad_crule_adjoint runs the reverse without a tape: the augmented primal
 * (if any) on `work` (args with the mutated ones at scratch copies) for the
 * rule's tape, then the reverse on args (memory as before the call) and
 * shadows, then free_tape; on a non-zero code *part is 0 when the augmented
 * primal failed, 1 when the reverse did.
 * When a sweep stops at -2 - i because record i's reverse failed,
 * sad_tape_rule_error returns its code (0: it was no rule) and *rec = i. */
enum { SAD_CRULE_MAXARGS = 64, SAD_CRULE_MAXDIM = 32 };
int sad_crule(sad_tape *t, const void *rule, int32_t nargs, const sad_arr *args,
              const sad_arr *shadows, int32_t nmut, const int32_t *mut, int *code);
int sad_crule_call(const void *rule, int tangent, int32_t nargs, const sad_arr *args,
                   const sad_arr *shadows);
int sad_crule_adjoint(const void *rule, int32_t nargs, const sad_arr *work, const sad_arr *args,
                      const sad_arr *shadows, int *part);
int sad_tape_rule_error(const sad_tape *t, int64_t *rec);
int64_t sad_record_pyidx(const sad_tape *t, int64_t i);

/* A lazy shadow for the temporary whose primal (C-contiguous) is array z, of
 * elements of esize bytes (8: float64, 4: float32): returns its slot number (> 0), SAD_NOMEM when out of memory, or
 * SAD_SLOTS_FULL when the tape has made as many slots, or reserved as much
 * address space for their windows, as it may (the caller gives the
 * temporary a shadow of its own instead).  Slot numbers are never reused
 * within a tape (a later sweep of the same records finds the same slot);
 * the memory of released slots is.  sad_slot_bind gives a slot memory
 * Python allocated (the shadow zs). */
enum { SAD_SLOTS_FULL = -2 };
int64_t sad_slot_new(sad_tape *t, const sad_arr *z, int64_t esize);
/* Every function taking a slot number from the caller first checks that it
 * names one of t's slots (1..the slots made) and fits what it is used for,
 * else does nothing and returns SAD_BAD_SLOT: the number comes from a Python
 * attribute anyone can set.  sad_slot_valid checks the number;
 * sad_slot_holds also that array z's elements, of esize bytes, lie within the
 * temporary whose shadow the slot is, and are its kind of element (so a lazy
 * shadow's layout stays in its slot). */
enum { SAD_BAD_SLOT = -3 };
int sad_slot_valid(const sad_tape *t, int64_t slot);
int sad_slot_holds(const sad_tape *t, int64_t slot, const sad_arr *z, int64_t esize);
/* Bound the tape's slots: at most max_slots of them (<= 0: the default,
 * 2^24) and max_bytes of windows (<= 0: the default, 2^36; every window
 * takes its shadow's bytes rounded up to 64).  Before the first slot only. */
void sad_tape_set_slot_limits(sad_tape *t, int64_t max_slots, int64_t max_bytes);
/* zs must have as many elements as the slot's temporary, of its size esize. */
int sad_slot_bind(sad_tape *t, int64_t slot, const sad_arr *zs, int64_t esize);
/* The slot's memory now (0 while the sweep has not needed it), for a
 * temporary of n elements of esize bytes (SAD_BAD_SLOT when the slot's is
 * not such a temporary). */
intptr_t sad_slot_memory(const sad_tape *t, int64_t slot, int64_t n, int64_t esize);
/* The same, given memory the tape owns now if it has none (as the sweep gives
 * a slot it first adds into): zeroed when `zero`, else the caller stores into
 * every element.  0 when out of memory.  For a Python pullback during the
 * sweep; the memory goes back to the tape with sad_slot_release. */
intptr_t sad_slot_alloc(sad_tape *t, int64_t slot, int64_t n, int64_t esize, int zero);
/* Its record has been swept: memory the sweep allocated goes back to the tape
 * for later slots of the same size (memory Python bound is left alone). */
int sad_slot_release(sad_tape *t, int64_t slot);

/* ---- sweeps ------------------------------------------------------------ */
/* Each runs records until it meets one that needs Python, and returns that
 * record's index (its saved bytes already swapped), or -1 when done; the
 * reverse sweep returns -2 - i when record i found no memory for a lazy
 * shadow (record i untouched: undo from i + 1).
 * reverse/undo walk records [0, from) backwards; redo walks [from, len). */
int64_t sad_reverse(sad_tape *t, int64_t from);
/* The reverse sweep leaves the records below this index applied (none of them
 * and nothing before them reads primal values, so nothing needs them undone):
 * afterwards, redo from it, or undo from it to restore f's inputs. */
int64_t sad_tape_restore_floor(sad_tape *t);
/* The last record in [from, to) that may have written primal bytes in
 * [lo, hi): its index, -1 for none, -2 - i for a Python-undone record i that
 * Python must ask (csrc/core/tape.c). */
int64_t sad_tape_last_write(const sad_tape *t, int64_t from, int64_t to, intptr_t lo, intptr_t hi);
int64_t sad_undo(sad_tape *t, int64_t from);
int64_t sad_redo(sad_tape *t, int64_t from);
/* A redo that copies saved bytes back instead of swapping them: the tape
 * cannot be undone afterwards, only freed. */
int64_t sad_redo_last(sad_tape *t, int64_t from);
/* The bytes sad_redo_last(t, from) would copy back, or -1 when it does more
 * than copy bytes (Python and Vector records). */
int64_t sad_tape_redo_bytes(const sad_tape *t, int64_t from);
/* Undo and drop the records [n, len): an operation that failed half-way
 * leaves no trace.  Python never truncates over a Python record. */
void sad_truncate(sad_tape *t, int64_t n);

/* Segments (checkpointed loops): records appended to a tape, then swept
 * alone or forgotten, while the records below them stay.  A mark is where
 * the tape stood: its records, lazy slots and the ends of its save stack and
 * block arena (opaque to Python).  sad_reverse_range sweeps records [lo, from)
 * as sad_reverse sweeps [0, from), fused runs included, and returns the same
 * codes (a record >= lo that needs Python, -1 when done, -2 - i).
 * sad_tape_drop forgets the records from the mark on, leaving memory as they
 * left it (an untaped advance keeps its effects; a swept step has already
 * put the primals back): their saves, blocks and C rule tapes are freed and
 * their lazy slots' numbers and memory given back.  Scalar pairs stay (a
 * traced scalar may outlive its record). */
typedef struct sad_tape_mark {
    int64_t n, nslots, slot_space_used;
    intptr_t saves_head, blocks_head;
    int64_t saves_used, blocks_used, saves_bytes, blocks_bytes;
} sad_tape_mark;
void sad_tape_get_mark(const sad_tape *t, sad_tape_mark *m);
int64_t sad_reverse_range(sad_tape *t, int64_t from, int64_t lo);
/* sad_undo over records [lo, from) only (a step that failed half-way). */
int64_t sad_undo_range(sad_tape *t, int64_t from, int64_t lo);
void sad_tape_drop(sad_tape *t, const sad_tape_mark *m);
/* The first record in [from, to) that changes a sad.Vector (push, pop,
 * store) other than the nallowed vectors ``allowed``, or -1. */
int64_t sad_tape_vector_write(const sad_tape *t, int64_t from, int64_t to,
                              sad_vec *const *allowed, int64_t nallowed);

/* ---- growable vectors -------------------------------------------------- */
sad_vec *sad_vec_new(int64_t cap);
void sad_vec_free(sad_vec *v);
int64_t sad_vec_len(const sad_vec *v);
double *sad_vec_data(sad_vec *v);
int sad_vec_push(sad_vec *v, double x);
int sad_vec_extend(sad_vec *v, const sad_arr *arr);
double sad_vec_pop(sad_vec *v);
/* Make v hold exactly the n doubles x (its length becomes n; its capacity
 * never shrinks). */
int sad_vec_assign(sad_vec *v, const double *x, int64_t n);
/* Bytes v holds (its data's capacity and the vector itself). */
int64_t sad_vec_nbytes(const sad_vec *v);
/* recorded variants: v/vs primal and shadow vector (vs may be NULL) */
int sad_vpush(sad_tape *t, sad_vec *v, sad_vec *vs, intptr_t x, double vx);
int sad_vpusha(sad_tape *t, sad_vec *v, sad_vec *vs, const sad_arr *x, const sad_arr *xs);
/* pops into *value; returns the pair of the popped value, 1 when vs is NULL
 * (inactive), 0 when out of memory */
intptr_t sad_vpop(sad_tape *t, sad_vec *v, sad_vec *vs, double *value);
intptr_t sad_vload(sad_tape *t, sad_vec *vs, int64_t i, double v);
int sad_vstore(sad_tape *t, sad_vec *v, sad_vec *vs, int64_t i, intptr_t x,
               double vx);
int sad_vcopy(sad_tape *t, sad_vec *v, sad_vec *vs, const sad_arr *z, const sad_arr *zs);
