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

BASE_TYPE(array, sad_array_object, buf)
static PyMemberDef array_members[] = {
    FIELD(sad_array_object, "p", p, "the primal (an ndarray)"),
    FIELD(sad_array_object, "_s", s, "the shadow or tangent lanes; None while not looked up"),
    FIELD(sad_array_object, "buf", buf, "the Buffer of the memory it views"),
    {NULL, 0, 0, 0, NULL},
};
SPEC(array, "ArrayBase", sad_array_object, "C base of traced arrays: primal, shadow, Buffer")

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
