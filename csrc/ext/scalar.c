/* scalar.c -- the C base type of traced scalars.
 *
 * A Python scalar loop spends its time in the arithmetic of traced scalars:
 * through Python methods and cffi calls each + - * / ** costs microseconds.
 * This base type does the common cases (two traced scalars of one live tape,
 * or a traced scalar and a float or int) in C, recording straight onto the
 * tape; everything else goes to the Python subclass's ``_slow`` method, which
 * keeps the full semantics.  Also here: the module functions load and
 * store, one traced element of an array. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <math.h>

#include "fast.h"

static void scalar_dealloc(PyObject *self);
static PyObject *finished(void);

int sad_is_scalar(PyObject *o)
{
    /* only ScalarBase has this tp_dealloc; its subclasses are found through
     * their bases (one step for TScalar) */
    for (PyTypeObject *t = Py_TYPE(o); t != NULL; t = t->tp_base)
        if (t->tp_dealloc == scalar_dealloc)
            return 1;
    return 0;
}

/* The C tape and alive flag of Tape object `tape` (of the module's base
 * type): 0, or -1 with an exception set, or without one when the tape has
 * been freed. */
static int tape_of(PyTypeObject *tape_type, PyObject *tape, sad_tape **t, const int **alive)
{
    if (!PyObject_TypeCheck(tape, tape_type)) {
        PyErr_Format(PyExc_TypeError, "shadowad: %R is not a Tape", tape);
        return -1;
    }
    const sad_tape_object *o = (const sad_tape_object *)tape;
    *alive = &o->alive;
    if (!o->alive || o->tptr == NULL)
        return -1;
    Py_ssize_t tp = PyLong_AsSsize_t(o->tptr);
    if (tp == -1 && PyErr_Occurred())
        return -1;
    *t = (sad_tape *)tp;
    return 0;
}

/* Traced scalars come from operations on traced values: a pair address
 * from Python could be anything, so the class refuses to be called.  The
 * package makes them from fresh C pairs through _fast.scalar. */
static PyObject *scalar_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    (void)args;
    (void)kwds;
    return PyErr_Format(PyExc_TypeError,
                        "shadowad: %s cannot be constructed; traced scalars come from "
                        "operations on traced values inside the differentiated function",
                        type->tp_name);
}

static void scalar_dealloc(PyObject *self)
{
    PyTypeObject *type = Py_TYPE(self);
    Py_XDECREF(((ScalarObject *)self)->tape);
    type->tp_free(self);
    Py_DECREF(type); /* a heap type: its instances hold it */
}

/* After a recording call on s's tape returned rc: 0, or -1 with an
 * exception (sad_rev_recorded: the budget's error, MemoryError, or what
 * Python's count of the tape raised, if due). */
static int recorded(const ScalarObject *s, int rc)
{
    if (rc == SAD_OK && !s->api->tape_grew(s->t, 0))
        return 0;
    PyObject *m = PyType_GetModuleByDef(Py_TYPE(s), &sad_module_def);
    if (m == NULL)
        return -1;
    const int after = sad_rev_recorded(&sad_state_of(m)->rev, s->tape, s->t, rc, 0, NULL,
                                       "arithmetic on traced scalars",
                                       "shadowad: out of memory while recording");
    if (after > 0)
        PyErr_NoMemory();
    return after != 0 ? -1 : 0;
}

/* A new scalar of s's type and tape holding value z and pair g, which a
 * recording call on s's tape returned (NULL: it failed). */
static PyObject *result(const ScalarObject *s, double z, sad_pair *g)
{
    const int rc = g != NULL ? SAD_OK : s->api->tape_refused(s->t) ? SAD_OVER_BUDGET : SAD_NOMEM;
    if (recorded(s, rc) < 0)
        return NULL;
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
    r->api = s->api;
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
    if (sad_is_scalar(a))
        return PyObject_CallMethod(a, "_slow", "iOi", op, b, 0);
    return PyObject_CallMethod(b, "_slow", "iOi", op, a, 1);
}

