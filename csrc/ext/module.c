/* module.c -- the extension module shadowad._fast: its init (multi-phase),
 * its state (the base types, and the objects Python registers once) and its
 * functions, defined in the other files of csrc/ext. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "fast.h"

#define FAST(name, fn, doc) {name, (PyCFunction)(void (*)(void))fn, METH_FASTCALL, doc}

static PyMethodDef methods[] = {
    FAST("register_reverse", sad_fast_register_reverse,
         "register_reverse(traced, scalar, buffer, tape, make, hold, extobj_var, extobj_warns): "
         "the classes and functions of reverse mode's fast paths"),
    FAST("register_watch", sad_fast_register_watch,
         "register_watch(watch): watch(tape, what) is called when a recording call was "
         "refused by the tape's budget or made Python's count of the tape due"),
    FAST("register_forward", sad_fast_register_forward,
         "register_forward(dual, dual_scalar, buffer, context, float64, empty, make, current, "
         "label, add): the classes and objects of forward mode's fast paths"),
    FAST("rev", sad_fast_rev, "rev(ufunc, op, x[, y]): reverse elementwise fast path"),
    FAST("rev_out", sad_fast_rev_out, "rev_out(out, ufunc, op, x[, y]): the same, in place"),
    FAST("outer", sad_fast_outer, "outer(a, b, redo): np.outer of two vectors as one C record"),
    FAST("view", sad_fast_view, "view(a, idx): a[idx] of a traced array, a basic view"),
    FAST("writes_back", sad_fast_writes_back,
         "writes_back(p, idx, v): is p[idx] = v writing back the view v itself?"),
    FAST("load", sad_fast_load, "load(p, s, idx, tape): the element idx of an active array"),
    FAST("scalar", sad_fast_scalar,
         "scalar(v, g, tape): the traced scalar of the pair g a C record of tape returned"),
    FAST("store", sad_fast_store, "store(p, s, i, x): element i of an active vector = x"),
    FAST("fwd", sad_fast_fwd, "fwd(ufunc, op, x[, y]): forward elementwise fast path"),
    FAST("fsum", sad_fast_fsum, "fsum(a): np.sum(a) of a dual array, forward fast path"),
    FAST("tangent", sad_fast_tangent,
         "tangent(op, flags, z, dz, x, dx, y, dy, k): elementwise tangent lanes"),
    FAST("ew", sad_fast_ew,
         "ew(tape_address, op, flags, z, zs, x, xs, y, ys, k, zslot, xslot, yslot): one "
         "elementwise record (a slot > 0: that shadow is lazy)"),
    FAST("data", sad_fast_data, "data(a): the address of ndarray a's element 0"),
    FAST("capsule_pointer", sad_fast_capsule_pointer,
         "capsule_pointer(c): the pointer PyCapsule c holds, whatever its name"),
    FAST("same_elements", sad_fast_same_elements,
         "same_elements(a, block, itemsize): do a's elements in C order hold the bytes at block?"),
    FAST("reverse_through", sad_fast_reverse_through,
         "reverse_through(tape, i, slot, g): sweep record i now, its adjoint read from g"),
    FAST("reverse_summed", sad_fast_reverse_summed,
         "reverse_summed(tape, i, slot, ax, len, g): sweep linear record i now from the sums g"),
    FAST("reduce", sad_fast_reduce,
         "reduce(tape, op, v, x, xs, y, ys): sum or dot of arrays as one record; the pair"),
    FAST("reduce_lazy", sad_fast_reduce_lazy,
         "reduce_lazy(tape, v, x, slot): sum of x, whose shadow is a lazy slot; the pair"),
    FAST("slot_new", sad_fast_slot_new, "slot_new(tape, z): a lazy shadow slot for temporary z"),
    FAST("slot_bind", sad_fast_slot_bind, "slot_bind(tape, slot, zs): give the slot memory zs"),
    FAST("load_at", sad_fast_load_at,
         "load_at(tape, s, off, v): record a read of the element at byte offset off; the pair"),
    FAST("store_at", sad_fast_store_at,
         "store_at(tape, p, s, poff, soff, x, v): record a write of one element"),
    FAST("outer_record", sad_fast_outer_record,
         "outer_record(tape, z, zs, zslot, a, as, aslot, b, bs, bslot): np.outer as a record"),
    FAST("axpy", sad_fast_axpy, "axpy(tape, flags, a, va, x, xs, y, ys): y += a*x"),
    FAST("axpy_tangents", sad_fast_axpy_tangents,
         "axpy_tangents(va, da, x, dx, y, dy): y += va*x with its tangent lanes"),
    FAST("vec_extend", sad_fast_vec_extend, "vec_extend(v, a): append a's elements to vector v"),
    FAST("vpusha", sad_fast_vpusha, "vpusha(tape, v, vs, x, xs): record pushing array x"),
    FAST("vcopy", sad_fast_vcopy, "vcopy(tape, v, vs, z, zs): record copying the vector into z"),
    {NULL, NULL, 0, NULL},
};

/* Every object the state holds, for traverse and clear. */
static int state_objects(sad_state *st, PyObject ***out)
{
    PyObject **all[] = {
        (PyObject **)&st->scalar_type, (PyObject **)&st->array_type,
        (PyObject **)&st->buffer_type, (PyObject **)&st->tape_type,
        (PyObject **)&st->context_type, (PyObject **)&st->dual_scalar_type,
        (PyObject **)&st->ndarray_type,
        &st->rev.traced, &st->rev.scalar, &st->rev.ndarray, &st->rev.buffer, &st->rev.tape,
        &st->rev.make, &st->rev.hold, &st->rev.extobj_var, &st->rev.extobj_warns,
        &st->rev.kw_out, &st->rev.watch,
        &st->fwd.dual, &st->fwd.scalar, &st->fwd.buffer, &st->fwd.context, &st->fwd.ndarray,
        &st->fwd.float64, &st->fwd.empty, &st->fwd.dtype[SAD_FAST_F64],
        &st->fwd.dtype[SAD_FAST_F32], &st->fwd.make, &st->fwd.current, &st->fwd.label,
        &st->fwd.add,
    };
    enum { N = sizeof(all) / sizeof(all[0]) };
    for (int i = 0; i < N; ++i)
        out[i] = all[i];
    return N;
}

