/* ew_partials_real.h -- the primal values and partial derivatives of the
 * elementwise ops (ew_partials.c), a template (real.h): included once per
 * float type.  Constants are integers or in the instance's type (SAD_K), and the math
 * functions are <tgmath.h>'s, so the float32 instance computes in float, as
 * numpy's float32 loops and the partials table on float32 values do. */

void SAD_R(sad_ew_values)(int op, int64_t n, const sad_real *restrict x, const sad_real *restrict y,
                   sad_real *restrict z)
{
    int64_t i;
    /* over the enum, without a default: -Wswitch (an error in this build)
     * names an op of the table that has no case here */
    switch ((enum sad_ew_op)op) {
    case SAD_COPY:   for (i = 0; i < n; ++i) z[i] = x[i]; break;
    case SAD_NEG:    for (i = 0; i < n; ++i) z[i] = -x[i]; break;
    case SAD_SQUARE: for (i = 0; i < n; ++i) z[i] = x[i] * x[i]; break;
    case SAD_SQRT:   for (i = 0; i < n; ++i) z[i] = sqrt(x[i]); break;
    case SAD_RECIP:  for (i = 0; i < n; ++i) z[i] = 1 / x[i]; break;
    case SAD_EXP:    for (i = 0; i < n; ++i) z[i] = exp(x[i]); break;
    case SAD_LOG:    for (i = 0; i < n; ++i) z[i] = log(x[i]); break;
    case SAD_LOG1P:  for (i = 0; i < n; ++i) z[i] = log1p(x[i]); break;
    case SAD_EXPM1:  for (i = 0; i < n; ++i) z[i] = expm1(x[i]); break;
    case SAD_SIN:    for (i = 0; i < n; ++i) z[i] = sin(x[i]); break;
    case SAD_COS:    for (i = 0; i < n; ++i) z[i] = cos(x[i]); break;
    case SAD_TAN:    for (i = 0; i < n; ++i) z[i] = tan(x[i]); break;
    case SAD_TANH:   for (i = 0; i < n; ++i) z[i] = tanh(x[i]); break;
    case SAD_SINH:   for (i = 0; i < n; ++i) z[i] = sinh(x[i]); break;
    case SAD_COSH:   for (i = 0; i < n; ++i) z[i] = cosh(x[i]); break;
    case SAD_ASIN:   for (i = 0; i < n; ++i) z[i] = asin(x[i]); break;
    case SAD_ACOS:   for (i = 0; i < n; ++i) z[i] = acos(x[i]); break;
    case SAD_ATAN:   for (i = 0; i < n; ++i) z[i] = atan(x[i]); break;
    case SAD_ABS:    for (i = 0; i < n; ++i) z[i] = fabs(x[i]); break;
    case SAD_ADD:    for (i = 0; i < n; ++i) z[i] = x[i] + y[i]; break;
    case SAD_SUB:    for (i = 0; i < n; ++i) z[i] = x[i] - y[i]; break;
    case SAD_MUL:    for (i = 0; i < n; ++i) z[i] = x[i] * y[i]; break;
    case SAD_DIV:    for (i = 0; i < n; ++i) z[i] = x[i] / y[i]; break;
    case SAD_POW:    for (i = 0; i < n; ++i) z[i] = pow(x[i], y[i]); break;
    case SAD_ATAN2:  for (i = 0; i < n; ++i) z[i] = atan2(x[i], y[i]); break;
    case SAD_HYPOT:  for (i = 0; i < n; ++i) z[i] = hypot(x[i], y[i]); break;
    case SAD_MAX:
        for (i = 0; i < n; ++i) z[i] = (x[i] >= y[i] || isnan(x[i])) ? x[i] : y[i];
        break;
    case SAD_MIN:
        for (i = 0; i < n; ++i) z[i] = (x[i] <= y[i] || isnan(x[i])) ? x[i] : y[i];
        break;
    case SAD_FMAX: /* numpy's fmax: a NaN is ignored unless both are NaN */
        for (i = 0; i < n; ++i) z[i] = (x[i] >= y[i] || isnan(y[i])) ? x[i] : y[i];
        break;
    case SAD_FMIN:
        for (i = 0; i < n; ++i) z[i] = (x[i] <= y[i] || isnan(y[i])) ? x[i] : y[i];
        break;
    case SAD_LOG10:   for (i = 0; i < n; ++i) z[i] = log10(x[i]); break;
    case SAD_LOG2:    for (i = 0; i < n; ++i) z[i] = log2(x[i]); break;
    case SAD_EXP2:    for (i = 0; i < n; ++i) z[i] = exp2(x[i]); break;
    case SAD_ASINH:   for (i = 0; i < n; ++i) z[i] = asinh(x[i]); break;
    case SAD_ACOSH:   for (i = 0; i < n; ++i) z[i] = acosh(x[i]); break;
    case SAD_ATANH:   for (i = 0; i < n; ++i) z[i] = atanh(x[i]); break;
    case SAD_DEG2RAD: for (i = 0; i < n; ++i) z[i] = x[i] * DEG; break;
    case SAD_RAD2DEG: for (i = 0; i < n; ++i) z[i] = x[i] * RAD; break;
    case SAD_CBRT:    for (i = 0; i < n; ++i) z[i] = cbrt(x[i]); break;
    case SAD_COPYSIGN: for (i = 0; i < n; ++i) z[i] = copysign(x[i], y[i]); break;
    case SAD_HEAVISIDE: /* numpy's: NaN stays NaN, h at ±0 */
        for (i = 0; i < n; ++i)
            z[i] = isnan(x[i]) ? x[i] : (x[i] < 0 ? 0 : (x[i] > 0 ? 1 : y[i]));
        break;
    case SAD_LOGADDEXP: case SAD_LOGADDEXP2: {
        /* numpy's npy_logaddexp: the larger plus log1p(exp(-|x - y|)) */
        const int two = op == SAD_LOGADDEXP2;
        for (i = 0; i < n; ++i) {
            if (x[i] == y[i]) {
                z[i] = x[i] + (two ? 1 : SAD_K(LN2));
            } else {
                const sad_real d = x[i] - y[i];
                if (d > 0)
                    z[i] = x[i] + (two ? SAD_K(LOG2E) * log1p(exp2(-d)) : log1p(exp(-d)));
                else if (d <= 0)
                    z[i] = y[i] + (two ? SAD_K(LOG2E) * log1p(exp2(d)) : log1p(exp(d)));
                else
                    z[i] = d;
            }
        }
        break;
    }
    }
}