static PyObject *binary(PyObject *a, PyObject *b, int op)
{
    const int sa = sad_is_scalar(a), sb = sad_is_scalar(b);
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
    return result(s, z, (sad_pair *)s->api->s2(s->t, op, z, (intptr_t)gx, x, (intptr_t)gy, y));
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
    return result(s, z, (sad_pair *)s->api->s1(s->t, op, z, s->g, s->v));
}

static PyObject *nb_neg(PyObject *self) { return unary(self, SAD_NEG); }
static PyObject *nb_abs(PyObject *self) { return unary(self, SAD_ABS); }

static PyObject *nb_pos(PyObject *self)
{
    Py_INCREF(self);
    return self;
}

/* NULL with the error of a traced value used after its tape was freed. */
static PyObject *finished(void)
{
    /* the words of Python's tape.finished_error, for either path */
    PyErr_SetString(PyExc_RuntimeError, "shadowad: a traced value was used after its autodiff "
                    "call finished; traced values exist only while f runs (take plain values "
                    "inside f with sad.primal)");
    return NULL;
}

/* 0 if o is an aligned float64 ndarray (what C reads), else -1 with a
 * TypeError naming argument `what` of function `fn`: the arrays given come
 * from fields of traced values. */
static int check_f64(PyTypeObject *ndarray, PyObject *o, const char *fn, const char *what)
{
    if ((Py_IS_TYPE(o, ndarray) || PyObject_TypeCheck(o, ndarray)) && sad_is_f64(o))
        return 0;
    PyErr_Format(PyExc_TypeError, "shadowad: %s: %s must be an aligned float64 ndarray, not %.100s",
                 fn, what, Py_TYPE(o)->tp_name);
    return -1;
}