enum { MAX_STATE_OBJECTS = 40 };

static int module_traverse(PyObject *m, visitproc visit, void *arg)
{
    sad_state *st = sad_state_of(m);
    if (st == NULL)
        return 0;
    PyObject **objs[MAX_STATE_OBJECTS];
    const int n = state_objects(st, objs);
    for (int i = 0; i < n; ++i)
        Py_VISIT(*objs[i]);
    return 0;
}

static int module_clear(PyObject *m)
{
    sad_state *st = sad_state_of(m);
    if (st == NULL)
        return 0;
    PyObject **objs[MAX_STATE_OBJECTS];
    const int n = state_objects(st, objs);
    for (int i = 0; i < n; ++i)
        Py_CLEAR(*objs[i]);
    st->fwd.add_loop = NULL;
    st->fwd.add_data = NULL;
    return 0;
}

static void module_free(void *m) { module_clear((PyObject *)m); }

/* Create base type `spec` in the module as attribute `name`. */
static int add_type(PyObject *m, PyType_Spec *spec, const char *name, PyTypeObject **out)
{
    PyObject *t = PyType_FromModuleAndSpec(m, spec, NULL);
    if (t == NULL)
        return -1;
    *out = (PyTypeObject *)t;
    return PyModule_AddObjectRef(m, name, t);
}

/* The core's table of entry points, from the cffi module shadowad._csad
 * (lib.sad_api(), whose address ffi gives as an int); NULL with an
 * exception when the core is missing or was built from other sources. */
static const struct sad_api *core_api(void)
{
    PyObject *core = PyImport_ImportModule("shadowad._csad");
    PyObject *ffi = core != NULL ? PyObject_GetAttrString(core, "ffi") : NULL;
    PyObject *lib = core != NULL ? PyObject_GetAttrString(core, "lib") : NULL;
    PyObject *ptr = lib != NULL ? PyObject_CallMethod(lib, "sad_api", NULL) : NULL;
    PyObject *addr = ffi != NULL && ptr != NULL
                         ? PyObject_CallMethod(ffi, "cast", "sO", "uintptr_t", ptr)
                         : NULL;
    PyObject *num = addr != NULL ? PyNumber_Long(addr) : NULL;
    const struct sad_api *api = num != NULL ? PyLong_AsVoidPtr(num) : NULL;
    Py_XDECREF(num);
    Py_XDECREF(addr);
    Py_XDECREF(ptr);
    Py_XDECREF(lib);
    Py_XDECREF(ffi);
    Py_XDECREF(core);
    if (api == NULL) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_ImportError, "shadowad._fast: shadowad._csad gave no core");
        return NULL;
    }
    if (api->size != sizeof(struct sad_api)) {
        PyErr_SetString(PyExc_ImportError,
                        "shadowad._fast: shadowad._csad was built from other sources (its "
                        "table of entry points differs); rebuild both: python setup.py "
                        "build_ext --inplace");
        return NULL;
    }
    return api;
}

static int module_exec(PyObject *m)
{
    sad_state *st = sad_state_of(m);
    if (add_type(m, &sad_scalar_spec, "ScalarBase", &st->scalar_type) < 0 ||
        add_type(m, &sad_array_spec, "ArrayBase", &st->array_type) < 0 ||
        add_type(m, &sad_buffer_spec, "BufferBase", &st->buffer_type) < 0 ||
        add_type(m, &sad_tape_spec, "TapeBase", &st->tape_type) < 0 ||
        add_type(m, &sad_context_spec, "ContextBase", &st->context_type) < 0 ||
        add_type(m, &sad_dual_scalar_spec, "DualScalarBase", &st->dual_scalar_type) < 0)
        return -1;
    PyObject *np = PyImport_ImportModule("numpy");
    PyObject *nd = np != NULL ? PyObject_GetAttrString(np, "ndarray") : NULL;
    Py_XDECREF(np);
    if (nd == NULL)
        return -1;
    if (!PyType_Check(nd)) {
        Py_DECREF(nd);
        PyErr_SetString(PyExc_TypeError, "shadowad._fast: numpy.ndarray is not a type");
        return -1;
    }
    st->ndarray_type = (PyTypeObject *)nd;
    if ((st->api = core_api()) == NULL)
        return -1;
    st->rev.api = st->fwd.api = st->api;
    return 0;
}

static PyModuleDef_Slot module_slots[] = {
    {Py_mod_exec, module_exec},
    {0, NULL},
};

PyModuleDef sad_module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "shadowad._fast",
    .m_doc = "The part of shadowad that touches Python objects: the C base types of traced "
             "values and the fast paths of elementwise operations and indexing.",
    .m_size = sizeof(sad_state),
    .m_methods = methods,
    .m_slots = module_slots,
    .m_traverse = module_traverse,
    .m_clear = module_clear,
    .m_free = module_free,
};

PyMODINIT_FUNC PyInit__fast(void) { return PyModuleDef_Init(&sad_module_def); }
