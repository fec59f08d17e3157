/* arrays.c -- the core's entry points that read an array, for Python's
 * callers: each takes the array objects themselves (and the Tape object),
 * checks them (an aligned float64 ndarray, else a TypeError naming the
 * argument; None where an array may be absent), and passes the core their
 * descriptors (sad_arr).  The call holds its arguments, so the memory C
 * reads stays alive while it reads it; what a record keeps reading
 * afterwards, Python has put on the tape's keep list. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "fast.h"

/* o as an ndarray (of float64, aligned, when f64), else NULL with TypeError
 * naming argument `what` of function `fn`. */
static PyObject *ndarray_arg(PyObject *module, PyObject *o, int f64, const char *fn,
                             const char *what)
{
    PyTypeObject *nd = sad_state_of(module)->ndarray_type;
    if (PyObject_TypeCheck(o, nd) && (!f64 || sad_is_f64(o)))
        return o;
    PyErr_Format(PyExc_TypeError, "%s: %s must be %s, not %R", fn, what,
                 f64 ? "an aligned float64 ndarray in native byte order" : "an ndarray", o);
    return NULL;
}

/* The C tape of Tape object `tape` (alive), or NULL with an exception. */
static sad_tape *tape_arg(PyObject *module, PyObject *tape, const char *fn)
{
    if (!PyObject_TypeCheck(tape, sad_state_of(module)->tape_type)) {
        PyErr_Format(PyExc_TypeError, "%s: %R is not a Tape", fn, tape);
        return NULL;
    }
    const sad_tape_object *o = (const sad_tape_object *)tape;
    if (!o->alive || o->tptr == NULL) {
        /* the words of Python's tape.finished_error, and why */
        PyErr_Format(PyExc_RuntimeError,
                     "shadowad: a traced value was used after its autodiff call finished (%s: "
                     "its tape has been freed); traced values exist only while f runs (take "
                     "plain values inside f with sad.primal)", fn);
        return NULL;
    }
    return (sad_tape *)PyLong_AsVoidPtr(o->tptr);
}

/* Argument `what` of function `fn`: an aligned float64 ndarray (its
 * descriptor in *d, *out = d) or, when none_ok, None (*out = NULL).  0, or
 * -1 with a TypeError. */
static int arr_arg(PyObject *module, PyObject *o, int none_ok, const char *fn, const char *what,
                   sad_arr *d, const sad_arr **out)
{
    if (none_ok && o == Py_None) {
        *out = NULL;
        return 0;
    }
    if (ndarray_arg(module, o, 1, fn, what) == NULL)
        return -1;
    *d = sad_arr_of(o);
    *out = d;
    return 0;
}

/* An operand that may be a pair: an int is its address (a pair's
 * descriptor, shadowad.h), anything else as arr_arg. */
static int arr_or_pair_arg(PyObject *module, PyObject *o, const char *fn, const char *what,
                           sad_arr *d, const sad_arr **out)
{
    if (!PyLong_CheckExact(o))
        return arr_arg(module, o, 0, fn, what, d, out);
    const sad_arr pair = {(double *)PyLong_AsVoidPtr(o), 0, NULL, NULL};
    if (pair.data == NULL)
        return PyErr_Occurred() ? -1
                                : (PyErr_Format(PyExc_ValueError, "%s: %s is no pair", fn, what), -1);
    *d = pair;
    *out = d;
    return 0;
}

/* The C tape of `tape`, or NULL for None when none_ok; -1 with an error. */
static int tape_or_none(PyObject *module, PyObject *tape, int none_ok, const char *fn,
                        sad_tape **t)
{
    if (none_ok && tape == Py_None) {
        *t = NULL;
        return 0;
    }
    *t = tape_arg(module, tape, fn);
    return *t != NULL ? 0 : -1;
}

/* A C vector's address (an int from ffi) or NULL for None. */
static int vec_arg(PyObject *o, sad_vec **v)
{
    *v = o == Py_None ? NULL : (sad_vec *)PyLong_AsVoidPtr(o);
    return PyErr_Occurred() ? -1 : 0;
}

