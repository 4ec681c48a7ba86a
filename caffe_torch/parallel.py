"""Data-parallel training on torch.distributed, with Caffe's multi-GPU arithmetic.

Launch one process per GPU (or per CPU worker) with torchrun; each builds the same solver:

    torchrun --nproc_per_node 4 solve/voc_fcn8s.py --gpu 0      # NCCL, GPU = LOCAL_RANK
    torchrun --nproc_per_node 2 solve/voc_fcn32s.py             # gloo on CPUs

Every iteration each rank runs its own forward/backward on its own data (Python data layers
included: they draw with seed + rank, or read every solver_count-th image from rank on),
then, where Caffe's NCCL callback does, before the update: each rank scales its diffs by
1 / ranks and the diffs are summed across ranks, so all ranks apply the same averaged
gradient. The effective batch is ranks x batch x iter_size: two ranks with iter_size 1
compute what one process with iter_size 2 does. Weights start from rank 0's (broadcast).
Only rank 0 (the root solver) tests, logs and snapshots; a snapshot resumes on any number
of ranks, since every rank holds the same weights and history.
"""
import atexit
import os
import re
import secrets
import tempfile

import torch
import torch.distributed as dist

from caffe_torch import mode


def init_from_env(backend=None):
    """Join the process group torchrun describes (RANK, WORLD_SIZE, MASTER_ADDR/PORT);
    returns (rank, world size). A single process needs no group."""
    world = int(os.environ.get('WORLD_SIZE', '1'))
    rank = int(os.environ.get('RANK', '0'))
    if world > 1 and not dist.is_initialized():
        _join(backend or ('nccl' if mode.mode() == 'gpu' else 'gloo'), rank=rank,
              world_size=world)
    mode.set_solver_count(world)
    mode.set_solver_rank(rank)
    mode.set_multiprocess(world > 1)
    return rank, world


def _join(backend, **group):
    """Scripts written for Caffe never tear the group down. Left to interpreter exit,
    gloo's threads outlive Python and the process aborts ('terminate called without an
    active exception', in about one run in four), so the group is destroyed at exit."""
    dist.init_process_group(backend, **group)
    atexit.register(shutdown)


class DataParallel:
    """Keeps one solver in step with its peers: same start, averaged gradients."""

    def __init__(self, solver):
        self.solver = solver
        self.world = mode.solver_count()
        if self.world > 1:
            self.broadcast()
            solver.add_callback(lambda: None, self.on_gradients_ready)

    def _params(self):
        return self.solver.net.learnable_params

    def broadcast(self):
        """Every rank takes rank 0's weights (after its copy_from or restore)."""
        for blob in self._params():
            data = blob.data_tensor
            dist.broadcast(data, src=0)

    def on_gradients_ready(self):
        """Scale each diff by 1 / ranks, then sum over ranks (Caffe's NCCL callback)."""
        diffs = [blob.diff_tensor for blob in self._params()]
        flat = torch.cat([d.reshape(-1) for d in diffs]).mul_(1.0 / self.world)
        dist.all_reduce(flat)
        offset = 0
        for d in diffs:
            d.copy_(flat[offset:offset + d.numel()].view_as(d))
            offset += d.numel()


class NCCL(DataParallel):
    """pycaffe's `caffe.NCCL`, for scripts written like Caffe's python/train.py: the parent
    makes `uid = caffe.NCCL.new_uid()` and starts one process per device, each of which
    calls caffe.set_solver_count(n), set_solver_rank(r), builds its solver, then
    `nccl = caffe.NCCL(solver, uid)`, `nccl.bcast()`, `solver.add_callback(nccl)` (and,
    with layer_wise_reduce, `solver.net.after_backward(nccl)`).

    The ranks meet through a torch.distributed FileStore in the temp folder named by the
    uid, and reduce with NCCL on GPUs, gloo on CPUs, with the arithmetic of DataParallel.
    Caffe's layer-wise reduction starts each layer's sum as its backward ends; here the
    whole sum runs in on_gradients_ready, which gives the same numbers, so the per-layer
    call only accepts the registration."""

    def __init__(self, solver, uid):
        self.solver = solver
        self.world = mode.solver_count()
        if self.world > 1 and not dist.is_initialized():
            store = dist.FileStore(os.path.join(tempfile.gettempdir(),
                                                f'caffe_torch_nccl_{_uid_text(uid)}'),
                                   self.world)
            _join('nccl' if mode.mode() == 'gpu' else 'gloo', store=store,
                  rank=mode.solver_rank(), world_size=self.world)

    @staticmethod
    def new_uid():
        """A fresh id for one group of ranks, as bytes (pycaffe's on Python 3)."""
        return secrets.token_hex(16).encode()

    def bcast(self):
        """Every rank takes rank 0's weights."""
        if self.world > 1:
            self.broadcast()

    def on_start(self):
        """Nothing to do before an iteration's passes."""

    def on_gradients_ready(self):
        if self.world > 1:
            super().on_gradients_ready()

    def __call__(self, layer_index):
        """The net's after_backward hook (layer_wise_reduce): see the class docstring."""


def _uid_text(uid):
    text = uid.decode('ascii', 'replace') if isinstance(uid, bytes) else str(uid)
    if not re.fullmatch(r'[0-9a-f]{32}', text):
        raise ValueError(f'NCCL uid {uid!r} is not one caffe.NCCL.new_uid() made (32 hex '
                         f'digits); make it once in the parent process and pass it to '
                         f'every rank')
    return text


def has_nccl():
    """pycaffe's caffe.has_nccl(): multi-process reduction is always there (NCCL on GPUs,
    gloo on CPUs)."""
    return True


def shutdown():
    if dist.is_initialized():
        dist.destroy_process_group()
