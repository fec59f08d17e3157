/* fast.h -- internal declarations of the extension module shadowad._fast
 * (csrc/ext/): the one place that touches Python objects.  Its C base types
 * hold, as real struct members, every field of a Python object its fast
 * paths read (Python's classes subclass them), and its module state the
 * classes and functions Python registers once (register_reverse,
 * register_forward).  The core (csrc/core, csrc/ops) is not compiled into
 * this module: it lives once, in the cffi module shadowad._csad, and this
 * module calls it through the table of entry points that sad_api() returns
 * (sad_api.h), fetched at module exec into the module state.  The core sees
 * arrays as descriptors (sad_arr) this module makes from the ndarrays it
 * holds for the call (sad_arr_of). */
#ifndef SAD_EXT_FAST_H
#define SAD_EXT_FAST_H

/* Python.h must come before any standard header, so each source includes it
 * first itself. */
#ifndef Py_PYTHON_H
#error "include <Python.h> before fast.h"
#endif

#include "sad_api.h"

/* The module's functions (METH_FASTCALL; self is the module), each described
 * where it is defined. */
#define SAD_FAST(name) PyObject *name(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
/* kernels.c */
SAD_FAST(sad_fast_ew);
SAD_FAST(sad_fast_tangent);
/* reverse.c */
SAD_FAST(sad_fast_register_reverse);
SAD_FAST(sad_fast_rev);
SAD_FAST(sad_fast_rev_out);
SAD_FAST(sad_fast_outer);
/* index.c */
SAD_FAST(sad_fast_view);
SAD_FAST(sad_fast_writes_back);
/* scalar.c */
SAD_FAST(sad_fast_load);
SAD_FAST(sad_fast_scalar);
SAD_FAST(sad_fast_store);
/* arrays.c */
SAD_FAST(sad_fast_data);
SAD_FAST(sad_fast_capsule_pointer);
SAD_FAST(sad_fast_same_elements);
SAD_FAST(sad_fast_reverse_through);
SAD_FAST(sad_fast_reverse_summed);
SAD_FAST(sad_fast_reduce);
SAD_FAST(sad_fast_reduce_lazy);
SAD_FAST(sad_fast_slot_new);
SAD_FAST(sad_fast_slot_bind);
SAD_FAST(sad_fast_load_at);
SAD_FAST(sad_fast_store_at);
SAD_FAST(sad_fast_outer_record);
SAD_FAST(sad_fast_axpy);
SAD_FAST(sad_fast_axpy_tangents);
SAD_FAST(sad_fast_vec_extend);
SAD_FAST(sad_fast_vpusha);
SAD_FAST(sad_fast_vcopy);
/* forward.c */
SAD_FAST(sad_fast_register_forward);
SAD_FAST(sad_fast_fwd);
SAD_FAST(sad_fast_fsum);

/* numpy_objects.c */
/* The descriptor of ndarray object o (its header's data, nd, shape,
 * strides), valid while o is held and unchanged. */
sad_arr sad_arr_of(PyObject *o);
/* Is ndarray object o an aligned float64 array in native order? */
int sad_is_f64(PyObject *o);
/* ... an aligned float32 array in native order (SAD_F_F32 calls)? */
int sad_is_f32(PyObject *o);
/* An aligned native float64 or float32 array: what a traced array's fields
 * may hold (the elementwise kernels read both, the other kernels float64
 * only; their callers check). */
int sad_is_real(PyObject *o);
int sad_same_dtype(PyObject *a, PyObject *b);
/* Is ndarray object o C-contiguous? */
int sad_is_c_contiguous(PyObject *o);
/* May numpy write to ndarray object o (not a read-only or broadcast view)? */
int sad_is_writeable(PyObject *o);
/* The bytes of the data of ndarray object o, of elements of itemsize bytes,
 * if o owns them (0 for a view). */
int64_t sad_owned_bytes(PyObject *o, int64_t itemsize);
/* A ufunc's inner loop (numpy's PyUFuncGenericFunction), and the one of
 * binary ufunc `ufunc` for float64 operands: 1, or 0 when it has none. */
typedef void (*sad_loop)(char **args, const intptr_t *dims, const intptr_t *steps, void *data);
int sad_f64_loop(PyObject *ufunc, sad_loop *loop, void **data);
/* Has ufunc `ufunc` a loop whose operands are all float32 (f32) or all
 * float64: does numpy compute a call of that type in it? */
int sad_has_loop(PyObject *ufunc, int f32);

/* ---- the C base types (bases.c, scalar.c) ------------------------------ */
/* A traced array of either mode (traced.ArrayOps): primal, shadow (None
 * while lazy, inactive or not looked up) and Buffer. */
typedef struct {
    PyObject_HEAD
    PyObject *p, *s, *buf;
} sad_array_object;

/* Memory shared by views (traced.Buffer). */
typedef struct {
    PyObject_HEAD
    PyObject *tape, *root, *shadow, *readonly, *label, *mem, *span, *kept, *slot;
} sad_buffer_object;

