"""Caffe's semantics and pycaffe's API on PyTorch."""