static const struct sad_api *api_of(PyObject *module) { return sad_state_of(module)->api; }

/* 0 if the arrays fit together as `ok` says, else -1 with a ValueError
 * naming function fn: C would read past an array otherwise. */
static int layout_ok(int ok, const char *fn)
{
    if (ok)
        return 0;
    PyErr_Format(PyExc_ValueError, "%s: the arrays do not fit together (a shadow not of its "
                                   "array's shape, or an operand of another shape)", fn);
    return -1;
}

#define NARGS(fn, n)                                                                     \
    if (nargs != (n))                                                                    \
        return PyErr_Format(PyExc_TypeError, fn " takes %d arguments (%zd given)", (n),  \
                            nargs)

/* _fast.data(a): the address of ndarray a's element 0. */
SAD_FAST(sad_fast_data)
{
    if (nargs != 1)
        return PyErr_Format(PyExc_TypeError, "data takes 1 argument");
    if (ndarray_arg(module, args[0], 0, "data", "a") == NULL)
        return NULL;
    return PyLong_FromVoidPtr(sad_arr_of(args[0]).data);
}

/* _fast.capsule_pointer(c): the pointer PyCapsule c holds, whatever its
 * name (sad.c_rule takes a `const sad_rule *` so). */
SAD_FAST(sad_fast_capsule_pointer)
{
    (void)module;
    if (nargs != 1)
        return PyErr_Format(PyExc_TypeError, "capsule_pointer takes 1 argument");
    if (!PyCapsule_CheckExact(args[0]))
        return PyErr_Format(PyExc_TypeError, "capsule_pointer takes a PyCapsule, got %s",
                            Py_TYPE(args[0])->tp_name);
    void *p = PyCapsule_GetPointer(args[0], PyCapsule_GetName(args[0]));
    if (p == NULL)
        return NULL;
    return PyLong_FromVoidPtr(p);
}

/* _fast.same_elements(a, block, itemsize): do ndarray a's elements, in C
 * order, hold the bytes at address block (itemsize bytes each)? */
SAD_FAST(sad_fast_same_elements)
{
    if (nargs != 3)
        return PyErr_Format(PyExc_TypeError, "same_elements takes 3 arguments");
    if (ndarray_arg(module, args[0], 0, "same_elements", "a") == NULL)
        return NULL;
    void *block = PyLong_AsVoidPtr(args[1]);
    const Py_ssize_t item = PyLong_AsSsize_t(args[2]);
    if (PyErr_Occurred())
        return NULL;
    const sad_arr a = sad_arr_of(args[0]);
    return PyBool_FromLong(sad_state_of(module)->api->same_elements(&a, block, item));
}

/* _fast.reverse_through(tape, i, slot, g): sad_ew_reverse_through with the
 * adjoint array g (often a broadcast made for the call); its status. */
SAD_FAST(sad_fast_reverse_through)
{
    if (nargs != 4)
        return PyErr_Format(PyExc_TypeError, "reverse_through takes 4 arguments");
    sad_tape *t = tape_arg(module, args[0], "reverse_through");
    if (t == NULL || ndarray_arg(module, args[3], 1, "reverse_through", "g") == NULL)
        return NULL;
    const long long i = PyLong_AsLongLong(args[1]), slot = PyLong_AsLongLong(args[2]);
    if (PyErr_Occurred())
        return NULL;
    const sad_arr g = sad_arr_of(args[3]);
    return PyLong_FromLong(sad_state_of(module)->api->ew_reverse_through(t, i, slot, &g));
}

/* _fast.reverse_summed(tape, i, slot, ax, len, g): sad_ew_reverse_summed with
 * the summed adjoint array g; its status. */
SAD_FAST(sad_fast_reverse_summed)
{
    if (nargs != 6)
        return PyErr_Format(PyExc_TypeError, "reverse_summed takes 6 arguments");
    sad_tape *t = tape_arg(module, args[0], "reverse_summed");
    if (t == NULL || ndarray_arg(module, args[5], 1, "reverse_summed", "g") == NULL)
        return NULL;
    const long long i = PyLong_AsLongLong(args[1]), slot = PyLong_AsLongLong(args[2]);
    const long ax = PyLong_AsLong(args[3]);
    const long long len = PyLong_AsLongLong(args[4]);
    if (PyErr_Occurred())
        return NULL;
    const sad_arr g = sad_arr_of(args[5]);
    return PyLong_FromLong(
        sad_state_of(module)->api->ew_reverse_summed(t, i, slot, (int)ax, len, &g));
}

