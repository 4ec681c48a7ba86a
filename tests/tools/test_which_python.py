"""The Makefile's choice of Python (tools/which_python.py): inside a virtual or conda
environment, that Python; any other gets .venv, which `make install` creates (a PEP 668
system Python refuses pip). The Makefile is checked with `make -n`."""
import importlib.util
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
PIP_INSTALL = "-m pip install -q -e '.[test,proto,export]'"
needs_make = pytest.mark.skipif(shutil.which('make') is None, reason='needs GNU make')


def _module():
    spec = importlib.util.spec_from_file_location('which_python',
                                                  ROOT / 'tools' / 'which_python.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize('prefix, environ, expected', [
    ('/usr', {}, '.venv/bin/python'),
    ('/home/u/env', {}, '/usr/bin/python3'),
    ('/usr', {'VIRTUAL_ENV': '/home/u/env'}, '/usr/bin/python3'),
    ('/usr', {'CONDA_PREFIX': '/opt/conda'}, '/usr/bin/python3'),
])
def test_choice(prefix, environ, expected):
    """A venv, VIRTUAL_ENV or conda keep the Python; any other gets .venv."""
    assert _module().choose('/usr/bin/python3', prefix, '/usr', environ, '.venv') == expected


def _fake_python(tmp_path, answer):
    """A base Python that answers the Makefile's question as `answer` says: 'venv' (a
    Python outside any virtual environment) or 'self' (one inside)."""
    fake = tmp_path / 'python3'
    reply = '"$2/bin/python"' if answer == 'venv' else '"$0"'
    fake.write_text(f'#!/bin/sh\necho {reply}\n')
    fake.chmod(0o755)
    return str(fake)


def _make(*argv, env=None):
    proc = subprocess.run(['make', '-n', '--no-print-directory', '-C', str(ROOT), *argv],
                          capture_output=True, text=True, env=env, timeout=60)
    return proc.returncode, proc.stdout, proc.stderr


@needs_make
def test_make_install_creates_the_venv(tmp_path):
    """A Python outside any environment: install makes the venv with it, then pip-installs
    with the venv's."""
    fake, venv = _fake_python(tmp_path, 'venv'), tmp_path / 'venv'
    status, out, err = _make('install', f'BASE_PYTHON={fake}', f'VENV={venv}')
    assert status == 0, err
    assert out.splitlines() == [f'{fake} -m venv {venv}', f'{venv}/bin/python {PIP_INSTALL}']


@needs_make
def test_make_install_demo_then_uses_the_venv(tmp_path):
    """`make install demo` works from a fresh clone: demo runs on the venv's Python."""
    fake, venv = _fake_python(tmp_path, 'venv'), tmp_path / 'venv'
    status, out, err = _make('install', 'demo', f'BASE_PYTHON={fake}', f'VENV={venv}')
    assert status == 0, err
    assert out.splitlines()[-1] == f'{venv}/bin/python -m solve.demo '


@needs_make
def test_make_install_into_an_existing_venv(tmp_path):
    """A venv that exists (with pip) is not made again."""
    fake, venv = _fake_python(tmp_path, 'venv'), tmp_path / 'venv'
    (venv / 'bin').mkdir(parents=True)
    for name in ('python', 'pip'):
        (venv / 'bin' / name).write_text('')
    status, out, err = _make('install', 'test', f'BASE_PYTHON={fake}', f'VENV={venv}')
    assert status == 0, err
    assert out.splitlines()[0] == f'{venv}/bin/python {PIP_INSTALL}'
    assert f'{venv}/bin/python -m pytest' in out


@needs_make
def test_catch_target_before_install(tmp_path):
    """Before `make install` made the venv, another target says to run it first."""
    fake, venv = _fake_python(tmp_path, 'venv'), tmp_path / 'venv'
    status, _, err = _make('test', f'BASE_PYTHON={fake}', f'VENV={venv}')
    assert status != 0 and 'run `make install` first' in err
    assert _make('help', f'BASE_PYTHON={fake}', f'VENV={venv}')[0] == 0


@needs_make
def test_make_install_inside_an_environment(tmp_path):
    """A Python inside a virtual or conda environment gets the install itself, no venv."""
    fake = _fake_python(tmp_path, 'self')
    status, out, err = _make('install', f'BASE_PYTHON={fake}', f'VENV={tmp_path / "venv"}')
    assert status == 0, err
    assert out.splitlines() == [f'{fake} {PIP_INSTALL}']


@needs_make
def test_python_given_wins(tmp_path):
    """PYTHON=... on the command line is used as it is."""
    status, out, _ = _make('install', 'PYTHON=/opt/py/bin/python3')
    assert (status, out.splitlines()) == (0, [f'/opt/py/bin/python3 {PIP_INSTALL}'])


@needs_make
def test_real_pythons(tmp_path):
    """This Python inside a declared venv is kept; Debian's /usr/bin/python3 (PEP 668) and
    this one outside an environment get the venv."""
    venv = tmp_path / 'venv'
    env = dict(os.environ, VIRTUAL_ENV=str(tmp_path))
    status, out, err = _make('install', f'BASE_PYTHON={sys.executable}', f'VENV={venv}', env=env)
    assert (status, out.splitlines()) == (0, [f'{sys.executable} {PIP_INSTALL}']), err
    bare = {k: v for k, v in os.environ.items() if k not in ('VIRTUAL_ENV', 'CONDA_PREFIX')}
    if sys.prefix == sys.base_prefix:
        status, out, err = _make('install', f'BASE_PYTHON={sys.executable}', f'VENV={venv}',
                                 env=bare)
        assert out.splitlines() == [f'{sys.executable} -m venv {venv}',
                                    f'{venv}/bin/python {PIP_INSTALL}'], err
    system = pathlib.Path('/usr/bin/python3')
    stdlib = subprocess.run([str(system), '-c', 'import sysconfig; print(sysconfig.get_path('
                             '"stdlib"))'], capture_output=True, text=True).stdout.strip() \
        if system.exists() else ''
    if not (stdlib and (pathlib.Path(stdlib) / 'EXTERNALLY-MANAGED').exists()):
        pytest.skip('no externally-managed /usr/bin/python3 here')
    env = {k: v for k, v in os.environ.items() if k not in ('VIRTUAL_ENV', 'CONDA_PREFIX')}
    status, out, err = _make('install', f'BASE_PYTHON={system}', f'VENV={venv}', env=env)
    assert (status, out.splitlines()) == (0, [f'{system} -m venv {venv}',
                                              f'{venv}/bin/python {PIP_INSTALL}']), err
