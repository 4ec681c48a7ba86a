"""The differential cases of every layer type, drawn from one seed.

Each module here defines GENERATORS = {layer type: make(rng, i) -> cases.Case}; together
they cover every type BVLC Caffe 9b89154 registers (a test checks that against the engine's
layer list). `draw(seed, per_type)` gives each type `per_type` cases, named <Type>_<i>.
"""
import importlib
import pkgutil
import zlib

import numpy as np

MODULES = sorted(m.name for m in pkgutil.iter_modules(__path__))


def generators():
    found = {}
    for module in MODULES:
        for type_name, make in importlib.import_module(f'{__name__}.{module}').GENERATORS.items():
            assert type_name not in found, f'{type_name} has two generators'
            found[type_name] = make
    return found


def case_seed(seed, name):
    """The seed of one case: the run's seed and the case's name, so a case redraws alone."""
    return zlib.crc32(f'{seed}/{name}'.encode())


def draw(seed, per_type, only=None):
    """[Case] for every generator's type (or those in `only`), per_type each."""
    drawn = []
    for type_name, make in sorted(generators().items()):
        if only and type_name not in only:
            continue
        for i in range(per_type):
            name = f'{type_name}_{i:02d}'
            case_rng = np.random.default_rng(case_seed(seed, name))
            case = make(case_rng, i)
            case.name, case.layer_type, case.seed = name, type_name, seed
            case.draw_seed = case_seed(seed, name)
            drawn.append(case)
    return drawn
