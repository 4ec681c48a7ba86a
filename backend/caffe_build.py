"""Build real BVLC Caffe (CPU, pycaffe with Python layers) into a cache folder outside the
checkout, and say where its pycaffe is. The differential tests and FCN_BACKEND=caffe use it.

    python -m backend.caffe_build            # build, or reuse the cached build; print its paths
    python -m backend.caffe_build --where    # print the build's folder if it is complete

The source is $CAFFE_SRC (a source folder or a .tar.xz/.tar.gz of one), by default
../shared/caffe/caffe-9b89154.tar.xz beside the checkout where it exists, else a git clone
of BVLC/caffe at 9b89154 (online machines only). The build lands in
$FCN_CAFFE_CACHE/caffe-9b89154 (default ~/.cache/fcn-toolkit) and is reused while its stamp
matches the commit and the Makefile.config written here. As root on Debian or Ubuntu it
installs the Debian packages Caffe needs; elsewhere it names the missing ones.
"""
import argparse
import hashlib
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

from data_layers.unpack import ArchiveError, extract

COMMIT = '9b891540183ddc834a02b2bd81b31afae71b2153'
SHORT = COMMIT[:7]
ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED_TARBALL = ROOT.parent / 'shared' / 'caffe' / f'caffe-{SHORT}.tar.xz'
REPOSITORY = 'https://github.com/BVLC/caffe.git'
SYSTEM_PYTHON = '/usr/bin/python3'
STAMP = 'fcn-build.stamp'
# What Caffe 9b89154 links against (CPU, OpenBLAS, LMDB, LevelDB, HDF5, OpenCV) and what
# pycaffe imports, as Debian 12 names them.
DEBIAN_PACKAGES = (
    'build-essential', 'libprotobuf-dev', 'protobuf-compiler', 'libgoogle-glog-dev',
    'libgflags-dev', 'libhdf5-dev', 'liblmdb-dev', 'libleveldb-dev', 'libsnappy-dev',
    'libopenblas-dev', 'libboost-system-dev', 'libboost-filesystem-dev',
    'libboost-thread-dev', 'libboost-python-dev', 'python3-dev', 'python3-numpy',
    'python3-scipy', 'python3-skimage', 'python3-protobuf', 'python3-h5py', 'python3-pil',
    'python3-yaml', 'python3-six', 'python3-pydot', 'libopencv-core-dev',
    'libopencv-imgproc-dev', 'libopencv-imgcodecs-dev',
    # what the toolkit imports besides, so that FCN_BACKEND=caffe runs on the same Python
    'python3-matplotlib', 'python3-tqdm')
# Source changes for today's libraries, each (file, old text, new text): protobuf 3.11
# dropped SetTotalBytesLimit's second argument; OpenCV 4 dropped the C constants
# CV_LOAD_IMAGE_* and Caffe needs only imgcodecs of highgui (so no GUI toolkit is installed).
_HIGHGUI = ('#include <opencv2/highgui/highgui.hpp>', '#include <opencv2/imgcodecs.hpp>')
_HIGHGUI_C = ('#include <opencv2/highgui/highgui_c.h>\n', '')
_COLOR = ('CV_LOAD_IMAGE_COLOR', 'cv::IMREAD_COLOR')
_GRAY = ('CV_LOAD_IMAGE_GRAYSCALE', 'cv::IMREAD_GRAYSCALE')
PATCHES = (
    ('src/caffe/util/io.cpp', 'SetTotalBytesLimit(kProtoReadBytesLimit, 536870912);',
     'SetTotalBytesLimit(kProtoReadBytesLimit);'),
    ('src/caffe/util/io.cpp',) + _HIGHGUI, ('src/caffe/util/io.cpp',) + _HIGHGUI_C,
    ('src/caffe/util/io.cpp',) + _COLOR, ('src/caffe/util/io.cpp',) + _GRAY,
    ('src/caffe/layers/window_data_layer.cpp',) + _HIGHGUI_C,
    ('src/caffe/layers/window_data_layer.cpp', '#include "opencv2/highgui/highgui.hpp"',
     '#include <opencv2/imgcodecs.hpp>'),
    ('src/caffe/layers/window_data_layer.cpp',) + _COLOR,
    ('examples/cpp_classification/classification.cpp',) + _HIGHGUI,
    ('Makefile', 'LIBRARIES += opencv_core opencv_highgui opencv_imgproc',
     'LIBRARIES += opencv_core opencv_imgproc'),
)
OUTPUTS = ('build/tools/caffe', 'build/lib/libcaffe.so', 'python/caffe/_caffe.so',
           'python/caffe/proto/caffe_pb2.py')


class CaffeBuildError(RuntimeError):
    """Caffe cannot be built here; the message says what is missing and how to get it."""


