/* pyscalar.c -- the C base type of traced scalars.
 *
 * A Python scalar loop spends its time in the arithmetic of traced scalars:
 * through Python methods and cffi calls each + - * / ** costs microseconds.
 * This base type does the common cases (two traced scalars of one live tape,
 * or a traced scalar and a float or int) in C, recording straight onto the
 * tape; everything else goes to the Python subclass's ``_slow`` method, which
 * keeps the full semantics.  It is the one part of the core that uses the
 * Python C API beyond reading array headers. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <fenv.h>
#include <math.h>
#include <string.h>

#include "sad.h"

typedef struct {
    PyObject_HEAD
    double v;
    Py_ssize_t g;      /* the sad_pair of value and adjoint, as an address */
    PyObject *tape;    /* the Python Tape: identity and lifetime */
    sad_tape *t;
    const int *alive;  /* cleared when the tape is freed */
} ScalarObject;

static PyTypeObject ScalarBase;

static int address_attr(PyObject *o, const char *name, Py_ssize_t *out)
{
    PyObject *a = PyObject_GetAttrString(o, name);
    if (a == NULL)
        return -1;
    *out = PyLong_AsSsize_t(a);
    Py_DECREF(a);
    return *out == -1 && PyErr_Occurred() ? -1 : 0;
}

static PyObject *scalar_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    double v;
    Py_ssize_t g, t, alive;
    PyObject *tape;
    static char *names[] = {"v", "g", "tape", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "dnO", names, &v, &g, &tape))
        return NULL;
    if (g == 0)
        return PyErr_Format(PyExc_MemoryError, "shadowad: out of memory while recording");
    if (address_attr(tape, "_tptr", &t) < 0 || address_attr(tape, "_aliveptr", &alive) < 0)
        return NULL;
    ScalarObject *s = (ScalarObject *)type->tp_alloc(type, 0);
    if (s == NULL)
        return NULL;
    s->v = v;
    s->g = g;
    Py_INCREF(tape);
    s->tape = tape;
    s->t = (sad_tape *)t;
    s->alive = (const int *)alive;
    return (PyObject *)s;
}

static void scalar_dealloc(PyObject *self)
{
    Py_XDECREF(((ScalarObject *)self)->tape);
    Py_TYPE(self)->tp_free(self);
}

/* A new scalar of s's type and tape holding value z and pair g. */
static PyObject *result(const ScalarObject *s, double z, sad_pair *g)
{
    if (g == NULL)
        return PyErr_NoMemory();
    PyTypeObject *type = Py_TYPE(s);
    ScalarObject *r = (ScalarObject *)type->tp_alloc(type, 0);
    if (r == NULL)
        return NULL;
    r->v = z;
    r->g = (Py_ssize_t)g;
    Py_INCREF(s->tape);
    r->tape = s->tape;
    r->t = s->t;
    r->alive = s->alive;
    return (PyObject *)r;
}

static double value_of(int op, double x, double y)
{
    switch (op) {
    case SAD_ADD: return x + y;
    case SAD_SUB: return x - y;
    case SAD_MUL: return x * y;
    case SAD_DIV: return x / y;
    default:      return pow(x, y);
    }
}

/* A plain float or int operand, as a double; 0 when it is anything else
 * (bool and numpy scalars other than float64 go the slow way). */
static int plain_number(PyObject *o, double *out)
{
    if (PyFloat_Check(o)) {
        *out = PyFloat_AS_DOUBLE(o);
        return 1;
    }
    if (PyLong_CheckExact(o)) {
        *out = PyLong_AsDouble(o);
        if (*out == -1.0 && PyErr_Occurred()) {
            PyErr_Clear();
            return 0;
        }
        return 1;
    }
    return 0;
}

static PyObject *slow(PyObject *a, PyObject *b, int op)
{
    if (PyObject_TypeCheck(a, &ScalarBase))
        return PyObject_CallMethod(a, "_slow", "iOi", op, b, 0);
    return PyObject_CallMethod(b, "_slow", "iOi", op, a, 1);
}

static PyObject *binary(PyObject *a, PyObject *b, int op)
{
    const int sa = PyObject_TypeCheck(a, &ScalarBase), sb = PyObject_TypeCheck(b, &ScalarBase);
    const ScalarObject *s = (const ScalarObject *)(sa ? a : b);
    double x, y;
    sad_pair *gx = NULL, *gy = NULL;
    if (sa && sb) {
        const ScalarObject *p = (const ScalarObject *)a, *q = (const ScalarObject *)b;
        if (p->tape != q->tape)
            return slow(a, b, op);
        x = p->v, gx = (sad_pair *)p->g;
        y = q->v, gy = (sad_pair *)q->g;
    } else if (sa) {
        if (!plain_number(b, &y))
            return slow(a, b, op);
        x = s->v, gx = (sad_pair *)s->g;
    } else {
        if (!plain_number(a, &x))
            return slow(a, b, op);
        y = s->v, gy = (sad_pair *)s->g;
    }
    if (!*s->alive)
        return slow(a, b, op); /* the Python path raises the right error */
    double z = value_of(op, x, y);
    return result(s, z, (sad_pair *)sad_s2(s->t, op, z, (intptr_t)gx, x, (intptr_t)gy, y));
}

static PyObject *nb_add(PyObject *a, PyObject *b) { return binary(a, b, SAD_ADD); }
static PyObject *nb_sub(PyObject *a, PyObject *b) { return binary(a, b, SAD_SUB); }
static PyObject *nb_mul(PyObject *a, PyObject *b) { return binary(a, b, SAD_MUL); }
static PyObject *nb_div(PyObject *a, PyObject *b) { return binary(a, b, SAD_DIV); }