/* A reverse-mode call's tape (tape.Tape): its keep list, the C tape's
 * address (an int, deleted when the tape is freed) and whether it is alive. */
typedef struct {
    PyObject_HEAD
    PyObject *keep, *tptr;
    int alive; /* 1 from bind to unbind */
    int bound; /* bound once: a tape never takes another address */
} sad_tape_object;

/* A forward-mode call (dual.Context): its number of lanes. */
typedef struct {
    PyObject_HEAD
    PyObject *lanes;
} sad_context_object;

/* A forward-mode dual scalar (dual.FScalar): value, tangent(s), Context. */
typedef struct {
    PyObject_HEAD
    PyObject *v, *d, *ctx;
} sad_dual_scalar_object;

/* Field `f` of a base type's struct, at a compile-time offset. */
#define SAD_FIELD(type, f) offsetof(type, f)
#define A_P SAD_FIELD(sad_array_object, p)
#define A_S SAD_FIELD(sad_array_object, s)
#define A_BUF SAD_FIELD(sad_array_object, buf)
#define B_TAPE SAD_FIELD(sad_buffer_object, tape)
#define B_ROOT SAD_FIELD(sad_buffer_object, root)
#define B_SHADOW SAD_FIELD(sad_buffer_object, shadow)
#define B_READONLY SAD_FIELD(sad_buffer_object, readonly)
#define B_LABEL SAD_FIELD(sad_buffer_object, label)
#define B_MEM SAD_FIELD(sad_buffer_object, mem)
#define B_SPAN SAD_FIELD(sad_buffer_object, span)
#define B_KEPT SAD_FIELD(sad_buffer_object, kept)
#define B_SLOT SAD_FIELD(sad_buffer_object, slot)
#define T_KEEP SAD_FIELD(sad_tape_object, keep)
#define T_TPTR SAD_FIELD(sad_tape_object, tptr)
#define C_LANES SAD_FIELD(sad_context_object, lanes)
#define S_V SAD_FIELD(sad_dual_scalar_object, v)
#define S_D SAD_FIELD(sad_dual_scalar_object, d)
#define S_CTX SAD_FIELD(sad_dual_scalar_object, ctx)

/* bases.c: the specs of the base types with object fields */
extern PyType_Spec sad_array_spec, sad_buffer_spec, sad_tape_spec, sad_context_spec,
    sad_dual_scalar_spec;
/* scalar.c */
extern PyType_Spec sad_scalar_spec;
/* module.c */
extern PyModuleDef sad_module_def;

#if PY_VERSION_HEX < 0x030B0000
/* Python 3.10 lacks PyType_GetModuleByDef (3.11): the module of the first
 * class along type's MRO that was made from a spec of module `def`. */
static inline PyObject *PyType_GetModuleByDef(PyTypeObject *type, PyModuleDef *def)
{
    PyObject *mro = type->tp_mro;
    for (Py_ssize_t i = 0; mro != NULL && i < PyTuple_GET_SIZE(mro); ++i) {
        PyTypeObject *t = (PyTypeObject *)PyTuple_GET_ITEM(mro, i);
        if (!(t->tp_flags & Py_TPFLAGS_HEAPTYPE))
            continue;
        PyObject *m = ((PyHeapTypeObject *)t)->ht_module;
        if (m != NULL && PyModule_GetDef(m) == def)
            return m;
    }
    PyErr_Format(PyExc_TypeError, "%s is not a type of module %s", type->tp_name, def->m_name);
    return NULL;
}
#endif

/* A traced scalar (the base type, scalar.c). */
typedef struct {
    PyObject_HEAD
    double v;
    Py_ssize_t g;      /* the sad_pair of value and adjoint, as an address */
    PyObject *tape;    /* the Python Tape: identity and lifetime */
    sad_tape *t;
    const int *alive;  /* cleared when the tape is freed */
    const struct sad_api *api; /* the core's entry points */
} ScalarObject;

/* fast.c: the elementwise fast paths' common machinery */

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
    intptr_t at;   /* a traced scalar (kind SAD_KX_PAIR in reverse mode): its tape pair */
} sad_fast_operand;

/* The float type of a fast-path call, numpy's float64 or float32: the first
 * array operand sets it (SAD_FAST_ANY until then), and every array of the
 * call must be of it.  Mixed with another dtype, numpy promotes (NEP 50): the
 * call is Python's case. */
enum { SAD_FAST_ANY = -1, SAD_FAST_F64 = 0, SAD_FAST_F32 = 1 };
int sad_fast_array(PyObject *o, PyObject *ndarray_type, int *ft);
int sad_fast_plain(PyObject *o, PyObject *ndarray_type, int *ft, sad_fast_operand *out);
int sad_fast_fit(const sad_fast_operand *o, int n, int ft);
void sad_fast_release(sad_fast_operand *o, int n);
int sad_fast_call(const struct sad_api *api, PyObject *const *args, Py_ssize_t nargs, int at,
                  int *op, int *n);
