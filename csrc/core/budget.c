/* budget.c -- a tape's bound on its bytes, and the marks at which Python
 * counts what it holds for the tape (shadowad/engines/reverse/watch.py).
 *
 * The core knows its own bytes exactly (sad_tape_held: the counters of
 * sad_tape_sizes, kept as it allocates).  Python's bytes it knows as Python
 * last counted them (outside) plus Python's estimate since (pending).  The
 * budget is checked against the core's bytes plus the counted part only: a
 * refusal is never caused by an estimate.  The mark is checked against all
 * three: an estimate only makes Python count sooner. */
#include <stdint.h>

#include "sad.h"

int64_t sad_tape_held(const sad_tape *t)
{
    sad_tape_bytes b;
    sad_tape_sizes(t, &b);
    return b.records + b.saved + b.save_room + b.shadows;
}

void sad_tape_set_budget(sad_tape *t, int64_t budget) { t->budget = budget > 0 ? budget : 0; }
void sad_tape_set_mark(sad_tape *t, int64_t mark) { t->mark = mark > 0 ? mark : 0; }
int64_t sad_tape_refused(const sad_tape *t) { return t->refused; }

void sad_tape_counted(sad_tape *t, int64_t outside)
{
    t->outside = outside > 0 ? outside : 0;
    t->pending = 0;
    t->refused = 0;
}

int sad_tape_grew(sad_tape *t, int64_t bytes)
{
    if (t->mark <= 0)
        return 0;
    t->pending += bytes;
    return sad_tape_held(t) + t->outside + t->pending >= t->mark;
}

size_t sad_tape_room(const sad_tape *t)
{
    if (t->budget <= 0)
        return SIZE_MAX;
    const int64_t left = t->budget - sad_tape_held(t) - t->outside;
    return left > 0 ? (size_t)left : 0;
}

int sad_tape_admit(sad_tape *t, size_t bytes)
{
    if (t->budget <= 0)
        return 1;
    if (bytes <= sad_tape_room(t)) {
        t->refused = 0;
        return 1;
    }
    t->refused = bytes > (size_t)INT64_MAX ? INT64_MAX : (int64_t)bytes;
    return 0;
}

/* The room here counts Python's estimate too: it only sizes a growth (a
 * smaller chunk near the budget), it never refuses one. */
size_t sad_tape_fit(const sad_tape *t, size_t want, size_t least)
{
    if (t->budget <= 0 || want <= least)
        return want;
    const int64_t left = t->budget - sad_tape_held(t) - t->outside - t->pending;
    const size_t room = left > 0 ? (size_t)left : 0;
    if (want <= room)
        return want;
    return room / 2 > least ? room / 2 : least;
}