static PyObject *nb_pow(PyObject *a, PyObject *b, PyObject *mod)
{
    if (mod != Py_None)
        Py_RETURN_NOTIMPLEMENTED;
    return binary(a, b, SAD_POW);
}

static PyObject *unary(PyObject *self, int op)
{
    const ScalarObject *s = (const ScalarObject *)self;
    if (!*s->alive)
        return PyObject_CallMethod(self, "_slow", "iOi", op, Py_None, 0);
    double z = op == SAD_NEG ? -s->v : fabs(s->v);
    return result(s, z, (sad_pair *)sad_s1(s->t, op, z, s->g, s->v));
}

static PyObject *nb_neg(PyObject *self) { return unary(self, SAD_NEG); }
static PyObject *nb_abs(PyObject *self) { return unary(self, SAD_ABS); }

static PyObject *nb_pos(PyObject *self)
{
    Py_INCREF(self);
    return self;
}

static PyNumberMethods scalar_number = {
    .nb_add = nb_add,
    .nb_subtract = nb_sub,
    .nb_multiply = nb_mul,
    .nb_true_divide = nb_div,
    .nb_power = nb_pow,
    .nb_negative = nb_neg,
    .nb_absolute = nb_abs,
    .nb_positive = nb_pos,
};

/* The tape of a Python Tape object, or NULL with an exception set (also when
 * the tape has been freed: the Python path then raises the right error). */
static int tape_of(PyObject *tape, sad_tape **t, const int **alive)
{
    Py_ssize_t tp, al;
    if (address_attr(tape, "_tptr", &tp) < 0 || address_attr(tape, "_aliveptr", &al) < 0)
        return -1;
    *t = (sad_tape *)tp;
    *alive = (const int *)al;
    return **alive ? 0 : -1;
}

/* Element i of 1-D array a: its address, or NULL with IndexError set. */
static double *element(PyObject *a, Py_ssize_t i, int64_t *off)
{
    sad_arr arr = sad_arr_of((intptr_t)a);
    int64_t n = arr.shape[0];
    if (i < 0)
        i += n;
    if (i < 0 || i >= n) {
        PyErr_Format(PyExc_IndexError, "index %zd is out of bounds for axis 0 with size %lld",
                     i, (long long)n);
        return NULL;
    }
    *off = i * arr.strides[0];
    return (double *)((char *)arr.data + *off);
}

/* The byte offsets in p and s of the element that idx (an int for a vector,
 * or a tuple of one int per axis) names: 1; 0 when idx names no single
 * element; -1 with IndexError set when it is out of bounds. */
static int element_offsets(PyObject *p, PyObject *s, PyObject *idx, int64_t *poff, int64_t *soff)
{
    sad_arr a = sad_arr_of((intptr_t)p), b = sad_arr_of((intptr_t)s);
    const int tuple = PyTuple_CheckExact(idx);
    if (tuple ? PyTuple_GET_SIZE(idx) != a.nd : !(PyLong_CheckExact(idx) && a.nd == 1))
        return 0;
    *poff = *soff = 0;
    for (int d = 0; d < a.nd; ++d) {
        PyObject *item = tuple ? PyTuple_GET_ITEM(idx, d) : idx;
        if (!PyLong_CheckExact(item))
            return 0;
        Py_ssize_t i = PyLong_AsSsize_t(item);
        if (i == -1 && PyErr_Occurred())
            return -1;
        if (i < 0)
            i += a.shape[d];
        if (i < 0 || i >= a.shape[d]) {
            PyErr_Format(PyExc_IndexError, "index %zd is out of bounds for axis %d with size %lld",
                         i < 0 ? i - a.shape[d] : i, d, (long long)a.shape[d]);
            return -1;
        }
        *poff += i * a.strides[d];
        *soff += i * b.strides[d];
    }
    return 1;
}

/* cls.load(p, s, idx, tape): the element of an active array (primal p, shadow
 * s) that idx names, as a traced scalar of class cls; NotImplemented when idx
 * names no single element or s is None (Python takes the general path). */
static PyObject *scalar_load(PyObject *cls, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4)
        return PyErr_Format(PyExc_TypeError, "load takes 4 arguments");
    if (args[1] == Py_None)
        Py_RETURN_NOTIMPLEMENTED;
    int64_t poff, soff;
    int rc = element_offsets(args[0], args[1], args[2], &poff, &soff);
    if (rc <= 0) {
        if (rc == 0)
            Py_RETURN_NOTIMPLEMENTED;
        return NULL;
    }
    sad_tape *t;
    const int *alive;
    if (tape_of(args[3], &t, &alive) < 0) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_RuntimeError, "shadowad: a traced value was used after "
                            "its autodiff call finished");
        return NULL;
    }
    double v = *(double *)((char *)sad_arr_of((intptr_t)args[0]).data + poff);
    ScalarObject proto = {.tape = args[3], .t = t, .alive = alive};
    Py_SET_TYPE(&proto, (PyTypeObject *)cls);
    return result(&proto, v, (sad_pair *)sad_load(t, (intptr_t)args[1], soff, v));
}

/* cls.store(p, s, i, x): y[i] = x for an active 1-D array and a traced
 * scalar x of the same tape, recorded with the old value. */
