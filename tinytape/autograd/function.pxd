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

cpdef object apply_op(type cls, tuple inputs, bint grad_enabled)

# cls typed `type`: cls.__new__(cls) compiles to a direct call of the type's tp_new slot
@cython.locals(ctx=Function, first=TensorBase, second=TensorBase, n=Py_ssize_t)
cdef object _apply(type cls, tuple inputs, dict params, bint grad_enabled)

cdef object _forward(object cls, object ctx, tuple inputs, Py_ssize_t n, dict params)
