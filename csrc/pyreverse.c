/* pyreverse.c -- reverse mode's elementwise fast path (TScalar.rev): the
 * common case of apply_ufunc in one call that classifies the operands, has
 * numpy compute the primal, and records onto the tape. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>

#include "pyfast.h"

/* A traced array of the call's tape (the first one found sets it) whose
 * shadow is an array or a lazy slot.  Inactive memory, or a view whose
 * shadow is not looked up yet, is Python's case (0). */
static int traced_operand(PyObject *o, PyObject **tape, sad_fast_operand *out)
{
    PyObject *buf = PyObject_GetAttrString(o, "buf");
    PyObject *t = buf != NULL ? PyObject_GetAttrString(buf, "tape") : NULL;
    PyObject *s = PyObject_GetAttrString(o, "_s");
    PyObject *p = PyObject_GetAttrString(o, "p");
    int ok = buf != NULL && t != NULL && s != NULL && p != NULL &&
             (*tape == NULL || *tape == t);
    if (ok && s == Py_None) { /* a lazy shadow is laid out as its primal */
        PyObject *slot = PyObject_GetAttrString(buf, "slot");
        ok = slot != NULL && PyLong_CheckExact(slot);
        if (ok)
            out->slot = PyLong_AsLongLong(slot);
        Py_XDECREF(slot);
        Py_DECREF(s);
        s = p;
        Py_INCREF(s);
    }
    Py_XDECREF(buf);
    if (ok && *tape == NULL)
        *tape = t; /* borrowed from here on: the operand keeps it alive */
    Py_XDECREF(t);
    if (!ok) {
        Py_XDECREF(s);
        Py_XDECREF(p);
        PyErr_Clear();
        return 0;
    }
    out->p = p;
    out->s = s;
    out->kind = SAD_KX_ARR;
    return 1;
}

/* A traced scalar (of type cls) of the call's tape: its value for numpy, its
 * pair for the record.  One of a finished call is Python's case (the error). */
static int scalar_operand(PyObject *a, PyObject **tape, sad_fast_operand *out)
{
    const ScalarObject *x = (const ScalarObject *)a;
    if (!*x->alive || (*tape != NULL && *tape != x->tape))
        return 0;
    if ((out->p = PyFloat_FromDouble(x->v)) == NULL)
        return -1;
    if (*tape == NULL)
        *tape = x->tape; /* borrowed: the operand keeps it alive */
    out->kind = SAD_KX_PAIR;
    out->at = (intptr_t)x->g;
    return 1;
}

/* One operand of rev or rev_out: a traced array (active), a traced scalar, a
 * plain float64 array or a number.  *traced counts the traced ones. */
static int rev_operand(PyObject *a, PyObject *cls, PyObject *traced_type, PyObject *ndarray_type,
                       PyObject **tape, sad_fast_operand *out, int *traced)
{
    if ((PyObject *)Py_TYPE(a) == traced_type) {
        int status = traced_operand(a, tape, out);
        /* active: a shadow array, or a lazy slot */
        status = status > 0 && (out->s != out->p || out->slot > 0);
        *traced += status;
        return status;
    }
    if ((PyObject *)Py_TYPE(a) == cls) {
        const int status = scalar_operand(a, tape, out);
        *traced += status > 0;
        return status;
    }
    return sad_fast_plain(a, ndarray_type, out);
}

/* Which values the reverse sweep of z = op(x, y) reads (x 1, y 2, z 4), as
 * elementwise._values_read: what the tape must keep alive. */
static int values_read(int op, const sad_fast_operand *o, int n)
{
    switch (op) {
    case SAD_COPY: case SAD_NEG: case SAD_ADD: case SAD_SUB:
        return 0;
    case SAD_MUL:
        if (n == 2 && (o[0].kind == SAD_KX_CONST || o[1].kind == SAD_KX_CONST))
            return 0;
        break;
    case SAD_DIV:
        if (n == 2 && o[1].kind == SAD_KX_CONST && o[1].k != 0.0 && isfinite(1.0 / o[1].k))
            return 0;
        break;
    default:
        break;
    }
    return sad_ew_partials_read(op);
}

/* Keep alive what the record needs: z when its partials read it, a plain
 * array always (the record points into it), a traced primal when read. */
