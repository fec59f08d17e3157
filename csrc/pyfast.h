/* pyfast.h -- internal declarations shared by the C sources that use the
 * Python C API: the class methods that the scalar type (pyscalar.c)
 * registers, and what the two elementwise fast paths (pyreverse.c,
 * pyforward.c) share (pyfast.c).  Not part of the cffi contract. */
#ifndef SAD_PYFAST_H
#define SAD_PYFAST_H

/* Python.h must come before any standard header, so each source includes it
 * first itself. */
#ifndef Py_PYTHON_H
#error "include <Python.h> before pyfast.h"
#endif

#include "sad.h"

/* Class methods of the scalar type (METH_FASTCALL | METH_CLASS), each
 * described where it is defined. */
/* pykernels.c */
PyObject *sad_scalar_ew(PyObject *cls, PyObject *const *args, Py_ssize_t nargs);
PyObject *sad_scalar_tangent(PyObject *cls, PyObject *const *args, Py_ssize_t nargs);
/* pyreverse.c */
PyObject *sad_scalar_rev_kit(PyObject *cls, PyObject *const *args, Py_ssize_t nargs);
PyObject *sad_scalar_rev(PyObject *cls, PyObject *const *args, Py_ssize_t nargs);
PyObject *sad_scalar_rev_out(PyObject *cls, PyObject *const *args, Py_ssize_t nargs);
PyObject *sad_scalar_outer(PyObject *cls, PyObject *const *args, Py_ssize_t nargs);
/* pyindex.c */
PyObject *sad_scalar_view(PyObject *cls, PyObject *const *args, Py_ssize_t nargs);
PyObject *sad_scalar_writes_back(PyObject *cls, PyObject *const *args, Py_ssize_t nargs);
/* pyforward.c */
PyObject *sad_scalar_fwd_kit(PyObject *cls, PyObject *const *args, Py_ssize_t nargs);
PyObject *sad_scalar_fwd(PyObject *cls, PyObject *const *args, Py_ssize_t nargs);
PyObject *sad_scalar_fsum(PyObject *cls, PyObject *const *args, Py_ssize_t nargs);

/* A traced scalar (the base type, pyscalar.c). */
typedef struct {
    PyObject_HEAD
    double v;
    Py_ssize_t g;      /* the sad_pair of value and adjoint, as an address */
    PyObject *tape;    /* the Python Tape: identity and lifetime */
    sad_tape *t;
    const int *alive;  /* cleared when the tape is freed */
} ScalarObject;

/* pyfast.c: the elementwise fast paths' common machinery */

/* One ufunc operand: p is what numpy computes with (an array, or the number
 * itself), s the shadow (or tangent lanes) array, NULL for a constant.  In
 * reverse mode s may be the primal standing for lazy shadow `slot`; in
 * forward mode a dual scalar's s is its tangent per lane, NULL when `pair`
 * holds its one tangent. */
typedef struct {
    PyObject *p, *s;
    int kind;
    int64_t slot;
    double k;
    sad_pair pair; /* a dual scalar (kind SAD_KX_PAIR): its value and one tangent */
    intptr_t at;   /* a traced scalar (kind SAD_KX_PAIR in reverse mode): its tape pair */
} sad_fast_operand;

int sad_fast_plain(PyObject *o, PyObject *ndarray_type, sad_fast_operand *out);
void sad_fast_release(sad_fast_operand *o, int n);
int sad_fast_call(PyObject *const *args, Py_ssize_t nargs, int at, int *op, int *n);
int sad_fast_primal(PyObject *ufunc, PyObject *ndarray_type, const sad_fast_operand *o, int n,
                    PyObject **z);
int sad_fast_pack(const sad_fast_operand *o, int n, int flags, intptr_t p[2], intptr_t s[2],
                  double *k);
PyObject *sad_fast_result(int status, PyObject *res);
PyObject *sad_fast_slot_of(PyObject *o, PyObject *type, Py_ssize_t off);
PyObject *sad_fast_slot(PyObject *o, Py_ssize_t off);

/* A kit (pyforward.c, pyreverse.c): a struct made once by Python and passed
 * on every call as a capsule, holding the exact classes a fast path meets,
 * the offsets of the __slots__ fields it reads, and a few objects.  Its
 * layout, for sad_fast_kit: where its objects are (the first `types` of
 * them classes), and which slot offsets to read from which of them. */
typedef struct {
    int type; /* the index of the class among the kit's objects */
    const char *name;
    size_t field; /* where the offset goes in the kit */
} sad_kit_slot;

typedef struct {
    const char *name; /* of the capsule, and of the kit in error messages */
    size_t size;
    const size_t *objects; /* offsets of the PyObject * fields args fill */
    int nobjects, types;
    const sad_kit_slot *slots;
    size_t nslots;
} sad_kit_layout;

/* A new kit of layout l from args, as a capsule (NULL with an exception):
 * the objects are args, the slot offsets are read from the classes (a class
 * whose field is not a plain slot is refused, TypeError). */
PyObject *sad_fast_kit(const sad_kit_layout *l, PyObject *const *args, Py_ssize_t nargs,
                       PyCapsule_Destructor destroy);
/* Release kit k of layout l (its objects, and `extra` more at the offsets
 * after them, which the kit's maker filled itself). */
void sad_fast_kit_free(const sad_kit_layout *l, void *k, const size_t *extra, int nextra);

/* pyreverse.c: reverse mode's kit (rev_kit): the exact classes the fast
 * paths meet (traced array, ndarray, Buffer, Tape), the offsets of the
 * __slots__ fields they read, lazy_result (make), snapshots.hold (hold)
 * and the keyword names of an out= call. */
typedef struct {
    PyObject *traced, *ndarray, *buffer, *tape, *make, *hold;
    /* numpy's error-state context variable and a value of it under which
     * numpy only warns (None, None: unknown; see rev_out) */
    PyObject *extobj_var, *extobj_warns;
    PyObject *kw_out; /* ("out",) */
    Py_ssize_t a_p, a_s, a_buf, b_tape, b_slot, b_readonly, b_kept, t_keep, t_tptr, t_alive;
} sad_rev_kit;

/* The kit of a reverse fast-path call (args[0]), or NULL with an exception. */
const sad_rev_kit *sad_rev_kit_of(PyObject *const *args, Py_ssize_t nargs);
/* The C tape and alive flag of a live Tape: 1, else 0 (no exception set). */
int sad_rev_tape_of(const sad_rev_kit *k, PyObject *tape, sad_tape **t, const int **alive);

#endif
