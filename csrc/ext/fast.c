/* fast.c -- what the two elementwise fast paths share.
 *
 * _fast.fwd (forward.c) and _fast.rev (reverse.c) take the common
 * case of forward_apply and apply_ufunc (rules/elementwise.py) in one call
 * each.  Every other case returns NotImplemented before anything is recorded,
 * and Python's general path takes it.  What both do alike is here: reading
 * the op code, the call's float type (float64, or float32 where numpy
 * computes in float32), classifying a plain operand, having numpy compute
 * the primal, packing the operands for the C kernel, and the return value. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>

#include "fast.h"

/* Is o an ndarray (exactly), aligned and native, of the call's float type
 * *ft (which the first array sets)? */
int sad_fast_array(PyObject *o, PyObject *ndarray_type, int *ft)
{
    if ((PyObject *)Py_TYPE(o) != ndarray_type)
        return 0;
    const int f32 = sad_is_f32(o);
    if (!f32 && !sad_is_f64(o))
        return 0;
    if (*ft == SAD_FAST_ANY)
        *ft = f32 ? SAD_FAST_F32 : SAD_FAST_F64;
    return *ft == (f32 ? SAD_FAST_F32 : SAD_FAST_F64);
}

/* A plain array of the call's float type or a number (at most one per
 * call): 1, else 0. */
int sad_fast_plain(PyObject *o, PyObject *ndarray_type, int *ft, sad_fast_operand *out)
{
    if (sad_fast_array(o, ndarray_type, ft)) {
        out->kind = SAD_KX_ARR;
    } else if (PyFloat_CheckExact(o) || PyLong_CheckExact(o)) {
        out->k = PyFloat_AsDouble(o);
        if (out->k == -1.0 && PyErr_Occurred()) { /* an int too large for a float */
            PyErr_Clear();
            return 0;
        }
        out->kind = SAD_KX_CONST;
    } else {
        return 0;
    }
    Py_INCREF(o);
    out->p = o;
    return 1;
}

/* The least double that rounds to an infinite float: halfway from FLT_MAX
 * to 2^128, where rounding to even goes up. */
static const double float_overflows = 0x1.ffffffp127;

/* Can the C kernels of float type ft take these operands as numpy computes
 * them?  A float32 call takes no pair (a traced or dual scalar is a float64
 * value, with which numpy computes in float64), nor a number that overflows
 * float (numpy warns of that cast before it computes anything: an in-place
 * record must not take it for a warning after the write).  1, else 0. */
int sad_fast_fit(const sad_fast_operand *o, int n, int ft)
{
    if (ft != SAD_FAST_F32)
        return 1;
    for (int j = 0; j < n; ++j) {
        if (o[j].kind == SAD_KX_PAIR)
            return 0;
        if (o[j].kind == SAD_KX_CONST && isfinite(o[j].k) && fabs(o[j].k) >= float_overflows)
            return 0;
    }
    return 1;
}

void sad_fast_release(sad_fast_operand *o, int n)
{
    for (int j = 0; j < n; ++j) {
        Py_XDECREF(o[j].p);
        Py_XDECREF(o[j].s);
    }
}

/* The op code (args[at]) and operand count (the arguments after it) of a
 * fast-path call: 1, or 0 when the case is Python's (x ** 2, a wrong arity),
 * -1 on error. */
int sad_fast_call(const struct sad_api *api, PyObject *const *args, Py_ssize_t nargs, int at,
                  int *op, int *n)
{
    if (nargs != at + 2 && nargs != at + 3)
        return 0;
    const long v = PyLong_AsLong(args[at]);
    if (v == -1 && PyErr_Occurred())
        return -1;
    *op = (int)v;
    *n = (int)nargs - at - 1;
    return *op != SAD_POW && (*n == 1) == (api->ew_is_unary(*op) != 0);
}

/* numpy's primal z = ufunc(*operands): 1, 0 when it is not an array of the
 * call's float type ft (Python's case: np.float_power computes float32 in
 * float64), -1 on error (numpy's exception is set). */
int sad_fast_primal(PyObject *ufunc, PyObject *ndarray_type, int ft, const sad_fast_operand *o,
                    int n, PyObject **z)
{
    *z = n == 1 ? PyObject_CallOneArg(ufunc, o[0].p)
                : PyObject_CallFunctionObjArgs(ufunc, o[0].p, o[1].p, NULL);
    if (*z == NULL)
        return -1;
    return sad_fast_array(*z, ndarray_type, &ft);
}

const sad_arr *sad_fast_arr(PyObject *o, sad_arr *d)
{
    if (o == NULL || o == Py_None)
        return NULL;
    *d = sad_arr_of(o);
    return d;
}

int sad_fast_fits(const sad_arr *p, const sad_arr *s, int lanes)
{
    if (s == NULL)
        return 1;
    if (s->nd != p->nd + lanes)
        return 0;
    for (int d = 0; d < p->nd; ++d)
        if (s->shape[d + lanes] != p->shape[d])
            return 0;
    return 1;
}

int sad_fast_broadcasts(const sad_arr *a, const sad_arr *z)
{
    if (a->nd > z->nd)
        return 0;
    for (int d = 0; d < a->nd; ++d) {
        const int64_t n = a->shape[d], m = z->shape[d + z->nd - a->nd];
        if (n != 1 && n != m)
            return 0;
    }
    return 1;
}

/* The flags, descriptors and constant of the C call over the operands, of
 * float type ft. */
int sad_fast_pack(const sad_fast_operand *o, int n, int ft, int flags, sad_fast_packed *c,
                  double *k)
{
    if (ft == SAD_FAST_F32)
        flags |= SAD_F_F32;
    for (int j = 0; j < 2; ++j)
        c->p[j] = c->s[j] = NULL;
    for (int j = 0; j < n; ++j) {
        flags |= o[j].kind << (2 * j);
        if (o[j].kind == SAD_KX_CONST) {
            *k = o[j].k;
            continue;
        }
        if (o[j].kind == SAD_KX_PAIR) { /* a pair's descriptor (shadowad.h) */
            const sad_arr pair = {o[j].at != 0 ? (double *)o[j].at : (double *)&o[j].pair, 0,
                                  NULL, NULL};
            c->pd[j] = pair;
            c->p[j] = &c->pd[j];
            continue;
        }
        c->p[j] = sad_fast_arr(o[j].p, &c->pd[j]);
        c->s[j] = sad_fast_arr(o[j].s, &c->sd[j]);
    }
    return flags;
}

/* What a fast path returns for status 1 (res), 0 (NotImplemented) or -1. */
PyObject *sad_fast_result(int status, PyObject *res)
{
    if (status > 0)
        return res;
    Py_XDECREF(res);
    if (status < 0)
        return NULL;
    PyErr_Clear();
    Py_RETURN_NOTIMPLEMENTED;
}

/* Field `off` of o (SAD_FIELD of o's base type): a new reference, NULL
 * (no exception set) while it is unset. */
PyObject *sad_fast_slot(PyObject *o, Py_ssize_t off)
{
    PyObject *v = *(PyObject **)((char *)o + off);
    Py_XINCREF(v);
    return v;
}

/* Field `off` of o if o is exactly of class `type` (a new reference), else
 * NULL with no exception set. */
PyObject *sad_fast_slot_of(PyObject *o, PyObject *type, Py_ssize_t off)
{
    return o != NULL && (PyObject *)Py_TYPE(o) == type ? sad_fast_slot(o, off) : NULL;
}