/* _fast.reduce(tape, op, v, x, xs, y, ys): sad_reduce (SAD_SUM of x, SAD_DOT
 * of x and y; shadows xs, ys or None): the new pair's address, 0 when C
 * cannot record it. */
SAD_FAST(sad_fast_reduce)
{
    NARGS("reduce", 7);
    sad_tape *t;
    sad_arr d[4];
    const sad_arr *a[4];
    if (tape_or_none(module, args[0], 0, "reduce", &t) < 0 ||
        arr_arg(module, args[3], 0, "reduce", "x", &d[0], &a[0]) < 0 ||
        arr_arg(module, args[4], 1, "reduce", "xs", &d[1], &a[1]) < 0 ||
        arr_arg(module, args[5], 1, "reduce", "y", &d[2], &a[2]) < 0 ||
        arr_arg(module, args[6], 1, "reduce", "ys", &d[3], &a[3]) < 0)
        return NULL;
    const long op = PyLong_AsLong(args[1]);
    const double v = PyFloat_AsDouble(args[2]);
    if (PyErr_Occurred())
        return NULL;
    if (op != SAD_SUM && op != SAD_DOT)
        return PyErr_Format(PyExc_ValueError, "reduce: op %ld is neither SAD_SUM nor SAD_DOT", op);
    if (op == SAD_DOT && a[2] == NULL)
        return PyErr_Format(PyExc_TypeError, "reduce: SAD_DOT takes an array y");
    if (layout_ok(sad_fast_fits(a[0], a[1], 0) &&
                      (op != SAD_DOT || (sad_fast_fits(a[0], a[2], 0) && sad_fast_fits(a[2], a[3], 0))),
                  "reduce") < 0)
        return NULL;
    return PyLong_FromVoidPtr((void *)api_of(module)->reduce(t, (int)op, v, a[0], a[1],
                                                             op == SAD_DOT ? a[2] : NULL,
                                                             op == SAD_DOT ? a[3] : NULL));
}

/* _fast.reduce_lazy(tape, v, x, slot): sad_reduce_lazy; as sad_reduce_lazy. */
SAD_FAST(sad_fast_reduce_lazy)
{
    NARGS("reduce_lazy", 4);
    sad_tape *t;
    sad_arr d;
    const sad_arr *x;
    if (tape_or_none(module, args[0], 0, "reduce_lazy", &t) < 0 ||
        arr_arg(module, args[2], 0, "reduce_lazy", "x", &d, &x) < 0)
        return NULL;
    const double v = PyFloat_AsDouble(args[1]);
    const long long slot = PyLong_AsLongLong(args[3]);
    if (PyErr_Occurred())
        return NULL;
    return PyLong_FromSsize_t((Py_ssize_t)api_of(module)->reduce_lazy(t, v, x, slot));
}

/* Argument `what` of function `fn`: an aligned float64 or float32 ndarray
 * (its descriptor in *d, its element size in *esize).  0, or -1 with a
 * TypeError. */
static int real_arg(PyObject *module, PyObject *o, const char *fn, const char *what,
                    sad_arr *d, int64_t *esize)
{
    if (ndarray_arg(module, o, 0, fn, what) == NULL)
        return -1;
    if (!sad_is_real(o)) {
        PyErr_Format(PyExc_TypeError, "%s: %s must be an aligned float64 or float32 ndarray "
                     "in native byte order, not %R", fn, what, o);
        return -1;
    }
    *d = sad_arr_of(o);
    *esize = sad_is_f64(o) ? 8 : 4;
    return 0;
}

