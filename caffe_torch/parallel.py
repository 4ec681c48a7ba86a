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
import os

import torch
import torch.distributed as dist

from caffe_torch import mode


def init_from_env(backend=None):
    """Join the process group torchrun describes (RANK, WORLD_SIZE, MASTER_ADDR/PORT);
    returns (rank, world size). A single process needs no group."""
    world = int(os.environ.get('WORLD_SIZE', '1'))
    rank = int(os.environ.get('RANK', '0'))
    if world > 1 and not dist.is_initialized():
        backend = backend or ('nccl' if mode.mode() == 'gpu' else 'gloo')
        dist.init_process_group(backend, rank=rank, world_size=world)
    mode.set_solver_count(world)
    mode.set_solver_rank(rank)
    mode.set_multiprocess(world > 1)
    return rank, world


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


def shutdown():
    if dist.is_initialized():
        dist.destroy_process_group()
