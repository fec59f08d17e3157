/* bases.c -- the C base types whose fields the fast paths read: traced
 * arrays (ArrayBase), their Buffers (BufferBase), reverse mode's Tape
 * (TapeBase), forward mode's Context (ContextBase) and dual scalars
 * (DualScalarBase).  Python's classes subclass them and add fields of their
 * own in __slots__; C reads these fields as struct members (fast.h), so no
 * layout is copied by hand and no offset is looked up at run time.  Each
 * field is a Python attribute of the same name, unset until assigned (as a
 * __slots__ entry is). */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include "fast.h"

/* The object fields of an instance: n of them, from the first after the
 * object header (every base type here starts with them). */
static PyObject **fields(PyObject *o) { return (PyObject **)((char *)o + sizeof(PyObject)); }

static int traverse_n(PyObject *self, visitproc visit, void *arg, int n)
{
    Py_VISIT(Py_TYPE(self)); /* a heap type: its instances hold it */
    PyObject **f = fields(self);
    for (int i = 0; i < n; ++i)
        Py_VISIT(f[i]);
    return 0;
}

static int clear_n(PyObject *self, int n)
{
    PyObject **f = fields(self);
    for (int i = 0; i < n; ++i)
        Py_CLEAR(f[i]);
    return 0;
}

static void dealloc_n(PyObject *self, int n)
{
    PyTypeObject *type = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    clear_n(self, n);
    type->tp_free(self);
    Py_DECREF(type);
}

/* The count of object fields of each base type. */
#define NFIELDS(type, last) ((int)((offsetof(type, last) - sizeof(PyObject)) / sizeof(PyObject *)) + 1)

#define BASE_TYPE(prefix, type, last)                                                   \
    static int prefix##_traverse(PyObject *self, visitproc visit, void *arg)            \
    {                                                                                   \
        return traverse_n(self, visit, arg, NFIELDS(type, last));                       \
    }                                                                                   \
    static int prefix##_clear(PyObject *self) { return clear_n(self, NFIELDS(type, last)); } \
    static void prefix##_dealloc(PyObject *self) { dealloc_n(self, NFIELDS(type, last)); }

#define FIELD(type, name, member, doc) {name, T_OBJECT_EX, offsetof(type, member), 0, doc}