def cache_root():
    base = os.environ.get('FCN_CAFFE_CACHE') or pathlib.Path.home() / '.cache' / 'fcn-toolkit'
    return pathlib.Path(base)


def build_dir():
    return cache_root() / f'caffe-{SHORT}'


def makefile_config():
    """Makefile.config for a CPU build with Python layers against the system Python 3."""
    version, numpy_include = _system_python_facts()
    multiarch = subprocess.run(['gcc', '-print-multiarch'], capture_output=True,
                               text=True).stdout.strip() or 'x86_64-linux-gnu'
    lib = f'/usr/lib/{multiarch}'
    return '\n'.join([
        '# written by backend/caffe_build.py: CPU only, OpenCV 4, LMDB + LevelDB, Python',
        'CPU_ONLY := 1', 'USE_OPENCV := 1', 'OPENCV_VERSION := 3', 'USE_LEVELDB := 1', 'USE_LMDB := 1',
        'WITH_PYTHON_LAYER := 1', 'BLAS := open',
        f'PYTHON_LIBRARIES := boost_python{version.replace(".", "")} python{version}',
        f'PYTHON_INCLUDE := /usr/include/python{version} {numpy_include}',
        f'PYTHON_LIB := {lib}',
        'INCLUDE_DIRS := $(PYTHON_INCLUDE) /usr/local/include /usr/include/hdf5/serial '
        '/usr/include/opencv4',
        f'LIBRARY_DIRS := $(PYTHON_LIB) /usr/local/lib /usr/lib {lib}/hdf5/serial',
        'BUILD_DIR := build', 'DISTRIBUTE_DIR := distribute', 'Q ?= @', ''])


