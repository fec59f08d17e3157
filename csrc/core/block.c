/* block.c -- iteration spaces of array records.
 *
 * A block describes z = op(x, y) over z's shape: broadcast inputs get stride
 * 0, dimensions of length 1 are dropped and contiguous runs of dimensions are
 * merged, so most records iterate over one or two dimensions. */
#include <stdlib.h>
#include <string.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "sad.h"

enum { MAXND = 64 };
/* Saves of at least this many bytes bypass the cache (copy_out). */
enum { STREAM_MIN = 1 << 16 };

/* The kernels, once for float64 records and once for float32 ones. */
#define SAD_FLOAT 64
#include "real.h"
#include "block_real.h"
#include "real_end.h"
#define SAD_FLOAT 32
#include "real.h"
#include "block_real.h"
#include "real_end.h"

