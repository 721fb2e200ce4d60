# Cython declarations for function.py when it is compiled (setup.py; the .py file stays
# plain Python): Function is an extension type whose state is C fields (ops subclass it in
# Python and keep their own attributes in a __dict__); the tensors' slots are C fields and
# make_tensor a C call.

import cython

from tinytape.tensor cimport TensorBase, make_tensor

cdef class Function:
    cdef public bint record, _save_out, freed
    cdef public object needs_input_grad, inputs, seq, _saved, _saved_versions
    cdef public object _out, _out_counter, _out_version, retained

    cpdef release(self)

@cython.locals(ctx=Function, first=TensorBase, second=TensorBase, n=Py_ssize_t)
cdef object _apply(type cls, tuple inputs, dict params)  # type: cls.__new__(cls) is tp_new

cdef object _forward(object cls, object ctx, tuple inputs, Py_ssize_t n, dict params)
