/* tridiag.c -- an in-place tridiagonal solver (Thomas algorithm) with its
 * adjoint and tangent, as a shadowad C rule (shadowad/rule.h).
 *
 * solve(a, b, c, d): A x = d with A's sub-diagonal a[1:], diagonal b and
 * super-diagonal c[:-1]; d is overwritten by x.  Arrays may be strided views.
 *
 * The derivative: x = A^-1 d, so with lambda = A^-T xbar (xbar: the adjoint
 * of d after the call) the adjoint of d before the call is lambda, and
 * Abar = -lambda x^T, whose three diagonals go to a, b and c.  The tangent
 * is xdot = A^-1 (ddot - Adot x). */
#include <stdlib.h>
#include <string.h>

#include "shadowad/rule.h"

#define AT(arr, i) (*(double *)((char *)(arr)->data + (i) * (arr)->strides[0]))
#define SH(arr, i) (*(double *)((char *)(arr)->shadow + (i) * (arr)->shadow_strides[0]))

enum { A_, B_, C_, D_, NARGS };
enum { OK = 0, BAD_SHAPE = 1, NO_MEMORY = 2, SINGULAR = 3 };

/* Solve the system with diagonals sub/diag/sup (contiguous, length n) for
 * rhs (contiguous), in place; cp is scratch of length n. */
static int thomas(int64_t n, const double *sub, const double *diag, const double *sup,
                  double *rhs, double *cp)
{
    if (diag[0] == 0.0)
        return SINGULAR;
    cp[0] = n > 1 ? sup[0] / diag[0] : 0.0;
    rhs[0] /= diag[0];
    for (int64_t i = 1; i < n; ++i) {
        const double m = diag[i] - sub[i] * cp[i - 1];
        if (m == 0.0)
            return SINGULAR;
        cp[i] = i < n - 1 ? sup[i] / m : 0.0;
        rhs[i] = (rhs[i] - sub[i] * rhs[i - 1]) / m;
    }
    for (int64_t i = n - 2; i >= 0; --i)
        rhs[i] -= cp[i] * rhs[i + 1];
    return OK;
}

static int64_t length(int32_t nargs, const sad_rule_array *args)
{
    if (nargs != NARGS)
        return -1;
    const int64_t n = args[D_].shape[0];
    for (int k = 0; k < NARGS; ++k)
        if (args[k].ndim != 1 || args[k].shape[0] != n)
            return -1;
    return n;
}

/* Work memory: contiguous copies of the diagonals, the right-hand side and
 * the scratch column, 5n doubles. */
static double *gather(int64_t n, const sad_rule_array *args)
{
    double *w = malloc(5 * (size_t)n * sizeof(double));
    if (w == NULL)
        return NULL;
    for (int64_t i = 0; i < n; ++i) {
        w[i] = AT(&args[A_], i);
        w[n + i] = AT(&args[B_], i);
        w[2 * n + i] = AT(&args[C_], i);
        w[3 * n + i] = AT(&args[D_], i);
    }
    return w;
}

/* The solution x of the call into *x (n doubles, allocated here). */
static int solve_into(int64_t n, const sad_rule_array *args, double **x)
{
    double *w = gather(n, args);
    if (w == NULL)
        return NO_MEMORY;
    const int rc = thomas(n, w, w + n, w + 2 * n, w + 3 * n, w + 4 * n);
    if (rc != OK) {
        free(w);
        return rc;
    }
    memmove(w, w + 3 * n, (size_t)n * sizeof(double)); /* x first: the rest is freed below */
    double *shrunk = realloc(w, (size_t)n * sizeof(double));
    *x = shrunk != NULL ? shrunk : w;
    return OK;
}

static int primal(void *user, int32_t nargs, const sad_rule_array *args)
{
    (void)user;
    const int64_t n = length(nargs, args);
    if (n < 1)
        return BAD_SHAPE;
    double *x;
    const int rc = solve_into(n, args, &x);
    if (rc != OK)
        return rc;
    for (int64_t i = 0; i < n; ++i)
        AT(&args[D_], i) = x[i];
    free(x);
    return OK;
}

/* The tape is x, the solution: the reverse needs it (Abar = -lambda x^T) and
 * memory will hold d as it was before the call by then. */
static int augmented(void *user, int32_t nargs, const sad_rule_array *args, void **tape,
                     int64_t *tape_bytes)
{
    (void)user;
    const int64_t n = length(nargs, args);
    if (n < 1)
        return BAD_SHAPE;
    double *x;
    const int rc = solve_into(n, args, &x);
    if (rc != OK)
        return rc;
    for (int64_t i = 0; i < n; ++i)
        AT(&args[D_], i) = x[i];
    *tape = x;
    *tape_bytes = n * (int64_t)sizeof(double);
    return OK;
}

