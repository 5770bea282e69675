"""``server_config``: the configuration uvicorn pickles into each worker of ``shoprec serve --workers``."""

from __future__ import annotations

import pickle

from starlette.types import Receive, Scope, Send
from uvicorn.server import ServerState

from shoprec.api.server import RequestDeadlineProtocol, ServerConfig, server_config


def test_a_factory_import_string_config_survives_pickling_with_its_deadline() -> None:
    config = server_config(
        "shoprec.api.server:worker_app", host="127.0.0.1", port=0, request_timeout_s=2.5, workers=2
    )
    copy = pickle.loads(pickle.dumps(config))
    assert isinstance(copy, ServerConfig)
    assert copy.request_timeout_s == 2.5
    assert copy.workers == 2
    assert copy.factory is True
    assert copy.http is RequestDeadlineProtocol


def test_the_protocol_takes_its_deadline_from_the_config() -> None:
    config = server_config(_app, host="127.0.0.1", port=0, request_timeout_s=0.75)
    config.load()
    protocol = RequestDeadlineProtocol(config=config, server_state=ServerState(), app_state={})
    assert protocol.request_timeout_s == 0.75


async def _app(scope: Scope, receive: Receive, send: Send) -> None:
    raise AssertionError("not called: no request is made")
