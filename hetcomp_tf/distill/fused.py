"""The fused rest log-sum-exp: every KD loss's one pass over all items, without the [b, n_items] score matrix.

A step scores its batch's users against every item; as TF ops (or XLA) that is a matmul, an exp-and-sum, a
scatter, a dense gradient buffer and two gradient matmuls over [b, n_items], each a trip through memory.
`hetcomp_tf/distill/kernels/rest_logsumexp.cc` computes log Σ_{i ∉ E_b} e^{clip(U[b]·V[i])} and its gradient in item
tiles that stay in cache. It is compiled with the machine's C++ compiler against the installed TensorFlow on first
use and cached under the user cache, keyed by the source, TensorFlow's build flags, the CPU and
$HETCOMP_KERNEL_ISA (`kernel_isa`); it is a CPU kernel (a GPU keeps the dense path, see `DistillConfig.rest_kernel`).
"""

from __future__ import annotations

import functools
import hashlib
import os
import platform
import shutil
import subprocess
from pathlib import Path
from typing import NamedTuple

import tensorflow as tf

from hetcomp_tf.data.datafiles import cache_dir
from hetcomp_tf.errors import HetCompError
from hetcomp_tf.util.files import atomic_file
from hetcomp_tf.util.progress import log

SOURCE = Path(__file__).parent / "kernels" / "rest_logsumexp.cc"
# -march=native: the cache key holds the CPU's flags, so a library only runs where it was built.
# -fopenmp-simd: the kernel's `omp simd` reductions, without OpenMP's runtime.
# -mprefer-vector-width=512 (x86): AVX-512 where the CPU has it (GCC prefers 256 bits), whose wider vectors speed up
# the forward loop; a no-op on CPUs without it.
CXX_FLAGS = (
    "-O3",
    "-march=native",
    "-fopenmp-simd",
    "-shared",
    "-fPIC",
    *(("-mprefer-vector-width=512",) if platform.machine() == "x86_64" else ()),
)
# $HETCOMP_KERNEL_ISA's flags on top of CXX_FLAGS. "portable" is the build of x86-64 CPUs without AVX-512 (AVX2 and
# FMA where the CPU has them), to measure or test that path on a CPU with AVX-512; elsewhere it equals "native".
ISA_FLAGS = {"native": (), "portable": ("-mno-avx512f",) if platform.machine() == "x86_64" else ()}


# rest_kernel="auto" takes the kernel up to this student dim. Above it, the per-item dot products outweigh the
# exponentials and the dense path's matmuls win.
FUSED_MAX_DIM = 16


class FactoredScores(NamedTuple):
    """The scores U · Vᵀ as their two factors (the losses' y_pred instead of a [b, n_items] matrix).

    Attributes:
        users: float32 [b, d], the batch's user vectors.
        items: float32 [n_items, d], every item's vector.
    """

    users: tf.Tensor
    items: tf.Tensor


def _cpuinfo_line(prefixes: tuple[str, ...]) -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor()
    return next((line for line in lines if line.startswith(prefixes)), "")


def _cpu_flags() -> str:
    return _cpuinfo_line(("flags", "Features"))


def cpu_name() -> str:
    """The CPU's model name (what a timing was measured on), e.g. "AMD EPYC 7B13"; the platform's where unknown."""
    line = _cpuinfo_line(("model name", "Model name"))
    return line.split(":", 1)[1].strip() if ":" in line else (line or platform.machine())


def kernel_isa() -> str:
    """The kernel's instruction set, from $HETCOMP_KERNEL_ISA.

    Returns:
        "native" (the default: the CPU's widest vectors) or "portable" (see ISA_FLAGS).

    Raises:
        HetCompError: $HETCOMP_KERNEL_ISA is neither.
    """
    isa = os.environ.get("HETCOMP_KERNEL_ISA") or "native"
    if isa not in ISA_FLAGS:
        raise HetCompError(f"HETCOMP_KERNEL_ISA={isa!r}: must be one of {', '.join(ISA_FLAGS)}")
    return isa


def compile_flags() -> tuple[str, ...]:
    """The kernel's compiler flags: CXX_FLAGS plus those of `kernel_isa()`."""
    return (*CXX_FLAGS, *ISA_FLAGS[kernel_isa()])