static int reverse(void *user, int32_t nargs, const sad_rule_array *args, const void *tape)
{
    (void)user;
    const int64_t n = length(nargs, args);
    if (n < 1)
        return BAD_SHAPE;
    const double *x = tape;
    const sad_rule_array *d = &args[D_];
    if (d->shadow == NULL) /* d inactive: nothing depends on the call's inputs */
        return OK;
    /* A^T has diagonal b, sub-diagonal c[i-1] and super-diagonal a[i+1] */
    double *w = malloc(5 * (size_t)n * sizeof(double));
    if (w == NULL)
        return NO_MEMORY;
    double *sub = w, *diag = w + n, *sup = w + 2 * n, *lam = w + 3 * n, *cp = w + 4 * n;
    for (int64_t i = 0; i < n; ++i) {
        sub[i] = i > 0 ? AT(&args[C_], i - 1) : 0.0;
        diag[i] = AT(&args[B_], i);
        sup[i] = i < n - 1 ? AT(&args[A_], i + 1) : 0.0;
        lam[i] = SH(d, i);
    }
    const int rc = thomas(n, sub, diag, sup, lam, cp);
    if (rc != OK) {
        free(w);
        return rc;
    }
    for (int64_t i = 0; i < n; ++i) {
        if (args[A_].shadow != NULL && i > 0)
            SH(&args[A_], i) -= lam[i] * x[i - 1];
        if (args[B_].shadow != NULL)
            SH(&args[B_], i) -= lam[i] * x[i];
        if (args[C_].shadow != NULL && i < n - 1)
            SH(&args[C_], i) -= lam[i] * x[i + 1];
#ifndef TRIDIAG_BROKEN
        SH(d, i) = lam[i]; /* d was overwritten: its adjoint is replaced */
#else /* the classic mistake, for tests/test_c_rules.py: check_rule must catch it */
        SH(d, i) += lam[i];
#endif
    }
    free(w);
    return OK;
}

static int tangent(void *user, int32_t nargs, const sad_rule_array *args)
{
    (void)user;
    const int64_t n = length(nargs, args);
    if (n < 1)
        return BAD_SHAPE;
    double *x;
    int rc = solve_into(n, args, &x);
    if (rc != OK)
        return rc;
    double *w = gather(n, args); /* the diagonals, then ddot - Adot x in the rhs */
    if (w == NULL) {
        free(x);
        return NO_MEMORY;
    }
    for (int64_t i = 0; i < n; ++i) {
        double r = args[D_].shadow != NULL ? SH(&args[D_], i) : 0.0;
        if (args[A_].shadow != NULL && i > 0)
            r -= SH(&args[A_], i) * x[i - 1];
        if (args[B_].shadow != NULL)
            r -= SH(&args[B_], i) * x[i];
        if (args[C_].shadow != NULL && i < n - 1)
            r -= SH(&args[C_], i) * x[i + 1];
        w[3 * n + i] = r;
    }
    rc = thomas(n, w, w + n, w + 2 * n, w + 3 * n, w + 4 * n);
    if (rc == OK)
        for (int64_t i = 0; i < n; ++i) {
            AT(&args[D_], i) = x[i];
            if (args[D_].shadow != NULL)
                SH(&args[D_], i) = w[3 * n + i];
        }
    free(w);
    free(x);
    return rc;
}

static void free_tape(void *user, void *tape)
{
    (void)user;
    free(tape);
}

static const sad_rule RULE = {SAD_RULE_ABI, NARGS, primal, augmented, reverse, tangent,
                              free_tape, NULL};

const sad_rule *tridiag_rule(void) { return &RULE; }

/* The plain solver, for callers outside shadowad: returns 0 or an error code. */
int tridiag_solve(int64_t n, const double *a, const double *b, const double *c, double *d)
{
    if (n < 1)
        return BAD_SHAPE;
    double *w = malloc(4 * (size_t)n * sizeof(double));
    if (w == NULL)
        return NO_MEMORY;
    memcpy(w, a, (size_t)n * sizeof(double));
    memcpy(w + n, b, (size_t)n * sizeof(double));
    memcpy(w + 2 * n, c, (size_t)n * sizeof(double));
    const int rc = thomas(n, w, w + n, w + 2 * n, d, w + 3 * n);
    free(w);
    return rc;
}
