"""backend.caffe_build: the source it takes, the source changes it makes, the stamp that lets
a build be reused, and what it says when something is missing (the build itself runs in
`make test-caffe`)."""
import io
import pathlib
import tarfile

import pytest

from backend import caffe_build


def fake_tree(root):
    """The files of Caffe 9b89154 that the source changes touch, as they are there."""
    texts = {
        'Makefile': 'ifeq ($(USE_OPENCV), 1)\n\tLIBRARIES += opencv_core opencv_highgui '
                    'opencv_imgproc\n',
        'src/caffe/util/io.cpp': '#include <opencv2/highgui/highgui.hpp>\n#include '
                                 '<opencv2/highgui/highgui_c.h>\n  coded_input->'
                                 'SetTotalBytesLimit(kProtoReadBytesLimit, 536870912);\n  int f '
                                 '= (is_color ? CV_LOAD_IMAGE_COLOR :\n    '
                                 'CV_LOAD_IMAGE_GRAYSCALE);\n',
        'src/caffe/layers/window_data_layer.cpp': '#include <opencv2/highgui/highgui_c.h>\n'
                                                  '#include "opencv2/highgui/highgui.hpp"\n'
                                                  'cv::imread(f, CV_LOAD_IMAGE_COLOR);\n',
        'examples/cpp_classification/classification.cpp':
            '#include <opencv2/highgui/highgui.hpp>\n'}
    for path, text in texts.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    return root


def test_patch_makes_every_change_once(tmp_path):
    tree = fake_tree(tmp_path / 'caffe')
    caffe_build.patch(tree)
    io_cpp = (tree / 'src/caffe/util/io.cpp').read_text()
    assert 'SetTotalBytesLimit(kProtoReadBytesLimit);' in io_cpp
    assert 'highgui' not in io_cpp and 'CV_LOAD' not in io_cpp
    assert 'cv::IMREAD_COLOR' in io_cpp and 'cv::IMREAD_GRAYSCALE' in io_cpp
    assert 'highgui' not in (tree / 'Makefile').read_text()
    patched = {p: p.read_text() for p in tree.rglob('*') if p.is_file()}
    caffe_build.patch(tree)  # again: nothing left to change, nothing refused
    assert patched == {p: p.read_text() for p in tree.rglob('*') if p.is_file()}


def test_patch_refuses_another_caffe(tmp_path):
    tree = fake_tree(tmp_path / 'caffe')
    (tree / 'Makefile').write_text('LIBRARIES += something_else\n')
    with pytest.raises(caffe_build.CaffeBuildError, match='is this Caffe 9b89154'):
        caffe_build.patch(tree)


def test_unpack_finds_the_tree_in_a_tarball(tmp_path):
    tree = fake_tree(tmp_path / 'caffe-9b89154')
    (tree / 'src' / 'caffe' / 'net.cpp').write_text('')
    archive = tmp_path / 'caffe.tar.gz'
    with tarfile.open(archive, 'w:gz') as tar:
        tar.add(tree, arcname='caffe-9b89154')
    caffe_build.unpack(archive, tmp_path / 'build' / 'tree')
    assert (tmp_path / 'build' / 'tree' / 'src' / 'caffe' / 'net.cpp').is_file()
    assert not (tmp_path / 'build' / '.unpack').exists()


def test_unpack_refuses_what_is_not_caffe(tmp_path):
    archive = tmp_path / 'other.tar'
    with tarfile.open(archive, 'w') as tar:
        data = b'not caffe'
        info = tarfile.TarInfo('README')
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    with pytest.raises(caffe_build.CaffeBuildError, match='holds no Caffe source tree'):
        caffe_build.unpack(archive, tmp_path / 'tree')


def test_a_missing_source_says_what_to_give(tmp_path):
    with pytest.raises(caffe_build.CaffeBuildError, match='CAFFE_SRC=.*does not exist'):
        caffe_build.source_of(str(tmp_path / 'nowhere'))


@pytest.mark.caffe  # the stamp holds the config, which asks the system Python for numpy
def test_a_build_is_reused_only_with_its_stamp(tmp_path, monkeypatch):
    monkeypatch.setenv('FCN_CAFFE_CACHE', str(tmp_path))
    folder = caffe_build.build_dir()
    assert folder == tmp_path / 'caffe-9b89154'
    for output in caffe_build.OUTPUTS:
        (folder / output).parent.mkdir(parents=True, exist_ok=True)
        (folder / output).write_text('')
    assert not caffe_build.is_complete(folder)
    (folder / caffe_build.STAMP).write_text(caffe_build.stamp_text())
    assert caffe_build.is_complete(folder)
    assert caffe_build.build() == folder  # reused: nothing unpacked or compiled
    (folder / caffe_build.STAMP).write_text('commit 0000000\n')
    assert not caffe_build.is_complete(folder)
    assert caffe_build.main(['--where']) == 1


@pytest.mark.caffe  # after make caffe installed the system Python's numpy
def test_the_config_builds_for_the_system_python():
    config = caffe_build.makefile_config()
    version, _ = caffe_build._system_python_facts()
    assert f'python{version}' in config and 'CPU_ONLY := 1' in config
    assert 'WITH_PYTHON_LAYER := 1' in config and 'USE_OPENCV := 1' in config


def test_missing_packages_are_named(monkeypatch, capsys):
    """Not root: the packages are named, with the command that installs them."""
    monkeypatch.setattr(caffe_build, 'DEBIAN_PACKAGES',
                        caffe_build.DEBIAN_PACKAGES + ('fcn-no-such-package',))
    monkeypatch.setattr(caffe_build.os, 'geteuid', lambda: 1000)
    with pytest.raises(caffe_build.CaffeBuildError) as caught:
        caffe_build.ensure_packages()
    assert 'fcn-no-such-package' in str(caught.value)
    assert 'apt-get install --no-install-recommends' in str(caught.value)


def test_usage_says_how_to_run_the_toolkit_on_it(tmp_path):
    text = caffe_build.usage(pathlib.Path('/cache/caffe-9b89154'))
    assert 'FCN_BACKEND=caffe' in text and '/cache/caffe-9b89154/python' in text
