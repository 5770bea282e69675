"""A tiny ranking endpoint over real HTTP: the JSON contract of docs/ranking-endpoint.md, no model.

It answers ``POST /invocations`` and the SageMaker runtime path ``POST /endpoints/{name}/invocations``
with one score per candidate (its position reversed, so the given order is kept), at once. The fault
tests put a :class:`tests.faults.proxy.FaultProxy` in front of it; unlike the real endpoint it needs no
bundle with a trained ranker, so the fault suite runs without torch.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as botocore's connection pool expects

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        stub: RankingStub = self.server.stub  # type: ignore[attr-defined]
        if not self.path.endswith("/invocations"):
            self._answer(404, {"detail": f"no route {self.path}"})
            return
        try:
            instances = json.loads(body)["instances"]
            predictions = [
                {"scores": [float(len(i["candidates"]) - j) for j in range(len(i["candidates"]))]}
                for i in instances
            ]
        except (ValueError, KeyError, TypeError) as exc:
            self._answer(400, {"detail": f"bad request: {exc}"})
            return
        stub.count()
        self._answer(200, {"model_version": "sha256:" + "0" * 64, "predictions": predictions})

    def _answer(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        return


class RankingStub:
    """The stub on ``127.0.0.1:<free port>``, served by a background thread until :meth:`close`."""

    def __init__(self) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.stub = self  # type: ignore[attr-defined]
        self._lock = threading.Lock()
        self.scored = 0
        """Requests answered with scores."""
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="ranking-stub", daemon=True)
        self._thread.start()

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def count(self) -> None:
        with self._lock:
            self.scored += 1

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
