/* ew_forward.c -- elementwise primal and tangent kernels over blocks, and
 * the recording of an elementwise operation onto the tape. */
#include <stdlib.h>
#include <string.h>

#include "sad.h"


/* The kernels, once for float64 arrays and once for float32 ones (SAD_F_F32). */
#define SAD_FLOAT 64
#include "real.h"
#include "ew_forward_real.h"
#include "real_end.h"
#define SAD_FLOAT 32
#include "real.h"
#include "ew_forward_real.h"
#include "real_end.h"

int sad_ew_primal_nan(int op, int flags, const sad_arr *z, const sad_arr *x, const sad_arr *y,
                      double k, int *nan)
{
    return flags & SAD_F_F32 ? primal_nan_f32(op, flags, z, x, y, k, nan)
                             : primal_nan(op, flags, z, x, y, k, nan);
}

int sad_ew_tangent(int op, int flags, const sad_arr *z, const sad_arr *dz, const sad_arr *x,
                   const sad_arr *dx, const sad_arr *y, const sad_arr *dy, double k)
{
    return flags & SAD_F_F32 ? tangent_f32(op, flags, z, dz, x, dx, y, dy, k)
                             : tangent(op, flags, z, dz, x, dx, y, dy, k);
}

/* Dual scalars are float64: a float32 call has none (its block refuses
 * pairs), and is sad_ew_tangent's. */
int sad_ew_tangent_duals(int op, int flags, const sad_arr *z, const sad_arr *dz,
                         const sad_arr *x, const sad_arr *dx, const sad_arr *y,
                         const sad_arr *dy, double k, double *const dlanes[2],
                         const int64_t lstride[2])
{
    if (flags & SAD_F_F32)
        return tangent_f32(op, flags, z, dz, x, dx, y, dy, k);
    sad_block b;
    int rc = sad_block_build(&b, flags, z, dz, x, dx, y, dy, k);
    if (rc != SAD_OK)
        return rc;
    for (int j = 0; j < 2; ++j)
        if (dlanes[j] != NULL) { /* lane l's tangent at dlanes[j] + l * lstride[j] */
            b.o[1 + j].s = dlanes[j];
            b.ls[1 + j] = lstride[j];
        }
    return forward(op, &b, 1, (flags & SAD_F_PRIMAL) != 0, NULL);
}

int sad_ew(sad_tape *t, int op, int flags, const sad_arr *z, const sad_arr *zs,
           const sad_arr *x, const sad_arr *xs, const sad_arr *y, const sad_arr *ys, double k)
{
    return sad_ew_slots(t, op, flags, z, zs, x, xs, y, ys, k, NULL);
}

/* sad_ew where slots[j] > 0 marks operand j's shadow as lazy slot slots[j];
 * its shadow argument is then an array with the shadow's layout (its primal). */
int sad_ew_slots(sad_tape *t, int op, int flags, const sad_arr *z, const sad_arr *zs,
                 const sad_arr *x, const sad_arr *xs, const sad_arr *y, const sad_arr *ys,
                 double k, const int64_t slots[3])
{
    return flags & SAD_F_F32 ? record_f32(t, op, flags, z, zs, x, xs, y, ys, k, slots)
                             : record(t, op, flags, z, zs, x, xs, y, ys, k, slots);
}
