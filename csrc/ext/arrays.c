/* arrays.c -- the core's entry points that read an array, taken as the
 * array object itself: the call holds a reference to it for as long as C
 * reads it, and the object is checked to be an ndarray (of float64, aligned,
 * where the core reads elements as doubles).  Through cffi these took
 * id(array), which for a temporary nobody held was the address of a freed
 * object by the time C read it (a crash on Python 3.13). */
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
        PyErr_Format(PyExc_RuntimeError, "%s: the tape has been freed", fn);
        return NULL;
    }
    return (sad_tape *)PyLong_AsVoidPtr(o->tptr);
}

/* _fast.data(a): the address of ndarray a's element 0. */
SAD_FAST(sad_fast_data)
{
    if (nargs != 1)
        return PyErr_Format(PyExc_TypeError, "data takes 1 argument");
    if (ndarray_arg(module, args[0], 0, "data", "a") == NULL)
        return NULL;
    return PyLong_FromVoidPtr(sad_arr_of((intptr_t)args[0]).data);
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
    return PyBool_FromLong(sad_same_elements((intptr_t)args[0], (intptr_t)block, item));
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
    return PyLong_FromLong(sad_ew_reverse_through(t, i, slot, (intptr_t)args[3]));
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
    return PyLong_FromLong(sad_ew_reverse_summed(t, i, slot, (int)ax, len, (intptr_t)args[5]));
}
