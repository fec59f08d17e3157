/* fuse.c -- the reverse sweep of a run of elementwise records, block by block.
 *
 * sum(-log(X) - data/X) records five operations over the same n elements.
 * Swept one record at a time, every record streams its adjoints through
 * memory, and for large n that traffic, not arithmetic, is the cost.  A run of
 * consecutive elementwise records over the same n contiguous elements is swept
 * FUSE_BLOCK elements at a time instead, each record of the run on one block
 * before the next block: what a block passes from record to record stays in
 * cache, and the adjoint of a temporary created and consumed inside the run
 * only ever exists one block at a time (no memory, no traffic).
 *
 * The result is the same, bit for bit, as record by record: every element sees
 * the same operations in the same order.  That holds when records of the run
 * share memory only element for element (the same range, stride 1), only
 * read it, or share it shifted the right way (see admit); a run stops before
 * a record that would break this.
 */
#include <math.h>
#include <stdlib.h>

#include "sad.h"

enum { FUSE_BLOCK = 2048, FUSE_MAX = 32, FUSE_MIN_N = 4 * FUSE_BLOCK };

enum { READS, WRITES, ADDS };

/* Memory one record touches: bytes [lo, hi) of real memory (space 0) or of
 * lazy slot `space`, which has no memory yet. */
typedef struct region {
    int64_t space;
    intptr_t lo, hi;
    int kind, unit; /* unit: stride 1 over the run's n elements */
} region;

typedef struct run {
    const sad_tape *t;
    int64_t n;
    int len, nreg;
    region reg[FUSE_MAX * 6];
} run;

/* Runs of float64 records (with sums) and of float32 ones, alike. */
#define SAD_FLOAT 64
#include "real.h"
#include "fuse_real.h"
#include "real_end.h"
#define SAD_FLOAT 32
#include "real.h"
#include "fuse_real.h"
#include "real_end.h"

int64_t sad_fuse_reverse(sad_tape *t, int64_t top, int64_t floor, int64_t lo)
{
    return t->rec[top].flags & SAD_F_F32 ? fuse_run_f32(t, top, floor, lo)
                                         : fuse_run(t, top, floor, lo);
}