static int keep_values(PyObject *keep, PyObject *z, const sad_fast_operand *o, int n, int need)
{
    if ((need & 4) && PyList_Append(keep, z) < 0)
        return -1;
    for (int j = 0; j < n; ++j)
        if (o[j].kind == SAD_KX_ARR && (o[j].s == NULL || (need & (1 << j))) &&
            PyList_Append(keep, o[j].p) < 0)
            return -1;
    return 0;
}

/* cls.rev(traced_type, ndarray_type, make, ufunc, op, x[, y]): reverse mode.
 * Operands are traced arrays of one tape whose shadows are arrays or lazy
 * slots (at least one), float64 arrays or a number; numpy computes the
 * primal, make(tape, z) wraps it as an active temporary, and the record goes
 * on the tape. */
PyObject *sad_scalar_rev(PyObject *cls, PyObject *const *args, Py_ssize_t nargs)
{
    int op = 0, n = 0, status = sad_fast_call(args, nargs, 4, &op, &n);
    if (status <= 0)
        return sad_fast_result(status, NULL);
    PyObject *traced_type = args[0], *ndarray_type = args[1], *make = args[2], *ufunc = args[3];
    sad_fast_operand o[2] = {{.p = NULL}, {.p = NULL}};
    PyObject *tape = NULL, *z = NULL, *res = NULL, *zs = NULL, *keep = NULL, *tptr = NULL;
    int consts = 0, traced = 0, arrays = 0;
    for (int j = 0; j < n && status > 0; ++j) {
        status = rev_operand(args[5 + j], cls, traced_type, ndarray_type, &tape, &o[j], &traced);
        consts += status > 0 && o[j].kind == SAD_KX_CONST;
        arrays += status > 0 && o[j].kind == SAD_KX_ARR;
    }
    /* scalars only: Python's lean path, before numpy computes anything */
    if (status <= 0 || traced == 0 || consts > 1 || arrays == 0) {
        status = status < 0 ? -1 : 0;
        goto done;
    }
    if ((status = sad_fast_primal(ufunc, ndarray_type, o, n, &z)) <= 0)
        goto done;
    status = -1;
    res = PyObject_CallFunctionObjArgs(make, tape, z, NULL);
    zs = res != NULL ? PyObject_GetAttrString(res, "_s") : NULL;
    if (zs == NULL)
        goto done;
    int64_t slots[3] = {0, o[0].slot, o[1].slot};
    if (zs == Py_None) { /* a lazy result: its slot, and its primal for the layout */
        PyObject *buf = PyObject_GetAttrString(res, "buf");
        PyObject *slot = buf != NULL ? PyObject_GetAttrString(buf, "slot") : NULL;
        Py_XDECREF(buf);
        if (slot == NULL)
            goto done;
        slots[0] = PyLong_AsLongLong(slot);
        Py_DECREF(slot);
        Py_DECREF(zs);
        zs = z;
        Py_INCREF(zs);
    }
    keep = PyObject_GetAttrString(tape, "keep");
    tptr = PyObject_GetAttrString(tape, "_tptr");
    if (keep == NULL || tptr == NULL || keep_values(keep, z, o, n, values_read(op, o, n)) < 0)
        goto done;
    intptr_t p[2] = {0, 0}, s[2] = {0, 0};
    double k = 0.0;
    const int flags = sad_fast_pack(o, n, SAD_F_FRESH, p, s, &k);
    /* more dimensions than a record takes, or no memory: Python's path */
    status = sad_ew_slots((sad_tape *)PyLong_AsSsize_t(tptr), op, flags, (intptr_t)z,
                          (intptr_t)zs, p[0], s[0], p[1], s[1], k, slots) == 0;
done:
    Py_XDECREF(tptr);
    Py_XDECREF(keep);
    Py_XDECREF(zs);
    Py_XDECREF(z);
    sad_fast_release(o, n);
    return sad_fast_result(status, res);
}

/* Is traced array `out` memory that a record may write and an adjoint it
 * carries: kept by the tape, not an Active argument, writeable, with its
 * shadow an array (not lazy)?  Anything else is Python's case (pinning,
 * promotion, or the error that names the problem). */
