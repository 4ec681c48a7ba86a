"""caffe_torch.host_memory: a net with a memory plan has glibc keep freed memory, so that a
pass's large blobs come from the heap instead of fresh mmaps (checked with glibc's own
mallinfo2, in a child process: the settings are the process's)."""
import os
import subprocess
import sys

import pytest

CHILD = r'''
import ctypes, sys
import torch
from caffe_torch import host_memory

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        'arena', 'ordblks', 'smblks', 'hblks', 'hblkhd', 'usmblks', 'fsmblks', 'uordblks',
        'fordblks', 'keepcost')]

libc = ctypes.CDLL('libc.so.6')
libc.mallinfo2.restype = MallInfo2
applied = host_memory.reuse_freed_memory() if sys.argv[1] == 'plan' else None
before = libc.mallinfo2().hblkhd
block = torch.empty(64 * 2 ** 20 // 4)  # 64 MiB: over glibc's largest mmap threshold
mapped = libc.mallinfo2().hblkhd - before
print(applied, mapped >= 64 * 2 ** 20)
'''


def _child(*args, **env):
    clean = {k: v for k, v in os.environ.items() if not k.startswith('MALLOC_')}
    out = subprocess.run([sys.executable, '-c', CHILD, *args], env=dict(clean, **env),
                         capture_output=True, text=True, check=True)
    return out.stdout.split()


@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='glibc only')
def test_large_blocks_come_from_the_heap_once_asked():
    try:
        import ctypes
        ctypes.CDLL('libc.so.6').mallinfo2
    except (OSError, AttributeError):
        pytest.skip('not glibc 2.33 or later')
    assert _child('none') == ['None', 'True']  # glibc's default: a fresh mmap
    assert _child('plan') == ['True', 'False']  # kept in the heap
    # the user's own settings win: nothing changed, glibc maps as told
    assert _child('plan', MALLOC_MMAP_THRESHOLD_='65536') == ['False', 'True']
    assert _child('plan', GLIBC_TUNABLES='glibc.malloc.mmap_threshold=65536') == \
        ['False', 'True']


def test_keep_blobs_asks_for_it(tmp_path):
    """Net.keep_blobs on the CPU is where the engine asks (its frees come back each pass)."""
    path = tmp_path / 'net.prototxt'
    path.write_text('layer { name: "in" type: "Input" top: "x" '
                    'input_param { shape { dim: 1 dim: 2 } } }')
    code = ('import sys; import caffe_torch as caffe; from caffe_torch import host_memory; '
            f'net = caffe.Net({str(path)!r}, caffe.TEST); assert not host_memory._done; '
            'net.keep_blobs([]); print(host_memory._done)')
    clean = {k: v for k, v in os.environ.items() if not k.startswith('MALLOC_')}
    out = subprocess.run([sys.executable, '-c', code], env=clean, capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == '[True]'