/* _fast.slot_new(tape, z): sad_slot_new for C-contiguous temporary z. */
SAD_FAST(sad_fast_slot_new)
{
    NARGS("slot_new", 2);
    sad_tape *t;
    sad_arr z;
    int64_t esize;
    if (tape_or_none(module, args[0], 0, "slot_new", &t) < 0 ||
        real_arg(module, args[1], "slot_new", "z", &z, &esize) < 0)
        return NULL;
    return PyLong_FromLongLong(api_of(module)->slot_new(t, &z, esize));
}

/* _fast.slot_bind(tape, slot, zs): sad_slot_bind; its status. */
SAD_FAST(sad_fast_slot_bind)
{
    NARGS("slot_bind", 3);
    sad_tape *t;
    sad_arr zs;
    int64_t esize;
    if (tape_or_none(module, args[0], 0, "slot_bind", &t) < 0 ||
        real_arg(module, args[2], "slot_bind", "zs", &zs, &esize) < 0)
        return NULL;
    const long long slot = PyLong_AsLongLong(args[1]);
    if (PyErr_Occurred())
        return NULL;
    return PyLong_FromLong(api_of(module)->slot_bind(t, slot, &zs, esize));
}

/* The byte offset of an element, checked to lie inside array a (of the
 * descriptor d): 0, or -1 with IndexError. */
static int offset_arg(PyObject *o, const sad_arr *d, const char *fn, int64_t *off)
{
    *off = PyLong_AsLongLong(o);
    if (*off == -1 && PyErr_Occurred())
        return -1;
    int64_t lo = 0, hi = 0;
    for (int k = 0; k < d->nd; ++k) {
        if (d->shape[k] == 0) {
            PyErr_Format(PyExc_IndexError, "%s: an empty array has no elements", fn);
            return -1;
        }
        const int64_t step = d->strides[k] * (d->shape[k] - 1);
        if (step < 0)
            lo += step;
        else
            hi += step;
    }
    if (*off < lo || *off > hi || *off % (int64_t)sizeof(double) != 0) {
        PyErr_Format(PyExc_IndexError, "%s: byte offset %lld is no element of the array", fn,
                     (long long)*off);
        return -1;
    }
    return 0;
}

/* _fast.load_at(tape, s, off, v): sad_load of the element at byte offset
 * off of shadow s: the new pair's address (0: out of memory). */
SAD_FAST(sad_fast_load_at)
{
    NARGS("load_at", 4);
    sad_tape *t;
    sad_arr d;
    const sad_arr *s;
    int64_t off;
    if (tape_or_none(module, args[0], 0, "load_at", &t) < 0 ||
        arr_arg(module, args[1], 0, "load_at", "s", &d, &s) < 0 ||
        offset_arg(args[2], s, "load_at", &off) < 0)
        return NULL;
    const double v = PyFloat_AsDouble(args[3]);
    if (PyErr_Occurred())
        return NULL;
    return PyLong_FromVoidPtr((void *)api_of(module)->load(t, s, off, v));
}

/* _fast.store_at(tape, p, s, poff, soff, x, v): sad_store of v (pair x, 0
 * for a constant) at byte offset poff of p (soff of shadow s, or None). */
SAD_FAST(sad_fast_store_at)
{
    NARGS("store_at", 7);
    sad_tape *t;
    sad_arr d[2];
    const sad_arr *p, *s;
    int64_t poff, soff = 0;
    if (tape_or_none(module, args[0], 0, "store_at", &t) < 0 ||
        arr_arg(module, args[1], 0, "store_at", "p", &d[0], &p) < 0 ||
        arr_arg(module, args[2], 1, "store_at", "s", &d[1], &s) < 0 ||
        offset_arg(args[3], p, "store_at", &poff) < 0 ||
        (s != NULL && offset_arg(args[4], s, "store_at", &soff) < 0))
        return NULL;
    const intptr_t x = (intptr_t)PyLong_AsVoidPtr(args[5]);
    const double v = PyFloat_AsDouble(args[6]);
    if (PyErr_Occurred())
        return NULL;
    return PyLong_FromLong(api_of(module)->store(t, p, s, poff, soff, x, v));
}

/* _fast.outer_record(tape, z, zs, zslot, a, as, aslot, b, bs, bslot):
 * sad_outer (shadows None when inactive); its status. */
