# Cython declarations for arithmetic.py when it is compiled (setup.py; the .py file stays plain
# Python): the tensor constructors as C calls.

from tinytape.tensor cimport make_tensor, wrap_array
