/* forward.c -- forward mode's fast paths: _fast.fwd (an elementwise
 * operation) and _fast.fsum (a full sum), with the objects they register,
 * the dual scalar operands, the results built in C and the primals C
 * computes exactly. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <fenv.h>
#include <string.h>

#include "fast.h"

/* The forward fast path reads dual arrays, their Buffers and dual scalars,
 * and builds its result, itself: through attribute lookups and a Python
 * callback making the result, an operation on 21 numbers spent more time on
 * them than numpy spent on the primal.  Their fields are members of the
 * module's base types (fast.h); the exact classes and the few objects the
 * path needs are registered once (register_forward) in the module state. */
typedef sad_fwd_objects fwd_objects;

/* register_forward(dual, dual_scalar, buffer, context, float64, empty, make,
 * current, label, add): the classes the forward fast paths meet exactly (the
 * first four must subclass the module's base types), and the objects they
 * use.  Once per module; a second call replaces the first. */
SAD_FAST(sad_fast_register_forward)
{
    sad_state *st = sad_state_of(module);
    if (nargs != 10)
        return PyErr_Format(PyExc_TypeError, "register_forward takes 10 arguments");
    PyTypeObject *const bases[4] = {st->array_type, st->dual_scalar_type, st->buffer_type,
                                    st->context_type};
    for (int i = 0; i < 4; ++i)
        if (!PyType_Check(args[i]) || !PyType_IsSubtype((PyTypeObject *)args[i], bases[i]))
            return PyErr_Format(PyExc_TypeError, "register_forward: argument %d must be a "
                                "subclass of %s", i, bases[i]->tp_name);
    if (!PyType_Check(args[4]))
        return PyErr_Format(PyExc_TypeError, "register_forward: argument 4 must be a type");
    sad_loop loop;
    void *data;
    if (!sad_f64_loop(args[9], &loop, &data))
        return PyErr_Format(PyExc_TypeError, "register_forward: %R has no float64 loop", args[9]);
    PyObject *np = PyImport_ImportModule("numpy");
    PyObject *ndarray = np != NULL ? PyObject_GetAttrString(np, "ndarray") : NULL;
    PyObject *f64 = ndarray != NULL ? PyObject_CallMethod(np, "dtype", "s", "float64") : NULL;
    PyObject *f32 = f64 != NULL ? PyObject_CallMethod(np, "dtype", "s", "float32") : NULL;
    Py_XDECREF(np);
    if (f32 == NULL) {
        Py_XDECREF(f64);
        Py_XDECREF(ndarray);
        return NULL;
    }
    fwd_objects *k = &st->fwd;
    PyObject **fields[] = {&k->dual, &k->scalar, &k->buffer, &k->context, &k->float64,
                           &k->empty, &k->make, &k->current, &k->label, &k->add};
    for (int i = 0; i < 10; ++i)
        Py_XSETREF(*fields[i], Py_NewRef(args[i]));
    Py_XSETREF(k->ndarray, ndarray);
    Py_XSETREF(k->dtype[SAD_FAST_F64], f64);
    Py_XSETREF(k->dtype[SAD_FAST_F32], f32);
    k->add_loop = loop;
    k->add_data = data;
    Py_RETURN_NONE;
}

/* The registered forward-mode objects, or NULL with an exception. */
static const fwd_objects *fwd_registered(PyObject *module)
{
    const fwd_objects *k = &sad_state_of(module)->fwd;
    if (k->dual == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "shadowad._fast: register_forward has not run "
                        "(import shadowad first)");
        return NULL;
    }
    return k;
}

/* Slot `off` of o: borrowed, NULL while unset. */
static PyObject *slot_get(PyObject *o, Py_ssize_t off)
{
    return *(PyObject **)((char *)o + off);
}

/* Set slot `off` of a fresh instance (all its slots unset). */
static void slot_init(PyObject *o, Py_ssize_t off, PyObject *v)
{
    *(PyObject **)((char *)o + off) = Py_NewRef(v);
}