SAD_FAST(sad_fast_outer_record)
{
    NARGS("outer_record", 10);
    sad_tape *t;
    sad_arr d[6];
    const sad_arr *a[6];
    static const char *const names[6] = {"z", "zs", "a", "as", "b", "bs"};
    static const int at[6] = {1, 2, 4, 5, 7, 8};
    if (tape_or_none(module, args[0], 0, "outer_record", &t) < 0)
        return NULL;
    for (int j = 0; j < 6; ++j)
        if (arr_arg(module, args[at[j]], j % 2 == 1 && j > 0, "outer_record", names[j], &d[j],
                    &a[j]) < 0)
            return NULL;
    if (a[0]->nd != 2 || a[2]->nd != 1 || a[4]->nd != 1 || a[0]->shape[0] != a[2]->shape[0] ||
        a[0]->shape[1] != a[4]->shape[0])
        return PyErr_Format(PyExc_ValueError, "outer_record: z must be (len(a), len(b)) of "
                                              "vectors a and b");
    if (layout_ok(sad_fast_fits(a[0], a[1], 0) && sad_fast_fits(a[2], a[3], 0) &&
                      sad_fast_fits(a[4], a[5], 0),
                  "outer_record") < 0)
        return NULL;
    const long long zslot = PyLong_AsLongLong(args[3]), aslot = PyLong_AsLongLong(args[6]),
                    bslot = PyLong_AsLongLong(args[9]);
    if (PyErr_Occurred())
        return NULL;
    return PyLong_FromLong(
        api_of(module)->outer(t, a[0], a[1], zslot, a[2], a[3], aslot, a[4], a[5], bslot));
}

/* _fast.axpy(tape, flags, a, va, x, xs, y, ys): sad_axpy (tape None: no
 * record, y += va*x now); a is a pair's address or 0, x an array or (flags
 * SAD_KX_PAIR) a pair's address.  Its status. */
SAD_FAST(sad_fast_axpy)
{
    NARGS("axpy", 8);
    sad_tape *t;
    sad_arr d[4];
    const sad_arr *x, *xs, *y, *ys;
    if (tape_or_none(module, args[0], 1, "axpy", &t) < 0)
        return NULL;
    const long flags = PyLong_AsLong(args[1]);
    const intptr_t a = (intptr_t)PyLong_AsVoidPtr(args[2]);
    const double va = PyFloat_AsDouble(args[3]);
    if (PyErr_Occurred())
        return NULL;
    const int xpair = (flags & 3) == SAD_KX_PAIR;
    if ((xpair ? arr_or_pair_arg(module, args[4], "axpy", "x", &d[0], &x)
               : arr_arg(module, args[4], 0, "axpy", "x", &d[0], &x)) < 0 ||
        arr_arg(module, args[5], 1, "axpy", "xs", &d[1], &xs) < 0 ||
        arr_arg(module, args[6], 0, "axpy", "y", &d[2], &y) < 0 ||
        arr_arg(module, args[7], 1, "axpy", "ys", &d[3], &ys) < 0)
        return NULL;
    if (xpair != PyLong_CheckExact(args[4]) || ((flags & 12) == SAD_KY_PAIR) != (a != 0))
        return PyErr_Format(PyExc_TypeError, "axpy: the flags do not say what a and x are");
    if (layout_ok((xpair || (sad_fast_broadcasts(x, y) && sad_fast_fits(x, xs, 0))) &&
                      sad_fast_fits(y, ys, 0),
                  "axpy") < 0)
        return NULL;
    return PyLong_FromLong(api_of(module)->axpy(t, (int)flags, a, va, x, xs, y, ys));
}

/* _fast.axpy_tangents(va, da, x, dx, y, dy): sad_axpy_tangents; da: None
 * or a contiguous float64 array of one tangent of a per lane. */
