"""upgrade_net_proto_text OLD.prototxt NEW.prototxt (see caffe_torch.tools.upgrade_proto)."""
import sys

from caffe_torch.tools.upgrade_proto import net_text_main

if __name__ == '__main__':
    sys.exit(net_text_main())