/* The fields of a dual array, borrowed: primal, tangent lanes (None while
 * not looked up, or for inactive memory), Buffer and the Buffer's Context. */
typedef struct {
    PyObject *p, *s, *buf, *ctx;
} dual_fields;

/* Dual array o's fields, as fwd and fsum both read them, its arrays of
 * float type *ft (the first array sets it): 1, or 0 when one is unset or not
 * of its class (Python's case). */
static int dual_fields_of(const fwd_objects *k, PyObject *o, int *ft, dual_fields *f)
{
    f->p = slot_get(o, A_P);
    f->s = slot_get(o, A_S);
    f->buf = slot_get(o, A_BUF);
    if (f->p == NULL || f->s == NULL || f->buf == NULL || (PyObject *)Py_TYPE(f->buf) != k->buffer)
        return 0;
    /* p and _s are writable attributes: read as arrays only when they are */
    if (!sad_fast_array(f->p, k->ndarray, ft) ||
        (f->s != Py_None && !sad_fast_array(f->s, k->ndarray, ft)))
        return 0;
    if (f->s != Py_None) { /* checked when assigned; a descriptor's __set__ skips that */
        const sad_arr pa = sad_arr_of(f->p), sa = sad_arr_of(f->s);
        if (!sad_fast_fits(&pa, &sa, 1))
            return 0;
    }
    f->ctx = slot_get(f->buf, B_TAPE);
    return f->ctx != NULL && (PyObject *)Py_TYPE(f->ctx) == k->context;
}

/* A dual array operand of float type *ft: its tangent lanes, or none for
 * inactive memory (a constant).  Its Context becomes the call's; dual arrays
 * of another Context, and a view whose tangent is not looked up yet, are
 * Python's case (0). */
static int dual_array(const fwd_objects *k, PyObject *o, PyObject **ctx, int *ft,
                      sad_fast_operand *out)
{
    dual_fields f;
    if (!dual_fields_of(k, o, ft, &f) || (*ctx != NULL && *ctx != f.ctx))
        return 0;
    if (f.s == Py_None) {
        if (slot_get(f.buf, B_SHADOW) != Py_None)
            return 0;
        f.s = NULL;
    }
    if (*ctx == NULL)
        *ctx = Py_NewRef(f.ctx);
    out->p = Py_NewRef(f.p);
    out->s = Py_XNewRef(f.s);
    out->kind = SAD_KX_ARR;
    return 1;
}

/* A dual scalar operand: numpy computes with its value (a float), the kernel
 * reads it as a pair {value, tangent}.  A tangent per lane (a 1-D array) is
 * kept in s; the caller checks its length once the lanes are known.  Its
 * Context becomes the call's; one of another Context is Python's case. */
static int dual_scalar(const fwd_objects *k, PyObject *o, PyObject **ctx, sad_fast_operand *out)
{
    PyObject *v = slot_get(o, S_V), *d = slot_get(o, S_D), *c = slot_get(o, S_CTX);
    if (v == NULL || d == NULL || !PyFloat_CheckExact(v) || c == NULL ||
        (PyObject *)Py_TYPE(c) != k->context || (*ctx != NULL && *ctx != c))
        return 0;
    out->pair.v = PyFloat_AS_DOUBLE(v);
    if (PyFloat_CheckExact(d) || (PyObject *)Py_TYPE(d) == k->float64) {
        out->pair.g = PyFloat_AsDouble(d);
    } else if ((PyObject *)Py_TYPE(d) == k->ndarray && sad_is_f64(d) &&
               sad_arr_of(d).nd == 1) {
        out->s = Py_NewRef(d);
    } else {
        return 0;
    }
    if (*ctx == NULL)
        *ctx = Py_NewRef(c);
    out->p = Py_NewRef(v);
    out->kind = SAD_KX_PAIR;
    return 1;
}

