"""param_str of the FCN data layers: a Python dict literal, parsed without evaluating it
(ast.literal_eval) and checked against the layer class's schema of Keys.

Each key has a default (REQUIRED: none), a check and the words the error uses for what the
check wants; unknown keys, keys given twice, missing required keys and values that fail
their check raise ParamStrError naming the layer, the allowed keys and an example.
"""
import ast
from typing import Callable, NamedTuple

from data_layers.paths import DEFAULTS

REQUIRED = object()


class DataLayerSetupError(ValueError):
    """A data layer declared with bottoms, or with another number of tops than it makes."""


class ParamStrError(DataLayerSetupError):
    """A data layer's param_str that does not parse or does not fit the layer's schema."""


class Key(NamedTuple):
    """One param_str key: its default (REQUIRED if none), a check, what the check wants."""
    default: object
    check: Callable[[object], bool]
    expect: str


def is_mean(value):
    """A BGR mean: three real numbers."""
    return (isinstance(value, (tuple, list)) and len(value) == 3
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value))


COMMON_KEYS = {
    'split': Key(REQUIRED, lambda v: isinstance(v, str) and _plain_name(v),
                 'the name of a split list, e.g. "train" (a file name without its .txt: no '
                 '"/", at most 200 characters)'),
    'randomize': Key(REQUIRED, lambda v: isinstance(v, bool),
                     'True (random draws with replacement) or False (sequential)'),
    'seed': Key(None, lambda v: v is None or type(v) is int,  # not bool
                'an int, needed when randomize is True'),
}


def dataset_key(default):
    """A 'dataset' param_str key: which data_layers.paths dataset the layer reads, in place
    of its class's own (files of that dataset follow; those of other datasets stay)."""
    return Key(default, lambda v: isinstance(v, str) and v in DEFAULTS,
               f'a dataset name of data_layers.paths ({", ".join(sorted(DEFAULTS))})')


def scale_key():
    """A 'scale' param_str key: the factor applied after mean subtraction, as Caffe's
    transform_param scale (e.g. 0.0078125 = 1/128 for inputs near [-1, 1])."""
    return Key(1.0, lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0,
               'a positive number multiplying the mean-subtracted image')


def parse_param_str(text, schema, where, example):
    """param_str -> dict: a Python dict literal (ast.literal_eval: nothing is executed),
    checked against `schema` ({key: Key}); defaults filled in. Raises ParamStrError."""
    def fail(problem):
        keys = '; '.join(f'{k} ({"required" if s.default is REQUIRED else f"default {s.default!r}"}'
                         f': {s.expect})' for k, s in schema.items())
        raise ParamStrError(f'{where}: param_str {problem}. Allowed keys: {keys}. '
                            f'Example: param_str: "{example}"')

    try:
        params = ast.literal_eval(text.strip()) if text and text.strip() else {}
        repeated = _repeated_keys(text) if isinstance(params, dict) and params else []
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as e:
        fail(f'{text!r} is not a Python dict literal ({type(e).__name__}: {e}); only literals '
             f'are accepted, nothing in it is evaluated')
    if repeated:
        fail(f'gives the key {repeated[0]!r} more than once (a dict literal keeps the last '
             f'value silently); give it once')
    if not isinstance(params, dict):
        fail(f'{text!r} is a {type(params).__name__}, not a dict')
    for key in params:
        if key not in schema:
            hint = (' (dataset folders come from data_layers.paths: set FCN_<NAME>_DIR or '
                    'FCN_DATA, not param_str)' if str(key).endswith('_dir') else '')
            fail(f'has the unknown key {key!r}{hint}')
    for key, spec in schema.items():
        if key not in params and spec.default is REQUIRED:
            fail(f'lacks the required key {key!r}')
        if key in params and not spec.check(params[key]):
            fail(f'has {key}={params[key]!r}, but {key} must be {spec.expect}')
    return {key: params.get(key, spec.default) for key, spec in schema.items()}


def _repeated_keys(text):
    """The keys a dict literal gives more than once, in order (literal_eval keeps the last)."""
    keys = [ast.literal_eval(k) for k in ast.parse(text.strip(), mode='eval').body.keys
            if k is not None]
    return [k for n, k in enumerate(keys) if k in keys[:n]]


def _plain_name(value):
    return 0 < len(value) <= 200 and not set(value) & {'/', '\\', '\0'} and value.strip() \
        == value and value not in ('.', '..')
