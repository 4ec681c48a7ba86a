"""Caffe's semantics and pycaffe's API on PyTorch.

Use it where pycaffe is used: `import caffe_torch as caffe`. The names below are pycaffe's.
"""
from caffe_torch import coord_map, io, logs  # noqa: F401
from caffe_torch.alias import install_as_caffe  # noqa: F401
from caffe_torch.blob import Blob  # noqa: F401
from caffe_torch.errors import CaffeError  # noqa: F401
from caffe_torch.layer import Layer  # noqa: F401
from caffe_torch.layer_factory import layer_type_list  # noqa: F401
from caffe_torch.mode import (root_solver, set_device, set_fast_math,  # noqa: F401
                              set_mode_cpu, set_mode_gpu, set_multiprocess, set_random_seed,
                              set_solver_count, set_solver_rank, solver_count, solver_rank)
from caffe_torch.net_spec import NetSpec, layers, params, to_proto  # noqa: F401
from caffe_torch.proto import caffe_pb2  # noqa: F401

TRAIN = caffe_pb2.TRAIN
TEST = caffe_pb2.TEST
from caffe_torch.net import Net  # noqa: E402,F401
from caffe_torch.sgd_solvers import (AdaDeltaSolver, AdaGradSolver,  # noqa: E402,F401
                                     AdamSolver, NesterovSolver, RMSPropSolver, SGDSolver,
                                     get_solver)

from caffe_torch import parallel  # noqa: E402,F401
from caffe_torch.parallel import NCCL, has_nccl  # noqa: E402,F401
from caffe_torch.timer import Timer  # noqa: E402,F401
from caffe_torch.glog import init_log, log  # noqa: E402,F401
from caffe_torch import classifier, detector  # noqa: E402,F401
from caffe_torch.classifier import Classifier  # noqa: E402,F401
from caffe_torch.detector import Detector  # noqa: E402,F401

__version__ = '1.0.0'  # the CAFFE_VERSION BVLC Caffe 1.0 builds into pycaffe's _caffe

ENGINE_NAME = 'caffe_torch'  # what tells the toolkit's backend selector this is not pycaffe
logs.install()
