"""The servers tests start as subprocesses (redis-server, `shoprec serve`, the ranking endpoint): a free
port for them, the command that runs `shoprec`, waiting for a redis-server to answer, and stopping them."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import redis


def free_port() -> int:
    """A port nothing listens on right now (the caller binds it soon after)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve_command() -> list[str]:
    """The command that runs this venv's ``shoprec``."""
    exe = shutil.which("shoprec", path=str(Path(sys.executable).parent))
    return [exe] if exe else [sys.executable, "-m", "shoprec.cli"]


def stop(proc: subprocess.Popen[Any], timeout_s: float = 10.0) -> None:
    """SIGTERM, then SIGKILL if it has not exited within ``timeout_s``; reaps the process either way."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def wait_for_redis(client: redis.Redis, proc: subprocess.Popen[Any], what: str, timeout_s: float) -> None:
    """Ping the redis-server ``proc`` through ``client`` until it answers; closes the client either way.

    Raises ``RuntimeError`` naming ``what`` if the process exits or ``timeout_s`` pass first."""
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            try:
                if client.ping():
                    return
            except redis.exceptions.ConnectionError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server {what} did not start (exit code {proc.poll()})")
            time.sleep(0.05)
    finally:
        client.close()