/* The running Context (a new reference), or NULL: none, or an error set. */
static PyObject *running_context(const fwd_objects *k)
{
    PyObject *c = NULL;
    if (PyContextVar_Get(k->current, NULL, &c) < 0)
        return NULL;
    if (c != NULL && (PyObject *)Py_TYPE(c) != k->context)
        Py_CLEAR(c);
    return c;
}

/* The lanes of Context ctx: > 0, else 0 (Python's case). */
static Py_ssize_t lanes_of(PyObject *ctx)
{
    PyObject *n = slot_get(ctx, C_LANES);
    Py_ssize_t lanes = n != NULL && PyLong_CheckExact(n) ? PyLong_AsSsize_t(n) : 0;
    if (lanes == -1)
        PyErr_Clear();
    return lanes > 0 ? lanes : 0;
}

static PyObject *new_instance(PyObject *type)
{
    return ((PyTypeObject *)type)->tp_alloc((PyTypeObject *)type, 0);
}

/* np.empty of float type ft and shape dims[:nd], after a leading axis of
 * `lead` when lead > 0 (C order, as numpy allocates a ufunc's result from
 * C-ordered operands). */
static PyObject *new_empty(const fwd_objects *k, int ft, Py_ssize_t lead, int nd,
                           const int64_t *dims)
{
    const int first = lead > 0;
    PyObject *shape = PyTuple_New(nd + first);
    if (shape == NULL)
        return NULL;
    for (int d = 0; d < nd + first; ++d) {
        const long long v = first && d == 0 ? (long long)lead : (long long)dims[d - first];
        PyObject *n = PyLong_FromLongLong(v);
        if (n == NULL) {
            Py_DECREF(shape);
            return NULL;
        }
        PyTuple_SET_ITEM(shape, d, n);
    }
    PyObject *const args[2] = {shape, k->dtype[ft]};
    PyObject *out = PyObject_Vectorcall(k->empty, args, 2, NULL);
    Py_DECREF(shape);
    return out;
}

/* The ops whose primal is one correctly rounded IEEE operation per element,
 * in float64 as in float32 (the float32 kernels compute in float, as numpy's
 * float32 loops do, and round a number operand to float as numpy casts it):
 * C computes the very bits numpy would. */
static int exact_op(int op)
{
    switch (op) {
    case SAD_NEG: case SAD_SQUARE: case SAD_ADD: case SAD_SUB: case SAD_MUL: case SAD_DIV:
        return 1;
    default:
        return 0;
    }
}

/* The floating-point exceptions numpy reports (per np.errstate) after a
 * ufunc's loop; inexact it never reports. */
enum { REPORTED = FE_DIVBYZERO | FE_OVERFLOW | FE_UNDERFLOW | FE_INVALID };

/* Are dims a[:nd] and b[:nd] equal?  (A 0-d array may have no dims array.) */
static int same_dims(const int64_t *a, const int64_t *b, int nd)
{
    return nd == 0 || memcmp(a, b, sizeof(int64_t) * (size_t)nd) == 0;
}

/* z = op(operands) computed in C for an exact op, sparing numpy's call (and
 * its conversion of a number operand to an array).  Only where numpy's
 * result is known without asking it: every array operand of one shape (at
 * least 1-D), C-ordered, a plain ndarray.  A loop that raises an exception
 * numpy would report is numpy's to redo, so its warnings and errors stay;
 * so is a NaN result, whose sign and payload IEEE leaves to the machine code
 * (of two NaN operands, which one comes out).  1, or 0 (numpy's case), -1
 * on error. */
