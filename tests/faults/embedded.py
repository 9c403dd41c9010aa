"""The embedded default (SQLite + filesystem broker) as `carepath up` runs it, for fault scenarios that need
no private server: under load, on a full disk."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.testing import sqlite_url
from tests.e2e.conftest import Stack, _base_env


def embedded_stack(workdir: Path, var_dir: Path, **extra: str) -> Stack:
    env = _base_env(workdir)
    env.update(
        {
            "CAREPATH_VAR_DIR": str(var_dir),
            "CAREPATH_DATABASE_URL": sqlite_url(var_dir),
            "CAREPATH_BROKER_URL": "filesystem://",
            **extra,
        }
    )
    return Stack(
        env=env,
        workdir=workdir,
        intake_url=f"http://127.0.0.1:{env['CAREPATH_INTAKE_PORT']}",
        notifications_url=f"http://127.0.0.1:{env['CAREPATH_NOTIFICATIONS_PORT']}",
    )


@contextlib.contextmanager
def small_tmpfs(path: Path, size_mb: int) -> Iterator[Path]:
    """A tmpfs of `size_mb` MiB mounted at `path` (root only), always unmounted."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m,mode=0700", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(directory: Path) -> tuple[Path, int]:
    """Write a filler file until the file system is full; (its path, bytes written)."""
    filler = directory / "filler.bin"
    written = 0
    chunk = b"\0" * (1 << 20)
    with filler.open("wb", buffering=0) as out:
        for _ in range(100_000):  # bounded: far beyond any tmpfs we mount
            try:
                written += out.write(chunk)
            except OSError:
                break
        small = chunk[:4096]
        for _ in range(1_000):  # the last pages
            try:
                written += out.write(small)
            except OSError:
                break
    return filler, written


def log_lines(stack: Stack, needle: str) -> list[str]:
    return [line for f in stack.workdir.glob("*.log") for line in f.read_text().splitlines() if needle in line]
