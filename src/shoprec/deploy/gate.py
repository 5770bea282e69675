"""The retraining gate: may a newly trained bundle replace the served one?

Both bundles are scored on the same held-out window (:mod:`shoprec.evaluation.window`); this module only
compares the figures. A gate metric passes when the new bundle's value is at least the served one's minus
``margin`` of it (a *relative* margin: ``new >= served * (1 - margin)``), so one setting suits data sets
whose NDCG differs tenfold. The new bundle passes when every gate metric passes and the window held at least
``min_users`` users (a smaller window's figures move by more than any sensible margin from chance alone).
A metric either bundle lacks refuses the gate: a gate that cannot compare must not deploy.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

DEFAULT_METRICS = ("NDCG@10", "HR@10")
DEFAULT_MARGIN = 0.02
DEFAULT_MIN_USERS = 100


@dataclass(frozen=True)
class GatePolicy:
    """What the gate compares and how much worse the new bundle may be."""

    metrics: tuple[str, ...] = DEFAULT_METRICS
    margin: float = DEFAULT_MARGIN
    """Largest relative drop accepted, e.g. 0.02: the new value may be 2 % below the served one."""
    min_users: int = DEFAULT_MIN_USERS

    def __post_init__(self) -> None:
        if not self.metrics:
            raise ValueError("gate metrics: name at least one metric (e.g. NDCG@10)")
        if not 0.0 <= self.margin < 1.0:
            raise ValueError(f"gate margin must be within [0, 1), got {self.margin}")
        if self.min_users < 1:
            raise ValueError(f"gate min_users must be >= 1, got {self.min_users}")

    @classmethod
    def parse(cls, metrics: str | Sequence[str], margin: float, min_users: int) -> GatePolicy:
        """A policy from settings: ``metrics`` as a comma-separated list or a sequence."""
        names = metrics.split(",") if isinstance(metrics, str) else list(metrics)
        return cls(tuple(n.strip() for n in names if n.strip()), margin, min_users)


@dataclass(frozen=True)
class MetricCheck:
    """One gate metric: both values, the change, the lowest accepted new value and the verdict."""

    metric: str
    served: float | None
    new: float | None
    floor: float | None
    passed: bool

    @property
    def delta(self) -> float | None:
        """``new - served``; ``None`` when either is missing."""
        return None if self.served is None or self.new is None else self.new - self.served

    @property
    def relative(self) -> float | None:
        """``delta / served``; ``None`` when it is undefined (a missing value or a served value of 0)."""
        delta = self.delta
        return None if delta is None or not self.served else delta / self.served


@dataclass(frozen=True)
class GateDecision:
    """The gate's verdict with every figure it used, for the decision line, the metrics and the alarm."""

    passed: bool
    checks: tuple[MetricCheck, ...]
    users: int
    policy: GatePolicy
    reasons: tuple[str, ...]

    def to_json_dict(self) -> dict[str, object]:
        """A JSON-ready form (the state machine passes it between steps; the CLI prints it with --json)."""
        return {
            "passed": self.passed,
            "users": self.users,
            "margin": self.policy.margin,
            "min_users": self.policy.min_users,
            "reasons": list(self.reasons),
            "checks": [
                {
                    "metric": c.metric,
                    "served": c.served,
                    "new": c.new,
                    "delta": c.delta,
                    "relative": c.relative,
                    "floor": c.floor,
                    "passed": c.passed,
                }
                for c in self.checks
            ],
        }


def decide(
    served: Mapping[str, float], new: Mapping[str, float], *, users: int, policy: GatePolicy | None = None
) -> GateDecision:
    """Compare the new bundle's metrics with the served one's, both measured on the same ``users``
    held-out users, under ``policy`` (see the module docstring for the rule)."""
    policy = policy or GatePolicy()
    checks = []
    reasons = []
    for name in policy.metrics:
        old, fresh = _finite(served.get(name)), _finite(new.get(name))
        if old is None or fresh is None:
            which = "served" if old is None else "new"
            reasons.append(f"{name}: the {which} bundle has no finite value")
            checks.append(MetricCheck(name, old, fresh, None, passed=False))
            continue
        floor = old * (1.0 - policy.margin)
        ok = fresh >= floor
        if not ok:
            reasons.append(
                f"{name}: new {fresh:.4f} < {floor:.4f} (served {old:.4f} less {policy.margin:.1%})"
            )
        checks.append(MetricCheck(name, old, fresh, floor, passed=ok))
    if users < policy.min_users:
        reasons.append(f"the window held {users} users, fewer than the {policy.min_users} required")
    return GateDecision(
        passed=not reasons, checks=tuple(checks), users=users, policy=policy, reasons=tuple(reasons)
    )


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)