/* Element i of 1-D array a: its address, or NULL with IndexError set. */
static double *element(PyObject *a, Py_ssize_t i, int64_t *off)
{
    sad_arr arr = sad_arr_of(a);
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
    sad_arr a = sad_arr_of(p), b = sad_arr_of(s);
    const int tuple = PyTuple_CheckExact(idx);
    if (tuple ? PyTuple_GET_SIZE(idx) != a.nd : !(PyLong_CheckExact(idx) && a.nd == 1))
        return 0;
    if (b.nd != a.nd) /* a shadow of another shape: Python's path says so */
        return 0;
    for (int d = 0; d < a.nd; ++d)
        if (b.shape[d] != a.shape[d])
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

/* _fast.load(p, s, idx, tape): the element of an active array (primal p,
 * shadow s) that idx names, as a traced scalar of the registered class; NotImplemented
 * when idx names no single element or s is None (Python takes the general
 * path). */
SAD_FAST(sad_fast_load)
{
    const sad_rev_objects *k = sad_rev_registered(module);
    if (k == NULL)
        return NULL;
    if (nargs != 4)
        return PyErr_Format(PyExc_TypeError, "load takes 4 arguments");
    PyObject *p = args[0], *s = args[1], *tape = args[3];
    if (s == Py_None)
        Py_RETURN_NOTIMPLEMENTED;
    PyTypeObject *nd = (PyTypeObject *)k->ndarray;
    if (check_f64(nd, p, "load", "p") < 0 || check_f64(nd, s, "load", "s") < 0)
        return NULL;
    int64_t poff, soff;
    int rc = element_offsets(p, s, args[2], &poff, &soff);
    if (rc <= 0) {
        if (rc == 0)
            Py_RETURN_NOTIMPLEMENTED;
        return NULL;
    }
    sad_tape *t;
    const int *alive;
    if (!sad_rev_tape_of(k, tape, &t, &alive) &&
        tape_of(sad_state_of(module)->tape_type, tape, &t, &alive) < 0)
        return PyErr_Occurred() ? NULL : finished();
    double v = *(double *)((char *)sad_arr_of(p).data + poff);
    ScalarObject proto = {.tape = tape, .t = t, .alive = alive, .api = k->api};
    Py_SET_TYPE(&proto, (PyTypeObject *)k->scalar);
    const sad_arr sd = sad_arr_of(s);
    return result(&proto, v, (sad_pair *)k->api->load(t, &sd, soff, v));
}

/* _fast.store(p, s, i, x): y[i] = x for an active 1-D array and a traced
 * scalar x of the same tape, recorded with the old value. */
SAD_FAST(sad_fast_store)
{
    if (nargs != 4 || !sad_is_scalar(args[3]))
        return PyErr_Format(PyExc_TypeError, "store takes p, s, i and a traced scalar");
    PyTypeObject *nd = sad_state_of(module)->ndarray_type;
    if (check_f64(nd, args[0], "store", "p") < 0 || check_f64(nd, args[1], "store", "s") < 0)
        return NULL;
    if (sad_arr_of(args[0]).nd != 1 || sad_arr_of(args[1]).nd != 1)
        return PyErr_Format(PyExc_ValueError, "shadowad: store takes 1-D arrays");
    const ScalarObject *x = (const ScalarObject *)args[3];
    if (!*x->alive)
        return finished();
    Py_ssize_t i = PyLong_AsSsize_t(args[2]);
    if (i == -1 && PyErr_Occurred())
        return NULL;
    int64_t poff, soff;
    if (element(args[0], i, &poff) == NULL || element(args[1], i, &soff) == NULL)
        return NULL;
    const sad_arr pd = sad_arr_of(args[0]), sd = sad_arr_of(args[1]);
    if (recorded(x, x->api->store(x->t, &pd, &sd, poff, soff, x->g, x->v)) < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* _fast.scalar(v, g, tape): the traced scalar of the registered class with
 * value v and the pair at address g, which a C record of tape just returned
 * (0: out of memory). */
SAD_FAST(sad_fast_scalar)
{
    const sad_rev_objects *k = sad_rev_registered(module);
    if (k == NULL)
        return NULL;
    if (nargs != 3)
        return PyErr_Format(PyExc_TypeError, "scalar takes v, g and tape");
    const double v = PyFloat_AsDouble(args[0]);
    const Py_ssize_t g = PyLong_AsSsize_t(args[1]);
    if (PyErr_Occurred())
        return NULL;
    PyObject *tape = args[2];
    sad_tape *t;
    const int *alive;
    if (!sad_rev_tape_of(k, tape, &t, &alive) &&
        tape_of(sad_state_of(module)->tape_type, tape, &t, &alive) < 0)
        return PyErr_Occurred() ? NULL : finished();
    ScalarObject proto = {.tape = tape, .t = t, .alive = alive, .api = k->api};
    Py_SET_TYPE(&proto, (PyTypeObject *)k->scalar);
    return result(&proto, v, (sad_pair *)g);
}

static PyMemberDef scalar_members[] = {
    {"v", T_DOUBLE, offsetof(ScalarObject, v), READONLY, "the value"},
    {"g", T_PYSSIZET, offsetof(ScalarObject, g), READONLY,
     "address of the {value, adjoint} pair on the tape"},
    {"tape", T_OBJECT, offsetof(ScalarObject, tape), READONLY, "the tape it is recorded on"},
    {NULL, 0, 0, 0, NULL},
};

static PyType_Slot scalar_slots[] = {
    {Py_tp_doc, "C base of traced scalars: arithmetic recorded straight onto the tape"},
    {Py_tp_new, scalar_new},
    {Py_tp_dealloc, scalar_dealloc},
    {Py_tp_members, scalar_members},
    {Py_nb_add, nb_add},
    {Py_nb_subtract, nb_sub},
    {Py_nb_multiply, nb_mul},
    {Py_nb_true_divide, nb_div},
    {Py_nb_power, nb_pow},
    {Py_nb_negative, nb_neg},
    {Py_nb_absolute, nb_abs},
    {Py_nb_positive, nb_pos},
    {0, NULL},
};

/* Not a GC type: a traced scalar holds its tape, which never refers back to
 * its scalars; untracked instances are made faster. */
PyType_Spec sad_scalar_spec = {
    .name = "shadowad._fast.ScalarBase",
    .basicsize = sizeof(ScalarObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .slots = scalar_slots,
};