static int writable_target(PyObject *out, const sad_fast_operand *oz)
{
    if (oz->slot > 0 || oz->s == oz->p || !sad_is_writeable(oz->p))
        return 0;
    PyObject *buf = PyObject_GetAttrString(out, "buf");
    PyObject *readonly = buf != NULL ? PyObject_GetAttrString(buf, "readonly") : NULL;
    PyObject *kept = buf != NULL ? PyObject_GetAttrString(buf, "kept") : NULL;
    const int ok = readonly == Py_False && kept == Py_True;
    Py_XDECREF(kept);
    Py_XDECREF(readonly);
    Py_XDECREF(buf);
    PyErr_Clear();
    return ok;
}

/* cls.rev_out(traced_type, ndarray_type, out, ufunc, op, x[, y]): ufunc(x, y,
 * out=out) for a traced `out` (x op= y), with operands as for rev.  The
 * record saves the bytes it overwrites before numpy writes them; if numpy
 * then refuses (shapes that do not broadcast), the record is dropped and the
 * bytes put back, as on Python's path. */
PyObject *sad_scalar_rev_out(PyObject *cls, PyObject *const *args, Py_ssize_t nargs)
{
    int op = 0, n = 0, status = sad_fast_call(args, nargs, 4, &op, &n);
    if (status <= 0)
        return sad_fast_result(status, NULL);
    PyObject *traced_type = args[0], *ndarray_type = args[1], *out = args[2], *ufunc = args[3];
    sad_fast_operand oz = {.p = NULL}, o[2] = {{.p = NULL}, {.p = NULL}};
    PyObject *tape = NULL, *keep = NULL, *tptr = NULL, *call = NULL, *kw = NULL, *res = NULL;
    int consts = 0, traced = 0;
    status = (PyObject *)Py_TYPE(out) == traced_type && traced_operand(out, &tape, &oz) &&
             writable_target(out, &oz);
    for (int j = 0; j < n && status > 0; ++j) {
        status = rev_operand(args[5 + j], cls, traced_type, ndarray_type, &tape, &o[j], &traced);
        consts += status > 0 && o[j].kind == SAD_KX_CONST;
    }
    if (status <= 0 || consts > 1) {
        status = status < 0 ? -1 : 0;
        goto done;
    }
    status = -1;
    keep = PyObject_GetAttrString(tape, "keep");
    tptr = PyObject_GetAttrString(tape, "_tptr");
    if (keep == NULL || tptr == NULL)
        goto done;
    /* z is overwritten: the sweep recomputes it from x and y (_values_read) */
    const int need = values_read(op, o, n) ? 7 : 0;
    if (keep_values(keep, oz.p, o, n, need) < 0)
        goto done;
    sad_tape *t = (sad_tape *)PyLong_AsSsize_t(tptr);
    const int64_t mark = sad_tape_len(t);
    intptr_t p[2] = {0, 0}, s[2] = {0, 0};
    double k = 0.0;
    const int flags = sad_fast_pack(o, n, SAD_F_SAVE, p, s, &k);
    const int64_t slots[3] = {0, o[0].slot, o[1].slot};
    if (sad_ew_slots(t, op, flags, (intptr_t)oz.p, (intptr_t)oz.s, p[0], s[0], p[1], s[1], k,
                     slots) != 0) {
        sad_truncate(t, mark); /* more dimensions than a record takes: Python's path */
        status = 0;
        goto done;
    }
    call = n == 1 ? PyTuple_Pack(1, o[0].p) : PyTuple_Pack(2, o[0].p, o[1].p);
    kw = call != NULL ? Py_BuildValue("{sO}", "out", oz.p) : NULL;
    PyObject *z = kw != NULL ? PyObject_Call(ufunc, call, kw) : NULL;
    if (z == NULL) {
        sad_truncate(t, mark);
        goto done;
    }
    Py_DECREF(z); /* oz.p itself */
    Py_INCREF(out);
    res = out;
    status = 1;
done:
    Py_XDECREF(kw);
    Py_XDECREF(call);
    Py_XDECREF(tptr);
    Py_XDECREF(keep);
    sad_fast_release(&oz, 1);
    sad_fast_release(o, n);
    return sad_fast_result(status, res);
}
