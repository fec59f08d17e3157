/* real.h -- the float type of a kernel written once for both of numpy's
 * float64 and float32.  Such kernels live in a template header that a source
 * includes twice, each time after defining SAD_FLOAT (64, then 32) and
 * including this file, which defines for that instance:
 *   sad_real     the element type (double, float)
 *   sad_bits     an unsigned integer of its width (for bitwise selects)
 *   SAD_R(name)  the instance's name of name: name itself for float64,
 *                name##_f32 for float32
 *   SAD_K(v)     constant v in the element type.  The float32 kernels compute
 *                in float throughout, as numpy's float32 loops do: a double
 *                constant would promote the arithmetic around it to double
 *                and round once at the end, a different value.  (The build
 *                warns of any such promotion: -Wdouble-promotion.)
 *   SAD_IS_F32   1 in the float32 instance
 * A template that calls math functions is compiled with <tgmath.h>, so that
 * sqrt, exp, ... are the instance's (sqrtf, expf, ... for float).  real_end.h
 * ends an instance. */
#undef sad_real
#undef sad_bits
#undef SAD_R
#undef SAD_K
#undef SAD_IS_F32
#if SAD_FLOAT == 64
#define sad_real double
#define sad_bits uint64_t
#define SAD_R(name) name
#define SAD_IS_F32 0
#elif SAD_FLOAT == 32
#define sad_real float
#define sad_bits uint32_t
#define SAD_R(name) name##_f32
#define SAD_IS_F32 1
#else
#error "define SAD_FLOAT as 64 or 32 before including real.h"
#endif
#define SAD_K(v) ((sad_real)(v))