static int c_primal(const fwd_objects *k, int op, int ft, const sad_fast_operand *o, int n,
                    PyObject **z)
{
    int nd = -1;
    const int64_t *dims = NULL;
    for (int j = 0; j < n; ++j) {
        if (o[j].kind != SAD_KX_ARR)
            continue;
        const sad_arr a = sad_arr_of(o[j].p);
        if ((PyObject *)Py_TYPE(o[j].p) != k->ndarray || (a.nd > 1 && !sad_is_c_contiguous(o[j].p)))
            return 0;
        if (nd < 0) {
            nd = a.nd;
            dims = a.shape;
        } else if (a.nd != nd || !same_dims(a.shape, dims, nd)) {
            return 0;
        }
    }
    if (nd < 1)
        return 0; /* numpy's result is a scalar */
    if ((*z = new_empty(k, ft, 0, nd, dims)) == NULL)
        return -1;
    sad_fast_packed pk;
    sad_arr zd;
    double c = 0.0;
    const int flags = sad_fast_pack(o, n, ft, 0, &pk, &c);
    if (fetestexcept(REPORTED)) /* left by earlier C code (numpy clears its own) */
        feclearexcept(REPORTED);
    int nan = 0;
    if (k->api->ew_primal_nan(op, flags, sad_fast_arr(*z, &zd), pk.p[0], pk.p[1], c, &nan) !=
            SAD_OK ||
        fetestexcept(REPORTED) || nan) {
        Py_CLEAR(*z);
        return 0;
    }
    return 1;
}

/* numpy's result z, of float type ft, as a dual array of ctx with
 * uninitialised tangent lanes of that type (the kernel fills every one): a
 * temporary Buffer (traced.temporary_buffer) with the lanes attached fresh
 * (Buffer.attach_fresh).  numpy keeps a transposed input's layout, and such
 * a z is Python's to wrap (make). */
static PyObject *dual_result(const fwd_objects *k, PyObject *ctx, PyObject *z, int ft,
                             Py_ssize_t lanes)
{
    if (!sad_is_c_contiguous(z))
        return PyObject_CallFunctionObjArgs(k->make, ctx, z, NULL);
    const sad_arr a = sad_arr_of(z);
    PyObject *zt = new_empty(k, ft, lanes, a.nd, a.shape);
    PyObject *buf = zt != NULL ? new_instance(k->buffer) : NULL;
    PyObject *res = buf != NULL ? new_instance(k->dual) : NULL;
    if (res == NULL) {
        Py_XDECREF(buf);
        Py_XDECREF(zt);
        return NULL;
    }
    slot_init(buf, B_TAPE, ctx);
    slot_init(buf, B_ROOT, z);
    slot_init(buf, B_SHADOW, zt);
    slot_init(buf, B_READONLY, Py_False);
    slot_init(buf, B_LABEL, k->label);
    slot_init(buf, B_MEM, Py_None);
    slot_init(buf, B_SPAN, Py_None);
    slot_init(buf, B_KEPT, Py_False);
    slot_init(buf, B_SLOT, Py_None);
    slot_init(res, A_P, z);
    slot_init(res, A_S, zt);
    slot_init(res, A_BUF, buf);
    Py_DECREF(buf);
    Py_DECREF(zt);
    return res;
}

/* The operands' Context, which must be the running one (operands kept from
 * an earlier call are Python's case, which refuses them), and its lanes: a
 * dual scalar's or array's tangents must have one entry per lane.  1, or 0 for
 * Python's case, -1 on error. */
static int call_lanes(const fwd_objects *k, const sad_fast_operand *o, int n, PyObject **ctx,
                      Py_ssize_t *lanes)
{
    PyObject *running = running_context(k);
    if (running == NULL)
        return PyErr_Occurred() ? -1 : 0;
    if (*ctx != NULL && *ctx != running) {
        Py_DECREF(running);
        return 0;
    }
    Py_XSETREF(*ctx, running);
    if ((*lanes = lanes_of(*ctx)) == 0)
        return 0;
    /* a dual array's lanes were checked against its Context when assigned,
     * but a Buffer's Context (and a Context's lanes) can change since */
    for (int j = 0; j < n; ++j)
        if ((o[j].kind == SAD_KX_PAIR || o[j].kind == SAD_KX_ARR) && o[j].s != NULL &&
            sad_arr_of(o[j].s).shape[0] != *lanes)
            return 0;
    return 1;
}