/* dz/dx and dz/dy at (x, y) with z = op(x, y) already computed.  Ties of
 * max/min split the derivative evenly, as JAX and PyTorch do.  With one NaN
 * operand the whole derivative goes to the operand whose value z is: the NaN
 * for maximum/minimum (as the max/min reductions do), the number for
 * fmax/fmin; two NaNs are a tie. */
static void SAD_R(fill)(sad_real *dst, int64_t n, sad_real v)
{
    if (dst != NULL)
        for (int64_t i = 0; i < n; ++i)
            dst[i] = v;
}

SAD_HOT void SAD_R(sad_ew_partials)(int op, int64_t n, const sad_real *restrict x, const sad_real *restrict y,
                     const sad_real *restrict z, sad_real *restrict px, sad_real *restrict py)
{
    int64_t i;
    switch ((enum sad_ew_op)op) { /* every op, as sad_ew_values */
    case SAD_COPY:   for (i = 0; i < n; ++i) px[i] = 1; break;
    case SAD_NEG:    for (i = 0; i < n; ++i) px[i] = -1; break;
    case SAD_SQUARE: for (i = 0; i < n; ++i) px[i] = 2 * x[i]; break;
    case SAD_SQRT:   for (i = 0; i < n; ++i) px[i] = SAD_K(0.5) / z[i]; break;
    case SAD_RECIP:  for (i = 0; i < n; ++i) px[i] = -z[i] * z[i]; break;
    case SAD_EXP:    for (i = 0; i < n; ++i) px[i] = z[i]; break;
    case SAD_LOG:    for (i = 0; i < n; ++i) px[i] = 1 / x[i]; break;
    case SAD_LOG1P:  for (i = 0; i < n; ++i) px[i] = 1 / (1 + x[i]); break;
    case SAD_EXPM1:  for (i = 0; i < n; ++i) px[i] = z[i] + 1; break;
    case SAD_SIN:    for (i = 0; i < n; ++i) px[i] = cos(x[i]); break;
    case SAD_COS:    for (i = 0; i < n; ++i) px[i] = -sin(x[i]); break;
    case SAD_TAN:    for (i = 0; i < n; ++i) px[i] = 1 + z[i] * z[i]; break;
    case SAD_TANH:   for (i = 0; i < n; ++i) px[i] = 1 - z[i] * z[i]; break;
    case SAD_SINH:   for (i = 0; i < n; ++i) px[i] = cosh(x[i]); break;
    case SAD_COSH:   for (i = 0; i < n; ++i) px[i] = sinh(x[i]); break;
    case SAD_ASIN:   for (i = 0; i < n; ++i) px[i] = 1 / sqrt(1 - x[i] * x[i]); break;
    case SAD_ACOS:   for (i = 0; i < n; ++i) px[i] = -1 / sqrt(1 - x[i] * x[i]); break;
    case SAD_ATAN:   for (i = 0; i < n; ++i) px[i] = 1 / (1 + x[i] * x[i]); break;
    case SAD_ABS:
        for (i = 0; i < n; ++i) px[i] = x[i] > 0 ? 1 : (x[i] < 0 ? -1 : 0);
        break;
    /* add, sub, mul, div, pow: px or py may be NULL when that partial is not
     * needed (an inactive operand), which spares a division, pow or log */
    case SAD_ADD: SAD_R(fill)(px, n, 1); SAD_R(fill)(py, n, 1); break;
    case SAD_SUB: SAD_R(fill)(px, n, 1); SAD_R(fill)(py, n, -1); break;
    case SAD_MUL:
        if (px != NULL) for (i = 0; i < n; ++i) px[i] = y[i];
        if (py != NULL) for (i = 0; i < n; ++i) py[i] = x[i];
        break;
    case SAD_DIV:
        if (px != NULL) for (i = 0; i < n; ++i) px[i] = 1 / y[i];
        if (py != NULL) for (i = 0; i < n; ++i) py[i] = -x[i] / (y[i] * y[i]);
        break;
    case SAD_POW:
        if (px != NULL)
            for (i = 0; i < n; ++i) px[i] = y[i] == 0 ? 0 : y[i] * pow(x[i], y[i] - 1);
        if (py != NULL)
            for (i = 0; i < n; ++i) py[i] = x[i] == 0 ? 0 : z[i] * log(x[i]);
        break;
    case SAD_ATAN2:
        for (i = 0; i < n; ++i) {
            sad_real r = x[i] * x[i] + y[i] * y[i];
            px[i] = r == 0 ? 0 : y[i] / r;
            py[i] = r == 0 ? 0 : -x[i] / r;
        }
        break;
    case SAD_HYPOT:
        for (i = 0; i < n; ++i) {
            px[i] = z[i] == 0 ? 0 : x[i] / z[i];
            py[i] = z[i] == 0 ? 0 : y[i] / z[i];
        }
        break;
    case SAD_MAX: case SAD_MIN: case SAD_FMAX: case SAD_FMIN: {
        const int lo = op == SAD_MIN || op == SAD_FMIN, f = op == SAD_FMAX || op == SAD_FMIN;
        for (i = 0; i < n; ++i) {
            const int nx = isnan(x[i]) != 0, ny = isnan(y[i]) != 0;
            const sad_real a = lo ? y[i] : x[i], b = lo ? x[i] : y[i];
            px[i] = a > b ? 1 : (a < b ? 0 : (nx == ny ? SAD_K(0.5) : (nx != f ? 1 : 0)));
            py[i] = 1 - px[i];
        }
        break;
    }
    case SAD_LOG10:   for (i = 0; i < n; ++i) px[i] = 1 / (x[i] * SAD_K(LN10)); break;
    case SAD_LOG2:    for (i = 0; i < n; ++i) px[i] = 1 / (x[i] * SAD_K(LN2)); break;
    case SAD_EXP2:    for (i = 0; i < n; ++i) px[i] = z[i] * SAD_K(LN2); break;
    case SAD_ASINH:   for (i = 0; i < n; ++i) px[i] = 1 / sqrt(x[i] * x[i] + 1); break;
    case SAD_ACOSH:
        for (i = 0; i < n; ++i) px[i] = 1 / sqrt((x[i] - 1) * (x[i] + 1));
        break;
    case SAD_ATANH:   for (i = 0; i < n; ++i) px[i] = 1 / (1 - x[i] * x[i]); break;
    case SAD_DEG2RAD: for (i = 0; i < n; ++i) px[i] = DEG; break;
    case SAD_RAD2DEG: for (i = 0; i < n; ++i) px[i] = RAD; break;
    case SAD_CBRT:    for (i = 0; i < n; ++i) px[i] = 1 / (3 * z[i] * z[i]); break;
    case SAD_COPYSIGN: /* abs'(x) (0 at ±0 and NaN) times y's sign */
        for (i = 0; i < n; ++i) {
            const sad_real w = x[i] > 0 ? 1 : (x[i] < 0 ? -1 : 0);
            px[i] = (signbit(y[i]) ? -1 : 1) * w;
            py[i] = 0;
        }
        break;
    case SAD_HEAVISIDE:
        for (i = 0; i < n; ++i) {
            px[i] = 0;
            py[i] = x[i] == 0 ? 1 : 0;
        }
        break;
    case SAD_LOGADDEXP: case SAD_LOGADDEXP2:
        /* exp(x - z); where that is inf - inf with x == z: 1, or 0.5 at a tie */
        for (i = 0; i < n; ++i) {
            const sad_real ex = x[i] - z[i], ey = y[i] - z[i];
            const int two = op == SAD_LOGADDEXP2;
            px[i] = isnan(ex) && x[i] == z[i] ? (x[i] == y[i] ? SAD_K(0.5) : 1)
                                              : (two ? exp2(ex) : exp(ex));
            py[i] = isnan(ey) && y[i] == z[i] ? (x[i] == y[i] ? SAD_K(0.5) : 1)
                                              : (two ? exp2(ey) : exp(ey));
        }
        break;
    }
}

