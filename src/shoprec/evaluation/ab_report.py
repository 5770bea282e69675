"""The A/B report: per variant, exposures and the click, add-to-cart and purchase rates per exposure, read
from the event log (``shoprec ab report``; ``docs/experiments.md``).

An **exposure** is one list served under an experiment to a user with an id: the API logs it as an
exposure record (``shoprec.adapters.event_records.exposure_record``) keyed by the response's
``request_id``. An event **converts** an exposure when it carries that ``request_id``, comes from the same
user and names an item of that list: the exposure then counts once as clicked (``click``), carted
(``cart``) or purchased (``purchase``), however many such events follow. The variant is the one the
exposure records (the server's assignment), not what the client sent. Events that match no exposure are
counted as unattributed.

Duplicates are dropped as the log's readers do: the first exposure of each ``request_id`` and the first
event of each ``(user_id, event_id)``.

Before the rates, the report checks the split: the users per variant against the shares the exposures
record (a chi-square test; a sample ratio mismatch at p < 0.001 means users are lost or misassigned
somewhere, and the rates cannot be compared).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np

from shoprec.errors import DataFormatError, DatasetNotFoundError
from shoprec.evaluation.ab_stats import (
    design_effect,
    required_sample_size,
    sample_ratio_test,
    two_proportion_test,
    wilson_intervals,
)

METRICS: Final = ("ctr", "cart_rate", "purchase_rate")
"""The rates per exposure, in report order."""
_EVENT_OF_METRIC: Final = {"ctr": "click", "cart_rate": "cart", "purchase_rate": "purchase"}
SRM_ALPHA: Final = 0.001
"""A split whose users per variant differ from the shares at this p-value is reported as a mismatch."""
DESIGN_EFFECT_WARNING: Final = 1.5
"""A design effect above this (intervals too narrow by more than about a fifth) is reported."""


@dataclass
class _Exposure:
    user_id: str
    variant: str
    items: frozenset[str]
    converted: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class Rate:
    """One rate of one variant: ``successes`` of ``exposures``, its interval, its design effect (the
    variance with users as the units over the binomial one; ``None`` when undefined) and, for a variant
    other than the control, the comparison with the control (difference, relative lift, p-value,
    significant at ``1 - confidence``)."""

    successes: int
    exposures: int
    rate: float
    interval: tuple[float, float]
    design_effect: float | None = None
    difference: float | None = None
    difference_interval: tuple[float, float] | None = None
    relative_lift: float | None = None
    p_value: float | None = None
    significant: bool | None = None


@dataclass(frozen=True)
class VariantReport:
    name: str
    exposures: int
    users: int
    share: float | None
    rates: dict[str, Rate]


@dataclass(frozen=True)
class AbReport:
    """The whole report; ``split_p_value`` is the sample-ratio test's (``None`` when the shares are unknown
    or changed); ``warnings`` are for people (a broken split, too few exposures, no control, ...)."""

    experiment: str | None
    control: str
    confidence: float
    min_detectable_lift: float
    required_exposures: int | None
    variants: list[VariantReport]
    unattributed_events: int
    split_p_value: float | None
    warnings: list[str]

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data (``shoprec ab report --json``)."""
        return {
            "experiment": self.experiment,
            "control": self.control,
            "confidence": self.confidence,
            "min_detectable_lift": self.min_detectable_lift,
            "required_exposures_per_variant": self.required_exposures,
            "unattributed_events": self.unattributed_events,
            "split_p_value": self.split_p_value,
            "warnings": self.warnings,
            "variants": [
                {
                    "name": v.name,
                    "exposures": v.exposures,
                    "users": v.users,
                    "share": v.share,
                    "rates": {
                        metric: {
                            "successes": r.successes,
                            "rate": r.rate,
                            "interval": list(r.interval),
                            "design_effect": r.design_effect,
                            "difference": r.difference,
                            "difference_interval": list(r.difference_interval)
                            if r.difference_interval
                            else None,
                            "relative_lift": r.relative_lift,
                            "p_value": r.p_value,
                            "significant": r.significant,
                        }
                        for metric, r in v.rates.items()
                    },
                }
                for v in self.variants
            ],
        }


def log_records(path: Path) -> Iterator[tuple[Path, int, dict[str, Any]]]:
    """(file, 1-based line, record) of every complete line of an event log folder (``date=*/`` files) or of
    one log file. A last line without its newline (an append cut short) is left out; a line that is not a
    JSON object raises ``DataFormatError`` naming the file and line."""
    if path.is_dir():
        files = sorted(p for p in path.glob("date=*/*") if p.is_file() and not p.name.startswith("."))
        if not files:
            raise DatasetNotFoundError(f"folder '{path}' is not an event log: no files in date=YYYY-MM-DD/")
    elif path.is_file():
        files = [path]
    else:
        raise DatasetNotFoundError(f"no event log at '{path}'")
    for file in files:
        text = file.read_text(encoding="utf-8")
        for lineno, raw in enumerate(text.split("\n")[:-1], 1):
            if not raw.strip():
                continue
            try:
                record = json.loads(raw)
            except ValueError as exc:
                raise DataFormatError(f"invalid JSON: {exc}", path=file, line=lineno) from exc
            if not isinstance(record, dict):
                raise DataFormatError("expected a JSON object per line", path=file, line=lineno)
            yield file, lineno, record


