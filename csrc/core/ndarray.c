/* ndarray.c -- read a numpy array's header from its object address (and a
 * ufunc's table of inner loops).
 *
 * Python passes id(array); reading the header here costs nanoseconds where
 * asking numpy for the pointer from Python costs microseconds.  Python has
 * checked that the object is an aligned float64 ndarray that stays alive. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#define NPY_NO_DEPRECATED_API NPY_1_7_API_VERSION
#include <numpy/ndarraytypes.h>
/* a ufunc's header, for its table of inner loops; numpy's API tables are not
 * imported: nothing here calls through them */
#define NO_IMPORT_ARRAY
#define NO_IMPORT_UFUNC
#include <numpy/ufuncobject.h>
#include <string.h>

#include "sad.h"

sad_arr sad_arr_of(intptr_t obj)
{
    sad_arr a = {NULL, 0, NULL, NULL};
    if (obj == 0)
        return a;
    const PyArrayObject_fields *f = (const PyArrayObject_fields *)obj;
    a.data = (double *)f->data;
    a.nd = f->nd;
    a.shape = (const int64_t *)f->dimensions;
    a.strides = (const int64_t *)f->strides;
    return a;
}

intptr_t sad_data(intptr_t arr) { return (intptr_t)sad_arr_of(arr).data; }

int sad_is_f64(PyObject *o)
{
    const PyArrayObject_fields *f = (const PyArrayObject_fields *)o;
    return f->descr->type_num == NPY_DOUBLE && f->descr->byteorder != '>' &&
           (f->flags & NPY_ARRAY_ALIGNED) != 0;
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