static PyObject *scalar_store(PyObject *cls, PyObject *const *args, Py_ssize_t nargs)
{
    (void)cls;
    if (nargs != 4 || !PyObject_TypeCheck(args[3], &ScalarBase))
        return PyErr_Format(PyExc_TypeError, "store takes p, s, i and a traced scalar");
    const ScalarObject *x = (const ScalarObject *)args[3];
    if (!*x->alive)
        return PyErr_Format(PyExc_RuntimeError, "shadowad: a traced value was used after "
                            "its autodiff call finished");
    Py_ssize_t i = PyLong_AsSsize_t(args[2]);
    if (i == -1 && PyErr_Occurred())
        return NULL;
    int64_t poff, soff;
    if (element(args[0], i, &poff) == NULL || element(args[1], i, &soff) == NULL)
        return NULL;
    if (sad_store(x->t, (intptr_t)args[0], (intptr_t)args[1], poff, soff, x->g, x->v) != SAD_OK)
        return PyErr_NoMemory();
    Py_RETURN_NONE;
}

/* An operand of ew(): None (no array), an int (a pair's address) or an
 * array object (its address, as id() gives it). */
static intptr_t operand(PyObject *o)
{
    if (o == Py_None)
        return 0;
    if (PyLong_CheckExact(o))
        return (intptr_t)PyLong_AsSsize_t(o);
    return (intptr_t)o;
}

/* cls.ew(tape_address, op, flags, z, zs, x, xs, y, ys, k, zslot, xslot, yslot):
 * sad_ew_slots without cffi's per-argument cost; returns its status.  A slot
 * > 0 marks a lazy shadow (the shadow argument is then the operand's primal,
 * which has the shadow's layout).  Python validates. */
static PyObject *scalar_ew(PyObject *cls, PyObject *const *args, Py_ssize_t nargs)
{
    (void)cls;
    if (nargs != 13)
        return PyErr_Format(PyExc_TypeError, "ew takes 13 arguments");
    Py_ssize_t t = PyLong_AsSsize_t(args[0]);
    long op = PyLong_AsLong(args[1]), flags = PyLong_AsLong(args[2]);
    double k = PyFloat_AsDouble(args[9]);
    int64_t slots[3];
    for (int j = 0; j < 3; ++j)
        slots[j] = PyLong_AsLongLong(args[10 + j]);
    if (PyErr_Occurred())
        return NULL;
    return PyLong_FromLong(sad_ew_slots((sad_tape *)t, (int)op, (int)flags, operand(args[3]),
                                        operand(args[4]), operand(args[5]), operand(args[6]),
                                        operand(args[7]), operand(args[8]), k, slots));
}

/* cls.tangent(op, flags, z, dz, x, dx, y, dy, k): sad_ew_tangent without
 * cffi's per-argument cost (forward mode's elementwise kernel). */
static PyObject *scalar_tangent(PyObject *cls, PyObject *const *args, Py_ssize_t nargs)
{
    (void)cls;
    if (nargs != 9)
        return PyErr_Format(PyExc_TypeError, "tangent takes 9 arguments");
    long op = PyLong_AsLong(args[0]), flags = PyLong_AsLong(args[1]);
    double k = PyFloat_AsDouble(args[8]);
    if (PyErr_Occurred())
        return NULL;
    return PyLong_FromLong(sad_ew_tangent((int)op, (int)flags, operand(args[2]),
                                          operand(args[3]), operand(args[4]), operand(args[5]),
                                          operand(args[6]), operand(args[7]), k));
}

/* ---- elementwise fast paths ------------------------------------------
 * TScalar.fwd and TScalar.rev take the common case of forward_apply and
 * apply_ufunc (rules/elementwise.py) in one call each.  Every other case
 * returns NotImplemented before anything is recorded, and Python's general
 * path takes it. */

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
} ew_operand;

