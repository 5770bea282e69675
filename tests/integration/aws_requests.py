"""Check AWS requests against the botocore service model, stricter than moto and than botocore itself.

moto accepts requests AWS refuses, and botocore's client-side ``ParamValidator`` checks types, required
members and minimums only. :func:`assert_valid_request` adds the model's maximum lengths and values, enums
and patterns (the Java-style patterns need the ``regex`` module; without it they are skipped), so a name
that is one character too long or a canary size out of range fails here instead of in an AWS account.

:class:`RequestRecorder` keeps the body of every request a client sends, as AWS would receive it.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import botocore.session
from botocore.model import Shape
from botocore.validate import ParamValidator

try:
    import regex as _regex
except ImportError:  # pragma: no cover - regex comes with moto[server]'s cfn-lint
    _regex = None

_MODELS: dict[str, Any] = {}


def service_model(service: str) -> Any:
    if service not in _MODELS:
        _MODELS[service] = botocore.session.get_session().get_service_model(service)
    return _MODELS[service]


def assert_valid_request(service: str, operation: str, params: dict[str, Any]) -> None:
    """Fail with every violation of ``operation``'s input shape by ``params`` (API-style member names)."""
    shape = service_model(service).operation_model(operation).input_shape
    report = ParamValidator().validate(params, shape)
    assert not report.has_errors(), f"{operation}: {report.generate_report()}"
    problems = list(_violations(shape, params, operation))
    assert not problems, f"{operation}: " + "; ".join(problems)


def _violations(shape: Shape, value: Any, path: str) -> Iterator[str]:
    meta = shape.metadata
    kind = shape.type_name
    if kind == "structure":
        for name, member in shape.members.items():
            if name in value:
                yield from _violations(member, value[name], f"{path}.{name}")
    elif kind == "list":
        if "max" in meta and len(value) > meta["max"]:
            yield f"{path}: {len(value)} items, at most {meta['max']}"
        for i, item in enumerate(value):
            yield from _violations(shape.member, item, f"{path}[{i}]")
    elif kind == "map":
        if "max" in meta and len(value) > meta["max"]:
            yield f"{path}: {len(value)} entries, at most {meta['max']}"
        for key, item in value.items():
            yield from _violations(shape.key, key, f"{path} key {key!r}")
            yield from _violations(shape.value, item, f"{path}[{key!r}]")
    elif kind == "string":
        if "max" in meta and len(value) > meta["max"]:
            yield f"{path}: {len(value)} characters, at most {meta['max']}"
        if shape.enum and value not in shape.enum:
            yield f"{path}: {value!r} is not one of {shape.enum}"
        pattern = meta.get("pattern")
        if pattern and _regex is not None and _regex.fullmatch(pattern, value) is None:
            yield f"{path}: {value!r} does not match {pattern}"
    elif kind in ("integer", "long", "float", "double") and "max" in meta and value > meta["max"]:
        yield f"{path}: {value} is more than {meta['max']}"


@dataclass
class RequestRecorder:
    """Registered on clients' ``before-call`` events: keeps (service, operation, params) of each request.

    A ``fake`` for an operation answers it instead of the server (for APIs moto does not implement); the
    request is still recorded and was still validated by botocore.
    """

    requests: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    fakes: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = field(default_factory=dict)

    def attach(self, client: Any) -> Callable[[], None]:
        """Start recording ``client``'s requests; returns the function that stops it."""
        service = client.meta.service_model.service_id.hyphenize()
        build, call = f"before-parameter-build.{service}", f"before-call.{service}"
        client.meta.events.register(build, self._before_parameter_build)
        client.meta.events.register(call, self._before_call)

        def detach() -> None:
            client.meta.events.unregister(build, self._before_parameter_build)
            client.meta.events.unregister(call, self._before_call)

        return detach

    def _before_parameter_build(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        # The API parameters as the caller gave them, whatever the wire protocol (JSON or query).
        service = model.service_model.service_id.hyphenize()
        self.requests.append((service, model.name, copy.deepcopy(params)))

    def _before_call(self, model: Any, params: dict[str, Any], **_: Any) -> Any:
        fake = self.fakes.get(model.name)
        if fake is None:
            return None
        from botocore.awsrequest import AWSResponse

        recorded = next(p for _, name, p in reversed(self.requests) if name == model.name)
        return AWSResponse(None, 200, {}, None), fake(copy.deepcopy(recorded))

    def of(self, operation: str) -> list[dict[str, Any]]:
        return [params for _, name, params in self.requests if name == operation]

    def assert_all_valid(self) -> None:
        for service, operation, params in self.requests:
            assert_valid_request(service, operation, params)
