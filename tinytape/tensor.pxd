# Cython declarations for tensor.py when it is compiled (setup.py; the .py file stays plain
# Python): the slot setter becomes a C function, so make_tensor and _wrap call it directly.

cdef object _set_slots(object t, object data, object version, object node, object requires_grad)
