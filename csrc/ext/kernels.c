/* kernels.c -- the elementwise kernels Python calls once per array
 * operation, as functions of the module: through cffi a call costs
 * about 0.3 us plus 0.2 us per argument, and these take nine and thirteen. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "fast.h"

/* The descriptor of an operand of ew() in *d: None or 0 (no array: NULL),
 * another int (a pair's address: a pair's descriptor, shadowad.h) or an
 * ndarray (the call holds it: it is an argument). */
static const sad_arr *operand(PyObject *o, sad_arr *d)
{
    if (o == Py_None)
        return NULL;
    if (PyLong_CheckExact(o)) {
        const sad_arr pair = {(double *)PyLong_AsVoidPtr(o), 0, NULL, NULL};
        if (pair.data == NULL)
            return NULL;
        *d = pair;
        return d;
    }
    *d = sad_arr_of(o);
    return d;
}

/* The array operands args[from..to] come from fields of traced arrays
 * anyone can assign: C reads only aligned ndarrays of the call's float type,
 * float64, or float32 under SAD_F_F32 (which takes no pairs).  0, or -1 with
 * a TypeError. */
static int check_arrays(PyObject *module, PyObject *const *args, int from, int to, long flags)
{
    PyTypeObject *ndarray = sad_state_of(module)->ndarray_type;
    const int f32 = (flags & SAD_F_F32) != 0;
    for (int j = from; j <= to; ++j) {
        PyObject *o = args[j];
        if (o == Py_None || (PyLong_CheckExact(o) && !f32))
            continue;
        if (!(ndarray != NULL && PyObject_TypeCheck(o, ndarray) &&
              (f32 ? sad_is_f32(o) : sad_is_f64(o)))) {
            PyErr_Format(PyExc_TypeError,
                         "shadowad: an elementwise operand is %.100s, not an aligned %s "
                         "ndarray (was a traced array's p or _s assigned? leave the fields of "
                         "traced values to shadowad)",
                         Py_TYPE(o)->tp_name, f32 ? "float32" : "float64");
            return -1;
        }
    }
    return 0;
}

/* Do the descriptors of ew()/tangent() fit together: each array operand
 * broadcasts to z, each shadow has its primal's shape (after a leading axis
 * of lanes, the same length for all, when `lanes`)?  0, or -1 with a
 * ValueError: C would read past an array otherwise. */
static int check_layout(const sad_arr *const a[6], int flags, int lanes)
{
    const int kinds[3] = {SAD_KX_ARR, flags & 3, (flags >> 2) & 3};
    int ok = a[0] != NULL;
    int64_t nl = -1;
    for (int j = 0; ok && j < 3; ++j) {
        if (kinds[j] != SAD_KX_ARR)
            continue;
        const sad_arr *p = a[2 * j], *s = a[2 * j + 1];
        ok = p != NULL && (j == 0 || sad_fast_broadcasts(p, a[0])) && sad_fast_fits(p, s, lanes);
        if (ok && lanes && s != NULL) {
            ok = nl < 0 || s->shape[0] == nl;
            nl = s->shape[0];
        }
    }
    if (ok)
        return 0;
    PyErr_SetString(PyExc_ValueError, "shadowad: elementwise operands that do not broadcast to "
                                      "the output, or a shadow not of its array's shape");
    return -1;
}

/* _fast.ew(tape_address, op, flags, z, zs, x, xs, y, ys, k, zslot, xslot, yslot):
 * sad_ew_slots without cffi's per-argument cost; returns its status.  A slot
 * > 0 marks a lazy shadow (the shadow argument is then the operand's primal,
 * which has the shadow's layout).  Its array operands are checked here. */
SAD_FAST(sad_fast_ew)
{
    if (nargs != 13)
        return PyErr_Format(PyExc_TypeError, "ew takes 13 arguments");
    Py_ssize_t t = PyLong_AsSsize_t(args[0]);
    long op = PyLong_AsLong(args[1]), flags = PyLong_AsLong(args[2]);
    if (PyErr_Occurred() || check_arrays(module, args, 3, 8, flags) < 0)
        return NULL;
    double k = PyFloat_AsDouble(args[9]);
    int64_t slots[3];
    for (int j = 0; j < 3; ++j)
        slots[j] = PyLong_AsLongLong(args[10 + j]);
    if (PyErr_Occurred())
        return NULL;
    sad_arr d[6];
    const sad_arr *a[6];
    for (int j = 0; j < 6; ++j)
        a[j] = operand(args[3 + j], &d[j]);
    if (PyErr_Occurred() || check_layout(a, (int)flags, (flags & SAD_F_LANES) != 0) < 0)
        return NULL;
    return PyLong_FromLong(sad_state_of(module)->api->ew_slots(
        (sad_tape *)t, (int)op, (int)flags, a[0], a[1], a[2], a[3], a[4], a[5], k, slots));
}

/* _fast.tangent(op, flags, z, dz, x, dx, y, dy, k): sad_ew_tangent without
 * cffi's per-argument cost (forward mode's elementwise kernel). */
SAD_FAST(sad_fast_tangent)
{
    if (nargs != 9)
        return PyErr_Format(PyExc_TypeError, "tangent takes 9 arguments");
    long op = PyLong_AsLong(args[0]), flags = PyLong_AsLong(args[1]);
    if (PyErr_Occurred() || check_arrays(module, args, 2, 7, flags) < 0)
        return NULL;
    double k = PyFloat_AsDouble(args[8]);
    if (PyErr_Occurred())
        return NULL;
    sad_arr d[6];
    const sad_arr *a[6];
    for (int j = 0; j < 6; ++j)
        a[j] = operand(args[2 + j], &d[j]);
    if (PyErr_Occurred() || check_layout(a, (int)flags, (flags & SAD_F_LANES) != 0) < 0)
        return NULL;
    return PyLong_FromLong(sad_state_of(module)->api->ew_tangent(
        (int)op, (int)flags, a[0], a[1], a[2], a[3], a[4], a[5], k));
}
