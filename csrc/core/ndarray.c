/* ndarray.c -- the one file of the core that knows a Python object: it reads
 * a numpy array's header (data pointer, shape, strides) from the object's
 * address.  Every other core source sees arrays as sad_arr.
 *
 * The cffi entry points take id(array) (shadowad.h); the extension's
 * (csrc/ext) pass the objects they hold.  Reading the header here costs
 * nanoseconds where asking numpy for the pointer from Python costs
 * microseconds.  The caller has checked that the object is an aligned
 * float64 ndarray and holds it for the call. */
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
