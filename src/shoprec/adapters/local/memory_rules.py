"""Merchandising rules in a dict: the ``RuleStore`` of a process that keeps no state (tests, and the
graph built around a state store passed in ready)."""

from __future__ import annotations

import threading

from shoprec.errors import BackendUnavailableError
from shoprec.merchandising import MerchRule


class MemoryRuleStore:
    """Rules by id in this process only. ``fail = True`` makes every call raise
    ``BackendUnavailableError`` (for tests of the fallbacks); ``reads`` counts :meth:`list` calls."""

    def __init__(self) -> None:
        self._rules: dict[str, MerchRule] = {}
        self._lock = threading.Lock()
        self.fail = False
        self.reads = 0

    def put(self, rule: MerchRule) -> bool:
        self._check()
        with self._lock:
            created = rule.rule_id not in self._rules
            self._rules[rule.rule_id] = rule
        return created

    def get(self, rule_id: str) -> MerchRule | None:
        self._check()
        return self._rules.get(rule_id)

    def list(self) -> list[MerchRule]:
        self.reads += 1
        self._check()
        with self._lock:
            return [self._rules[k] for k in sorted(self._rules)]

    def delete(self, rule_id: str) -> bool:
        self._check()
        with self._lock:
            return self._rules.pop(rule_id, None) is not None

    def describe(self) -> str:
        return "memory://rules"

    def _check(self) -> None:
        if self.fail:
            raise BackendUnavailableError("memory://rules: failing on purpose")
