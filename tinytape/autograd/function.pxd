# Cython declarations for function.py when it is compiled (setup.py; the .py file stays
# plain Python): the tensors' slots as C fields, make_tensor as a C call.

import cython

from tinytape.tensor cimport TensorBase, make_tensor

@cython.locals(first=TensorBase, second=TensorBase, n=Py_ssize_t)
cdef object _apply(object cls, tuple inputs, dict params)

cdef object _forward(object cls, object ctx, tuple inputs, Py_ssize_t n, dict params)
