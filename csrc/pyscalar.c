/* pyscalar.c -- the C base type of traced scalars.
 *
 * A Python scalar loop spends its time in the arithmetic of traced scalars:
 * through Python methods and cffi calls each + - * / ** costs microseconds.
 * This base type does the common cases (two traced scalars of one live tape,
 * or a traced scalar and a float or int) in C, recording straight onto the
 * tape; everything else goes to the Python subclass's ``_slow`` method, which
 * keeps the full semantics.  The type also carries, as class methods, the
 * calls Python makes once per array operation, defined in pykernels.c,
 * pyreverse.c, pyindex.c and pyforward.c (declared in pyfast.h).  These files and
 * pyfast.c are the part of the core that uses the Python C API beyond
 * reading array headers. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <math.h>

#include "pyfast.h"

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

/* The tape of a Python Tape object and its alive flag: 0, or -1 with an
 * exception set, or without one when the tape has been freed. */
static int tape_of(PyObject *tape, sad_tape **t, const int **alive)
{
    Py_ssize_t tp, al;
    if (address_attr(tape, "_tptr", &tp) < 0 || address_attr(tape, "_aliveptr", &al) < 0)
        return -1;
    *t = (sad_tape *)tp;
    *alive = (const int *)al;
    return **alive ? 0 : -1;
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

/* cls.load(kit, p, s, idx, tape): the element of an active array (primal p,
 * shadow s) that idx names, as a traced scalar of class cls; NotImplemented
 * when idx names no single element or s is None (Python takes the general
 * path). */
static PyObject *scalar_load(PyObject *cls, PyObject *const *args, Py_ssize_t nargs)
{
    const sad_rev_kit *k = sad_rev_kit_of(args, nargs);
    if (k == NULL)
        return NULL;
    if (nargs != 5)
        return PyErr_Format(PyExc_TypeError, "load takes 5 arguments");
    PyObject *p = args[1], *s = args[2], *tape = args[4];
    if (s == Py_None)
        Py_RETURN_NOTIMPLEMENTED;
    int64_t poff, soff;
    int rc = element_offsets(p, s, args[3], &poff, &soff);
    if (rc <= 0) {
        if (rc == 0)
            Py_RETURN_NOTIMPLEMENTED;
        return NULL;
    }
    sad_tape *t;
    const int *alive;
    if (!sad_rev_tape_of(k, tape, &t, &alive) && tape_of(tape, &t, &alive) < 0)
        return PyErr_Occurred() ? NULL : finished();
    double v = *(double *)((char *)sad_arr_of((intptr_t)p).data + poff);
    ScalarObject proto = {.tape = tape, .t = t, .alive = alive};
    Py_SET_TYPE(&proto, (PyTypeObject *)cls);
    return result(&proto, v, (sad_pair *)sad_load(t, (intptr_t)s, soff, v));
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
        return finished();
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

static PyMethodDef scalar_methods[] = {
    {"rev", (PyCFunction)(void (*)(void))sad_scalar_rev, METH_FASTCALL | METH_CLASS,
     "rev(kit, ufunc, op, x[, y]): reverse elementwise fast path"},
    {"rev_out", (PyCFunction)(void (*)(void))sad_scalar_rev_out, METH_FASTCALL | METH_CLASS,
     "rev_out(kit, out, ufunc, op, x[, y]): the same, in place (out=)"},
    {"rev_kit", (PyCFunction)(void (*)(void))sad_scalar_rev_kit, METH_FASTCALL | METH_CLASS,
     "rev_kit(traced_type, ndarray_type, buffer_type, tape_type, make, hold, extobj_var, "
     "extobj_warns): what rev, rev_out and outer need to know of them"},
    {"outer", (PyCFunction)(void (*)(void))sad_scalar_outer, METH_FASTCALL | METH_CLASS,
     "outer(kit, a, b, redo): np.outer of two vectors as one C record, reverse fast path"},
    {"view", (PyCFunction)(void (*)(void))sad_scalar_view, METH_FASTCALL | METH_CLASS,
     "view(kit, a, idx): a[idx] of a traced array, for a basic index that leaves a view"},
    {"writes_back", (PyCFunction)(void (*)(void))sad_scalar_writes_back,
     METH_FASTCALL | METH_CLASS,
     "writes_back(kit, p, idx, v): is p[idx] = v writing back the view v itself?"},
    {"fwd", (PyCFunction)(void (*)(void))sad_scalar_fwd, METH_FASTCALL | METH_CLASS,
     "fwd(kit, ufunc, op, x[, y]): forward elementwise fast path"},
    {"fsum", (PyCFunction)(void (*)(void))sad_scalar_fsum, METH_FASTCALL | METH_CLASS,
     "fsum(kit, a): np.sum(a) of a dual array, forward fast path"},
    {"fwd_kit", (PyCFunction)(void (*)(void))sad_scalar_fwd_kit, METH_FASTCALL | METH_CLASS,
     "fwd_kit(dual, dual_scalar, buffer, context, ndarray, float64, empty, make, current, "
     "label, add): what fwd and fsum need to know of them"},
    {"tangent", (PyCFunction)(void (*)(void))sad_scalar_tangent, METH_FASTCALL | METH_CLASS,
     "tangent(op, flags, z, dz, x, dx, y, dy, k): elementwise tangent lanes"},
    {"ew", (PyCFunction)(void (*)(void))sad_scalar_ew, METH_FASTCALL | METH_CLASS,
     "ew(tape_address, op, flags, z, zs, x, xs, y, ys, k, zslot, xslot, yslot): one elementwise "
     "record (a slot > 0: that shadow is lazy)"},
    {"load", (PyCFunction)(void (*)(void))scalar_load, METH_FASTCALL | METH_CLASS,
     "load(kit, p, s, idx, tape): the element idx of an active array, traced"},
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
