import functools
import http.server
import importlib.util
import os
import socket
import tempfile
import threading
import time
from pathlib import Path

import pytest
import torch

# MACE's tests run in MACE's own environment (.venv-mace, scripts/test.sh): mace-torch pins e3nn
# 0.4.4, which NequIP refuses, so no environment holds both.
collect_ignore = [] if importlib.util.find_spec("mace") else ["mace"]

# PyG and inductor write generated files; keep them out of the user's folders.
_scratch = tempfile.mkdtemp(prefix="freecg-tests-")
os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", os.path.join(_scratch, "inductor"))


@pytest.fixture
def float64():
    """Run a test with float64 as the default dtype (symmetry checks), then restore."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


@pytest.fixture
def generator():
    return torch.Generator().manual_seed(0)


class _DataHandler(http.server.SimpleHTTPRequestHandler):
    """Serves a folder; a path under ``/truncated/`` sends the file's full length as
    Content-Length, then only half of it, and drops the connection; under ``/slow/``, the file in
    64 KiB pieces 20 ms apart (a download long enough to be interrupted)."""

    def log_message(self, *args) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:
        if self.path.startswith("/truncated/"):
            body = Path(self.translate_path(self.path.replace("/truncated", "", 1))).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if self.path.startswith("/slow/"):
            body = Path(self.translate_path(self.path.replace("/slow", "", 1))).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            for start in range(0, len(body), 1 << 16):
                self.wfile.write(body[start : start + (1 << 16)])
                self.wfile.flush()
                time.sleep(0.02)
            return
        super().do_GET()


@pytest.fixture
def serve_folder():
    """``serve_folder(path) -> base URL``: a real HTTP server on 127.0.0.1 serving ``path``."""
    servers = []

    def start(folder) -> str:
        handler = functools.partial(_DataHandler, directory=str(folder))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


HOST_MODULES = {
    "test_pyg_visnet_adapter": "visnet",
    "test_schnetpack_adapter": "schnetpack",
    "test_spktrain": "schnetpack",
    "test_nequip_adapter": "nequip",
    "test_nequip_workflow": "nequip",
    "test_nequip_model_suite": "nequip",
    "test_mace_host": "mace",
    "test_mace_workflow": "mace",
}
"""Test modules that exercise one host, marked with it (``pytest -m nequip``)."""


def pytest_collection_modifyitems(config, items) -> None:
    for item in items:
        host = HOST_MODULES.get(item.module.__name__.rsplit(".", 1)[-1])
        if host is not None:
            item.add_marker(getattr(pytest.mark, host))