def ab_report(
    records: Iterable[tuple[Path, int, dict[str, Any]]],
    *,
    experiment: str | None = None,
    control: str | None = None,
    surface: str | None = None,
    confidence: float = 0.95,
    min_detectable_lift: float = 0.1,
    power: float = 0.8,
) -> AbReport:
    """The report over log ``records`` (:func:`log_records`) of ``experiment`` (default: the only one the
    log holds) on ``surface`` (default: every surface), comparing each variant with ``control`` (default:
    the variant named ``control``, else the one with the most exposures).

    The minimum-sample warning names variants with fewer exposures than a two-sided test at
    ``1 - confidence`` needs to detect a relative change of ``min_detectable_lift`` in the control's CTR
    with ``power``. Raises ``DataFormatError`` for a malformed record, ``ValueError`` when the log holds
    no exposures of the experiment or several experiments and none was chosen.
    """
    exposures: dict[str, _Exposure] = {}
    shares: dict[str, set[float | None]] = {}
    experiments: set[str] = set()
    events: list[tuple[Path, int, dict[str, Any]]] = []
    for file, line, record in records:
        if record.get("record") != "exposure":
            events.append((file, line, record))
            continue
        name = _text(record, "experiment", file, line)
        experiments.add(name)
        if (experiment is not None and name != experiment) or (
            surface is not None and record.get("surface") != surface
        ):
            continue
        request_id = _text(record, "request_id", file, line)
        if request_id in exposures:
            continue
        items = record.get("item_ids")
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            raise DataFormatError(
                "item_ids must be a list of item ids", path=file, line=line, field="item_ids"
            )
        variant = _text(record, "variant", file, line)
        exposures[request_id] = _Exposure(_text(record, "user_id", file, line), variant, frozenset(items))
        share = record.get("share")
        shares.setdefault(variant, set()).add(float(share) if isinstance(share, int | float) else None)
    if experiment is None and len(experiments) > 1:
        raise ValueError(f"the log holds several experiments {sorted(experiments)}: choose one")
    chosen = experiment if experiment is not None else next(iter(experiments), None)
    if not exposures:
        raise ValueError(f"no exposures of {chosen or 'any experiment'} in the log")

    unattributed = _attribute(events, exposures)
    names = sorted({e.variant for e in exposures.values()})
    if control is None:
        control = "control" if "control" in names else max(names, key=lambda n: _count(exposures, n))
    if control not in names:
        raise ValueError(f"control {control!r} has no exposures; variants in the log: {names}")
    ordered = [control, *(n for n in names if n != control)]
    warnings: list[str] = []

    counts = np.zeros((len(ordered), len(METRICS)), dtype=np.int64)
    n = np.zeros(len(ordered), dtype=np.int64)
    deff = np.full((len(ordered), len(METRICS)), np.nan)
    users = []
    for row, name in enumerate(ordered):
        mine = [e for e in exposures.values() if e.variant == name]
        n[row] = len(mine)
        user_of = {u: i for i, u in enumerate(dict.fromkeys(e.user_id for e in mine))}
        users.append(len(user_of))
        per_user = np.zeros((len(user_of), 1 + len(METRICS)))  # exposures, then conversions per rate
        for e in mine:
            per_user[user_of[e.user_id], 0] += 1
            for col, metric in enumerate(METRICS):
                per_user[user_of[e.user_id], 1 + col] += _EVENT_OF_METRIC[metric] in e.converted
        counts[row] = per_user[:, 1:].sum(axis=0)
        for col in range(len(METRICS)):
            effect = design_effect(per_user[:, 1 + col], per_user[:, 0])
            deff[row, col] = np.nan if effect is None else effect
    intervals = wilson_intervals(counts, n[:, None], confidence)

    known = {name: next(iter(s)) for name, s in shares.items() if len(s) == 1}
    split_p = _check_split(ordered, users, known, warnings)
    required = _required(int(counts[0, 0]), int(n[0]), min_detectable_lift, 1 - confidence, power, warnings)
    reports = []
    for row, name in enumerate(ordered):
        rates = {}
        for col, metric in enumerate(METRICS):
            x, m = int(counts[row, col]), int(n[row])
            low, high = (float(v) for v in intervals[row, col])
            effect = None if np.isnan(deff[row, col]) else float(deff[row, col])
            rate = Rate(x, m, x / m, (low, high), effect)
            if row > 0:
                c = two_proportion_test(int(counts[0, col]), int(n[0]), x, m, confidence)
                rate = Rate(
                    x, m, x / m, (low, high), effect, difference=c.difference,
                    difference_interval=c.difference_interval, relative_lift=c.relative_lift,
                    p_value=c.p_value, significant=c.p_value < 1 - confidence,
                )  # fmt: skip
            rates[metric] = rate
        reports.append(VariantReport(name, int(n[row]), users[row], known.get(name), rates))
        if required is not None and n[row] < required:
            warnings.append(
                f"{name}: {int(n[row])} exposures, fewer than the {required} needed to detect a "
                f"{min_detectable_lift:+.0%} change in CTR with {power:.0%} power; keep the test running"
            )
    for col, metric in enumerate(METRICS):
        worst = np.nanmax(deff[:, col]) if not np.all(np.isnan(deff[:, col])) else np.nan
        if worst > DESIGN_EFFECT_WARNING:
            warnings.append(
                f"{metric}: a user's lists convert together (design effect {worst:.1f}): the intervals and "
                f"p-values, which count exposures as independent, are about {np.sqrt(worst):.1f}x too narrow"
            )
    if len(ordered) == 1:
        warnings.append(f"only {control!r} has exposures: nothing to compare")
    return AbReport(
        experiment=chosen, control=control, confidence=confidence, min_detectable_lift=min_detectable_lift,
        required_exposures=required, variants=reports, unattributed_events=unattributed,
        split_p_value=split_p, warnings=warnings,
    )  # fmt: skip


