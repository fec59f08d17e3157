/* numpy_objects.c -- what the extension asks of numpy objects it holds:
 * an array's dtype and flags, and a ufunc's float64 inner loop.  numpy's
 * API tables are not imported: nothing here calls through them. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#define NPY_NO_DEPRECATED_API NPY_1_7_API_VERSION
#include <numpy/ndarraytypes.h>
/* a ufunc's header, for its table of inner loops */
#define NO_IMPORT_ARRAY
#define NO_IMPORT_UFUNC
#include <numpy/ufuncobject.h>
#include <string.h>

#include "fast.h"

sad_arr sad_arr_of(PyObject *o)
{
    const PyArrayObject_fields *f = (const PyArrayObject_fields *)o;
    const sad_arr a = {(double *)f->data, f->nd, (const int64_t *)f->dimensions,
                       (const int64_t *)f->strides};
    return a;
}

int sad_is_f64(PyObject *o)
{
    const PyArrayObject_fields *f = (const PyArrayObject_fields *)o;
    return f->descr->type_num == NPY_DOUBLE && f->descr->byteorder != '>' &&
           (f->flags & NPY_ARRAY_ALIGNED) != 0;
}

int sad_is_f32(PyObject *o)
{
    const PyArrayObject_fields *f = (const PyArrayObject_fields *)o;
    return f->descr->type_num == NPY_FLOAT && f->descr->byteorder != '>' &&
           (f->flags & NPY_ARRAY_ALIGNED) != 0;
}

int sad_is_real(PyObject *o)
{
    const PyArrayObject_fields *f = (const PyArrayObject_fields *)o;
    return (f->descr->type_num == NPY_DOUBLE || f->descr->type_num == NPY_FLOAT) &&
           f->descr->byteorder != '>' && (f->flags & NPY_ARRAY_ALIGNED) != 0;
}

int sad_same_dtype(PyObject *a, PyObject *b)
{
    return ((const PyArrayObject_fields *)a)->descr->type_num ==
           ((const PyArrayObject_fields *)b)->descr->type_num;
}

int sad_is_c_contiguous(PyObject *o)
{
    return (((const PyArrayObject_fields *)o)->flags & NPY_ARRAY_C_CONTIGUOUS) != 0;
}

int sad_is_writeable(PyObject *o)
{
    return (((const PyArrayObject_fields *)o)->flags & NPY_ARRAY_WRITEABLE) != 0;
}

int64_t sad_owned_bytes(PyObject *o, int64_t itemsize)
{
    const PyArrayObject_fields *f = (const PyArrayObject_fields *)o;
    if (!(f->flags & NPY_ARRAY_OWNDATA))
        return 0;
    int64_t n = itemsize;
    for (int d = 0; d < f->nd; ++d)
        n *= f->dimensions[d];
    return n;
}

/* The index of ufunc's inner loop whose operands are all of numpy type
 * `type` (NPY_DOUBLE, NPY_FLOAT), or -1. */
static int loop_index(const PyUFuncObject *u, int type)
{
    if (u->types == NULL)
        return -1;
    const int nargs = u->nin + u->nout;
    for (int i = 0; i < u->ntypes; ++i) {
        const char *t = u->types + nargs * i;
        int all = 1;
        for (int j = 0; j < nargs && all; ++j)
            all = t[j] == type;
        if (all)
            return i;
    }
    return -1;
}

static const PyUFuncObject *ufunc_of(PyObject *o)
{
    return strcmp(Py_TYPE(o)->tp_name, "numpy.ufunc") == 0 ? (const PyUFuncObject *)o : NULL;
}

int sad_f64_loop(PyObject *ufunc, sad_loop *loop, void **data)
{
    const PyUFuncObject *u = ufunc_of(ufunc);
    if (u == NULL || u->nin != 2 || u->nout != 1 || u->functions == NULL)
        return 0;
    const int i = loop_index(u, NPY_DOUBLE);
    if (i < 0)
        return 0;
    *loop = (sad_loop)u->functions[i];
    *data = u->data != NULL ? u->data[i] : NULL;
    return 1;
}

int sad_has_loop(PyObject *ufunc, int f32)
{
    const PyUFuncObject *u = ufunc_of(ufunc);
    return u != NULL && loop_index(u, f32 ? NPY_FLOAT : NPY_DOUBLE) >= 0;
}
