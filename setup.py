"""Build the tinytape._C extension from csrc/*.c through tinytape/_C.pyx, and compile
the tape's hot path (TAPE_MODULES) with Cython.

Portable by default: no -march flag. SIMD paths are compiled with per-function
target attributes and chosen at run time. OpenMP is used when the compiler
accepts it, otherwise the kernels build serial. TINYTAPE_NATIVE=1 adds
-march=native for a local build tuned to this CPU. TINYTAPE_SANITIZE=1 builds with
AddressSanitizer and UndefinedBehaviorSanitizer (GCC/clang; for .ci/sanitize.sh: python
must then run with the ASan runtime preloaded).

The tape modules are plain Python files that Cython compiles as they are (its
pure-Python mode); they are optional extensions: when one fails to build, the
package runs its .py source instead, and TINYTAPE_PURE_PYTHON=1 at run time makes
it import the sources even when they are built. TINYTAPE_COMPILE_TAPE=0 skips them.
TINYTAPE_BUILD_JOBS=N compiles N C files at once (default: one per core).
"""

import os
import runpy
import shutil
import sysconfig
import tempfile
from concurrent.futures import ThreadPoolExecutor
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


def _build_jobs() -> int:
    return int(os.environ.get("TINYTAPE_BUILD_JOBS", "0")) or os.cpu_count() or 1


def _parallel(compile_fn, jobs: int):
    """The compiler's compile(), one source per thread: an extension's C files are
    independent, and the Cython-generated one alone takes as long as the rest."""

    def compile(sources, *args, **kwargs):
        if jobs < 2 or len(sources) < 2:
            return compile_fn(sources, *args, **kwargs)
        with ThreadPoolExecutor(jobs) as pool:
            parts = pool.map(lambda src: compile_fn([src], *args, **kwargs), sources)
            return [obj for part in parts for obj in part]

    return compile


class BuildExt(build_ext):
    def build_extensions(self):
        ctype = self.compiler.compiler_type
        self.compiler.compile = _parallel(self.compiler.compile, _build_jobs())
        if ctype == "msvc":
            cflags, openmp = ["/O2"], ["/openmp"]
        else:
            cflags, openmp = ["-O3", "-fno-math-errno", "-std=c11"], ["-fopenmp"]
        if os.environ.get("TINYTAPE_NATIVE") == "1" and ctype != "msvc":
            cflags.append("-march=native")
        sanitize = []
        if os.environ.get("TINYTAPE_SANITIZE") == "1":
            if ctype == "msvc":
                raise RuntimeError("TINYTAPE_SANITIZE=1 needs GCC or clang")
            # the optimized code that ships, with frame pointers and line numbers for
            # readable reports; undefined behaviour is fatal, not a warning
            sanitize = [
                "-fsanitize=address,undefined",
                "-fno-sanitize-recover=all",
                "-fno-omit-frame-pointer",
                "-g",
            ]
        use_openmp = os.environ.get("TINYTAPE_OPENMP", "1") != "0" and _compiler_accepts(
            self.compiler, openmp
        )
        if not use_openmp:
            openmp = []
        info = "{} {} | {}".format(
            ctype,
            sysconfig.get_config_var("CC") or "",
            " ".join(cflags + sanitize + openmp) + ("" if use_openmp else " (no OpenMP: serial)"),
        )
        # A build with other flags (sanitizers, -march=native) must not reuse the objects
        # or the extension of the previous one: force a full rebuild when they change.
        stamp = os.path.join(self.build_temp, "tinytape-flags.txt")
        flags = " ".join(cflags + sanitize + openmp)
        previous = None
        if os.path.exists(stamp):
            with open(stamp) as f:
                previous = f.read()
        if previous != flags:
            self.force = True
        os.makedirs(self.build_temp, exist_ok=True)
        with open(stamp, "w") as f:
            f.write(flags)
        for ext in self.extensions:
            if ext.name in TAPE_MODULES:  # Python code: no OpenMP, no build info
                ext.extra_compile_args = cflags[:1] + sanitize
                ext.extra_link_args = sanitize
                continue
            ext.extra_compile_args = cflags + sanitize + openmp
            ext.extra_link_args = sanitize + openmp
            ext.define_macros.append(("TT_BUILD_INFO", '"{}"'.format(info.replace('"', "'"))))
        super().build_extensions()


ext = Extension(
    "tinytape._C",
    sources=["tinytape/_C.pyx"] + sorted(glob("csrc/*.c")),
    include_dirs=["csrc", numpy.get_include()],
    # numpy >= 2.0 at run time (pyproject.toml): its C API, PyUFunc_GiveFloatingpointErrors
    # included (the binary kernels report floating-point errors as numpy's ufuncs do)
    define_macros=[
        ("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION"),
        ("NPY_TARGET_VERSION", "NPY_2_0_API_VERSION"),
    ],
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
        nthreads=_build_jobs(),
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
