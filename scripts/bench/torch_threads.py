"""Thread settings for the PyTorch baselines (torch_block.py, torch_pretrain.py).

Debian's python3-torch 1.13 calls the BLAS behind libblas.so.3: with
libopenblas0-pthread installed (the fair peer; Debian's default generic BLAS makes
torch 10-20x slower), that is OpenBLAS, whose own thread pool torch.set_num_threads
does not govern. Left alone, "one thread" runs its GEMMs on every core, and two
threads oversubscribe them (OpenMP workers each calling a threaded OpenBLAS).
set_threads(n, blas) sets both; configurations(n) lists the splits of n cores a
fair baseline tries, so that PyTorch is reported at its best for n threads.
"""

import ctypes
import os

import torch


def loaded_blas():
    """The BLAS / LAPACK libraries really mapped into this process."""
    with open("/proc/self/maps") as f:
        libs = {l.split()[-1] for l in f if "blas" in l or "lapack" in l}
    return sorted(os.path.realpath(p) for p in libs)


def set_threads(n, blas=None):
    torch.set_num_threads(n)
    for lib in loaded_blas():
        if "openblas" in os.path.basename(lib):
            ctypes.CDLL(lib).openblas_set_num_threads(n if blas is None else blas)


def configurations(n):
    """(torch threads, OpenBLAS threads) pairs using at most n cores."""
    return [(n, n)] if n == 1 else [(n, 1), (1, n), (n, n)]


def describe():
    torch.ones(8, 8) @ torch.ones(8, 8)  # make sure the BLAS is loaded
    info = [kv for kv in torch.__config__.show().replace(",", " ").split() if kv.startswith(("BLAS_INFO", "LAPACK_INFO"))]
    return "torch %s | built with %s | loaded: %s" % (torch.__version__, " ".join(info), " ".join(loaded_blas()))
