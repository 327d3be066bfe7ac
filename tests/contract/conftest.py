"""Starts the real `items serve` (embedded store) for the contract tests."""

import os
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ITEMS = Path(os.environ.get("ITEMS_BIN", ROOT / "target" / "debug" / "items"))
SPEC = ROOT / "docs" / "openapi.yaml"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, base_url: str, data_dir: str):
        self.base_url = base_url
        self.data_dir = data_dir

    def token(self, scope: str = "items/read items/write") -> str:
        out = subprocess.run(
            [str(ITEMS), "token", "--data-dir", self.data_dir, "--scope", scope],
            check=True, capture_output=True, text=True,
        )
        return out.stdout.strip()


@pytest.fixture(scope="session")
def server():
    assert ITEMS.exists(), f"{ITEMS} is missing: run `cargo build --bin items` first"
    port = free_port()
    with tempfile.TemporaryDirectory() as data_dir:
        process = subprocess.Popen(
            [str(ITEMS), "serve", "--addr", f"127.0.0.1:{port}", "--data-dir", data_dir],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "RUST_LOG": "warn"},
        )
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    assert time.monotonic() < deadline, "items serve did not start"
                    assert process.poll() is None, "items serve exited"
                    time.sleep(0.05)
            yield Server(f"http://127.0.0.1:{port}", data_dir)
        finally:
            process.terminate()
            process.wait(timeout=10)
