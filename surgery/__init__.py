"""Net surgery: ImageNet classifiers into FCNs, bilinear upsampling, score-layer transfer.

Every function works on live nets with pycaffe's surface (`net.params[name][i].data`),
from this engine or from pycaffe, and reports what it did. Nothing is copied silently:
a shape that does not fit is an error naming both layers and shapes.
"""
from surgery.bilinear import interp, upsample_filt, bilinear_targets  # noqa: F401
from surgery.transplants import (Report, SurgeryError, color_d, expand_score,  # noqa: F401
                                 params_of, transfer, transplant)
