"""Fixtures of the fault suite: real servers on loopback with a fault proxy in front of them.

``fault_bundle_dir``      the unit tier's tiny twelve-item bundle, written as a real bundle folder
``fault_ranking_stub``    a ranking endpoint stub over HTTP (tests/faults/ranking_stub.py)
``fault_ranker_proxy``    a :class:`FaultProxy` in front of the stub, ``pass`` until a test says otherwise
``fault_redis``           a private redis-server (host, port) for the session
``fault_redis_proxy``     a :class:`FaultProxy` in front of it
``fault_aws_env``         fake credentials and a region, so botocore never looks for real ones
"""

from __future__ import annotations

import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from tests.faults.proxy import FaultProxy
from tests.faults.ranking_stub import RankingStub
from tests.processes import stop, wait_for_redis
from tests.unit.api_fakes import write_tiny_bundle

from shoprec.settings import get_settings

REDIS_STARTUP_S = 20.0


@pytest.fixture(scope="session")
def fault_bundle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_bundle(tmp_path_factory.mktemp("faults") / "tiny")


@pytest.fixture(scope="session")
def fault_ranking_stub() -> Iterator[RankingStub]:
    stub = RankingStub()
    try:
        yield stub
    finally:
        stub.close()


@pytest.fixture
def fault_ranker_proxy(fault_ranking_stub: RankingStub) -> Iterator[FaultProxy]:
    with FaultProxy(fault_ranking_stub.address) as proxy:
        yield proxy


@pytest.fixture(scope="session")
def fault_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    exe = shutil.which("redis-server")
    if exe is None:
        pytest.skip("redis-server is not installed (Debian: apt-get install redis-server)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    proc = subprocess.Popen(
        [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        cwd=tmp_path_factory.mktemp("fault-redis"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        client = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=0.2, socket_timeout=0.2)
        wait_for_redis(client, proc, f"on port {port}", REDIS_STARTUP_S)
        yield ("127.0.0.1", port)
    finally:
        stop(proc, timeout_s=5)


@pytest.fixture
def fault_redis_proxy(fault_redis: tuple[str, int]) -> Iterator[FaultProxy]:
    with FaultProxy(fault_redis) as proxy:
        yield proxy


@pytest.fixture
def fault_aws_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    yield
    get_settings.cache_clear()
