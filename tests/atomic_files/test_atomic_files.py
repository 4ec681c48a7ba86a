"""atomic_files: one writer for the engine and the toolkit, one temporary-name scheme, one
sweep, and no write led out of its folder by a symbolic link."""
import os
import stat

import h5py
import numpy as np
import pytest

import atomic_files


def test_write_bytes_mode_and_errors_name_the_target(tmp_path):
    """The file gets open()'s mode (0666 less the umask), not mkstemp's 0600; a failure
    names the target, not the temporary file, and leaves nothing behind."""
    target = tmp_path / 'out.bin'
    atomic_files.write_bytes(target, b'x')
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~mask
    with pytest.raises(IsADirectoryError, match=f'cannot write {tmp_path}'):
        atomic_files.write_bytes(tmp_path, b'x')
    with pytest.raises(FileNotFoundError, match='cannot write .*missing/out.bin'):
        atomic_files.write_bytes(tmp_path / 'missing' / 'out.bin', b'x')
    assert sorted(p.name for p in tmp_path.iterdir()) == ['out.bin']


def test_replacing_keeps_the_old_file_when_the_writer_fails(tmp_path):
    """A writer that raises half-way (h5py here, as the HDF5 snapshots write) leaves the old
    file as it was and no temporary file."""
    target = tmp_path / 'w.h5'
    target.write_bytes(b'old')
    with pytest.raises(RuntimeError, match='half-way'):
        with atomic_files.replacing(target) as tmp, h5py.File(tmp, 'w') as f:
            f['a'] = np.zeros(3)
            raise RuntimeError('half-way')
    assert target.read_bytes() == b'old'
    assert [p.name for p in tmp_path.iterdir()] == ['w.h5']
    with atomic_files.replacing(target) as tmp, h5py.File(tmp, 'w') as f:
        f['a'] = np.arange(3)
    with h5py.File(target, 'r') as f:
        assert list(f['a'][()]) == [0, 1, 2]


def test_one_name_scheme_and_its_sweep(tmp_path):
    """An exception mid-write cleans up; a process killed mid-write (SIGKILL) leaves a file
    of the scheme's name, and sweep removes exactly those: not a user's hidden files, not
    what is below the folder."""
    import subprocess
    import sys
    with pytest.raises(KeyboardInterrupt):
        with atomic_files.replacing(tmp_path / 'scores.csv'):
            raise KeyboardInterrupt
    assert not list(tmp_path.iterdir())
    killed = subprocess.run([sys.executable, '-c', 'import os, signal, sys, atomic_files\n'
                             'with atomic_files.replacing(sys.argv[1]) as tmp:\n'
                             '    open(tmp, "wb").write(b"half")\n'
                             '    os.kill(os.getpid(), signal.SIGKILL)',
                             str(tmp_path / 'train_iter_4.caffemodel')],
                            cwd=os.path.dirname(os.path.dirname(atomic_files.__file__)))
    assert killed.returncode == -9
    [path] = tmp_path.iterdir()
    assert atomic_files.is_temporary(path.name) and path.name.startswith('.train_iter_4.')
    leftovers = []
    kept = [tmp_path / '.notes', tmp_path / '.notes.a1b2c3d4', tmp_path / 'x.tmp']
    for p in kept:
        p.write_bytes(b'x')
    (tmp_path / 'sub').mkdir()
    (tmp_path / 'sub' / '.a.abcdefgh.tmp').write_bytes(b'x')
    removed = atomic_files.sweep(tmp_path, leftovers.append)
    assert removed == leftovers == [str(path)] and not path.exists()
    assert all(p.exists() for p in kept) and (tmp_path / 'sub' / '.a.abcdefgh.tmp').exists()
    assert atomic_files.is_temporary('.scores.csv.k2j4_x9a.tmp')
    assert not atomic_files.is_temporary('scores.csv.k2j4_x9a.tmp')


def test_inside_refuses_a_link_that_leads_out(tmp_path):
    out, elsewhere = tmp_path / 'out', tmp_path / 'elsewhere'
    out.mkdir()
    elsewhere.mkdir()
    (out / 'train.log').symlink_to(elsewhere / 'stolen.log')
    (out / 'snapshot').symlink_to(elsewhere)
    (out / 'inner').symlink_to(out)  # a link that stays inside is fine
    for planted in (out / 'train.log', out / 'snapshot' / 'train_iter_2.caffemodel'):
        with pytest.raises(atomic_files.OutsideFolderError, match='outside the output folder'):
            atomic_files.inside(planted, out)
    assert atomic_files.inside(out / 'inner' / 'scores.csv', out) == out / 'inner' / 'scores.csv'
    assert atomic_files.inside(out / 'new.png', out) == out / 'new.png'
