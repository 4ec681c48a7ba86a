"""Caffe's protobuf schema (caffe.proto) and its generated caffe_pb2 module."""
