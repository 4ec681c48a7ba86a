"""Reusing freed host memory across passes: glibc's malloc told to keep it.

A net with a memory plan (Net.keep_blobs) frees its intermediate blobs every pass and
allocates them again the next: VGG16 FCN-8s at 500 x 500 goes through about 1 GB per TEST
forward. glibc serves blocks over its mmap threshold (at most 32 MB) with fresh mmaps and
returns them when freed, so each pass the kernel faults in and zeroes those pages again:
that took 0.15-0.25 s of a 1.1 s forward on 2 cores, more than any layer but fc6 and the
largest convolutions. Caching allocators (ONNX Runtime's arena, PyTorch's on a GPU) keep
such memory; here glibc does, once asked: no allocation through mmap (M_MMAP_MAX 0) and no
trimming of the heap's free top below 2 GB (M_TRIM_THRESHOLD). The process then keeps its
high-water mark of memory instead of returning it between passes.

Nothing is changed where the C library is not glibc, on a GPU (torch caches device memory
itself), or where the user has set any of glibc's MALLOC_*_ variables or a glibc.malloc
tunable (GLIBC_TUNABLES): theirs win.
"""
import ctypes
import ctypes.util
import os
import sys

M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # malloc.h
TRIM_ABOVE = 2 ** 31 - 1  # mallopt takes an int
USER_SETTINGS = ('MALLOC_MMAP_MAX_', 'MALLOC_MMAP_THRESHOLD_', 'MALLOC_TRIM_THRESHOLD_',
                 'MALLOC_TOP_PAD_', 'MALLOC_ARENA_MAX')
_done = []


def reuse_freed_memory():
    """Ask glibc to keep freed memory for the next pass (once per process); returns
    whether the settings are in force (False elsewhere, or where the user set theirs)."""
    if _done:
        return _done[0]
    _done.append(False)
    if not sys.platform.startswith('linux') or any(v in os.environ for v in USER_SETTINGS) \
            or 'glibc.malloc.' in os.environ.get('GLIBC_TUNABLES', ''):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6')
        mallopt = libc.mallopt
        if not ctypes.CDLL(None).gnu_get_libc_version:
            return False
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    _done[0] = bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_ABOVE))
    return _done[0]
