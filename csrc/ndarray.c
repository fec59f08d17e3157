/* ndarray.c -- read a numpy array's header from its object address.
 *
 * Python passes id(array); reading the header here costs nanoseconds where
 * asking numpy for the pointer from Python costs microseconds.  Python has
 * checked that the object is an aligned float64 ndarray that stays alive. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#define NPY_NO_DEPRECATED_API NPY_1_7_API_VERSION
#include <numpy/ndarraytypes.h>

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
