/* reverse.c -- reverse mode's elementwise fast path (_fast.rev): the common
 * case of apply_ufunc in one call that classifies the operands, has numpy
 * compute the primal, and records onto the tape; and the registered objects
 * the reverse fast paths (also index.c, scalar.c) use. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>

#include "fast.h"

/* What reverse mode registers once, in the module state: a lookup by name
 * made a new string and missed the type's attribute cache every time, half
 * of what a small in-place operation cost beyond numpy. */

/* register_reverse(traced_type, scalar_type, buffer_type, tape_type, make,
 * hold, extobj_var, extobj_warns): the classes the reverse fast paths meet
 * exactly (they must subclass the module's base types), and the functions
 * they call.  Once per module; a second call replaces the first. */
SAD_FAST(sad_fast_register_reverse)
{
    sad_state *st = sad_state_of(module);
    if (nargs != 8)
        return PyErr_Format(PyExc_TypeError, "register_reverse takes 8 arguments");
    PyTypeObject *const bases[4] = {st->array_type, st->scalar_type, st->buffer_type,
                                    st->tape_type};
    for (int i = 0; i < 4; ++i)
        if (!PyType_Check(args[i]) || !PyType_IsSubtype((PyTypeObject *)args[i], bases[i]))
            return PyErr_Format(PyExc_TypeError, "register_reverse: argument %d must be a "
                                "subclass of %s", i, bases[i]->tp_name);
    PyObject *kw_out = Py_BuildValue("(s)", "out");
    if (kw_out == NULL)
        return NULL;
    sad_rev_objects *k = &st->rev;
    PyObject **fields[] = {&k->traced, &k->scalar, &k->buffer, &k->tape, &k->make, &k->hold,
                           &k->extobj_var, &k->extobj_warns};
    for (int i = 0; i < 8; ++i)
        Py_XSETREF(*fields[i], Py_NewRef(args[i]));
    Py_XSETREF(k->kw_out, kw_out);
    if (k->ndarray == NULL) {
        PyObject *np = PyImport_ImportModule("numpy");
        k->ndarray = np != NULL ? PyObject_GetAttrString(np, "ndarray") : NULL;
        Py_XDECREF(np);
        if (k->ndarray == NULL)
            return NULL;
    }
    Py_RETURN_NONE;
}

SAD_FAST(sad_fast_register_watch)
{
    if (nargs != 1 || !PyCallable_Check(args[0]))
        return PyErr_Format(PyExc_TypeError, "register_watch takes one callable");
    Py_XSETREF(sad_state_of(module)->rev.watch, Py_NewRef(args[0]));
    Py_RETURN_NONE;
}

/* watch(tape, what), what the object given or else the string `name`: 0,
 * or -1 with its exception. */
static int call_watch(const sad_rev_objects *k, PyObject *tape, PyObject *what, const char *name)
{
    if (k->watch == NULL)
        return 0;
    PyObject *named = what == NULL ? PyUnicode_FromString(name) : NULL;
    if (what == NULL && named == NULL)
        return -1;
    PyObject *r = PyObject_CallFunctionObjArgs(k->watch, tape, what != NULL ? what : named, NULL);
    Py_XDECREF(named);
    Py_XDECREF(r);
    return r == NULL ? -1 : 0;
}

int sad_rev_recorded(const sad_rev_objects *k, PyObject *tape, sad_tape *t, int rc, int64_t grew,
                     PyObject *what, const char *name, const char *nomem)
{
    if (rc == SAD_OK)
        return k->api->tape_grew(t, grew) ? call_watch(k, tape, what, name) : 0;
    if (rc == SAD_OVER_BUDGET) {
        if (call_watch(k, tape, what, name) == 0) /* it raises the budget's error */
            PyErr_SetString(PyExc_MemoryError, "shadowad: the tape's budget refused memory");
        return -1;
    }
    if (rc == SAD_NOMEM) {
        PyErr_SetString(PyExc_MemoryError, nomem);
        return -1;
    }
    return 1;
}

/* What Python holds for the tape after a record that keeps z (need & 4) and
 * the operands it reads (need, bit j), with z's shadow an array (eager):
 * the data those arrays own, of elements of `itemsize` bytes, and
 * PER_OBJECT for each array object (its header, a slot of the tape's
 * lists).  Python's estimate (watch.py; plain operands' snapshots are
 * hold's to count). */