/* _fast.fwd(ufunc, op, x[, y]): forward mode.  Operands are dual arrays
 * of one Context, dual scalars, plain arrays or a number, at least one with
 * tangents and one an array; every array float64, or every one float32 (then
 * no dual scalar: sad_fast_fit).  numpy computes the primal (or C, exactly),
 * which must be of that float type, the result is a dual array with fresh
 * tangent lanes of it, and the C kernel fills them. */
SAD_FAST(sad_fast_fwd)
{
    const fwd_objects *k = fwd_registered(module);
    if (k == NULL)
        return NULL;
    int op = 0, n = 0, status = sad_fast_call(k->api, args, nargs, 1, &op, &n);
    if (status <= 0)
        return sad_fast_result(status, NULL);
    PyObject *ufunc = args[0];
    sad_fast_operand o[2] = {{.p = NULL}, {.p = NULL}};
    PyObject *ctx = NULL, *z = NULL, *res = NULL;
    int consts = 0, arrays = 0, active = 0, ft = SAD_FAST_ANY;
    for (int j = 0; j < n && status > 0; ++j) {
        PyObject *a = args[2 + j], *t = (PyObject *)Py_TYPE(a);
        status = t == k->dual     ? dual_array(k, a, &ctx, &ft, &o[j])
                 : t == k->scalar ? dual_scalar(k, a, &ctx, &o[j])
                                  : sad_fast_plain(a, k->ndarray, &ft, &o[j]);
        if (status > 0) {
            consts += o[j].kind == SAD_KX_CONST;
            arrays += o[j].kind == SAD_KX_ARR;
            active += o[j].kind == SAD_KX_PAIR || o[j].s != NULL;
        }
    }
    if (status <= 0 || active == 0 || arrays == 0 || consts > 1 || !sad_fast_fit(o, n, ft)) {
        status = status < 0 ? -1 : 0;
        goto done;
    }
    Py_ssize_t lanes = 0;
    if ((status = call_lanes(k, o, n, &ctx, &lanes)) <= 0)
        goto done;
    if (exact_op(op) && (status = c_primal(k, op, ft, o, n, &z)) < 0)
        goto done;
    if (z == NULL && (status = sad_fast_primal(ufunc, k->ndarray, ft, o, n, &z)) <= 0)
        goto done;
    if ((res = dual_result(k, ctx, z, ft, lanes)) == NULL) {
        status = -1;
        goto done;
    }
    sad_fast_packed pk;
    sad_arr zd, ztd;
    double *dl[2] = {NULL, NULL};
    int64_t ls[2] = {0, 0};
    double c = 0.0;
    const int flags = sad_fast_pack(o, n, ft, SAD_F_LANES, &pk, &c);
    for (int j = 0; j < n; ++j)
        if (o[j].kind == SAD_KX_PAIR && o[j].s != NULL) {
            const sad_arr d = sad_arr_of(o[j].s);
            dl[j] = d.data;
            ls[j] = d.strides[0] / (int64_t)sizeof(double);
        }
    PyObject *zt = (PyObject *)Py_TYPE(res) == k->dual ? slot_get(res, A_S) : NULL;
    if (zt == NULL ||
        k->api->ew_tangent_duals(op, flags, sad_fast_arr(z, &zd), sad_fast_arr(zt, &ztd), pk.p[0],
                                 pk.s[0], pk.p[1], pk.s[1], c, dl, ls))
        status = 0; /* more dimensions than the kernel takes: Python splits them */
done:
    Py_XDECREF(z);
    Py_XDECREF(ctx);
    sad_fast_release(o, n);
    return sad_fast_result(status, res);
}

