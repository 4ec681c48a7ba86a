"""A local HTTP server on 127.0.0.1 for the download tests (weights.download and
data_layers.fetch): a thread serving a temp folder, stopped after each test and by a
watchdog. It answers `Range: bytes=N-` with 206 unless a test turns `ranges` off, can cut
each body after `cut_after` bytes, and records the requests it got.

    from http_fixtures import served, url_of    # fixtures: no_proxy, served(folder)
"""
import contextlib
import functools
import http.server
import re
import sys
import threading

import pytest


class RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Serves the server's folder; honours `bytes=N-` ranges when `server.ranges` is on."""

    def do_GET(self):
        srv = self.server
        srv.requests.append((self.path, self.headers.get('Range')))
        path = self.translate_path(self.path)
        try:
            with open(path, 'rb') as f:
                data = f.read()
        except OSError:
            self.send_error(404)
            return
        span = re.fullmatch(r'bytes=(\d+)-', self.headers.get('Range') or '')
        start = int(span[1]) if span and srv.ranges else 0
        if start >= len(data) > 0:
            self.send_response(416)
            self.send_header('Content-Range', f'bytes */{len(data)}')
            self.send_header('Content-Length', '0')
            self.end_headers()
            return
        self.send_response(206 if start else 200)
        if start:
            self.send_header('Content-Range', f'bytes {start}-{len(data) - 1}/{len(data)}')
        self.send_header('Content-Length', str(len(data) - start))
        self.end_headers()
        body = data[start:] if srv.cut_after is None else data[start:start + srv.cut_after]
        self.wfile.write(body)
        srv.sent += len(body)
        self.close_connection = True

    def log_message(self, *args):
        pass


class QuietServer(http.server.ThreadingHTTPServer):
    """A client that stops reading (a refused size, a full disk) breaks the server's pipe;
    that is the test's point, so the error is kept rather than printed over pytest's dots."""

    def handle_error(self, request, client_address):
        self.errors.append(sys.exc_info()[1])


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch):
    """Keep urllib from routing 127.0.0.1 through a proxy set in the environment."""
    for name in ('http_proxy', 'HTTP_PROXY', 'https_proxy', 'HTTPS_PROXY', 'all_proxy',
                 'ALL_PROXY'):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv('no_proxy', '127.0.0.1,localhost')


@contextlib.contextmanager
def served(root):
    """A threaded HTTP server on 127.0.0.1 serving the folder `root`."""
    httpd = QuietServer(('127.0.0.1', 0), functools.partial(RangeHandler, directory=str(root)))
    httpd.requests, httpd.sent, httpd.ranges, httpd.cut_after = [], 0, True, None
    httpd.errors = []
    thread = threading.Thread(target=httpd.serve_forever, kwargs={'poll_interval': 0.05},
                              daemon=True)
    thread.start()
    watchdog = threading.Timer(60, httpd.shutdown)
    watchdog.daemon = True
    watchdog.start()
    yield httpd
    watchdog.cancel()
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


def url_of(httpd, name):
    return f'http://127.0.0.1:{httpd.server_address[1]}/{name}'
