"""``shoprec serve --workers 2``: two worker processes answer on one port, share the sqlite state, and stop
with the supervisor."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import httpx
import psutil
import pytest
from tests.processes import free_port, serve_command, stop

STARTUP_TIMEOUT_S = 180.0


def test_two_workers_answer_share_the_state_and_stop_with_the_supervisor(
    bundle_dir: Path, tmp_path: Path
) -> None:
    port = free_port()
    log = tmp_path / "serve.log"
    args = [
        *serve_command(),
        *("serve", "--artifacts", str(bundle_dir), "--port", str(port), "--workers", "2"),
        *("--state", f"sqlite:///{tmp_path / 'state.db'}", "--cache", "memory://", "--ranker", "onnx"),
    ]
    workers: list[psutil.Process] = []
    with log.open("wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10.0) as client:
            _wait_until_ready(client, proc, log)
            workers = [
                p for p in psutil.Process(proc.pid).children() if "spawn_main" in " ".join(p.cmdline())
            ]
            assert len(workers) == 2, [p.cmdline() for p in workers]

            item = client.get("/v1/popular", params={"k": 1}).json()["items"][0]["item_id"]
            events = [
                {"event_id": f"w-{n}", "user_id": "worker-user", "item_id": item, "type": "view"}
                for n in range(6)
            ]
            # Each request may land on either worker; the sqlite file is the one state they share.
            for event in events:
                assert client.post("/v1/events", json={"events": [event]}).status_code == 200
            again = client.post("/v1/events", json={"events": events}).json()
            assert (again["applied"], again["duplicates"]) == (0, 6)
    finally:
        stop(proc)
    _, alive = psutil.wait_procs(workers, timeout=10)
    assert not alive, "workers outlived the supervisor"


def _wait_until_ready(client: httpx.Client, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while True:
        if proc.poll() is not None:
            pytest.fail(f"shoprec serve exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if client.get("/v1/health").status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(
                f"shoprec serve --workers 2 not ready in {STARTUP_TIMEOUT_S} s:\n{log.read_text()[-3000:]}"
            )
        time.sleep(0.1)  # polling for readiness, not timing anything
