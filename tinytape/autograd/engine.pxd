# Cython declarations for engine.py when it is compiled (setup.py; the .py file stays plain
# Python): in the backward loop the tensors' slots are C fields, wrap_array a C call.

import cython

from tinytape.tensor cimport TensorBase, wrap_array

@cython.locals(inp=TensorBase, ig=TensorBase)
cpdef object _run_backward(object roots, object root_grads, object retain_graph,
                           object create_graph, object inputs, object op)
