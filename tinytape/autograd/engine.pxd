# Cython declarations for engine.py when it is compiled (setup.py; the .py file stays plain
# Python): in the backward loop the tensors' slots and the nodes' state are C fields, and
# wrap_array and Function.release C calls.

import cython

from tinytape.autograd.function cimport Function
from tinytape.tensor cimport TensorBase, wrap_array

@cython.locals(edge=Py_ssize_t, inp=TensorBase, ig=TensorBase, parent=Function, node=Function,
               nxt=Function, profiling=bint)
cpdef object _run_backward(object roots, object root_grads, object retain_graph,
                           object create_graph, object inputs, object op)