def _attribute(events: list[tuple[Path, int, dict[str, Any]]], exposures: dict[str, _Exposure]) -> int:
    """Mark the exposures the events convert; returns how many events converted none."""
    seen: set[tuple[str, str]] = set()
    unattributed = 0
    for file, line, record in events:
        user = _text(record, "user_id", file, line)
        key = (user, _text(record, "event_id", file, line))
        if key in seen:
            continue
        seen.add(key)
        exposure = exposures.get(record.get("request_id") or "")
        if exposure is None or exposure.user_id != user or record.get("item_id") not in exposure.items:
            unattributed += 1
            continue
        exposure.converted.add(str(record.get("event_type")))
    return unattributed


def _check_split(
    names: list[str], users: list[int], shares: dict[str, float | None], warnings: list[str]
) -> float | None:
    """The sample-ratio test's p-value of the users per variant, warning on a mismatch; ``None`` (and a
    warning) when a variant's share is unknown or changed while the experiment ran."""
    if len(names) < 2:
        return None
    expected = [shares.get(name) for name in names]
    if any(s is None or s <= 0 for s in expected):
        warnings.append(
            "the variants' shares are unknown or changed during the experiment: the split is not checked"
        )
        return None
    _, p = sample_ratio_test(users, [s for s in expected if s is not None])
    if p < SRM_ALPHA:
        observed = ", ".join(f"{name} {count}" for name, count in zip(names, users, strict=True))
        warnings.append(
            f"sample ratio mismatch: users per variant ({observed}) do not follow the configured shares "
            f"(chi-square p = {p:.2g}); find out why before reading the rates"
        )
    return p


def _required(
    clicks: int, n: int, lift: float, alpha: float, power: float, warnings: list[str]
) -> int | None:
    if clicks == 0 or clicks == n:
        warnings.append("the control's CTR is 0 or 1: the sample size needed cannot be estimated yet")
        return None
    try:
        return required_sample_size(clicks / n, lift, alpha=alpha, power=power)
    except ValueError as exc:
        warnings.append(f"cannot estimate the sample size needed: {exc}")
        return None


def _count(exposures: dict[str, _Exposure], variant: str) -> int:
    return sum(1 for e in exposures.values() if e.variant == variant)


def _text(record: dict[str, Any], name: str, file: Path, line: int) -> str:
    value = record.get(name)
    if not isinstance(value, str) or not value:
        raise DataFormatError(f"missing or not a string: {value!r}", path=file, line=line, field=name)
    return value


def render(report: AbReport) -> str:
    """The report as a table for people: rates in percent with their intervals, lifts and p-values."""
    level = f"{report.confidence:.0%}"
    lines = [
        f"experiment {report.experiment or '-'}: control {report.control}, {level} intervals (Wilson), "
        "two-proportion z-test against the control",
        "",
        f"{'variant':<16}{'exposures':>10}{'users':>8}  {'metric':<14}{'rate':>8}  {level + ' interval':<20}"
        f"{'lift':>8}{'p-value':>10}",
    ]
    for v in report.variants:
        for i, metric in enumerate(METRICS):
            r = v.rates[metric]
            head = f"{v.name:<16}{v.exposures:>10}{v.users:>8}" if i == 0 else " " * 34
            lift = "" if r.relative_lift is None else f"{r.relative_lift:+.1%}"
            p = "" if r.p_value is None else _p_value(r.p_value) + ("*" if r.significant else "")
            interval = f"[{r.interval[0]:.2%}, {r.interval[1]:.2%}]"
            lines.append(f"{head}  {metric:<14}{r.rate:>8.2%}  {interval:<20}{lift:>8}{p:>10}".rstrip())
    lines.append("")
    if report.split_p_value is not None:
        lines.append(
            f"split: users per variant against the configured shares: chi-square p = "
            f"{report.split_p_value:.3g}"
        )
    lines.append(
        f"* significant at {1 - report.confidence:.2g}; unattributed events: {report.unattributed_events}"
    )
    lines += [f"warning: {w}" for w in report.warnings]
    return "\n".join(lines)


def _p_value(p: float) -> str:
    return "<0.0001" if p < 1e-4 else f"{p:.4f}"
