"""Print the Python the Makefile's targets run: `$(BASE_PYTHON) tools/which_python.py VENV`.

- Inside a virtual environment (sys.prefix != sys.base_prefix, or VIRTUAL_ENV set) or a conda
  one (CONDA_PREFIX set): that Python.
- Any other (a system Python, which pip may refuse to install into under PEP 668 as on
  Debian 12 and Ubuntu 24.04, pyenv's, python.org's): VENV/bin/python, the virtual
  environment `make install` creates, so that the toolkit never installs into a Python
  others manage.

Standard library only: it runs before anything is installed.
"""
import os
import sys


def choose(executable, prefix, base_prefix, environ, venv):
    """The Python to run: `executable` inside a virtual or conda environment, else `venv`'s."""
    inside = prefix != base_prefix or 'VIRTUAL_ENV' in environ or 'CONDA_PREFIX' in environ
    return executable if inside else f'{venv}/bin/python'


if __name__ == '__main__':
    print(choose(sys.executable, sys.prefix, sys.base_prefix, os.environ,
                 sys.argv[1] if len(sys.argv) > 1 else '.venv'))
