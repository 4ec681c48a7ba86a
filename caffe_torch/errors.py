"""Exceptions for user errors: each names what, where, expected versus got, and the fix.

They subclass the builtin that a pycaffe user would catch (ValueError, KeyError,
TypeError), so code written against pycaffe keeps working.
"""


class CaffeError(Exception):
    """Base of every error this toolkit raises for bad input."""


class PrototxtError(CaffeError, ValueError):
    """A prototxt that does not parse: syntax error, unknown field or bad value."""


class CaffemodelError(CaffeError, ValueError):
    """A binary proto file (caffemodel, solverstate, binaryproto) that does not parse."""


class UpgradeError(CaffeError, ValueError):
    """A legacy (V0/V1) net definition that cannot be carried to the current format."""


class UnknownLayerTypeError(CaffeError, KeyError):
    """A layer type with no registered implementation."""

    def __str__(self):
        # KeyError's str() quotes its argument; the message reads better plain.
        return str(self.args[0]) if self.args else ''


class LayerSetupError(CaffeError, ValueError):
    """A layer whose bottoms, tops or parameters do not fit its type."""


class BlobSizeError(LayerSetupError, MemoryError):
    """A blob larger than Caffe's Blob allows (more than INT_MAX elements) or than its
    device's memory, refused before it is allocated; or an allocation that failed. The
    layer that sets the blob up puts its name and the top or param in the message
    (Layer.locate_size_error); `owner` is the Blob or buffer it came from."""

    def __init__(self, detail, owner, shape=None, where=None):
        shape_text = '' if shape is None else f' of shape {shape}'
        super().__init__(f'blob{shape_text} {detail}. Use a smaller shape.')
        self.detail, self.owner, self.shape, self.where = detail, owner, shape, where
        self.located = False


class BackwardNotImplementedError(CaffeError, NotImplementedError):
    """A backward asked of a layer Caffe has none for (ArgMax, Threshold): Caffe aborts
    with NOT_IMPLEMENTED."""


class CoordMapError(CaffeError, RuntimeError, ValueError):
    """Coordinate mapping between two tops is impossible (the coord_map errors)."""


class DataSourceError(CaffeError, OSError):
    """A data layer's source (a DB, a list file, an HDF5 or image file) that cannot be
    opened or read: it names the file, the layer, and what to check."""


class DataRecordError(CaffeError, ValueError):
    """A record that does not parse or does not fit: a corrupt Datum, an undecodable
    image, an HDF5 dataset of the wrong type or shape, a window file line."""


class InputArrayError(CaffeError, RuntimeError, ValueError):
    """Arrays handed to Net.set_input_arrays that pycaffe refuses (it raises RuntimeError,
    so code catching that keeps working)."""
