"""Fail when a Python module outgrows the size budget (style guide: about 400 lines).

Generated code (caffe_pb2.py) is exempt. Usage: python -m caffe_torch.tools.size_budget DIR...
"""
import pathlib
import sys

MAX_LINES = 400
EXEMPT = {'caffe_pb2.py'}


def oversized(folders):
    for folder in folders:
        for path in sorted(pathlib.Path(folder).rglob('*.py')):
            lines = len(path.read_text(encoding='utf-8').splitlines())
            if path.name not in EXEMPT and lines > MAX_LINES:
                yield path, lines


def main(folders):
    over = list(oversized(folders))
    for path, lines in over:
        print(f'{path}: {lines} lines, budget {MAX_LINES}; split it by concern')
    print(f'size budget: {len(over)} module(s) over {MAX_LINES} lines')
    return 1 if over else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:] or ['.']))
