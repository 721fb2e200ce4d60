"""Build the tinytape._C extension from csrc/*.c through tinytape/_C.pyx, and compile
the tape's hot path (TAPE_MODULES) with Cython.

Portable by default: no -march flag. SIMD paths are compiled with per-function
target attributes and chosen at run time. OpenMP is used when the compiler
accepts it, otherwise the kernels build serial. TINYTAPE_NATIVE=1 adds
-march=native for a local build tuned to this CPU.

The tape modules are plain Python files that Cython compiles as they are (its
pure-Python mode); they are optional extensions: when one fails to build, the
package runs its .py source instead, and TINYTAPE_PURE_PYTHON=1 at run time makes
it import the sources even when they are built. TINYTAPE_COMPILE_TAPE=0 skips them.
"""

import os
import runpy
import shutil
import sysconfig
import tempfile
from glob import glob

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


def _compiler_accepts(compiler, flags: list[str]) -> bool:
    """True when `compiler` compiles and links an OpenMP-using file with `flags`."""
    tmp = tempfile.mkdtemp()
    try:
        src = os.path.join(tmp, "probe.c")
        with open(src, "w") as f:
            f.write("#include <omp.h>\nint main(void) { return omp_get_max_threads() < 1; }\n")
        objs = compiler.compile([src], output_dir=tmp, extra_postargs=flags)
        compiler.link_executable(objs, "probe", output_dir=tmp, extra_postargs=flags)
        return True
    except Exception:
        return False
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class BuildExt(build_ext):
    def build_extensions(self):
        ctype = self.compiler.compiler_type
        if ctype == "msvc":
            cflags, openmp = ["/O2"], ["/openmp"]
        else:
            cflags, openmp = ["-O3", "-fno-math-errno", "-std=c11"], ["-fopenmp"]
        if os.environ.get("TINYTAPE_NATIVE") == "1" and ctype != "msvc":
            cflags.append("-march=native")
        use_openmp = os.environ.get("TINYTAPE_OPENMP", "1") != "0" and _compiler_accepts(
            self.compiler, openmp
        )
        if not use_openmp:
            openmp = []
        info = "{} {} | {}".format(
            ctype,
            sysconfig.get_config_var("CC") or "",
            " ".join(cflags + openmp) + ("" if use_openmp else " (no OpenMP: serial)"),
        )
        for ext in self.extensions:
            if ext.name in TAPE_MODULES:  # Python code: no OpenMP, no build info
                ext.extra_compile_args = cflags[:1]
                continue
            ext.extra_compile_args = cflags + openmp
            ext.extra_link_args = openmp
            ext.define_macros.append(("TT_BUILD_INFO", '"{}"'.format(info.replace('"', "'"))))
        super().build_extensions()


ext = Extension(
    "tinytape._C",
    sources=["tinytape/_C.pyx"] + sorted(glob("csrc/*.c")),
    include_dirs=["csrc", numpy.get_include()],
    define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
    depends=sorted(glob("csrc/*.h") + glob("csrc/*.inc")),
)

# The tape's hot path, compiled from its .py files; tinytape/_compiled.py lists them (it
# also holds the run-time switch back to the sources) and imports nothing of tinytape.
TAPE_MODULES = runpy.run_path(os.path.join("tinytape", "_compiled.py"))["TAPE_MODULES"]
tape = []
if os.environ.get("TINYTAPE_COMPILE_TAPE", "1") != "0":
    tape = cythonize(
        [Extension(m, [m.replace(".", "/") + ".py"], optional=True) for m in TAPE_MODULES],
        language_level=3,
        # Annotations stay documentation: a plain-Python meaning for every line, so the
        # compiled and the plain build behave alike.
        compiler_directives={"annotation_typing": False, "binding": True},
    )

setup(
    ext_modules=cythonize(
        [ext],
        language_level=3,
        compiler_directives={"boundscheck": False, "wraparound": False, "cdivision": True},
    )
    + tape,
    cmdclass={"build_ext": BuildExt},
)
