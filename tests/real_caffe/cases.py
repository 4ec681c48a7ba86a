"""Differential cases: one small net around a layer under test, its bottoms, and what real
Caffe is to record of it (see pycaffe_side.py). A case is drawn from a seed, written to a
folder, recorded by real Caffe, then checked on the engine with the golden cases' checker.

Generators (layer_cases/*.py) are functions `make(rng, i) -> Case` for i = 0, 1, ...; i lets
one cover named variants in turn (i % 4 picks a mode) while rng draws shapes and values.
"""
import dataclasses
import json
import pathlib
import textwrap

import numpy as np


class Enum(str):
    """A prototxt enum value: written bare (MAX), where a str is written quoted."""


def _value(v):
    if isinstance(v, bool):
        return 'true' if v else 'false'
    if isinstance(v, Enum):
        return str(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, float):
        return repr(v)
    return str(v)


def text(fields, indent=0):
    """Protobuf text for a dict: nested dicts are messages, lists repeat their field."""
    pad, lines = '  ' * indent, []
    for key, value in fields.items():
        for item in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(item, dict):
                lines += [f'{pad}{key} {{', text(item, indent + 1), f'{pad}}}']
            elif item is not None:
                lines.append(f'{pad}{key}: {_value(item)}')
    return '\n'.join(line for line in lines if line)


def layer(name, type_, bottom=(), top=(), **fields):
    """A `layer { ... }` block; `top` defaults to the layer's name."""
    body = {'name': name, 'type': type_, 'bottom': list(bottom), 'top': list(top) or [name]}
    body.update(fields)
    return text({'layer': body})


def net(inputs, *layers, force_backward=True):
    """A net: Input layers for `inputs` ({name: shape}), then `layers` (prototxt blocks)."""
    head = ['force_backward: true'] if force_backward else []
    for name, shape in inputs.items():
        head.append(layer(name, 'Input', top=[name],
                          input_param={'shape': {'dim': [int(d) for d in shape]}}))
    return '\n'.join(head + list(layers)) + '\n'


@dataclasses.dataclass
class Case:
    """What one differential case is; see pycaffe_side.py for how each field is used."""
    net: str
    bottoms: dict = dataclasses.field(default_factory=dict)
    params: dict = dataclasses.field(default_factory=dict)  # 'layer/i' -> array
    phase: str = 'TRAIN'
    backward: bool = True
    forwards: int = 1
    param_range: tuple = (-1.0, 1.0)
    files: dict = dataclasses.field(default_factory=dict)  # relative path -> bytes or writer
    input_arrays: tuple = None  # MemoryData's (data, label)
    output_file: str = None  # a file the net writes, read back after it is gone
    modules: tuple = ()  # Python layer modules the case folder holds
    no_bottom_diff: tuple = ()  # bottoms whose diff Caffe leaves unset (index bottoms)
    tolerance: tuple = (2e-6, 2e-5)  # relative L2: forward, backward
    rule: str = ''  # the tie or random rule the comparison follows, when not plain equality
    name: str = ''
    layer_type: str = ''
    seed: int = 0  # the run's seed (FCN_DIFF_SEED), for rerunning the case
    draw_seed: int = 0  # the case's own, which real Caffe draws params and diffs from

    def write(self, folder):
        """The case's folder as pycaffe_side.py reads it."""
        folder = pathlib.Path(folder)
        folder.mkdir(parents=True)
        (folder / 'net.prototxt').write_text(self.net)
        arrays = {f'bottom/{k}': np.asarray(v, np.float32) for k, v in self.bottoms.items()}
        arrays.update({f'param/{k}': np.asarray(v, np.float32) for k, v in self.params.items()})
        if self.input_arrays is not None:
            arrays['input_arrays/data'], arrays['input_arrays/label'] = self.input_arrays
        np.savez(folder / 'inputs.npz', **arrays)
        for path, content in self.files.items():
            target = folder / path
            target.parent.mkdir(parents=True, exist_ok=True)
            if callable(content):
                content(target)
            else:
                target.write_bytes(content if isinstance(content, bytes) else content.encode())
        meta = {'phase': self.phase, 'seed': self.draw_seed, 'backward': self.backward,
                'forwards': self.forwards, 'param_low': self.param_range[0],
                'param_high': self.param_range[1], 'output_file': self.output_file,
                'modules': list(self.modules), 'no_bottom_diff': list(self.no_bottom_diff)}
        (folder / 'meta.json').write_text(json.dumps(meta, indent=1))
        return folder

    def describe(self):
        """What a failure prints: enough to rerun this case alone."""
        shapes = {k: tuple(np.shape(v)) for k, v in self.bottoms.items()}
        return (f'case {self.name} (layer type {self.layer_type}, seed {self.seed}, phase '
                f'{self.phase}{", rule: " + self.rule if self.rule else ""})\n'
                f'rerun alone: FCN_DIFF_SEED={self.seed} pytest tests/real_caffe -k '
                f'"{self.name}"\nbottoms: {shapes}\n'
                + textwrap.indent(self.net, '  '))
