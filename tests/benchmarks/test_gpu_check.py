"""`make gpu-check` runs on the CPU (`--device cpu --quick`), so that it cannot rot here."""
import pathlib
import subprocess
import sys

import pytest
import torch

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_gpu_check_runs_every_step_on_the_cpu_and_prints_one_summary(tmp_path):
    env = {'PATH': '/usr/bin:/bin', 'FCN_DATA': str(tmp_path / 'data'), 'HOME': str(tmp_path)}
    done = subprocess.run([sys.executable, 'benchmarks/gpu_check.py', '--device', 'cpu',
                           '--quick'], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == 'gpu-check on cpu:'
    for step in ('tests', 'bench', 'demo'):
        assert any(line.startswith(f'| {step} | passed |') for line in lines), done.stdout
    rows = [line for line in lines if line.startswith('| FCN-32s | demo 160x160 |')]
    # TRAIN and TEST, engine against plain PyTorch, then against channels-last PyTorch and
    # (TEST, on the CPU) ONNX Runtime
    assert len(rows) == 4, done.stdout
    assert 'n/a' in rows[2] and 'n/a' not in rows[3], done.stdout


@pytest.mark.skipif(torch.cuda.is_available(), reason='this machine has CUDA')
def test_gpu_check_without_cuda_says_how_to_run_it():
    done = subprocess.run([sys.executable, 'benchmarks/gpu_check.py'], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and '--device cpu' in done.stderr