enum { PER_OBJECT = 192 };
static int64_t python_bytes(PyObject *z, int eager, const sad_fast_operand *o, int n, int need,
                            int64_t itemsize)
{
    int64_t bytes = eager ? PER_OBJECT + sad_owned_bytes(z, itemsize) : 0;
    if (need & 4)
        bytes += PER_OBJECT + sad_owned_bytes(z, itemsize);
    for (int j = 0; j < n; ++j)
        if (o[j].kind == SAD_KX_ARR && (o[j].s == NULL || (need & (1 << j))))
            bytes += PER_OBJECT + (o[j].s != NULL ? sad_owned_bytes(o[j].p, itemsize) : 0);
    return bytes;
}

int sad_rev_tape_of(const sad_rev_objects *k, PyObject *tape, sad_tape **t, const int **alive)
{
    PyObject *tptr = sad_fast_slot_of(tape, k->tape, T_TPTR);
    int ok = tptr != NULL && PyLong_CheckExact(tptr);
    if (ok) {
        *t = (sad_tape *)PyLong_AsSsize_t(tptr);
        *alive = &((const sad_tape_object *)tape)->alive;
        ok = **alive != 0;
    }
    Py_XDECREF(tptr);
    return ok;
}

/* The tape's keep list and its C tape, or 0: Python's case (a freed tape,
 * whose error Python raises). */
static int tape_parts(const sad_rev_objects *k, PyObject *tape, PyObject **keep, sad_tape **t)
{
    *keep = sad_fast_slot_of(tape, k->tape, T_KEEP);
    PyObject *tptr = sad_fast_slot_of(tape, k->tape, T_TPTR);
    const int ok = *keep != NULL && PyList_CheckExact(*keep) && tptr != NULL &&
                   PyLong_CheckExact(tptr);
    if (ok)
        *t = (sad_tape *)PyLong_AsSsize_t(tptr);
    Py_XDECREF(tptr);
    if (!ok) {
        Py_CLEAR(*keep);
        PyErr_Clear();
    }
    return ok;
}

/* A traced array of the call's tape (the first one found sets it) and float
 * type *ft whose shadow is an array or a lazy slot.  Inactive memory, or a
 * view whose shadow is not looked up yet, is Python's case (0). */