#define SPEC(prefix, pyname, type, doc)                                                 \
    static PyType_Slot prefix##_slots[] = {                                             \
        {Py_tp_doc, doc},                                                               \
        {Py_tp_traverse, prefix##_traverse},                                            \
        {Py_tp_clear, prefix##_clear},                                                  \
        {Py_tp_dealloc, prefix##_dealloc},                                              \
        {Py_tp_members, prefix##_members},                                              \
        {0, NULL},                                                                      \
    };                                                                                  \
    PyType_Spec sad_##prefix##_spec = {                                                 \
        .name = "shadowad._fast." pyname,                                               \
        .basicsize = sizeof(type),                                                      \
        .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,         \
        .slots = prefix##_slots,                                                        \
    };

/* ---- traced arrays: fields checked when assigned ----------------------
 * C reads p and _s as float64 arrays of matching shapes, and buf as a
 * Buffer: anything else is refused at assignment (a TypeError or
 * ValueError naming the field), so no fast path meets it. */
BASE_TYPE(array, sad_array_object, buf)

static const sad_state *state_for(PyObject *self)
{
    PyObject *m = PyType_GetModuleByDef(Py_TYPE(self), &sad_module_def);
    return m != NULL ? sad_state_of(m) : NULL;
}

/* 0 if v is an aligned float64 or float32 ndarray in native byte order, else
 * -1 with a TypeError naming field `name`.  (Every fast path reading the
 * fields as float64 checks sad_is_f64 itself: float32 ones take Python's
 * generic rules.) */
static int check_f64_field(const sad_state *st, PyObject *v, const char *name)
{
    if (PyObject_TypeCheck(v, st->ndarray_type) && sad_is_real(v))
        return 0;
    PyErr_Format(PyExc_TypeError,
                 "shadowad: a traced array's %s must be an aligned float64 or float32 ndarray, "
                 "not %R (leave the fields of traced values to shadowad)", name, v);
    return -1;
}

/* Is the traced array a forward-mode one (its _s: tangent lanes)? */
static int is_dual(const sad_state *st, PyObject *self)
{
    return st->fwd.dual != NULL && PyObject_TypeCheck(self, (PyTypeObject *)st->fwd.dual);
}

/* The lanes of a dual array's Context (through its Buffer), or -1 while
 * they are not known. */
static long context_lanes(const sad_state *st, PyObject *self)
{
    const sad_array_object *o = (const sad_array_object *)self;
    if (o->buf == NULL || !PyObject_TypeCheck(o->buf, st->buffer_type))
        return -1;
    PyObject *ctx = ((const sad_buffer_object *)o->buf)->tape;
    if (ctx == NULL || !PyObject_TypeCheck(ctx, st->context_type))
        return -1;
    PyObject *n = ((const sad_context_object *)ctx)->lanes;
    if (n == NULL || !PyLong_CheckExact(n))
        return -1;
    const long lanes = PyLong_AsLong(n);
    if (lanes == -1 && PyErr_Occurred())
        PyErr_Clear();
    return lanes;
}

/* 0 if shadow s fits primal p: the same shape (reverse mode), or a leading
 * axis of as many lanes as the Context has more (forward mode); else -1
 * with a ValueError. */
static int check_shapes(const sad_state *st, PyObject *self, PyObject *p, PyObject *s,
                        const char *name)
{
    const sad_arr a = sad_arr_of(p), b = sad_arr_of(s);
    const int lanes = is_dual(st, self);
    int ok = b.nd == a.nd + lanes && sad_same_dtype(p, s);
    for (int d = 0; ok && d < a.nd; ++d)
        ok = b.shape[d + lanes] == a.shape[d];
    if (ok && lanes) {
        const long n = context_lanes(st, self);
        ok = n < 0 || b.shape[0] == n;
    }
    if (ok)
        return 0;
    PyErr_Format(PyExc_ValueError,
                 "shadowad: this %s does not fit the traced array: its _s must be %s (leave "
                 "the fields of traced values to shadowad)", name,
                 lanes ? "tangent lanes of p's dtype, one per lane of its Context, then the "
                         "shape of p"
                       : "a shadow of the shape and dtype of p");
    return -1;
}

/* The checks of an assignment of v to field `name` (v NULL: a deletion,
 * refused: the fields C reads are never unset once set).  0, or -1 with an
 * exception. */
static int check_p(PyObject *self, PyObject *v)
{
    const sad_array_object *o = (const sad_array_object *)self;
    const sad_state *st = state_for(self);
    return st == NULL || check_f64_field(st, v, "p (primal)") < 0 ||
                   (o->s != NULL && o->s != Py_None && check_shapes(st, self, v, o->s, "p") < 0)
               ? -1
               : 0;
}

static int check_s(PyObject *self, PyObject *v)
{
    const sad_array_object *o = (const sad_array_object *)self;
    if (v == Py_None)
        return 0;
    const sad_state *st = state_for(self);
    return st == NULL || check_f64_field(st, v, "_s (shadow or tangent lanes)") < 0 ||
                   (o->p != NULL && check_shapes(st, self, o->p, v, "_s") < 0)
               ? -1
               : 0;
}

static int check_buf(PyObject *self, PyObject *v)
{
    const sad_state *st = state_for(self);
    if (st == NULL)
        return -1;
    if (PyObject_TypeCheck(v, st->buffer_type))
        return 0;
    PyErr_Format(PyExc_TypeError,
                 "shadowad: a traced array's buf must be a Buffer, not %R (leave the fields "
                 "of traced values to shadowad)", v);
    return -1;
}

/* Assignments to p, _s and buf are checked here; reading them stays a plain
 * member access (which the interpreter specializes: a property would cost
 * every read of x.p in Python a call). */
static int array_setattro(PyObject *self, PyObject *name, PyObject *v)
{
    if (PyUnicode_Check(name) && PyUnicode_GET_LENGTH(name) <= 3) {
        int (*check)(PyObject *, PyObject *) = NULL;
        if (PyUnicode_CompareWithASCIIString(name, "p") == 0)
            check = check_p;
        else if (PyUnicode_CompareWithASCIIString(name, "_s") == 0)
            check = check_s;
        else if (PyUnicode_CompareWithASCIIString(name, "buf") == 0)
            check = check_buf;
        if (check != NULL && v == NULL)
            return PyErr_Format(PyExc_AttributeError,
                                "shadowad: a traced array's %U cannot be deleted", name),
                   -1;
        if (check != NULL && check(self, v) < 0)
            return -1;
    }
    return PyObject_GenericSetAttr(self, name, v);
}

static PyMemberDef array_members[] = {
    FIELD(sad_array_object, "p", p, "the primal (an aligned float64 or float32 ndarray)"),
    FIELD(sad_array_object, "_s", s,
          "the shadow or tangent lanes (of the primal's dtype and shape, lanes first); None "
          "while not looked up"),
    FIELD(sad_array_object, "buf", buf, "the Buffer of the memory it views"),
    {NULL, 0, 0, 0, NULL},
};

static PyType_Slot array_slots[] = {
    {Py_tp_doc, "C base of traced arrays: primal, shadow, Buffer"},
    {Py_tp_traverse, array_traverse},
    {Py_tp_clear, array_clear},
    {Py_tp_dealloc, array_dealloc},
    {Py_tp_members, array_members},
    {Py_tp_setattro, array_setattro},
    {0, NULL},
};
PyType_Spec sad_array_spec = {
    .name = "shadowad._fast.ArrayBase",
    .basicsize = sizeof(sad_array_object),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .slots = array_slots,
};

BASE_TYPE(buffer, sad_buffer_object, slot)
static PyMemberDef buffer_members[] = {
    FIELD(sad_buffer_object, "tape", tape, "the Tape (reverse) or Context (forward)"),
    FIELD(sad_buffer_object, "root", root, "the root primal array"),
    FIELD(sad_buffer_object, "shadow", shadow, "the root's shadow; None while inactive"),
    FIELD(sad_buffer_object, "readonly", readonly, "may f not write it?"),
    FIELD(sad_buffer_object, "label", label, "what errors call it"),
    FIELD(sad_buffer_object, "mem", mem, "the shadow memory views find by offset"),
    FIELD(sad_buffer_object, "span", span, "byte bounds beyond the root's, or None"),
    FIELD(sad_buffer_object, "kept", kept, "does the tape keep it alive?"),
    FIELD(sad_buffer_object, "slot", slot, "its lazy shadow's slot in the C tape, or None"),
    {NULL, 0, 0, 0, NULL},
};
SPEC(buffer, "BufferBase", sad_buffer_object, "C base of Buffers: the fields C reads")

BASE_TYPE(tape, sad_tape_object, tptr)
static PyMemberDef tape_members[] = {
    FIELD(sad_tape_object, "keep", keep, "what the records need alive"),
    /* read only: C takes _tptr for the address of a live C tape */
    {"_tptr", T_OBJECT_EX, offsetof(sad_tape_object, tptr), READONLY,
     "the C tape's address; unset before _bind and after _unbind"},
    {"alive", T_INT, offsetof(sad_tape_object, alive), READONLY, "1 from _bind to _unbind"},
    {NULL, 0, 0, 0, NULL},
};

/* tape._bind(address): take the C tape at address (sad_tape_new's), once. */
static PyObject *tape_bind(PyObject *self, PyObject *address)
{
    sad_tape_object *o = (sad_tape_object *)self;
    if (o->bound)
        return PyErr_Format(PyExc_RuntimeError,
                            "shadowad: this Tape already has its C tape; make a new Tape");
    if (!PyLong_CheckExact(address))
        return PyErr_Format(PyExc_TypeError, "shadowad: _bind takes the C tape's address, an int");
    void *t = PyLong_AsVoidPtr(address);
    if (t == NULL)
        return PyErr_Occurred() ? NULL
                                : PyErr_Format(PyExc_ValueError, "shadowad: _bind of a NULL tape");
    Py_INCREF(address);
    Py_XSETREF(o->tptr, address);
    o->alive = 1;
    o->bound = 1;
    Py_RETURN_NONE;
}

/* tape._unbind(): the C tape is being freed; C reads it no more. */
static PyObject *tape_unbind(PyObject *self, PyObject *unused)
{
    (void)unused;
    sad_tape_object *o = (sad_tape_object *)self;
    o->alive = 0;
    Py_CLEAR(o->tptr);
    Py_RETURN_NONE;
}

static PyMethodDef tape_methods[] = {
    {"_bind", tape_bind, METH_O, "_bind(address): take the C tape at address, once per Tape"},
    {"_unbind", tape_unbind, METH_NOARGS, "_unbind(): forget the C tape (it is being freed)"},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot tape_slots[] = {
    {Py_tp_doc, "C base of reverse-mode tapes: the fields C reads"},
    {Py_tp_traverse, tape_traverse},
    {Py_tp_clear, tape_clear},
    {Py_tp_dealloc, tape_dealloc},
    {Py_tp_members, tape_members},
    {Py_tp_methods, tape_methods},
    {0, NULL},
};
PyType_Spec sad_tape_spec = {
    .name = "shadowad._fast.TapeBase",
    .basicsize = sizeof(sad_tape_object),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .slots = tape_slots,
};

BASE_TYPE(context, sad_context_object, lanes)
static PyMemberDef context_members[] = {
    FIELD(sad_context_object, "lanes", lanes, "the number of tangent lanes"),
    {NULL, 0, 0, 0, NULL},
};
SPEC(context, "ContextBase", sad_context_object, "C base of forward-mode Contexts")

BASE_TYPE(dual_scalar, sad_dual_scalar_object, ctx)
static PyMemberDef dual_scalar_members[] = {
    FIELD(sad_dual_scalar_object, "v", v, "the value (a float)"),
    FIELD(sad_dual_scalar_object, "d", d, "the tangent, or one per lane (an array)"),
    FIELD(sad_dual_scalar_object, "ctx", ctx, "the Context"),
    {NULL, 0, 0, 0, NULL},
};
SPEC(dual_scalar, "DualScalarBase", sad_dual_scalar_object, "C base of forward dual scalars")
