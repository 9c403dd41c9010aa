"""Start tests/support/oidc_provider.py as a subprocess on a free loopback port (and stop it)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

CLIENT_ID = "carepath-worklist"
CLIENT_SECRET = "test-client-secret-0123456789"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Provider:
    issuer: str
    client_id: str = CLIENT_ID
    client_secret: str = CLIENT_SECRET

    def control(self, **body: Any) -> dict[str, Any]:
        response = httpx.post(f"{self.issuer}/_control", json=body, timeout=5)
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result


@contextmanager
def oidc_provider(redirect_uri: str, log_dir: Path, host: str = "127.0.0.1") -> Iterator[Provider]:
    port = free_port()
    issuer = f"http://{host}:{port}"
    log_path = log_dir / f"oidc-provider-{port}.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.support.oidc_provider",
                "--port",
                str(port),
                "--issuer",
                issuer,
                "--client-id",
                CLIENT_ID,
                "--client-secret",
                CLIENT_SECRET,
                "--redirect-uri",
                redirect_uri,
            ],
            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, log_path.read_text()
            try:
                if httpx.get(f"http://127.0.0.1:{port}/.well-known/openid-configuration", timeout=1).is_success:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the OIDC provider did not start"
            time.sleep(0.1)
        yield Provider(issuer)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
