"""Session fixtures for the integration tier: real backing services on free local ports.

``moto_server``   moto's AWS emulation over HTTP; AWS_ENDPOINT_URL points every boto3 client at it.
``redis_url``     a private redis-server (never the machine's own on 6379), no persistence.
``bundle_dir``    a small real bundle of Amazon Scientific (bundle_factory.py); ``bundle`` is it loaded.
``ranking_endpoint``  the ranking endpoint app serving ``bundle_dir`` over HTTP.
``nowhere`` / ``black_hole``  URLs that refuse connections / accept them and never answer.
"""

from __future__ import annotations

import logging
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from tests.integration.lambda_events import set_function_env
from tests.processes import free_port, stop, wait_for_redis

from shoprec.artifacts import Bundle, load_bundle
from shoprec.settings import get_settings

STARTUP_TIMEOUT_S = 20.0


@pytest.fixture
def function_env(bundle_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Settings of a fresh Lambda execution environment, as the function's environment variables would
    give them (lambda_events.set_function_env: no idempotency table); yields its sqlite state file."""
    state_db = tmp_path / "state.db"
    set_function_env(monkeypatch, bundle_dir, state_db)
    yield state_db
    get_settings.cache_clear()


@pytest.fixture(autouse=True)
def package_logger_restored() -> Iterator[None]:
    """Lambda handlers route the ``shoprec`` logger to Powertools' handler (observability.route_package_logs);
    put it back after each test, so later tests' ``caplog`` sees the package's records again."""
    package = logging.getLogger("shoprec")
    saved = (list(package.handlers), package.level, package.propagate)
    yield
    package.handlers[:], package.level, package.propagate = saved


@pytest.fixture(scope="session")
def aws_env() -> Iterator[None]:
    """Fake credentials and a region for the session, so boto3 never looks for real ones."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AWS_ACCESS_KEY_ID", "testing")
        mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
        mp.setenv("AWS_REGION", "us-east-1")
        for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
            mp.delenv(name, raising=False)
        yield


@pytest.fixture(scope="session")
def moto_server(aws_env: None) -> Iterator[str]:
    """URL of a moto server for the session; AWS_ENDPOINT_URL points at it until the session ends."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("AWS_ENDPOINT_URL", url)
            yield url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``redis://127.0.0.1:<free port>/0`` of a redis-server started for this session only."""
    exe = shutil.which("redis-server") or _install_redis_server()
    port = free_port()
    workdir = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen(
        [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=0.2, socket_timeout=0.2)
        wait_for_redis(client, proc, f"on {url}", STARTUP_TIMEOUT_S)
        yield url
    finally:
        stop(proc, timeout_s=5)


@pytest.fixture(scope="session")
def bundle_dir(tmp_path_factory: pytest.TempPathFactory, scientific_dir: Path) -> Path:
    """A verified bundle of Amazon Scientific with a tiny untrained ranker (item ids are the dataset's) and
    the real text encoder and item text embeddings (search is the served hybrid search)."""
    pytest.importorskip("torch", reason="building the test bundle needs the train extra")
    # Imported here: the factory pulls in torch, which tests that do not need a bundle should not pay for.
    from tests.integration.bundle_factory import build_bundle

    out = tmp_path_factory.mktemp("bundles") / "scientific"
    build_bundle(out, dataset_dir=scientific_dir, text=True)
    return out


@pytest.fixture(scope="session")
def bundle(bundle_dir: Path) -> Bundle:
    return load_bundle(bundle_dir)


@pytest.fixture(scope="session")
def ranking_endpoint(bundle_dir: Path) -> Iterator[str]:
    """Base URL of the ranking endpoint serving ``bundle_dir`` (uvicorn in a background thread)."""
    from shoprec.endpoint.server import serve_in_thread

    url, stop = serve_in_thread(bundle_dir)
    try:
        yield url
    finally:
        stop()


@pytest.fixture
def nowhere() -> str:
    """``http://127.0.0.1:<port>`` where nothing listens: connections are refused at once."""
    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture
def black_hole() -> Iterator[str]:
    """``http://127.0.0.1:<port>`` that accepts connections and never answers: a timeout, every time."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(16)  # the kernel completes handshakes into the backlog; nobody ever reads them
        yield f"http://127.0.0.1:{s.getsockname()[1]}"


def _install_redis_server() -> str:
    apt = shutil.which("apt-get")
    if apt is None:
        pytest.skip("redis-server is not installed and apt-get is not available")
    subprocess.run([apt, "update"], check=False, capture_output=True)
    done = subprocess.run([apt, "install", "-y", "redis-server"], check=False, capture_output=True)
    exe = shutil.which("redis-server")
    if done.returncode != 0 or exe is None:
        pytest.skip(f"could not install redis-server: {done.stderr.decode(errors='replace')[-300:]}")
    return exe
