# Cython declarations for tensor.py when it is compiled (setup.py; the .py file stays plain
# Python). TensorBase becomes an extension type whose slots are C fields: the compiled tape
# modules that cimport it (their .pxd files) read and write them without an attribute
# lookup. make_tensor and wrap_array are C functions for those modules; _set_slots is
# internal.

import cython

cdef class TensorBase:
    cdef public object data, requires_grad, grad, _node, _version, _retains_grad
    cdef object __weakref__

cdef TensorBase _set_slots(TensorBase t, object data, object version, object node,
                           object requires_grad)

# cls typed `type`: cls.__new__(cls) compiles to a direct call of the type's tp_new slot
@cython.locals(cls=type)
cpdef TensorBase make_tensor(object data, object version, object node, object requires_grad)

@cython.locals(cls=type)
cpdef TensorBase wrap_array(object data)
