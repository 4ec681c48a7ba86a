"""pycaffe's own unit tests (python/caffe/test of the build), unmodified, on real pycaffe and
on the engine: the same 52 tests pass on both.

On the engine they run from a copy of python/caffe/test beside links to the tree's models/ and
examples/ (test_draw draws every net prototxt it finds there, two folders above the test
files), in a child process where `import caffe` gives the engine.
"""
import sys

import pytest

RUNNER = '''
import json, sys, unittest
if sys.argv[3] == 'engine':
    import caffe_torch
    caffe_torch.install_as_caffe()
suite = unittest.defaultTestLoader.discover(sys.argv[1])
result = unittest.TestResult()
suite.run(result)
bad = {t.id(): kind for kind, found in (('failed', result.failures), ('error', result.errors))
       for t, _ in found}
bad.update((t.id(), 'skipped') for t, _ in result.skipped)
json.dump({'ran': result.testsRun, 'bad': bad,
           'why': [text for _, text in result.failures + result.errors]}, open(sys.argv[2], 'w'))
'''


def run_suite(command, tests, report, side, **kwargs):
    import json
    import subprocess
    done = subprocess.run(command + ['-c', RUNNER, str(tests), str(report), side], cwd=tests,
                          capture_output=True, text=True, timeout=900, **kwargs)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(report.read_text())


def test_pycaffe_unit_tests_pass_on_real_pycaffe(real_caffe, tmp_path):
    tests = real_caffe.folder / 'python' / 'caffe' / 'test'
    report = run_suite([real_caffe.python], tests, tmp_path / 'report.json', 'pycaffe',
                       env=real_caffe.env())
    assert report['ran'] == 52 and report['bad'] == {}, report['why']


def test_pycaffe_unit_tests_pass_on_the_engine(real_caffe, tmp_path):
    import shutil
    tree = tmp_path / 'caffe'
    tests = tree / 'python' / 'caffe' / 'test'
    shutil.copytree(real_caffe.folder / 'python' / 'caffe' / 'test', tests)
    for folder in ('models', 'examples'):
        (tree / folder).symlink_to(real_caffe.folder / folder)
    report = run_suite([sys.executable], tests, tmp_path / 'report.json', 'engine')
    assert report['ran'] == 52 and report['bad'] == {}, report['why']
