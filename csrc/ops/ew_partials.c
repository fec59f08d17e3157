/* ew_partials.c -- elementwise operations: for each, its primal value and
 * its partial derivatives side by side; the tangent (ew_forward.c) and the
 * reverse sweep (ew_reverse.c) both use the same partials, so they cannot
 * disagree. */
#include <tgmath.h>
#include <stdlib.h>
#include <string.h>

#include "sad.h"

/* the constants of the partials table (shadowad/primitives/elementwise.py):
 * ln 10, ln 2, pi / 180 (numpy's factor in deg2rad) and 180 / pi */
#define LN10 2.302585092994046
#define LN2 0.6931471805599453
#define PI 3.141592653589793238462643383279502884
/* numpy's factors of deg2rad and rad2deg, computed in the instance's type as
 * numpy's loops compute them (float32: pi_f / 180.0f, 180.0f / pi_f, not the
 * float64 factors rounded: 57.295776f, not 57.29578f) */
#define DEG (SAD_K(PI) / SAD_K(180.0))
#define RAD (SAD_K(180.0) / SAD_K(PI))
#define LOG2E 1.4426950408889634074 /* numpy's npy_log2_1p factor */

/* once for float64 (sad_ew_partials, ...) and once for float32
 * (sad_ew_partials_f32, ...) */
#define SAD_FLOAT 64
#include "real.h"
#include "ew_partials_real.h"
#include "real_end.h"
#define SAD_FLOAT 32
#include "real.h"
#include "ew_partials_real.h"
#include "real_end.h"

double sad_partial(int op, int which, double x, double y, double z)
{
    double px = 0.0, py = 0.0;
    sad_ew_partials(op, 1, &x, &y, &z, &px, &py);
    return which ? py : px;
}