static int traced_operand(const sad_rev_objects *k, PyObject *o, PyObject **tape, int *ft,
                          sad_fast_operand *out)
{
    PyObject *buf = sad_fast_slot_of(o, k->traced, A_BUF);
    PyObject *t = sad_fast_slot_of(buf, k->buffer, B_TAPE);
    PyObject *s = sad_fast_slot_of(o, k->traced, A_S);
    PyObject *p = sad_fast_slot_of(o, k->traced, A_P);
    /* p and s are writable attributes: C reads them as arrays only when they
     * are aligned ndarrays of the call's float type (anything else is
     * Python's case) */
    int ok = buf != NULL && t != NULL && s != NULL && p != NULL &&
             (*tape == NULL || *tape == t) && sad_fast_array(p, k->ndarray, ft) &&
             (s == Py_None || sad_fast_array(s, k->ndarray, ft));
    if (ok && s != Py_None) { /* checked when assigned; a descriptor's __set__ skips that */
        const sad_arr pa = sad_arr_of(p), sa = sad_arr_of(s);
        ok = sad_fast_fits(&pa, &sa, 0);
    }
    if (ok && s == Py_None) { /* a lazy shadow is laid out as its primal */
        PyObject *slot = sad_fast_slot(buf, B_SLOT);
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

/* A traced scalar (the registered class) of the call's tape: its value for numpy, its
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
 * plain array of the call's float type *ft or a number.  *traced counts the
 * traced ones. */
static int rev_operand(const sad_rev_objects *k, PyObject *a, PyObject **tape, int *ft,
                       sad_fast_operand *out, int *traced)
{
    if ((PyObject *)Py_TYPE(a) == k->traced) {
        int status = traced_operand(k, a, tape, ft, out);
        /* active: a shadow array, or a lazy slot */
        status = status > 0 && (out->s != out->p || out->slot > 0);
        *traced += status;
        return status;
    }
    if ((PyObject *)Py_TYPE(a) == k->scalar) {
        const int status = scalar_operand(a, tape, out);
        *traced += status > 0;
        return status;
    }
    return sad_fast_plain(a, k->ndarray, ft, out);
}

/* Is dividing by k linear for the sweep of a record of float type ft: is
 * 1/k finite in that type, as sad_ew_linear decides it (by a k whose
 * reciprocal overflows, the partials read x)? */
static int finite_reciprocal(double k, int ft)
{
    if (ft == SAD_FAST_F32) {
        const float kf = (float)k; /* the record's constant (sad_block_build) */
        return kf != 0.0f && isfinite(1.0f / kf);
    }
    return k != 0.0 && isfinite(1.0 / k);
}

/* Which values the reverse sweep of z = op(x, y), of float type ft, reads
 * (x 1, y 2, z 4), as elementwise._values_read: what the tape must keep
 * alive (a wrong 0 would free what the sweep reads). */
static int values_read(const sad_rev_objects *k, int op, const sad_fast_operand *o, int n, int ft)
{
    switch (op) { /* linear by a constant; the rest is the table's (sad_ew_partials_read) */
    case SAD_MUL:
        if (n == 2 && (o[0].kind == SAD_KX_CONST || o[1].kind == SAD_KX_CONST))
            return 0;
        break;
    case SAD_DIV:
        if (n == 2 && o[1].kind == SAD_KX_CONST && finite_reciprocal(o[1].k, ft))
            return 0;
        break;
    default:
        break;
    }
    return k->api->ew_partials_read(op);
}

/* Each plain array operand whose values the record's reverse reads (need)
 * becomes the snapshot the registered hold(tape, array) gives (shadowad/
 * snapshots.py): f may write to the array later, and the tape would not see
 * it.  0, or -1 with an exception. */
static int hold_plain(const sad_rev_objects *k, PyObject *tape, sad_fast_operand *o, int n, int need)
{
    for (int j = 0; j < n; ++j)
        if (o[j].kind == SAD_KX_ARR && o[j].s == NULL && (need & (1 << j))) {
            PyObject *h = PyObject_CallFunctionObjArgs(k->hold, tape, o[j].p, NULL);
            if (h == NULL)
                return -1;
            Py_SETREF(o[j].p, h);
        }
    return 0;
}

/* Keep alive what the record needs: z when its partials read it, a plain
 * array always (the record points into it: its snapshot when read), a
 * traced primal when read. */
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

const sad_rev_objects *sad_rev_registered(PyObject *module)
{
    const sad_rev_objects *k = &sad_state_of(module)->rev;
    if (k->traced == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "shadowad._fast: register_reverse has not run "
                        "(import shadowad first)");
        return NULL;
    }
    return k;
}

/* The registered make(tape, z): numpy's result z as an active temporary, and in
 * *zs the array that stands for its shadow in the record: the shadow, or for
 * a lazy one z itself (the layout), its slot in *slot.  NULL on error. */
static PyObject *make_result(const sad_rev_objects *k, PyObject *tape, PyObject *z, PyObject **zs,
                             int64_t *slot)
{
    PyObject *res = PyObject_CallFunctionObjArgs(k->make, tape, z, NULL);
    if (res == NULL)
        return NULL;
    *zs = sad_fast_slot_of(res, k->traced, A_S);
    if (*zs == Py_None) {
        PyObject *buf = sad_fast_slot_of(res, k->traced, A_BUF);
        PyObject *n = sad_fast_slot_of(buf, k->buffer, B_SLOT);
        Py_XDECREF(buf);
        const int ok = n != NULL && PyLong_CheckExact(n);
        if (ok)
            *slot = PyLong_AsLongLong(n);
        Py_XDECREF(n);
        Py_SETREF(*zs, ok ? Py_NewRef(z) : NULL);
        if (!ok) {
            PyErr_SetString(PyExc_TypeError, "make() gave a lazy result without a slot");
            Py_DECREF(res);
            return NULL;
        }
    }
    if (*zs == NULL) {
        PyErr_SetString(PyExc_TypeError, "make() must return a traced array");
        Py_DECREF(res);
        return NULL;
    }
    return res;
}

/* _fast.rev(ufunc, op, x[, y]): reverse mode.  Operands are traced arrays
 * of one tape whose shadows are arrays or lazy slots (at least one), plain
 * arrays or a number; every array float64, or every one float32 (then no
 * traced scalar: sad_fast_fit).  numpy computes the primal, which must be of
 * that float type, the registered make(tape, z) wraps it as an active
 * temporary, and the record goes on the tape. */
SAD_FAST(sad_fast_rev)
{
    const sad_rev_objects *k = sad_rev_registered(module);
    if (k == NULL)
        return NULL;
    int op = 0, n = 0, status = sad_fast_call(k->api, args, nargs, 1, &op, &n);
    if (status <= 0)
        return sad_fast_result(status, NULL);
    PyObject *ufunc = args[0];
    sad_fast_operand o[2] = {{.p = NULL}, {.p = NULL}};
    PyObject *tape = NULL, *z = NULL, *res = NULL, *zs = NULL, *keep = NULL;
    sad_tape *t = NULL;
    int consts = 0, traced = 0, arrays = 0, ft = SAD_FAST_ANY;
    for (int j = 0; j < n && status > 0; ++j) {
        status = rev_operand(k, args[2 + j], &tape, &ft, &o[j], &traced);
        consts += status > 0 && o[j].kind == SAD_KX_CONST;
        arrays += status > 0 && o[j].kind == SAD_KX_ARR;
    }
    /* scalars only: Python's lean path, before numpy computes anything */
    if (status <= 0 || traced == 0 || consts > 1 || arrays == 0 || !sad_fast_fit(o, n, ft) ||
        !tape_parts(k, tape, &keep, &t)) {
        status = status < 0 ? -1 : 0;
        goto done;
    }
    if ((status = sad_fast_primal(ufunc, k->ndarray, ft, o, n, &z)) <= 0)
        goto done;
    status = -1;
    int64_t slots[3] = {0, o[0].slot, o[1].slot};
    if ((res = make_result(k, tape, z, &zs, &slots[0])) == NULL)
        goto done;
    const int need = values_read(k, op, o, n, ft);
    if (hold_plain(k, tape, o, n, need) < 0 || keep_values(keep, z, o, n, need) < 0)
        goto done;
    sad_fast_packed c;
    sad_arr zd, zsd;
    double kc = 0.0;
    const int flags = sad_fast_pack(o, n, ft, SAD_F_FRESH, &c, &kc);
    const int rc = k->api->ew_slots(t, op, flags, sad_fast_arr(z, &zd), sad_fast_arr(zs, &zsd),
                                    c.p[0], c.s[0], c.p[1], c.s[1], kc, slots);
    const int64_t held = rc == SAD_OK ? python_bytes(z, slots[0] == 0, o, n, need,
                                                     ft == SAD_FAST_F32 ? 4 : 8) : 0;
    const int after = sad_rev_recorded(k, tape, t, rc, held, ufunc, NULL,
                                       "shadowad: out of memory while recording an "
                                       "elementwise operation");
    /* more dimensions than a record takes, or a slot C refuses: Python's path */
    status = after == 0 ? 1 : after < 0 ? -1 : 0;
done:
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
static int writable_target(const sad_rev_objects *k, PyObject *out, const sad_fast_operand *oz)
{
    if (oz->slot > 0 || oz->s == oz->p || !sad_is_writeable(oz->p))
        return 0;
    PyObject *buf = sad_fast_slot_of(out, k->traced, A_BUF);
    PyObject *readonly = sad_fast_slot_of(buf, k->buffer, B_READONLY);
    PyObject *kept = sad_fast_slot_of(buf, k->buffer, B_KEPT);
    const int ok = readonly == Py_False && kept == Py_True;
    Py_XDECREF(kept);
    Py_XDECREF(readonly);
    Py_XDECREF(buf);
    return ok;
}

/* Does numpy only warn about floating-point errors now (its error state is
 * the one registered with it, which raises nothing)?  Then a ufunc that
 * fails after it wrote its output can only have had a warning turned into an
 * error (warnings filters); any other failure comes before it writes.  (An
 * error state of "call" could raise anything after writing.) */
static int numpy_only_warns(const sad_rev_objects *k)
{
    if (k->extobj_warns == Py_None || !PyContextVar_CheckExact(k->extobj_var))
        return 0;
    PyObject *cur = NULL;
    if (PyContextVar_Get(k->extobj_var, NULL, &cur) < 0) {
        PyErr_Clear();
        return 0;
    }
    const int warns = cur == k->extobj_warns;
    Py_XDECREF(cur);
    return warns;
}

/* _fast.rev_out(out, ufunc, op, x[, y]): ufunc(x, y, out=out) for a
 * traced `out` (x op= y), with operands as for rev, of out's float type, in
 * which the ufunc must have a loop (else numpy computes in another type and
 * casts).  The record saves the bytes it overwrites before numpy writes them
 * (or shares an earlier save, SAD_F_CLEAN_FAIL); if numpy then refuses
 * (shapes that do not broadcast), the record is dropped and the bytes put
 * back, as on Python's path.  A floating-point error numpy reports after
 * writing keeps both. */
SAD_FAST(sad_fast_rev_out)
{
    const sad_rev_objects *k = sad_rev_registered(module);
    if (k == NULL)
        return NULL;
    int op = 0, n = 0, status = sad_fast_call(k->api, args, nargs, 2, &op, &n);
    if (status <= 0)
        return sad_fast_result(status, NULL);
    PyObject *out = args[0], *ufunc = args[1];
    sad_fast_operand oz = {.p = NULL}, o[2] = {{.p = NULL}, {.p = NULL}};
    PyObject *tape = NULL, *keep = NULL, *res = NULL;
    sad_tape *t = NULL;
    int consts = 0, traced = 0, ft = SAD_FAST_ANY;
    status = (PyObject *)Py_TYPE(out) == k->traced && traced_operand(k, out, &tape, &ft, &oz) &&
             writable_target(k, out, &oz);
    for (int j = 0; j < n && status > 0; ++j) {
        status = rev_operand(k, args[3 + j], &tape, &ft, &o[j], &traced);
        consts += status > 0 && o[j].kind == SAD_KX_CONST;
    }
    if (status <= 0 || consts > 1 || !sad_fast_fit(o, n, ft) ||
        (ft == SAD_FAST_F32 && !sad_has_loop(ufunc, 1)) ||
        !tape_parts(k, tape, &keep, &t)) {
        status = status < 0 ? -1 : 0;
        goto done;
    }
    status = -1;
    /* z is overwritten: the sweep recomputes it from x and y (_values_read) */
    const int need = values_read(k, op, o, n, ft) ? 7 : 0;
    if (hold_plain(k, tape, o, n, need) < 0 || keep_values(keep, oz.p, o, n, need) < 0)
        goto done;
    const struct sad_api *api = k->api;
    const int64_t mark = api->tape_len(t);
    sad_fast_packed c;
    sad_arr zd, zsd;
    double kc = 0.0;
    const int flags = sad_fast_pack(
        o, n, ft, SAD_F_SAVE | (numpy_only_warns(k) ? SAD_F_CLEAN_FAIL : 0), &c, &kc);
    const int64_t slots[3] = {0, o[0].slot, o[1].slot};
    const int rc = api->ew_slots(t, op, flags, sad_fast_arr(oz.p, &zd), sad_fast_arr(oz.s, &zsd),
                                 c.p[0], c.s[0], c.p[1], c.s[1], kc, slots);
    static const char nomem[] = "shadowad: out of memory while recording an elementwise "
                                "operation";
    if (rc != SAD_OK) {
        api->truncate(t, mark); /* more dimensions than a record takes: Python's path */
        status = sad_rev_recorded(k, tape, t, rc, 0, ufunc, NULL, nomem) < 0 ? -1 : 0;
        goto done;
    }
    PyObject *call[3] = {o[0].p, n == 2 ? o[1].p : oz.p, oz.p};
    PyObject *z = PyObject_Vectorcall(ufunc, call, (size_t)n, k->kw_out);
    if (z == NULL) {
        /* numpy checks floating-point errors after it has written the
         * output: then the write stands, as numpy leaves it, and so does its
         * record.  Any other failure comes before numpy writes anything (a
         * record that shares an earlier save, SAD_F_CLEAN_FAIL, relies on it). */
        if (!PyErr_ExceptionMatches(PyExc_FloatingPointError) &&
            !PyErr_ExceptionMatches(PyExc_Warning))
            api->truncate(t, mark);
        goto done;
    }
    Py_DECREF(z); /* oz.p itself */
    const int64_t held = python_bytes(oz.p, 0, o, n, need, ft == SAD_FAST_F32 ? 4 : 8);
    if (sad_rev_recorded(k, tape, t, SAD_OK, held, ufunc, NULL, nomem) < 0)
        goto done; /* the record stands: the driver undoes it with the rest */
    Py_INCREF(out);
    res = out;
    status = 1;
done:
    Py_XDECREF(keep);
    sad_fast_release(&oz, 1);
    sad_fast_release(o, n);
    return sad_fast_result(status, res);
}

/* An operand of outer: a 1-D float64 array, traced (an active one of the
 * call's tape, its shadow an array or a lazy slot) or plain.  *active counts
 * the traced ones. */
static int outer_operand(const sad_rev_objects *k, PyObject *x, PyObject **tape,
                         sad_fast_operand *o, int *active)
{
    int status, ft = SAD_FAST_F64; /* the C record reads float64 */
    if ((PyObject *)Py_TYPE(x) == k->traced) {
        status = traced_operand(k, x, tape, &ft, o);
        status = status > 0 && (o->s != o->p || o->slot > 0);
        *active += status;
    } else {
        status = (PyObject *)Py_TYPE(x) == k->ndarray && sad_fast_plain(x, k->ndarray, &ft, o);
    }
    return status && sad_arr_of(o->p).nd == 1;
}

/* _fast.outer(a, b, redo): np.outer(a, b) of two vectors, traced arrays
 * of one tape (one at least) or float64 arrays, as the C record that also
 * computes the primal (outer.c); redo(tape, ap, bp, z) is numpy's np.outer
 * into z for the cases C leaves to numpy (it drops the record if numpy
 * raises).
 * What linalg._outer_record does, without its Python: the rank-1 update of
 * an LU costs this once per column.  NotImplemented: Python's path. */
SAD_FAST(sad_fast_outer)
{
    const sad_rev_objects *k = sad_rev_registered(module);
    if (k == NULL)
        return NULL;
    if (nargs != 3)
        return PyErr_Format(PyExc_TypeError, "outer takes a, b and redo");
    sad_fast_operand o[2] = {{.p = NULL}, {.p = NULL}};
    PyObject *tape = NULL, *keep = NULL, *z = NULL, *res = NULL, *zs = NULL;
    sad_tape *t = NULL;
    int active = 0, status = outer_operand(k, args[0], &tape, &o[0], &active) &&
                             outer_operand(k, args[1], &tape, &o[1], &active);
    if (!status || active == 0 || !tape_parts(k, tape, &keep, &t)) {
        status = 0;
        goto done;
    }
    status = -1;
    PyObject *shape = Py_BuildValue("(nn)", (Py_ssize_t)sad_arr_of(o[0].p).shape[0],
                                    (Py_ssize_t)sad_arr_of(o[1].p).shape[0]);
    z = shape != NULL ? PyObject_CallOneArg(k->ndarray, shape) : NULL; /* float64, C order */
    Py_XDECREF(shape);
    int64_t zslot = 0;
    if (z == NULL || (res = make_result(k, tape, z, &zs, &zslot)) == NULL)
        goto done;
    /* the sweep reads both operands' values and adds into their shadows */
    if (hold_plain(k, tape, o, 2, 3) < 0)
        goto done;
    for (int j = 0; j < 2; ++j)
        if (PyList_Append(keep, o[j].p) < 0 ||
            (o[j].s != NULL && o[j].s != o[j].p && PyList_Append(keep, o[j].s) < 0))
            goto done;
    sad_arr d[6];
    const int rc = k->api->outer(t, sad_fast_arr(z, &d[0]), sad_fast_arr(zs, &d[1]), zslot,
                                 sad_fast_arr(o[0].p, &d[2]), sad_fast_arr(o[0].s, &d[3]),
                                 o[0].slot, sad_fast_arr(o[1].p, &d[4]),
                                 sad_fast_arr(o[1].s, &d[5]), o[1].slot);
    if (rc == SAD_NUMPY) { /* numpy's warnings (or error, per np.errstate) and NaN bits */
        PyObject *call[4] = {tape, o[0].p, o[1].p, z};
        PyObject *r = PyObject_Vectorcall(args[2], call, 4, NULL);
        if (r == NULL)
            goto done;
        Py_DECREF(r);
    } else if (rc == SAD_BAD_SLOT) {
        PyErr_SetString(PyExc_RuntimeError,
                        "shadowad: np.outer names a lazy shadow this tape does not have (a "
                        "Buffer's slot was assigned from outside; leave the fields of traced "
                        "values to shadowad)");
        goto done;
    }
    const int64_t held = python_bytes(z, zslot == 0, o, 2, 3, 8);
    static const char nomem[] = "shadowad: out of memory while recording np.outer";
    const int after = sad_rev_recorded(k, tape, t, rc == SAD_NUMPY ? SAD_OK : rc, held, NULL,
                                       "np.outer", nomem);
    if (after != 0) {
        if (after > 0)
            PyErr_SetString(PyExc_MemoryError, nomem);
        goto done;
    }
    status = 1;
done:
    Py_XDECREF(keep);
    Py_XDECREF(zs);
    Py_XDECREF(z);
    sad_fast_release(o, 2);
    return sad_fast_result(status, res);
}
