"""`python -m caffe_torch <command> <flags>`: Caffe's `caffe` tool; see caffe_torch.cli."""
import sys

from caffe_torch.cli import main

if __name__ == '__main__':
    sys.exit(main())
