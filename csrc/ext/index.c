/* index.c -- basic indexing of reverse mode's traced arrays in C: the view
 * A[k+1:, k] (_fast.view) and the check that ``A[idx] = v`` writes back
 * the very view an in-place operation on A[idx] already updated
 * (_fast.writes_back).  An in-place loop such as an LU factorization does
 * several of each per step; in Python each cost three to five times numpy's
 * own indexing.  Anything but the plain cases is Python's (NotImplemented). */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

#include "fast.h"

/* Does idx (int, slice, None, Ellipsis, or a tuple of them) index a view of
 * an array of nd axes: basic, and not naming one element?  Numpy integers
 * and everything advanced are Python's. */
static int view_index(PyObject *idx, int nd)
{
    if (PySlice_Check(idx) || idx == Py_None || idx == Py_Ellipsis)
        return 1;
    if (PyLong_CheckExact(idx))
        return nd > 1;
    if (!PyTuple_CheckExact(idx))
        return 0;
    const Py_ssize_t n = PyTuple_GET_SIZE(idx);
    int view = 0;
    for (Py_ssize_t i = 0; i < n; ++i) {
        PyObject *e = PyTuple_GET_ITEM(idx, i);
        if (PySlice_Check(e) || e == Py_None || e == Py_Ellipsis)
            view = 1;
        else if (!PyLong_CheckExact(e))
            return 0;
    }
    return view || n < nd; /* all integers: fewer than the axes leave a view */
}

static void slot_init(PyObject *o, Py_ssize_t off, PyObject *v)
{
    Py_XINCREF(v);
    *(PyObject **)((char *)o + off) = v;
}

/* A traced array (the registered class) of primal p, shadow s (None: lazy or
 * inactive, as buf says) and Buffer buf. */
static PyObject *new_traced(const sad_rev_objects *k, PyObject *p, PyObject *s, PyObject *buf)
{
    PyObject *r = ((PyTypeObject *)k->traced)->tp_alloc((PyTypeObject *)k->traced, 0);
    if (r == NULL)
        return NULL;
    slot_init(r, A_P, p);
    slot_init(r, A_S, s);
    slot_init(r, A_BUF, buf);
    return r;
}

/* _fast.view(a, idx): a[idx] for a traced array a and a basic index that
 * leaves a view: the primal's view with the shadow's same view (or, for a
 * lazy shadow, none yet: the view finds it later).  A shadow not looked up
 * yet, and every other index, is Python's. */
SAD_FAST(sad_fast_view)
{
    const sad_rev_objects *k = sad_rev_registered(module);
    if (k == NULL)
        return NULL;
    if (nargs != 2)
        return PyErr_Format(PyExc_TypeError, "view takes a and idx");
    PyObject *a = args[0], *idx = args[1], *res = NULL, *pv = NULL, *sv = NULL;
    PyObject *p = sad_fast_slot_of(a, k->traced, A_P);
    PyObject *s = sad_fast_slot_of(a, k->traced, A_S);
    PyObject *buf = sad_fast_slot_of(a, k->traced, A_BUF);
    PyObject *slot = s == Py_None ? sad_fast_slot_of(buf, k->buffer, B_SLOT) : NULL;
    const int lazy = slot != NULL && PyLong_CheckExact(slot);
    Py_XDECREF(slot);
    if (p == NULL || s == NULL || buf == NULL || (PyObject *)Py_TYPE(p) != k->ndarray ||
        (s == Py_None ? !lazy : (PyObject *)Py_TYPE(s) != k->ndarray) ||
        !view_index(idx, sad_arr_of(p).nd)) {
        res = Py_NewRef(Py_NotImplemented);
        goto done;
    }
    if ((pv = PyObject_GetItem(p, idx)) == NULL)
        goto done; /* numpy's IndexError, as on Python's path */
    if (s != Py_None && (sv = PyObject_GetItem(s, idx)) == NULL)
        goto done;
    res = new_traced(k, pv, sv != NULL ? sv : Py_None, buf);
done:
    Py_XDECREF(sv);
    Py_XDECREF(pv);
    Py_XDECREF(buf);
    Py_XDECREF(s);
    Py_XDECREF(p);
    return res;
}

/* Do ndarrays a and b view the same memory with the same shape and strides? */
static int same_view(PyObject *a, PyObject *b)
{
    const sad_arr x = sad_arr_of(a), y = sad_arr_of(b);
    const size_t bytes = sizeof(int64_t) * (size_t)x.nd;
    return x.nd == y.nd && x.data == y.data &&
           (x.nd == 0 || (memcmp(x.shape, y.shape, bytes) == 0 &&
                          memcmp(x.strides, y.strides, bytes) == 0));
}

/* _fast.writes_back(p, idx, v): is ``p[idx] = v`` the write-back after
 * ``p[idx] op= x``, v being that very view (same memory, shape and
 * strides)?  True or False; None when idx is not one this function reads
 * (Python decides). */
SAD_FAST(sad_fast_writes_back)
{
    const sad_rev_objects *k = sad_rev_registered(module);
    if (k == NULL)
        return NULL;
    if (nargs != 3)
        return PyErr_Format(PyExc_TypeError, "writes_back takes p, idx and v");
    PyObject *p = args[0], *idx = args[1], *v = args[2];
    if ((PyObject *)Py_TYPE(p) != k->ndarray || (PyObject *)Py_TYPE(v) != k->ndarray ||
        !view_index(idx, sad_arr_of(p).nd))
        Py_RETURN_NONE;
    PyObject *w = PyObject_GetItem(p, idx);
    if (w == NULL)
        return NULL;
    const int same = (PyObject *)Py_TYPE(w) == k->ndarray && same_view(w, v);
    Py_DECREF(w);
    return PyBool_FromLong(same);
}