/* The sum of the m doubles at x (byte stride st) as np.add.reduce computes
 * it: numpy's own float64 add loop, in its reduce form, from the identity. */
static double numpy_sum(const fwd_objects *k, const char *x, int64_t m, int64_t st)
{
    double out = 0.0;
    char *args[3] = {(char *)&out, (char *)x, (char *)&out};
    const intptr_t dims[1] = {(intptr_t)m}, steps[3] = {0, (intptr_t)st, 0};
    k->add_loop(args, dims, steps, k->add_data);
    return out;
}

/* The tangent of a full sum: a float for one lane, else an array of lanes
 * (as reductions.forward_result makes it); NULL with an error set. */
static PyObject *lane_sums(const fwd_objects *k, const char *t, int64_t m, Py_ssize_t lanes)
{
    if (lanes == 1)
        return PyFloat_FromDouble(numpy_sum(k, t, m, sizeof(double)));
    PyObject *d = new_empty(k, SAD_FAST_F64, lanes, 0, NULL);
    if (d == NULL)
        return NULL;
    double *out = sad_arr_of(d).data;
    for (Py_ssize_t l = 0; l < lanes; ++l)
        out[l] = numpy_sum(k, t + l * m * (int64_t)sizeof(double), m, sizeof(double));
    return d;
}

/* _fast.fsum(a): np.sum(a) of a dual array with tangent lanes, C-ordered:
 * a dual scalar.  numpy's reduction machinery costs microseconds on top of
 * a loop that costs nanoseconds here; numpy's own loop over the same
 * contiguous memory gives its very bits (numpy coalesces C-ordered memory
 * into one run, a run per lane for the tangent).  NotImplemented for
 * other layouts, and when the loop raises an exception numpy must report. */
SAD_FAST(sad_fast_fsum)
{
    if (nargs != 1)
        return PyErr_Format(PyExc_TypeError, "fsum takes 1 argument");
    const fwd_objects *k = fwd_registered(module);
    if (k == NULL)
        return NULL;
    PyObject *a = args[0];
    dual_fields f;
    int ft = SAD_FAST_F64; /* numpy's float64 add loop */
    if ((PyObject *)Py_TYPE(a) != k->dual || !dual_fields_of(k, a, &ft, &f) ||
        (PyObject *)Py_TYPE(f.p) != k->ndarray || (PyObject *)Py_TYPE(f.s) != k->ndarray ||
        !sad_is_c_contiguous(f.p) || !sad_is_c_contiguous(f.s))
        Py_RETURN_NOTIMPLEMENTED;
    const Py_ssize_t lanes = lanes_of(f.ctx);
    const sad_arr pa = sad_arr_of(f.p), ta = sad_arr_of(f.s);
    int64_t m = 1;
    for (int d = 0; d < pa.nd; ++d)
        m *= pa.shape[d];
    if (lanes == 0 || ta.nd != pa.nd + 1 || ta.shape[0] != lanes ||
        !same_dims(ta.shape + 1, pa.shape, pa.nd))
        Py_RETURN_NOTIMPLEMENTED;
    if (fetestexcept(REPORTED))
        feclearexcept(REPORTED);
    const double v = numpy_sum(k, (const char *)pa.data, m, sizeof(double));
    PyObject *d = lane_sums(k, (const char *)ta.data, m, lanes);
    if (d == NULL)
        return NULL;
    PyObject *res = NULL, *z = NULL;
    if (fetestexcept(REPORTED) || (z = PyFloat_FromDouble(v)) == NULL ||
        (res = new_instance(k->scalar)) == NULL) {
        Py_DECREF(d);
        Py_XDECREF(z);
        if (PyErr_Occurred())
            return NULL;
        Py_RETURN_NOTIMPLEMENTED;
    }
    slot_init(res, S_V, z);
    slot_init(res, S_D, d);
    slot_init(res, S_CTX, f.ctx);
    Py_DECREF(z);
    Py_DECREF(d);
    return res;
}
