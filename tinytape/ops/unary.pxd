# Cython declarations for unary.py when it is compiled (setup.py; the .py file stays plain
# Python): the tensor constructors and apply_op as C calls.

from tinytape.tensor cimport wrap_array
from tinytape.autograd.function cimport apply_op