int sad_fast_primal(PyObject *ufunc, PyObject *ndarray_type, int ft, const sad_fast_operand *o,
                    int n, PyObject **z);
/* The descriptors of the operands' arrays (or pairs) for the C call: p[j]
 * and s[j] point into pd and sd, or are NULL. */
typedef struct {
    sad_arr pd[2], sd[2];
    const sad_arr *p[2], *s[2];
} sad_fast_packed;
int sad_fast_pack(const sad_fast_operand *o, int n, int ft, int flags, sad_fast_packed *c,
                  double *k);
/* The descriptor of o (an ndarray, or NULL/None for none) in *d: d, or NULL. */
const sad_arr *sad_fast_arr(PyObject *o, sad_arr *d);
/* Does shadow s fit primal p: p's shape, after `lanes` leading axes (0 or
 * 1) of its own?  NULL s fits. */
int sad_fast_fits(const sad_arr *p, const sad_arr *s, int lanes);
/* Does array a broadcast to shape z (numpy's rules: a has no more axes, and
 * each of its lengths is 1 or z's)? */
int sad_fast_broadcasts(const sad_arr *a, const sad_arr *z);
PyObject *sad_fast_result(int status, PyObject *res);
PyObject *sad_fast_slot_of(PyObject *o, PyObject *type, Py_ssize_t off);
PyObject *sad_fast_slot(PyObject *o, Py_ssize_t off);

/* What reverse mode registers once (register_reverse): the exact classes
 * its fast paths meet (traced array, traced scalar, ndarray, Buffer, Tape),
 * lazy_result (make), snapshots.hold (hold) and the keyword names of an out=
 * call.  Every object NULL until registered. */
typedef struct {
    PyObject *traced, *scalar, *ndarray, *buffer, *tape, *make, *hold;
    /* numpy's error-state context variable and a value of it under which
     * numpy only warns (None, None: unknown; see rev_out) */
    PyObject *extobj_var, *extobj_warns;
    PyObject *kw_out; /* ("out",) */
    /* watch(tape, what) (register_watch, watch.py): a recording call on tape
     * was refused by its budget, or made Python's count due; NULL: none */
    PyObject *watch;
    const struct sad_api *api; /* the core's entry points (set at module exec) */
} sad_rev_objects;

/* What forward mode registers once (register_forward). */
typedef struct {
    /* exact types: dual array, dual scalar, Buffer, Context, ndarray, float64 */
    PyObject *dual, *scalar, *buffer, *context, *ndarray, *float64;
    PyObject *empty;   /* np.empty: the tangent lanes of a fresh result */
    PyObject *dtype[2]; /* the dtypes np.empty makes for a call's float type (SAD_FAST_F64, F32) */
    PyObject *make;    /* make(ctx, z): Python's result when z is not C-contiguous */
    PyObject *current; /* the ContextVar holding the running Context */
    PyObject *label;   /* the label of a temporary's Buffer */
    PyObject *add;     /* np.add, whose float64 loop sums (add_loop, add_data) */
    sad_loop add_loop;
    void *add_data;
    const struct sad_api *api; /* the core's entry points (set at module exec) */
} sad_fwd_objects;

/* The module state (module.c). */
typedef struct {
    PyTypeObject *scalar_type, *array_type, *buffer_type, *tape_type, *context_type,
        *dual_scalar_type;
    PyTypeObject *ndarray_type; /* numpy.ndarray */
    const struct sad_api *api;  /* the core's entry points (shadowad._csad) */
    sad_rev_objects rev;
    sad_fwd_objects fwd;
} sad_state;

static inline sad_state *sad_state_of(PyObject *module)
{
    return (sad_state *)PyModule_GetState(module);
}

/* The registered reverse-mode objects, or NULL with an exception when
 * register_reverse has not run. */
const sad_rev_objects *sad_rev_registered(PyObject *module);
/* The C tape and alive flag of a live Tape: 1, else 0 (no exception set). */
int sad_rev_tape_of(const sad_rev_objects *k, PyObject *tape, sad_tape **t, const int **alive);
/* After a recording call on C tape t of Tape `tape` returned rc (what: the
 * operation for messages, an object such as the ufunc, or NULL for the
 * string `name`): 0 when it recorded and Python's count (if due: sad_tape_grew
 * with `grew` bytes Python now holds for it) passed; -1 with an exception
 * (the budget's error, or MemoryError `nomem` for SAD_NOMEM); 1 for any
 * other rc, which the caller handles. */
int sad_rev_recorded(const sad_rev_objects *k, PyObject *tape, sad_tape *t, int rc, int64_t grew,
                     PyObject *what, const char *name, const char *nomem);
/* register_watch(watch): reverse.c */
SAD_FAST(sad_fast_register_watch);
/* scalar.c: is o a traced scalar (of ScalarBase or a subclass)? */
int sad_is_scalar(PyObject *o);

#endif
