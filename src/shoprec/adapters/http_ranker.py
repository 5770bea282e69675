"""The ``Ranker`` port over HTTP: the ranking endpoint's JSON contract (see docs/ranking-endpoint.md).

Also holds the request/response codec that :mod:`shoprec.adapters.aws.sagemaker_ranker` shares, since a
SageMaker endpoint runs the very same container.
"""

from __future__ import annotations

import http.client
import io
import json
import socket
import time
from collections.abc import Callable, Sequence
from typing import Any, Final
from urllib.parse import urlsplit

from shoprec.errors import RankerUnavailableError
from shoprec.ports import Instance

CONTENT_TYPE = "application/json"
MAX_INSTANCES_PER_CALL = 64
"""The endpoint's limit of instances per request (``shoprec.endpoint.app.MAX_INSTANCES``)."""
MAX_TIMEOUT_S: Final = 3_600.0
"""Longer timeouts (``math.inf`` included) are cut to this: a socket timeout must be a finite number."""
_MIN_TIMEOUT_S: Final = 0.001


def encode_request(instances: Sequence[Instance]) -> bytes:
    """The request body for ``instances``."""
    body = {"instances": [{"history": list(h), "candidates": list(c)} for h, c in instances]}
    return json.dumps(body).encode()


def decode_scores(body: bytes, instances: Sequence[Instance], *, source: str) -> list[list[float]]:
    """One score list per instance; ``RankerUnavailableError`` naming ``source`` if malformed."""
    try:
        payload: Any = json.loads(body)
        predictions = payload["predictions"]
        result = [[float(s) for s in p["scores"]] for p in predictions]
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise RankerUnavailableError(f"{source}: malformed response: {exc}") from exc
    if len(result) != len(instances):
        raise RankerUnavailableError(f"{source}: {len(result)} predictions for {len(instances)} instances")
    for scores, (_, candidates) in zip(result, instances, strict=True):
        if len(scores) != len(candidates):
            raise RankerUnavailableError(f"{source}: {len(scores)} scores for {len(candidates)} candidates")
    return result


def score_in_chunks(
    instances: Sequence[Instance], invoke: Callable[[Sequence[Instance]], list[list[float]]]
) -> list[list[float]]:
    """Scores of ``instances`` through ``invoke`` (one endpoint request), at most
    ``MAX_INSTANCES_PER_CALL`` instances per request; instances without candidates are not sent."""
    out: list[list[float]] = [[] for _ in instances]
    asked = [i for i, (_, candidates) in enumerate(instances) if candidates]
    for start in range(0, len(asked), MAX_INSTANCES_PER_CALL):
        part = asked[start : start + MAX_INSTANCES_PER_CALL]
        for i, scores in zip(part, invoke([instances[i] for i in part]), strict=True):
            out[i] = scores
    return out