def library_path() -> Path:
    """The built kernel's path in `kernel_dir()`, named by a hash of the source, TensorFlow's version and flags,
    the compiler flags and the CPU."""
    key = hashlib.sha256(
        "\n".join(
            [
                SOURCE.read_text(),
                tf.__version__,
                *tf.sysconfig.get_compile_flags(),
                *compile_flags(),
                platform.machine(),
                _cpu_flags(),
            ]
        ).encode()
    ).hexdigest()[:16]
    return kernel_dir() / f"rest_logsumexp-{key}.so"


def kernel_dir() -> Path:
    """$HETCOMP_KERNEL_DIR, else the user cache's kernels/ (the tests pin it, so a test's own cache stays empty)."""
    return Path(os.environ.get("HETCOMP_KERNEL_DIR") or cache_dir() / "kernels")


def _compile(target: Path) -> None:
    compiler = os.environ.get("CXX", "g++")
    if shutil.which(compiler) is None:
        raise HetCompError(
            f"fused rest kernel: no C++ compiler `{compiler}` on PATH (set CXX, or use " "rest_kernel='dense')"
        )
    log(f"compiling the fused rest kernel ({kernel_isa()}) into {target} (once per machine, ~10 s)")
    with atomic_file(target) as temporary:  # concurrent builders each write their own file; the last rename wins
        command = [
            compiler,
            *compile_flags(),
            *tf.sysconfig.get_compile_flags(),
            str(SOURCE),
            "-o",
            str(temporary),
            *tf.sysconfig.get_link_flags(),
        ]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            first_error = next((line for line in done.stderr.splitlines() if "error" in line), done.stderr[-300:])
            raise HetCompError(f"fused rest kernel: {compiler} failed on {SOURCE}: {first_error.strip()}")


@functools.cache
def load_kernel():
    """The op library, built first if not cached; once per process.

    Returns:
        The loaded module of `tf.load_op_library`.

    Raises:
        HetCompError: no C++ compiler, a failed build, or a library that does not load.
    """
    path = library_path()
    if not path.is_file():
        _compile(path)
    try:
        return tf.load_op_library(str(path))
    except (tf.errors.NotFoundError, OSError) as err:
        raise HetCompError(f"fused rest kernel: cannot load {path}: {err}") from err


@functools.cache
def fused_available() -> tuple[bool, str]:
    """Whether the fused kernel can serve this process: it needs a CPU-only TensorFlow and a build.

    Cached, failures included: a failed build is not retried by every trainer of a benchmark.

    Returns:
        (available, why not: "" when available).
    """
    if tf.config.list_physical_devices("GPU"):
        return False, "a GPU is visible (the kernel is CPU-only)"
    try:
        load_kernel()
    except HetCompError as err:
        return False, str(err)
    return True, ""


def rest_logsumexp(
    users: tf.Tensor, items: tf.Tensor, excluded_rows: tf.Tensor, excluded_items: tf.Tensor, bound: float
) -> tf.Tensor:
    """log Σ_{i: (b, i) not excluded} e^{clip(users[b] · items[i], ±bound)} by the fused kernel.

    Differentiable in both factors (the clip passes no gradient where it is active, as tf.clip_by_value).

    Args:
        users: float32 [b, d] the batch's user vectors.
        items: float32 [n_items, d] every item's vector.
        excluded_rows: int32 [E] the batch row of each excluded pair.
        excluded_items: int32 [E] its item, −1 for padding.
        bound: the score clip, > 0.

    Returns:
        float32 [b, 1]; −1e4 (ABSENT_LOGIT) for a row with nothing left.

    Raises:
        HetCompError: the kernel cannot be built or loaded (`load_kernel`).
    """
    kernel = load_kernel()
    rows, ids = tf.cast(excluded_rows, tf.int32), tf.cast(excluded_items, tf.int32)

    @tf.custom_gradient
    def fused(users, items):
        lse = kernel.hetcomp_rest_logsumexp(users, items, rows, ids, bound=float(bound))

        def gradient(upstream):
            return kernel.hetcomp_rest_logsumexp_grad(
                users, items, rows, ids, lse, tf.reshape(upstream, [-1]), bound=float(bound)
            )

        return lse[:, None], gradient

    return fused(tf.convert_to_tensor(users, tf.float32), tf.convert_to_tensor(items, tf.float32))
