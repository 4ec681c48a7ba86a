"""Train nyud-fcn32s-color and the stages it starts from; `python solve/nyud_fcn32s_color.py --help`."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from solve.cli import run  # noqa: E402  (the checkout root goes first: no PYTHONPATH needed)

if __name__ == '__main__':
    run('nyud-fcn32s-color')