/* A plain aligned float64 array or a number (at most one per call): 1, else 0. */
static int plain_operand(PyObject *o, PyObject *ndarray_type, ew_operand *out)
{
    if ((PyObject *)Py_TYPE(o) == ndarray_type && sad_is_f64(o)) {
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

static void release_operands(ew_operand *o, int n)
{
    for (int j = 0; j < n; ++j) {
        Py_XDECREF(o[j].p);
        Py_XDECREF(o[j].s);
    }
}

/* The op code (args[at]) and operand count (the arguments after it) of a
 * fast-path call: 1, or 0 when the case is Python's (x ** 2, a wrong arity),
 * -1 on error. */
static int ew_call(PyObject *const *args, Py_ssize_t nargs, int at, int *op, int *n)
{
    if (nargs != at + 2 && nargs != at + 3)
        return 0;
    const long v = PyLong_AsLong(args[at]);
    if (v == -1 && PyErr_Occurred())
        return -1;
    *op = (int)v;
    *n = (int)nargs - at - 1;
    return *op != SAD_POW && (*n == 1) == (sad_ew_is_unary(*op) != 0);
}

/* numpy's primal z = ufunc(*operands): 1, 0 when it is not a float64 array
 * (Python's case), -1 on error (numpy's exception is set). */
static int ew_primal(PyObject *ufunc, PyObject *ndarray_type, const ew_operand *o, int n,
                     PyObject **z)
{
    *z = n == 1 ? PyObject_CallOneArg(ufunc, o[0].p)
                : PyObject_CallFunctionObjArgs(ufunc, o[0].p, o[1].p, NULL);
    if (*z == NULL)
        return -1;
    return (PyObject *)Py_TYPE(*z) == ndarray_type && sad_is_f64(*z);
}

/* The flags, pointers and constant of the C call over the operands. */
static int ew_pack(const ew_operand *o, int n, int flags, intptr_t p[2], intptr_t s[2],
                   double *k)
{
    for (int j = 0; j < n; ++j) {
        flags |= o[j].kind << (2 * j);
        if (o[j].kind == SAD_KX_CONST) {
            *k = o[j].k;
            continue;
        }
        if (o[j].kind == SAD_KX_PAIR) {
            p[j] = (intptr_t)&o[j].pair;
            continue;
        }
        p[j] = (intptr_t)o[j].p;
        s[j] = (intptr_t)o[j].s;
    }
    return flags;
}

/* What a fast path returns for status 1 (res), 0 (NotImplemented) or -1. */
static PyObject *ew_result(int status, PyObject *res)
{
    if (status > 0)
        return res;
    Py_XDECREF(res);
    if (status < 0)
        return NULL;
    PyErr_Clear();
    Py_RETURN_NOTIMPLEMENTED;
}

/* ---- forward mode ------------------------------------------------------
 * The forward fast path reads dual arrays, their Buffers and dual scalars,
 * and builds its result, itself: through attribute lookups and a Python
 * callback making the result, an operation on 21 numbers spent more time on
 * them than numpy spent on the primal.  Those classes keep their fields in
 * __slots__, i.e. member descriptors at fixed offsets in the instance.  A
 * kit, made once by Python (fwd_kit) and passed on every call, holds the
 * exact types, those offsets and the few objects the path needs: the core
 * keeps no global state, and a class whose fields are not plain slots is
 * refused when the kit is made, not misread later. */
static const char KIT_NAME[] = "shadowad.fwd_kit";

typedef struct {
    /* exact types: dual array, dual scalar, Buffer, Context, ndarray, float64 */
    PyObject *dual, *scalar, *buffer, *context, *ndarray, *float64;
    PyObject *empty;   /* np.empty: the tangent lanes of a fresh result */
    PyObject *make;    /* make(ctx, z): Python's result when z is not C-contiguous */
    PyObject *current; /* the ContextVar holding the running Context */
    PyObject *label;   /* the label of a temporary's Buffer */
    PyObject *add;     /* np.add, whose float64 loop sums (add_loop, add_data) */
    sad_loop add_loop;
    void *add_data;
    Py_ssize_t a_p, a_s, a_buf, s_v, s_d, c_lanes;
    Py_ssize_t b_tape, b_root, b_shadow, b_readonly, b_label, b_mem, b_span, b_kept, b_slot;
} fwd_kit;

enum { KIT_OBJECTS = 11 };

/* The kit's objects, in fwd_kit's argument order. */
static PyObject **kit_object(fwd_kit *k, int i)
{
    PyObject **all[KIT_OBJECTS] = {&k->dual, &k->scalar, &k->buffer, &k->context, &k->ndarray,
                                   &k->float64, &k->empty, &k->make, &k->current, &k->label,
                                   &k->add};
    return all[i];
}

/* The slots the fast paths read or write: the index of their class among
 * the kit's objects, the slot's name, and where its offset goes. */
static const struct {
    int type;
    const char *name;
    size_t field;
} KIT_SLOTS[] = {
    {0, "p", offsetof(fwd_kit, a_p)},
    {0, "_s", offsetof(fwd_kit, a_s)},
    {0, "buf", offsetof(fwd_kit, a_buf)},
    {1, "v", offsetof(fwd_kit, s_v)},
    {1, "d", offsetof(fwd_kit, s_d)},
    {3, "lanes", offsetof(fwd_kit, c_lanes)},
    {2, "tape", offsetof(fwd_kit, b_tape)},
    {2, "root", offsetof(fwd_kit, b_root)},
    {2, "shadow", offsetof(fwd_kit, b_shadow)},
    {2, "readonly", offsetof(fwd_kit, b_readonly)},
    {2, "label", offsetof(fwd_kit, b_label)},
    {2, "mem", offsetof(fwd_kit, b_mem)},
    {2, "span", offsetof(fwd_kit, b_span)},
    {2, "kept", offsetof(fwd_kit, b_kept)},
    {2, "slot", offsetof(fwd_kit, b_slot)},
};

static void kit_free(PyObject *capsule)
{
    fwd_kit *k = PyCapsule_GetPointer(capsule, KIT_NAME);
    if (k == NULL) {
        PyErr_Clear();
        return;
    }
    for (int i = 0; i < KIT_OBJECTS; ++i)
        Py_XDECREF(*kit_object(k, i));
    PyMem_Free(k);
}

/* The offset of writable object slot `name` of class `type` (a __slots__
 * entry), or -1 with TypeError set. */
static Py_ssize_t slot_offset(PyObject *type, const char *name)
{
    PyObject *d = PyObject_GetAttrString(type, name);
    if (d == NULL)
        PyErr_Clear();
    const int ok = d != NULL && Py_IS_TYPE(d, &PyMemberDescr_Type) &&
                   ((PyMemberDescrObject *)d)->d_member->type == T_OBJECT_EX &&
                   !(((PyMemberDescrObject *)d)->d_member->flags & READONLY) &&
                   PyType_IsSubtype((PyTypeObject *)type, PyDescr_TYPE(d));
    const Py_ssize_t off = ok ? ((PyMemberDescrObject *)d)->d_member->offset : -1;
    Py_XDECREF(d);
    if (!ok)
        PyErr_Format(PyExc_TypeError, "fwd_kit: %R.%s is not a __slots__ field", type, name);
    return off;
}

/* cls.fwd_kit(dual, dual_scalar, buffer, context, ndarray, float64, empty,
 * make, current, label, add): the kit of fwd and fsum (see above), as a
 * capsule. */
static PyObject *scalar_fwd_kit(PyObject *cls, PyObject *const *args, Py_ssize_t nargs)
{
    (void)cls;
    if (nargs != KIT_OBJECTS)
        return PyErr_Format(PyExc_TypeError, "fwd_kit takes %d arguments", KIT_OBJECTS);
    for (int i = 0; i < 6; ++i)
        if (!PyType_Check(args[i]))
            return PyErr_Format(PyExc_TypeError, "fwd_kit: argument %d must be a type", i);
    fwd_kit *k = PyMem_Calloc(1, sizeof(fwd_kit));
    if (k == NULL)
        return PyErr_NoMemory();
    for (int i = 0; i < KIT_OBJECTS; ++i)
        *kit_object(k, i) = Py_NewRef(args[i]);
    PyObject *capsule = PyCapsule_New(k, KIT_NAME, kit_free);
    if (capsule == NULL) {
        for (int i = 0; i < KIT_OBJECTS; ++i)
            Py_DECREF(*kit_object(k, i));
        PyMem_Free(k);
        return NULL;
    }
    for (size_t i = 0; i < sizeof(KIT_SLOTS) / sizeof(KIT_SLOTS[0]); ++i) {
        Py_ssize_t off = slot_offset(args[KIT_SLOTS[i].type], KIT_SLOTS[i].name);
        if (off < 0) {
            Py_DECREF(capsule);
            return NULL;
        }
        *(Py_ssize_t *)((char *)k + KIT_SLOTS[i].field) = off;
    }
    if (!sad_f64_loop(k->add, &k->add_loop, &k->add_data)) {
        Py_DECREF(capsule);
        return PyErr_Format(PyExc_TypeError, "fwd_kit: %R has no float64 loop", args[10]);
    }
    return capsule;
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

/* A dual array operand: its tangent lanes, or none for inactive memory (a
 * constant).  Its Context becomes the call's; dual arrays of another Context,
 * and a view whose tangent is not looked up yet, are Python's case (0). */
static int dual_array(const fwd_kit *k, PyObject *o, PyObject **ctx, ew_operand *out)
{
    PyObject *p = slot_get(o, k->a_p), *s = slot_get(o, k->a_s), *buf = slot_get(o, k->a_buf);
    if (p == NULL || s == NULL || buf == NULL || (PyObject *)Py_TYPE(buf) != k->buffer)
        return 0;
    PyObject *c = slot_get(buf, k->b_tape);
    if (c == NULL || (PyObject *)Py_TYPE(c) != k->context || (*ctx != NULL && *ctx != c))
        return 0;
    if (s == Py_None) {
        if (slot_get(buf, k->b_shadow) != Py_None)
            return 0;
        s = NULL;
    }
    if (*ctx == NULL)
        *ctx = Py_NewRef(c);
    out->p = Py_NewRef(p);
    out->s = Py_XNewRef(s);
    out->kind = SAD_KX_ARR;
    return 1;
}

/* A dual scalar operand: numpy computes with its value (a float), the kernel
 * reads it as a pair {value, tangent}.  A tangent per lane (a 1-D array) is
 * kept in s; the caller checks its length once the lanes are known. */
static int dual_scalar(const fwd_kit *k, PyObject *o, ew_operand *out)
{
    PyObject *v = slot_get(o, k->s_v), *d = slot_get(o, k->s_d);
    if (v == NULL || d == NULL || !PyFloat_CheckExact(v))
        return 0;
    out->pair.v = PyFloat_AS_DOUBLE(v);
    if (PyFloat_CheckExact(d) || (PyObject *)Py_TYPE(d) == k->float64) {
        out->pair.g = PyFloat_AsDouble(d);
    } else if ((PyObject *)Py_TYPE(d) == k->ndarray && sad_is_f64(d) &&
               sad_arr_of((intptr_t)d).nd == 1) {
        out->s = Py_NewRef(d);
    } else {
        return 0;
    }
    out->p = Py_NewRef(v);
    out->kind = SAD_KX_PAIR;
    return 1;
}

/* The running Context (a new reference), or NULL: none, or an error set. */
static PyObject *running_context(const fwd_kit *k)
{
    PyObject *c = NULL;
    if (PyContextVar_Get(k->current, NULL, &c) < 0)
        return NULL;
    if (c != NULL && (PyObject *)Py_TYPE(c) != k->context)
        Py_CLEAR(c);
    return c;
}

/* The lanes of Context ctx: > 0, else 0 (Python's case). */
static Py_ssize_t lanes_of(const fwd_kit *k, PyObject *ctx)
{
    PyObject *n = slot_get(ctx, k->c_lanes);
    Py_ssize_t lanes = n != NULL && PyLong_CheckExact(n) ? PyLong_AsSsize_t(n) : 0;
    if (lanes == -1)
        PyErr_Clear();
    return lanes > 0 ? lanes : 0;
}

static PyObject *new_instance(PyObject *type)
{
    return ((PyTypeObject *)type)->tp_alloc((PyTypeObject *)type, 0);
}

/* np.empty of shape dims[:nd], after a leading axis of `lead` when lead > 0
 * (C order, as numpy allocates a ufunc's result from C-ordered operands). */
static PyObject *new_empty(const fwd_kit *k, Py_ssize_t lead, int nd, const int64_t *dims)
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
    PyObject *out = PyObject_CallOneArg(k->empty, shape);
    Py_DECREF(shape);
    return out;
}

/* The ops whose primal is one correctly rounded IEEE operation per element:
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

/* Does fresh C-ordered array z hold a NaN? */
static int has_nan(PyObject *z)
{
    const sad_arr a = sad_arr_of((intptr_t)z);
    int64_t n = 1;
    for (int d = 0; d < a.nd; ++d)
        n *= a.shape[d];
    int nan = 0;
    for (int64_t i = 0; i < n; ++i)
        nan |= isnan(a.data[i]);
    return nan;
}

/* z = op(operands) computed in C for an exact op, sparing numpy's call (and
 * its conversion of a number operand to an array).  Only where numpy's
 * result is known without asking it: every array operand of one shape (at
 * least 1-D), C-ordered, a plain ndarray.  A loop that raises an exception
 * numpy would report is numpy's to redo, so its warnings and errors stay;
 * so is a NaN result, whose sign and payload IEEE leaves to the machine code
 * (of two NaN operands, which one comes out).  1, or 0 (numpy's case), -1
 * on error. */
static int c_primal(const fwd_kit *k, int op, const ew_operand *o, int n, PyObject **z)
{
    int nd = -1;
    const int64_t *dims = NULL;
    for (int j = 0; j < n; ++j) {
        if (o[j].kind != SAD_KX_ARR)
            continue;
        const sad_arr a = sad_arr_of((intptr_t)o[j].p);
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
    if ((*z = new_empty(k, 0, nd, dims)) == NULL)
        return -1;
    intptr_t p[2] = {0, 0}, s[2] = {0, 0};
    double c = 0.0;
    const int flags = ew_pack(o, n, 0, p, s, &c);
    if (fetestexcept(REPORTED)) /* left by earlier C code (numpy clears its own) */
        feclearexcept(REPORTED);
    if (sad_ew_primal(op, flags, (intptr_t)*z, p[0], p[1], c) != SAD_OK || fetestexcept(REPORTED) ||
        has_nan(*z)) {
        Py_CLEAR(*z);
        return 0;
    }
    return 1;
}

/* numpy's result z as a dual array of ctx with uninitialised tangent lanes
 * (the kernel fills every one): a temporary Buffer (traced.temporary_buffer)
 * with the lanes attached fresh (Buffer.attach_fresh).  numpy keeps a
 * transposed input's layout, and such a z is Python's to wrap (make). */
static PyObject *dual_result(const fwd_kit *k, PyObject *ctx, PyObject *z, Py_ssize_t lanes)
{
    if (!sad_is_c_contiguous(z))
        return PyObject_CallFunctionObjArgs(k->make, ctx, z, NULL);
    const sad_arr a = sad_arr_of((intptr_t)z);
    PyObject *zt = new_empty(k, lanes, a.nd, a.shape);
    PyObject *buf = zt != NULL ? new_instance(k->buffer) : NULL;
    PyObject *res = buf != NULL ? new_instance(k->dual) : NULL;
    if (res == NULL) {
        Py_XDECREF(buf);
        Py_XDECREF(zt);
        return NULL;
    }
    slot_init(buf, k->b_tape, ctx);
    slot_init(buf, k->b_root, z);
    slot_init(buf, k->b_shadow, zt);
    slot_init(buf, k->b_readonly, Py_False);
    slot_init(buf, k->b_label, k->label);
    slot_init(buf, k->b_mem, Py_None);
    slot_init(buf, k->b_span, Py_None);
    slot_init(buf, k->b_kept, Py_False);
    slot_init(buf, k->b_slot, Py_None);
    slot_init(res, k->a_p, z);
    slot_init(res, k->a_s, zt);
    slot_init(res, k->a_buf, buf);
    Py_DECREF(buf);
    Py_DECREF(zt);
    return res;
}

/* The operands' Context (NULL: take the running one) and its lanes: a dual
 * scalar's tangent array must have one entry per lane.  1, or 0 for
 * Python's case, -1 on error. */
static int call_lanes(const fwd_kit *k, const ew_operand *o, int n, PyObject **ctx,
                      Py_ssize_t *lanes)
{
    if (*ctx == NULL && (*ctx = running_context(k)) == NULL)
        return PyErr_Occurred() ? -1 : 0;
    if ((*lanes = lanes_of(k, *ctx)) == 0)
        return 0;
    for (int j = 0; j < n; ++j)
        if (o[j].kind == SAD_KX_PAIR && o[j].s != NULL &&
            sad_arr_of((intptr_t)o[j].s).shape[0] != *lanes)
            return 0;
    return 1;
}

/* cls.fwd(kit, ufunc, op, x[, y]): forward mode.  Operands are dual arrays
 * of one Context, dual scalars, float64 arrays or a number, at least one
 * with tangents and one an array; numpy computes the primal, the result is a
 * dual array with fresh tangent lanes, and the C kernel fills them. */
static PyObject *scalar_fwd(PyObject *cls, PyObject *const *args, Py_ssize_t nargs)
{
    (void)cls;
    int op = 0, n = 0, status = ew_call(args, nargs, 2, &op, &n);
    if (status <= 0)
        return ew_result(status, NULL);
    const fwd_kit *k = PyCapsule_GetPointer(args[0], KIT_NAME);
    if (k == NULL)
        return NULL;
    PyObject *ufunc = args[1];
    ew_operand o[2] = {{.p = NULL}, {.p = NULL}};
    PyObject *ctx = NULL, *z = NULL, *res = NULL;
    int consts = 0, arrays = 0, active = 0;
    for (int j = 0; j < n && status > 0; ++j) {
        PyObject *a = args[3 + j], *t = (PyObject *)Py_TYPE(a);
        status = t == k->dual     ? dual_array(k, a, &ctx, &o[j])
                 : t == k->scalar ? dual_scalar(k, a, &o[j])
                                  : plain_operand(a, k->ndarray, &o[j]);
        if (status > 0) {
            consts += o[j].kind == SAD_KX_CONST;
            arrays += o[j].kind == SAD_KX_ARR;
            active += o[j].kind == SAD_KX_PAIR || o[j].s != NULL;
        }
    }
    if (status <= 0 || active == 0 || arrays == 0 || consts > 1) {
        status = status < 0 ? -1 : 0;
        goto done;
    }
    Py_ssize_t lanes = 0;
    if ((status = call_lanes(k, o, n, &ctx, &lanes)) <= 0)
        goto done;
    if (exact_op(op) && (status = c_primal(k, op, o, n, &z)) < 0)
        goto done;
    if (z == NULL && (status = ew_primal(ufunc, k->ndarray, o, n, &z)) <= 0)
        goto done;
    if ((res = dual_result(k, ctx, z, lanes)) == NULL) {
        status = -1;
        goto done;
    }
    intptr_t p[2] = {0, 0}, s[2] = {0, 0};
    double *dl[2] = {NULL, NULL};
    int64_t ls[2] = {0, 0};
    double c = 0.0;
    const int flags = ew_pack(o, n, SAD_F_LANES, p, s, &c);
    for (int j = 0; j < n; ++j)
        if (o[j].kind == SAD_KX_PAIR && o[j].s != NULL) {
            const sad_arr d = sad_arr_of((intptr_t)o[j].s);
            dl[j] = d.data;
            ls[j] = d.strides[0] / (int64_t)sizeof(double);
        }
    PyObject *zt = (PyObject *)Py_TYPE(res) == k->dual ? slot_get(res, k->a_s) : NULL;
    if (zt == NULL || sad_ew_tangent_duals(op, flags, (intptr_t)z, (intptr_t)zt, p[0], s[0],
                                           p[1], s[1], c, dl, ls))
        status = 0; /* more dimensions than the kernel takes: Python splits them */
done:
    Py_XDECREF(z);
    Py_XDECREF(ctx);
    release_operands(o, n);
    return ew_result(status, res);
}

/* The sum of the m doubles at x (byte stride st) as np.add.reduce computes
 * it: numpy's own float64 add loop, in its reduce form, from the identity. */
static double numpy_sum(const fwd_kit *k, const char *x, int64_t m, int64_t st)
{
    double out = 0.0;
    char *args[3] = {(char *)&out, (char *)x, (char *)&out};
    const intptr_t dims[1] = {(intptr_t)m}, steps[3] = {0, (intptr_t)st, 0};
    k->add_loop(args, dims, steps, k->add_data);
    return out;
}

/* The tangent of a full sum: a float for one lane, else an array of lanes
 * (as reductions.forward_result makes it); NULL with an error set. */
static PyObject *lane_sums(const fwd_kit *k, const char *t, int64_t m, Py_ssize_t lanes)
{
    if (lanes == 1)
        return PyFloat_FromDouble(numpy_sum(k, t, m, sizeof(double)));
    PyObject *d = new_empty(k, lanes, 0, NULL);
    if (d == NULL)
        return NULL;
    double *out = sad_arr_of((intptr_t)d).data;
    for (Py_ssize_t l = 0; l < lanes; ++l)
        out[l] = numpy_sum(k, t + l * m * (int64_t)sizeof(double), m, sizeof(double));
    return d;
}

/* cls.fsum(kit, a): np.sum(a) of a dual array with tangent lanes, C-ordered:
 * a dual scalar.  numpy's reduction machinery costs microseconds on top of
 * a loop that costs nanoseconds here; numpy's own loop over the same
 * contiguous memory gives its very bits (numpy coalesces C-ordered memory
 * into one run, a run per lane for the tangent).  NotImplemented for
 * other layouts, and when the loop raises an exception numpy must report. */
static PyObject *scalar_fsum(PyObject *cls, PyObject *const *args, Py_ssize_t nargs)
{
    (void)cls;
    if (nargs != 2)
        return PyErr_Format(PyExc_TypeError, "fsum takes 2 arguments");
    const fwd_kit *k = PyCapsule_GetPointer(args[0], KIT_NAME);
    if (k == NULL)
        return NULL;
    PyObject *a = args[1];
    if ((PyObject *)Py_TYPE(a) != k->dual)
        Py_RETURN_NOTIMPLEMENTED;
    PyObject *p = slot_get(a, k->a_p), *t = slot_get(a, k->a_s), *buf = slot_get(a, k->a_buf);
    if (p == NULL || t == NULL || buf == NULL || (PyObject *)Py_TYPE(buf) != k->buffer ||
        (PyObject *)Py_TYPE(p) != k->ndarray || (PyObject *)Py_TYPE(t) != k->ndarray ||
        !sad_is_c_contiguous(p) || !sad_is_c_contiguous(t))
        Py_RETURN_NOTIMPLEMENTED;
    PyObject *ctx = slot_get(buf, k->b_tape);
    const Py_ssize_t lanes = ctx != NULL && (PyObject *)Py_TYPE(ctx) == k->context
                                 ? lanes_of(k, ctx) : 0;
    const sad_arr pa = sad_arr_of((intptr_t)p), ta = sad_arr_of((intptr_t)t);
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
    slot_init(res, k->s_v, z);
    slot_init(res, k->s_d, d);
    Py_DECREF(z);
    Py_DECREF(d);
    return res;
}

/* ---- reverse mode ------------------------------------------------------ */

/* A traced array of the call's tape (the first one found sets it) whose
 * shadow is an array or a lazy slot.  Inactive memory, or a view whose
 * shadow is not looked up yet, is Python's case (0). */
static int traced_operand(PyObject *o, PyObject **tape, ew_operand *out)
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

/* Which values the reverse sweep of z = op(x, y) reads (x 1, y 2, z 4), as
 * elementwise._values_read: what the tape must keep alive. */
static int values_read(int op, const ew_operand *o, int n)
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
static int keep_values(PyObject *keep, PyObject *z, const ew_operand *o, int n, int need)
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
static PyObject *scalar_rev(PyObject *cls, PyObject *const *args, Py_ssize_t nargs)
{
    (void)cls;
    int op = 0, n = 0, status = ew_call(args, nargs, 4, &op, &n);
    if (status <= 0)
        return ew_result(status, NULL);
    PyObject *traced_type = args[0], *ndarray_type = args[1], *make = args[2], *ufunc = args[3];
    ew_operand o[2] = {{.p = NULL}, {.p = NULL}};
    PyObject *tape = NULL, *z = NULL, *res = NULL, *zs = NULL, *keep = NULL, *tptr = NULL;
    int consts = 0, traced = 0;
    for (int j = 0; j < n && status > 0; ++j) {
        PyObject *a = args[5 + j];
        const int is_traced = (PyObject *)Py_TYPE(a) == traced_type;
        status = is_traced ? traced_operand(a, &tape, &o[j])
                           : plain_operand(a, ndarray_type, &o[j]);
        if (status > 0 && is_traced) /* active: a shadow array, or a lazy slot */
            status = o[j].s != o[j].p || o[j].slot > 0;
        traced += status > 0 && is_traced;
        consts += status > 0 && o[j].kind == SAD_KX_CONST;
    }
    if (status <= 0 || traced == 0 || consts > 1) {
        status = status < 0 ? -1 : 0;
        goto done;
    }
    if ((status = ew_primal(ufunc, ndarray_type, o, n, &z)) <= 0)
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
    const int flags = ew_pack(o, n, SAD_F_FRESH, p, s, &k);
    /* more dimensions than a record takes, or no memory: Python's path */
    status = sad_ew_slots((sad_tape *)PyLong_AsSsize_t(tptr), op, flags, (intptr_t)z,
                          (intptr_t)zs, p[0], s[0], p[1], s[1], k, slots) == 0;
done:
    Py_XDECREF(tptr);
    Py_XDECREF(keep);
    Py_XDECREF(zs);
    Py_XDECREF(z);
    release_operands(o, n);
    return ew_result(status, res);
}

static PyMethodDef scalar_methods[] = {
    {"rev", (PyCFunction)(void (*)(void))scalar_rev, METH_FASTCALL | METH_CLASS,
     "rev(traced_type, ndarray_type, make, ufunc, op, x[, y]): reverse elementwise fast path"},
    {"fwd", (PyCFunction)(void (*)(void))scalar_fwd, METH_FASTCALL | METH_CLASS,
     "fwd(kit, ufunc, op, x[, y]): forward elementwise fast path"},
    {"fsum", (PyCFunction)(void (*)(void))scalar_fsum, METH_FASTCALL | METH_CLASS,
     "fsum(kit, a): np.sum(a) of a dual array, forward fast path"},
    {"fwd_kit", (PyCFunction)(void (*)(void))scalar_fwd_kit, METH_FASTCALL | METH_CLASS,
     "fwd_kit(dual, dual_scalar, buffer, context, ndarray, float64, empty, make, current, "
     "label, add): what fwd and fsum need to know of them"},
    {"tangent", (PyCFunction)(void (*)(void))scalar_tangent, METH_FASTCALL | METH_CLASS,
     "tangent(op, flags, z, dz, x, dx, y, dy, k): elementwise tangent lanes"},
    {"ew", (PyCFunction)(void (*)(void))scalar_ew, METH_FASTCALL | METH_CLASS,
     "ew(tape, op, flags, z, zs, x, xs, y, ys, k): one elementwise record"},
    {"load", (PyCFunction)(void (*)(void))scalar_load, METH_FASTCALL | METH_CLASS,
     "load(p, s, idx, tape): the element idx of an active array, traced"},
    {"store", (PyCFunction)(void (*)(void))scalar_store, METH_FASTCALL | METH_CLASS,
     "store(p, s, i, x): element i of an active vector = traced scalar x, recorded"},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef scalar_members[] = {
    {"v", T_DOUBLE, offsetof(ScalarObject, v), READONLY, "the value"},
    {"g", T_PYSSIZET, offsetof(ScalarObject, g), READONLY,
     "address of the {value, adjoint} pair on the tape"},
    {"tape", T_OBJECT, offsetof(ScalarObject, tape), READONLY, "the tape it is recorded on"},
    {NULL, 0, 0, 0, NULL},
};

static PyTypeObject ScalarBase = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "shadowad.ScalarBase",
    .tp_basicsize = sizeof(ScalarObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_doc = "C base of traced scalars: arithmetic recorded straight onto the tape",
    .tp_new = scalar_new,
    .tp_dealloc = scalar_dealloc,
    .tp_as_number = &scalar_number,
    .tp_members = scalar_members,
    .tp_methods = scalar_methods,
};

intptr_t sad_scalar_base(void)
{
    /* cffi calls this without the GIL */
    PyGILState_STATE gil = PyGILState_Ensure();
    intptr_t out = PyType_Ready(&ScalarBase) < 0 ? 0 : (intptr_t)&ScalarBase;
    if (out == 0)
        PyErr_Clear();
    PyGILState_Release(gil);
    return out;
}
