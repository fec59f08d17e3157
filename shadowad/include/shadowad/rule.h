/* shadowad/rule.h -- the C interface of a custom derivative rule.
 *
 * A C-extension author describes one routine by a `sad_rule`: function
 * pointers for its primal, its augmented primal (which may keep a tape of its
 * own), its reverse (adjoint) and, optionally, its tangent, all operating on
 * plain array descriptors.  Python registers the struct once:
 *
 *     solve = sad.c_rule(address_or_capsule, name="tridiag.solve", mutates=(3,))
 *
 * and calls `solve(a, b, c, d)` like any function inside a differentiated f.
 * shadowad's C reverse sweep calls `reverse` directly, without Python and
 * without the GIL.  Find this header with `shadowad.get_include()`.
 *
 * Contract (the two rules of mutating pullbacks):
 *  - Every argument is a float64 array (a 0-d array for a scalar).  Arguments
 *    named in `mutates` are overwritten by the routine; the others must not be
 *    written.  shadowad saves the mutated arguments' bytes before the call and
 *    puts them back before `reverse` runs, so `reverse` sees every argument's
 *    memory as it was just before the call.
 *  - `shadow` is NULL for an inactive argument.  In reverse mode it is the
 *    adjoint memory: `reverse` ADDS into the shadows of read-only arguments,
 *    and turns the shadow of a mutated argument from the adjoint of its value
 *    after the call into the adjoint of its value before the call (zero where
 *    the call overwrote it without reading it).  In forward mode it is the
 *    tangent: `tangent` performs the call and writes the mutated arguments'
 *    new tangents.
 *  - `reverse` may run more than once on one tape (a split-mode tape reversed
 *    twice, several reverse lanes): it must not change its tape.  shadowad
 *    calls `free_tape` once, when its own tape is freed.
 *  - A non-zero return of any function becomes a Python exception
 *    (sad.CRuleError) naming the rule, the function and the code, with the
 *    primals restored.
 *  - A mutated argument shares no memory with another argument (sad.c_rule
 *    refuses the call).  An active scalar is a 0-d argument whose shadow is
 *    its adjoint (reverse) or tangent (forward).
 *  - The functions may run on any thread, without the GIL, concurrently with
 *    other calls of the same rule on other tapes: keep no global mutable
 *    state (use `user` for constants).
 */
#ifndef SHADOWAD_RULE_H
#define SHADOWAD_RULE_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped whenever the layout of the structs below changes; sad.c_rule refuses
 * a rule built against another version. */
#define SAD_RULE_ABI 1

typedef struct sad_rule_array {
    double *data;                  /* the primal's first element */
    double *shadow;                /* adjoint (reverse) or tangent (forward); NULL: inactive */
    int32_t ndim;
    int32_t reserved;
    const int64_t *shape;          /* ndim entries */
    const int64_t *strides;        /* of data, in bytes */
    const int64_t *shadow_strides; /* of shadow, in bytes (NULL when shadow is NULL) */
} sad_rule_array;

/* The routine itself: performs the call on args[k].data. */
typedef int (*sad_rule_primal_fn)(void *user, int32_t nargs, const sad_rule_array *args);

/* Performs the call and may keep what its reverse needs in *tape (allocated by
 * the rule; *tape_bytes is its size, counted in shadowad's tape statistics).
 * NULL in the struct: the primal runs and the tape is NULL. */
typedef int (*sad_rule_augmented_fn)(void *user, int32_t nargs, const sad_rule_array *args,
                                     void **tape, int64_t *tape_bytes);

/* The adjoint: memory holds the values from just before the call. */
typedef int (*sad_rule_reverse_fn)(void *user, int32_t nargs, const sad_rule_array *args,
                                   const void *tape);

/* Performs the call and writes the new tangents of the mutated arguments
 * (shadow holds each argument's tangent; one lane per call). */
typedef int (*sad_rule_tangent_fn)(void *user, int32_t nargs, const sad_rule_array *args);

/* Releases a tape the augmented primal allocated. */
typedef void (*sad_rule_free_fn)(void *user, void *tape);

typedef struct sad_rule {
    uint32_t abi;                            /* SAD_RULE_ABI */
    int32_t nargs;                           /* the number of array arguments */
    sad_rule_primal_fn primal;               /* required */
    sad_rule_augmented_fn augmented_primal;  /* optional */
    sad_rule_reverse_fn reverse;             /* required for reverse mode */
    sad_rule_tangent_fn tangent;             /* optional: forward mode */
    sad_rule_free_fn free_tape;              /* required when the augmented primal keeps a tape */
    void *user;                              /* passed to every function as is */
} sad_rule;

#ifdef __cplusplus
}
#endif
#endif