class HttpRanker:
    """POSTs to ``{base_url}/invocations`` of a ranking endpoint (a local one, or any HTTP deployment).

    ``timeout_s`` is a **deadline** for the whole call (connecting, sending, every read; all chunks of a
    large batch together), not a per-read timeout: before each socket operation the socket's timeout is
    set to the time left, so a server that sends its answer one byte at a time cannot hold the caller past
    it. Every failure, non-2xx answer or timeout becomes :class:`RankerUnavailableError`. Proxy variables
    are ignored: the endpoint is an internal service, never reached through an egress proxy. (Name
    resolution is the one step no timeout bounds: use an IP address or a name the resolver caches.)
    """

    def __init__(self, base_url: str, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.base_url = base_url.rstrip("/")
        parts = urlsplit(self.base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"ranker URL must be http(s)://host[:port][/path], got {base_url!r}")
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        self._path = f"{parts.path}/invocations"
        self._clock = clock

    def score(self, history: Sequence[str], candidates: Sequence[str], *, timeout_s: float) -> list[float]:
        return self.score_many([(history, candidates)], timeout_s=timeout_s)[0]

    def score_many(self, instances: Sequence[Instance], *, timeout_s: float) -> list[list[float]]:
        deadline = self._clock() + min(timeout_s, MAX_TIMEOUT_S)
        return score_in_chunks(instances, lambda part: self._invoke(part, deadline, timeout_s))

    def _invoke(self, instances: Sequence[Instance], deadline: float, timeout_s: float) -> list[list[float]]:
        url = f"{self.base_url}/invocations"
        left = deadline - self._clock()
        if left <= 0:
            raise RankerUnavailableError(f"{url}: timed out: the {timeout_s * 1000:.0f} ms deadline passed")
        connection: http.client.HTTPConnection
        if self._https:
            connection = _DeadlineHTTPSConnection(self._host, self._port, deadline, self._clock)
        else:
            connection = _DeadlineHTTPConnection(self._host, self._port, deadline, self._clock)
        try:
            connection.request(
                "POST",
                self._path,
                body=encode_request(instances),
                headers={"Content-Type": CONTENT_TYPE, "Accept": CONTENT_TYPE},
            )
            response = connection.getresponse()
            status = response.status
            body = response.read() if 200 <= status < 300 else response.read(500)
        except TimeoutError as exc:
            raise RankerUnavailableError(
                f"{url}: timed out: no complete answer within the {timeout_s * 1000:.0f} ms deadline"
            ) from exc
        except (http.client.HTTPException, OSError) as exc:
            raise RankerUnavailableError(f"{url}: {type(exc).__name__}: {exc}") from exc
        finally:
            connection.close()
        if not 200 <= status < 300:
            detail = body.decode("utf-8", "replace")
            raise RankerUnavailableError(f"{url}: HTTP {status}: {detail}")
        return decode_scores(body, instances, source=url)

    def describe(self) -> str:
        return self.base_url


class _DeadlineSocket:
    """The parts of a socket ``http.client`` uses, each bounded by the time left until ``deadline``."""

    def __init__(self, sock: socket.socket, deadline: float, clock: Callable[[], float]) -> None:
        self._sock = sock
        self._deadline = deadline
        self._clock = clock

    def _arm(self) -> None:
        left = self._deadline - self._clock()
        if left <= 0:
            raise TimeoutError("timed out: deadline passed")
        self._sock.settimeout(left)

    def sendall(self, data: bytes) -> None:
        self._arm()  # since Python 3.5 the timeout bounds the whole sendall, not each send
        self._sock.sendall(data)

    def recv_into(self, buffer: Any) -> int:
        self._arm()
        return self._sock.recv_into(buffer)

    def makefile(self, mode: str) -> io.BufferedReader:
        if mode != "rb":
            raise ValueError(f"only 'rb' is supported, got {mode!r}")
        return io.BufferedReader(_DeadlineReader(self))

    def close(self) -> None:
        self._sock.close()


class _DeadlineReader(io.RawIOBase):
    """Raw reads of a :class:`_DeadlineSocket`: ``HTTPResponse`` reads headers and body through it."""

    def __init__(self, sock: _DeadlineSocket) -> None:
        self._sock = sock

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        return self._sock.recv_into(buffer)


class _DeadlineHTTPConnection(http.client.HTTPConnection):
    def __init__(self, host: str, port: int | None, deadline: float, clock: Callable[[], float]) -> None:
        super().__init__(host, port, timeout=max(deadline - clock(), _MIN_TIMEOUT_S))
        self._deadline = deadline
        self._clock = clock

    def connect(self) -> None:
        super().connect()  # bounded by the constructor's timeout: the time left when the call began
        self.sock = _DeadlineSocket(self.sock, self._deadline, self._clock)


class _DeadlineHTTPSConnection(_DeadlineHTTPConnection, http.client.HTTPSConnection):
    """The same over TLS: the inherited ``connect`` runs HTTPSConnection's (TCP connect and TLS handshake,
    bounded by the constructor's timeout) before wrapping the TLS socket."""
