/* sad_api.h -- the table of the core's entry points that the extension
 * shadowad._fast calls (csrc/ext): the core is compiled once, into the cffi
 * module shadowad._csad, and sad_api() (api.c) hands out this table, a
 * constant.  The extension checks `size` against its own sizeof before using
 * the table: a core and an extension built from different sources refuse to
 * work together instead of calling through a wrong slot. */
#ifndef SAD_API_H
#define SAD_API_H

#include "sad.h"

struct sad_api {
    size_t size; /* sizeof(struct sad_api) of the core that made it */
    /* tape */
    int64_t (*tape_len)(const sad_tape *t);
    void (*truncate)(sad_tape *t, int64_t n);
    /* budget.c: Python's estimate grew (a count is due?); the bytes the budget refused */
    int (*tape_grew)(sad_tape *t, int64_t bytes);
    int64_t (*tape_refused)(const sad_tape *t);
    /* scalars */
    intptr_t (*s1)(sad_tape *t, int op, double z, intptr_t x, double vx);
    intptr_t (*s2)(sad_tape *t, int op, double z, intptr_t x, double vx, intptr_t y, double vy);
    intptr_t (*load)(sad_tape *t, const sad_arr *s, int64_t off, double v);
    int (*store)(sad_tape *t, const sad_arr *p, const sad_arr *s, int64_t poff, int64_t soff,
                 intptr_t x, double v);
    /* elementwise */
    int (*ew_is_unary)(int op);
    int (*ew_partials_read)(int op);
    int (*ew_slots)(sad_tape *t, int op, int flags, const sad_arr *z, const sad_arr *zs,
                    const sad_arr *x, const sad_arr *xs, const sad_arr *y, const sad_arr *ys,
                    double k, const int64_t slots[3]);
    int (*ew_tangent)(int op, int flags, const sad_arr *z, const sad_arr *dz, const sad_arr *x,
                      const sad_arr *dx, const sad_arr *y, const sad_arr *dy, double k);
    int (*ew_tangent_duals)(int op, int flags, const sad_arr *z, const sad_arr *dz,
                            const sad_arr *x, const sad_arr *dx, const sad_arr *y,
                            const sad_arr *dy, double k, double *const dlanes[2],
                            const int64_t lstride[2]);
    int (*ew_primal_nan)(int op, int flags, const sad_arr *z, const sad_arr *x,
                         const sad_arr *y, double k, int *nan);
    int (*ew_reverse_through)(sad_tape *t, int64_t i, int64_t slot, const sad_arr *g);
    int (*ew_reverse_summed)(sad_tape *t, int64_t i, int64_t slot, int ax, int64_t len,
                             const sad_arr *g);
    /* reductions, outer, axpy */
    intptr_t (*reduce)(sad_tape *t, int op, double v, const sad_arr *x, const sad_arr *xs,
                       const sad_arr *y, const sad_arr *ys);
    intptr_t (*reduce_lazy)(sad_tape *t, double v, const sad_arr *x, int64_t slot);
    int (*outer)(sad_tape *t, const sad_arr *z, const sad_arr *zs, int64_t zslot,
                 const sad_arr *a, const sad_arr *as, int64_t aslot, const sad_arr *b,
                 const sad_arr *bs, int64_t bslot);
    int (*axpy)(sad_tape *t, int flags, intptr_t a, double va, const sad_arr *x,
                const sad_arr *xs, const sad_arr *y, const sad_arr *ys);
    int (*axpy_tangents)(double va, const double *da, const sad_arr *x, const sad_arr *dx,
                         const sad_arr *y, const sad_arr *dy);
    /* lazy slots */
    int64_t (*slot_new)(sad_tape *t, const sad_arr *z, int64_t esize);
    int (*slot_bind)(sad_tape *t, int64_t slot, const sad_arr *zs, int64_t esize);
    /* snapshots */
    int (*same_elements)(const sad_arr *arr, const void *block, int64_t itemsize);
    /* vectors */
    int (*vec_extend)(sad_vec *v, const sad_arr *arr);
    int (*vpusha)(sad_tape *t, sad_vec *v, sad_vec *vs, const sad_arr *x, const sad_arr *xs);
    int (*vcopy)(sad_tape *t, sad_vec *v, sad_vec *vs, const sad_arr *z, const sad_arr *zs);
};

#endif