SAD_FAST(sad_fast_axpy_tangents)
{
    NARGS("axpy_tangents", 6);
    sad_arr d[5];
    const sad_arr *da, *x, *dx, *y, *dy;
    if (arr_arg(module, args[1], 1, "axpy_tangents", "da", &d[0], &da) < 0 ||
        arr_arg(module, args[2], 0, "axpy_tangents", "x", &d[1], &x) < 0 ||
        arr_arg(module, args[3], 1, "axpy_tangents", "dx", &d[2], &dx) < 0 ||
        arr_arg(module, args[4], 0, "axpy_tangents", "y", &d[3], &y) < 0 ||
        arr_arg(module, args[5], 1, "axpy_tangents", "dy", &d[4], &dy) < 0)
        return NULL;
    const double va = PyFloat_AsDouble(args[0]);
    if (PyErr_Occurred())
        return NULL;
    if (da != NULL && (da->nd != 1 || da->strides[0] != (int64_t)sizeof(double) ||
                       dy == NULL || dy->nd < 1 || da->shape[0] != dy->shape[0]))
        return PyErr_Format(PyExc_ValueError,
                            "axpy_tangents: da must be contiguous, one tangent per lane of dy");
    if (layout_ok(sad_fast_broadcasts(x, y) && sad_fast_fits(x, dx, 1) && sad_fast_fits(y, dy, 1) &&
                      (dx == NULL || dy == NULL || dx->shape[0] == dy->shape[0]),
                  "axpy_tangents") < 0)
        return NULL;
    return PyLong_FromLong(api_of(module)->axpy_tangents(va, da != NULL ? da->data : NULL, x, dx,
                                                         y, dy));
}

/* _fast.vec_extend(v, a): sad_vec_extend of C vector v (its address) by
 * array a's elements; its status. */
SAD_FAST(sad_fast_vec_extend)
{
    NARGS("vec_extend", 2);
    sad_vec *v;
    sad_arr d;
    const sad_arr *a;
    if (vec_arg(args[0], &v) < 0 || arr_arg(module, args[1], 0, "vec_extend", "a", &d, &a) < 0)
        return NULL;
    if (v == NULL)
        return PyErr_Format(PyExc_TypeError, "vec_extend: no vector");
    return PyLong_FromLong(api_of(module)->vec_extend(v, a));
}

/* _fast.vpusha(tape, v, vs, x, xs): sad_vpusha (vs, xs may be None). */
SAD_FAST(sad_fast_vpusha)
{
    NARGS("vpusha", 5);
    sad_tape *t;
    sad_vec *v, *vs;
    sad_arr d[2];
    const sad_arr *x, *xs;
    if (tape_or_none(module, args[0], 0, "vpusha", &t) < 0 || vec_arg(args[1], &v) < 0 ||
        vec_arg(args[2], &vs) < 0 || arr_arg(module, args[3], 0, "vpusha", "x", &d[0], &x) < 0 ||
        arr_arg(module, args[4], 1, "vpusha", "xs", &d[1], &xs) < 0)
        return NULL;
    if (v == NULL)
        return PyErr_Format(PyExc_TypeError, "vpusha: no vector");
    if (layout_ok(sad_fast_fits(x, xs, 0), "vpusha") < 0)
        return NULL;
    return PyLong_FromLong(api_of(module)->vpusha(t, v, vs, x, xs));
}

/* _fast.vcopy(tape, v, vs, z, zs): sad_vcopy (vs, zs may be None). */
SAD_FAST(sad_fast_vcopy)
{
    NARGS("vcopy", 5);
    sad_tape *t;
    sad_vec *v, *vs;
    sad_arr d[2];
    const sad_arr *z, *zs;
    if (tape_or_none(module, args[0], 0, "vcopy", &t) < 0 || vec_arg(args[1], &v) < 0 ||
        vec_arg(args[2], &vs) < 0 || arr_arg(module, args[3], 0, "vcopy", "z", &d[0], &z) < 0 ||
        arr_arg(module, args[4], 1, "vcopy", "zs", &d[1], &zs) < 0)
        return NULL;
    if (v == NULL)
        return PyErr_Format(PyExc_TypeError, "vcopy: no vector");
    if (layout_ok(sad_fast_fits(z, zs, 0), "vcopy") < 0)
        return NULL;
    return PyLong_FromLong(api_of(module)->vcopy(t, v, vs, z, zs));
}
