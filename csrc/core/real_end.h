/* real_end.h -- ends a template instance (real.h): the instance's macros are
 * undefined, so that code after it cannot use them by mistake. */
#undef sad_real
#undef sad_bits
#undef SAD_R
#undef SAD_K
#undef SAD_IS_F32
#undef SAD_FLOAT
