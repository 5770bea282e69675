"""Stopping the servers tests start as subprocesses (redis-server, `shoprec serve`, the ranking endpoint),
and waiting for a redis-server to answer."""

from __future__ import annotations

import subprocess
import time
from typing import Any

import redis


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
