"""caffe.proto.caffe_pb2: the engine's generated module (one `caffe` package per process)."""
import sys

import caffe_torch.proto.caffe_pb2

sys.modules[__name__] = caffe_torch.proto.caffe_pb2
