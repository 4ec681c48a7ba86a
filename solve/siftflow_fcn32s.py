"""Train siftflow-fcn32s and the stages it starts from; `python solve/siftflow_fcn32s.py --help`."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from solve.cli import run  # noqa: E402  (the checkout root goes first: no PYTHONPATH needed)

if __name__ == '__main__':
    run('siftflow-fcn32s')
