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

int sad_f64_loop(PyObject *ufunc, sad_loop *loop, void **data)
{
    if (strcmp(Py_TYPE(ufunc)->tp_name, "numpy.ufunc") != 0)
        return 0;
    const PyUFuncObject *u = (const PyUFuncObject *)ufunc;
    if (u->nin != 2 || u->nout != 1 || u->functions == NULL || u->types == NULL)
        return 0;
    for (int i = 0; i < u->ntypes; ++i) {
        const char *t = u->types + 3 * i;
        if (t[0] == NPY_DOUBLE && t[1] == NPY_DOUBLE && t[2] == NPY_DOUBLE) {
            *loop = (sad_loop)u->functions[i];
            *data = u->data != NULL ? u->data[i] : NULL;
            return 1;
        }
    }
    return 0;
}
