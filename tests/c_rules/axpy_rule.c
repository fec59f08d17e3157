/* axpy_rule.c -- a small C rule for tests/test_c_rules.py:
 *
 *     sqaxpy(a, x, y):  y += a * x**2    (a 0-d, x and y of one shape, any strides)
 *
 * Its `user` counts tapes allocated and freed, and makes a function fail or
 * the reverse sleep on request. */
#include <stdlib.h>
#include <time.h>

#include "shadowad/rule.h"

typedef struct axpy_user {
    int fail_augmented, fail_reverse, fail_tangent, fail_primal;
    double sleep; /* seconds each reverse spins */
    int64_t tapes, frees, reverses;
} axpy_user;

enum { A_, X_, Y_, NARGS };

static int64_t size(const sad_rule_array *a)
{
    int64_t n = 1;
    for (int d = 0; d < a->ndim; ++d)
        n *= a->shape[d];
    return n;
}

/* The address of element k (C order) of a's data (shadow: of its shadow). */
static double *at(const sad_rule_array *a, int64_t k, int shadow)
{
    char *p = (char *)(shadow ? a->shadow : a->data);
    const int64_t *st = shadow ? a->shadow_strides : a->strides;
    for (int d = a->ndim - 1; d >= 0; --d) {
        p += (k % a->shape[d]) * st[d];
        k /= a->shape[d];
    }
    return (double *)p;
}

static int check(int32_t nargs, const sad_rule_array *args)
{
    if (nargs != NARGS || args[A_].ndim != 0 || args[X_].ndim != args[Y_].ndim)
        return 7;
    for (int d = 0; d < args[X_].ndim; ++d)
        if (args[X_].shape[d] != args[Y_].shape[d])
            return 7;
    return 0;
}

static int primal(void *user, int32_t nargs, const sad_rule_array *args)
{
    const axpy_user *u = user;
    if (u->fail_primal)
        return u->fail_primal;
    int rc = check(nargs, args);
    if (rc)
        return rc;
    const double a = *args[A_].data;
    for (int64_t k = 0; k < size(&args[Y_]); ++k) {
        const double x = *at(&args[X_], k, 0);
        *at(&args[Y_], k, 0) += a * x * x;
    }
    return 0;
}

static int augmented(void *user, int32_t nargs, const sad_rule_array *args, void **tape,
                     int64_t *tape_bytes)
{
    axpy_user *u = user;
    int rc = primal(user, nargs, args);
    if (rc == 0 && u->fail_augmented)
        rc = u->fail_augmented; /* after writing: shadowad must put y back */
    if (rc)
        return rc;
    *tape = malloc(64);
    if (*tape == NULL)
        return 2;
    *tape_bytes = 64;
    __atomic_add_fetch(&u->tapes, 1, __ATOMIC_SEQ_CST);
    return 0;
}

static int reverse(void *user, int32_t nargs, const sad_rule_array *args, const void *tape)
{
    axpy_user *u = user;
    (void)tape;
    __atomic_add_fetch(&u->reverses, 1, __ATOMIC_SEQ_CST);
    if (u->fail_reverse)
        return u->fail_reverse;
    if (u->sleep > 0) {
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        do
            clock_gettime(CLOCK_MONOTONIC, &t1);
        while ((double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec) <
               u->sleep);
    }
    int rc = check(nargs, args);
    if (rc || args[Y_].shadow == NULL)
        return rc;
    const double a = *args[A_].data;
    for (int64_t k = 0; k < size(&args[Y_]); ++k) {
        const double g = *at(&args[Y_], k, 1), x = *at(&args[X_], k, 0);
        if (args[A_].shadow != NULL)
            *args[A_].shadow += g * x * x;
        if (args[X_].shadow != NULL)
            *at(&args[X_], k, 1) += g * 2.0 * a * x;
    }
    return 0; /* y is read and written: its adjoint passes through unchanged */
}

static int tangent(void *user, int32_t nargs, const sad_rule_array *args)
{
    const axpy_user *u = user;
    if (u->fail_tangent)
        return u->fail_tangent;
    int rc = check(nargs, args);
    if (rc)
        return rc;
    const double a = *args[A_].data;
    const double da = args[A_].shadow != NULL ? *args[A_].shadow : 0.0;
    for (int64_t k = 0; k < size(&args[Y_]); ++k) {
        const double x = *at(&args[X_], k, 0);
        const double dx = args[X_].shadow != NULL ? *at(&args[X_], k, 1) : 0.0;
        *at(&args[Y_], k, 0) += a * x * x;
        if (args[Y_].shadow != NULL)
            *at(&args[Y_], k, 1) += da * x * x + 2.0 * a * x * dx;
    }
    return 0;
}

static void free_tape(void *user, void *tape)
{
    axpy_user *u = user;
    __atomic_add_fetch(&u->frees, 1, __ATOMIC_SEQ_CST);
    free(tape);
}

/* A fresh rule and its counters (never freed: the tests are one process). */
sad_rule *axpy_rule_new(int abi, int with_tangent)
{
    sad_rule *r = calloc(1, sizeof(sad_rule));
    axpy_user *u = calloc(1, sizeof(axpy_user));
    if (r == NULL || u == NULL)
        return NULL;
    *r = (sad_rule){(uint32_t)abi, NARGS, primal, augmented, reverse,
                    with_tangent ? tangent : NULL, free_tape, u};
    return r;
}

axpy_user *axpy_rule_user(sad_rule *r) { return r->user; }