def _system_python_facts():
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        raise CaffeBuildError(f'{SYSTEM_PYTHON} is missing: pycaffe is built for the '
                              f'system Python 3; install python3-dev and python3-numpy.')
    probe = subprocess.run([SYSTEM_PYTHON, '-c', 'import sys, numpy; print("%d.%d" % '
                            'sys.version_info[:2]); print(numpy.get_include())'],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        raise CaffeBuildError(f'{SYSTEM_PYTHON} cannot import numpy ({probe.stderr.strip()}); '
                              f'install python3-numpy.')
    version, numpy_include = probe.stdout.split()
    return version, numpy_include


def stamp_text():
    digest = hashlib.sha256(makefile_config().encode()).hexdigest()[:16]
    return f'commit {COMMIT}\nconfig {digest}\n'


def is_complete(folder):
    stamp = folder / STAMP
    return (stamp.is_file() and stamp.read_text() == stamp_text()
            and all((folder / p).exists() for p in OUTPUTS))


def missing_packages():
    """The Debian packages of DEBIAN_PACKAGES not installed (all of them without dpkg)."""
    if shutil.which('dpkg-query') is None:
        return list(DEBIAN_PACKAGES)
    status = subprocess.run(['dpkg-query', '-W', '-f', '${Package} ${db:Status-Abbrev}\n']
                            + list(DEBIAN_PACKAGES), capture_output=True, text=True)
    installed = {line.split()[0] for line in status.stdout.splitlines()
                 if len(line.split()) > 1 and line.split()[1] == 'ii'}
    return [p for p in DEBIAN_PACKAGES if p not in installed]


def ensure_packages():
    missing = missing_packages()
    if not missing:
        return
    if os.geteuid() == 0 and shutil.which('apt-get'):
        print(f'installing {len(missing)} Debian packages: {" ".join(missing)}', flush=True)
        env = dict(os.environ, DEBIAN_FRONTEND='noninteractive')
        for args in (['update', '-qq'], ['install', '-y', '-qq', '--no-install-recommends']
                     + missing):
            done = subprocess.run(['apt-get'] + args, env=env, capture_output=True, text=True)
            if done.returncode != 0:
                raise CaffeBuildError(f'apt-get {args[0]} failed:\n{done.stderr[-2000:]}')
        return
    raise CaffeBuildError(
        'Caffe needs these Debian packages, not installed here: ' + ' '.join(missing) +
        '\nInstall them (as root: apt-get install --no-install-recommends ' +
        ' '.join(missing) + '), or on another system their equivalents, then run again.')


def source_of(spec):
    """The Caffe source to build: CAFFE_SRC, the shared tarball, or a clone."""
    if spec:
        path = pathlib.Path(spec).expanduser()
        if not path.exists():
            raise CaffeBuildError(f'CAFFE_SRC={spec} does not exist: give a Caffe source '
                                  f'folder or a .tar.xz/.tar.gz of one.')
        return path
    if SHARED_TARBALL.is_file():
        return SHARED_TARBALL
    return None  # clone


def unpack(source, into):
    """Put the source tree of `source` (folder, tarball, or None for a clone) at `into`."""
    if source is None:
        _clone(into)
    elif source.is_dir():
        shutil.copytree(source, into, symlinks=True)
    else:
        try:
            extract(source, into.parent / '.unpack')
        except ArchiveError as e:  # unsafe members included
            raise CaffeBuildError(f'cannot unpack {source}: {e}') from None
        tops = list((into.parent / '.unpack').iterdir())
        top = tops[0] if len(tops) == 1 and tops[0].is_dir() else into.parent / '.unpack'
        top.rename(into)
        shutil.rmtree(into.parent / '.unpack', ignore_errors=True)
    if not (into / 'Makefile').is_file() or not (into / 'src' / 'caffe').is_dir():
        raise CaffeBuildError(f'{source} holds no Caffe source tree (no Makefile and '
                              f'src/caffe/ at its top)')


def _clone(into):
    if shutil.which('git') is None:
        raise CaffeBuildError('No Caffe source: ../shared/caffe/ is absent and git is not '
                              'installed; set CAFFE_SRC to a Caffe 9b89154 source or tarball.')
    for args in (['clone', '-q', REPOSITORY, str(into)],
                 ['-C', str(into), 'checkout', '-q', COMMIT]):
        done = subprocess.run(['git'] + args, capture_output=True, text=True)
        if done.returncode != 0:
            raise CaffeBuildError(f'git {args[0]} of {REPOSITORY} failed (offline?): '
                                  f'{done.stderr.strip()}\nSet CAFFE_SRC to a Caffe 9b89154 '
                                  f'source folder or tarball.')


def patch(tree):
    """Apply PATCHES; a change already made is fine, a text not found is not Caffe 9b89154."""
    for path, old, new in PATCHES:
        text = (tree / path).read_text()
        if old in text:
            (tree / path).write_text(text.replace(old, new))
        elif new and new not in text:
            raise CaffeBuildError(f'{tree / path}: neither "{old}" nor its fix is there; '
                                  f'is this Caffe {SHORT}?')


def compile_tree(tree, jobs):
    (tree / 'Makefile.config').write_text(makefile_config())
    log = tree / 'fcn-build.log'
    print(f'building Caffe {SHORT} with {jobs} jobs (about 4 minutes on 2 cores); '
          f'log: {log}', flush=True)
    with open(log, 'w') as f:
        done = subprocess.run(['make', f'-j{jobs}', 'all', 'tools', 'pycaffe'], cwd=tree,
                              stdout=f, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        tail = ''.join(log.read_text().splitlines(True)[-30:])
        raise CaffeBuildError(f'make failed (exit {done.returncode}); the end of {log}:\n{tail}')


def build(source_spec=None, jobs=None):
    """The folder of a complete build, made now unless the cache holds one."""
    ensure_packages()  # also for a reused build: the toolkit's own packages may be new
    final = build_dir()
    if is_complete(final):
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=final.parent, prefix='.building-') as scratch:
        tree = pathlib.Path(scratch) / 'tree'
        unpack(source_of(source_spec), tree)
        patch(tree)
        compile_tree(tree, jobs or os.cpu_count() or 2)
        (tree / STAMP).write_text(stamp_text())
        if final.exists():
            shutil.rmtree(final)
        tree.rename(final)  # Caffe's Makefile records no absolute paths: the tree moves
    return final


def environment(folder=None):
    """The variables that make /usr/bin/python3 import this build's pycaffe."""
    folder = folder or build_dir()
    return {'PYTHONPATH': str(folder / 'python'), 'LD_LIBRARY_PATH': str(folder / 'build' / 'lib')}


def usage(folder):
    env = environment(folder)
    return (f'Caffe {SHORT} is built in {folder}\n'
            f'  caffe binary: {folder / "build" / "tools" / "caffe"}\n'
            f'  pycaffe:      {env["PYTHONPATH"]}/caffe (for {SYSTEM_PYTHON})\n'
            f'Run the toolkit on it:\n'
            f'  PYTHONPATH={env["PYTHONPATH"]}:$PWD LD_LIBRARY_PATH={env["LD_LIBRARY_PATH"]} '
            f'FCN_BACKEND=caffe {SYSTEM_PYTHON} -m solve.cli ...')


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--where', action='store_true',
                        help='print the build folder if complete (exit 1 if not); build nothing')
    parser.add_argument('-j', '--jobs', type=int, help='make jobs (default: CPU count)')
    args = parser.parse_args(argv)
    if args.where:
        if is_complete(build_dir()):
            print(build_dir())
            return 0
        print(f'no complete Caffe build in {build_dir()}: run make caffe', file=sys.stderr)
        return 1
    try:
        folder = build(os.environ.get('CAFFE_SRC'), args.jobs)
    except CaffeBuildError as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    print(usage(folder))
    return 0


if __name__ == '__main__':
    sys.exit(main())
