"""upgrade_net_proto_binary OLD.caffemodel NEW.caffemodel (see
caffe_torch.tools.upgrade_proto)."""
import sys

from caffe_torch.tools.upgrade_proto import net_binary_main

if __name__ == '__main__':
    sys.exit(net_binary_main())
