"""solve.logs: Caffe's lines into train.log on either backend, the toolkit's own once."""
import logging
import os
import re

from solve import logs

CPP_LINE = b'I1201 09:35:44.123456  4242 sgd_solver.cpp:106] Iteration 20, lr = 1e-10\n'


def test_glog_lines_written_to_fd_2_reach_the_log_and_the_terminal(tmp_path, capfd):
    """What C++ glog writes to fd 2 passes through byte for byte; its lines (also after a
    progress bar's frame) are copied into the log, other output and the toolkit's own
    lines (no line number) are not."""
    path = tmp_path / 'train.log'
    written = (b'\rround 1/2 [=====>   ] 1/2 1.0 it/s' + CPP_LINE +
               b'I1201 09:35:45.000001 4242 loop.py] the toolkit, logged by itself\n'
               b'plain output\n' + CPP_LINE.replace(b'20', b'40'))
    with logs.glog_to(path):
        for start in range(0, len(written), 7):  # torn across reads, as a pipe may be
            os.write(2, written[start:start + 7])
    assert capfd.readouterr().err.encode() == written
    assert path.read_bytes() == CPP_LINE + CPP_LINE.replace(b'20', b'40')


def test_formatter_writes_glog_layout():
    """The toolkit's lines have glog's layout, so solve.curves and Caffe's parsers read
    them; no line number, so glog_to never copies them a second time."""
    record = logging.LogRecord('fcn.solve', logging.WARNING, '/x/loop.py', 12, 'hello %s',
                               ('there',), None)
    line = logs.GlogFormatter().format(record)
    assert re.fullmatch(r'W\d{4} \d\d:\d\d:\d\d\.\d{6} \d+ loop\.py\] hello there', line)
    assert not logs.CAFFE_LINE.search(line.encode())
