"""``shoprec ab report`` on synthetic event logs whose true rates are known."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from shoprec.adapters.event_records import encode_lines
from shoprec.cli import app
from shoprec.data.loaders import load_dataset
from shoprec.domain import Event, EventType, Exposure
from shoprec.errors import DataFormatError
from shoprec.evaluation.ab_report import METRICS, ab_report, log_records, render

T0 = datetime(2026, 12, 1, 10, tzinfo=UTC)
RATES = {  # true CTR, add-to-cart and purchase rate per exposure
    "control": {"ctr": 0.10, "cart_rate": 0.04, "purchase_rate": 0.015},
    "treatment": {"ctr": 0.13, "cart_rate": 0.05, "purchase_rate": 0.02},
}
EVENT_OF = {"ctr": EventType.CLICK, "cart_rate": EventType.CART, "purchase_rate": EventType.PURCHASE}


@dataclass
class Synthetic:
    path: Path
    successes: dict[str, dict[str, int]]  # what was generated, per variant and metric


def synthetic_log(
    root: Path, n: int, *, seed: int = 3, rates: dict[str, dict[str, float]] = RATES
) -> Synthetic:
    """A log folder with ``n`` exposures per variant (users see several lists) and events converting them
    at ``rates``, plus the noise a real log has: repeated records, several clicks on one list, events
    that convert no exposure, and a last line cut short by a crash."""
    rng = np.random.default_rng(seed)
    records: list[Event | Exposure] = []
    successes: dict[str, dict[str, int]] = {}
    event_no = 0
    for variant, true in rates.items():
        successes[variant] = dict.fromkeys(true, 0)
        for i in range(n):
            user, request = f"{variant}-u{i % (n // 3)}", f"{variant}-r{i}"
            items = tuple(f"item-{j}" for j in rng.choice(50, size=5, replace=False))
            exposure = Exposure(
                request, user, "exp1", variant, "recommendations", items, "sha256:x", T0, share=0.5
            )
            records.append(exposure)
            if i % 97 == 0:
                records.append(exposure)  # delivered twice (at least once)
            for metric, p in true.items():
                if rng.random() >= p:
                    continue
                successes[variant][metric] += 1
                for _ in range(1 + int(rng.integers(0, 2))):  # one or two events: the exposure counts once
                    event_no += 1
                    at = T0 + timedelta(seconds=event_no)
                    event = Event(f"e{event_no}", user, items[0], EVENT_OF[metric], at, request, variant, 0)
                    records.append(event)
                    if event_no % 50 == 0:
                        records.append(event)  # the same event logged again after a retry
    records += [
        Event("x1", "control-u1", "item-1", EventType.CLICK, T0, None, "control", 0),  # no request id
        Event("x2", "control-u1", "item-1", EventType.CLICK, T0, "unknown-request", "control", 0),
        Event("x3", "someone-else", "item-1", EventType.CLICK, T0, "control-r1", "control", 0),
        Event("x4", "control-u1", "not-shown", EventType.CLICK, T0, "control-r1", "control", 0),
    ]
    path = root / "events"
    part = path / "date=2026-12-01" / "part-1.jsonl"
    part.parent.mkdir(parents=True)
    cut = b'{"record":"exposure","request_id":"cut-short"'
    part.write_bytes(b"".join(encode_lines(records, T0)) + cut)
    return Synthetic(path, successes)


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Synthetic:
    return synthetic_log(tmp_path_factory.mktemp("ab"), 8_000)


def test_the_report_counts_each_exposure_and_conversion_once(big: Synthetic) -> None:
    report = ab_report(log_records(big.path))
    assert report.experiment == "exp1"
    assert report.control == "control"
    assert [v.name for v in report.variants] == ["control", "treatment"]
    for v in report.variants:
        assert v.exposures == 8_000
        assert v.users == 8_000 // 3
        for metric in METRICS:
            assert v.rates[metric].successes == big.successes[v.name][metric]
            assert v.rates[metric].rate == big.successes[v.name][metric] / 8_000
    assert report.unattributed_events == 4


def test_the_intervals_recover_the_true_rates(big: Synthetic) -> None:
    report = ab_report(log_records(big.path), confidence=0.99)
    for v in report.variants:
        for metric in METRICS:
            low, high = v.rates[metric].interval
            assert low <= RATES[v.name][metric] <= high, (v.name, metric, low, high)
    treatment = report.variants[1].rates
    difference_interval = treatment["ctr"].difference_interval
    assert difference_interval is not None
    assert difference_interval[0] <= 0.03 <= difference_interval[1]
    assert treatment["ctr"].significant
    assert (treatment["ctr"].p_value or 1.0) < 1e-4  # z is about 4.5 for 10 % against 13 % at n = 8000
    assert report.variants[0].rates["ctr"].p_value is None  # the control is not compared with itself


def test_a_small_test_warns_that_it_needs_more_exposures(tmp_path: Path, big: Synthetic) -> None:
    small = ab_report(log_records(synthetic_log(tmp_path, 300).path))
    assert (small.required_exposures or 0) > 300
    assert [w.split(":")[0] for w in small.warnings] == ["control", "treatment"]
    assert "keep the test running" in small.warnings[0]
    # 8000 exposures per variant are enough to see a 30 % change of a 10 % CTR (about 1,800 are needed).
    enough = ab_report(log_records(big.path), min_detectable_lift=0.3)
    assert 0 < (enough.required_exposures or 0) < 8_000
    assert enough.warnings == []


def test_a_split_that_does_not_follow_the_shares_is_reported(tmp_path: Path, big: Synthetic) -> None:
    balanced = ab_report(log_records(big.path))
    assert balanced.split_p_value == 1.0  # 2666 users in each variant, as the equal shares expect
    assert [v.share for v in balanced.variants] == [0.5, 0.5]

    def exposure(variant: str, user: int, share: float | None = 0.5) -> Exposure:
        return Exposure(
            f"{variant}-{user}", f"u{user}", "exp1", variant, "search", ("a",), "v", T0, share=share
        )

    # 1,000 users against 900 where the shares expect 950 each: chi-square 5.26, p = 0.022 (no alarm);
    # 1,000 against 800: chi-square 22.2, p = 2.4e-6 (a mismatch).
    for treated, alarm in ((900, False), (800, True)):
        records: list[Event | Exposure] = [exposure("control", u) for u in range(1000)]
        records += [exposure("treatment", 10_000 + u) for u in range(treated)]
        log = tmp_path / f"split-{treated}.jsonl"
        log.write_bytes(b"".join(encode_lines(records, T0)))
        report = ab_report(log_records(log))
        mismatch = [w for w in report.warnings if w.startswith("sample ratio mismatch")]
        assert bool(mismatch) is alarm, report.warnings
    assert report.split_p_value == pytest.approx(2.4e-6, rel=0.05)
    assert "control 1000, treatment 800" in mismatch[0]

    changed = [exposure("control", 1), exposure("control", 2, share=0.4), exposure("treatment", 3)]
    log = tmp_path / "changed.jsonl"
    log.write_bytes(b"".join(encode_lines(changed, T0)))
    report = ab_report(log_records(log))
    assert report.split_p_value is None
    assert any("shares are unknown or changed" in w for w in report.warnings)


def test_the_report_warns_when_a_users_lists_convert_together(tmp_path: Path, big: Synthetic) -> None:
    assert not any("convert together" in w for w in ab_report(log_records(big.path)).warnings)
    records: list[Event | Exposure] = []
    for variant in ("control", "treatment"):
        for user in range(200):  # ten lists each; every fifth user clicks on all of them, the others never
            for n in range(10):
                request = f"{variant}-{user}-{n}"
                records.append(
                    Exposure(request, f"{variant}{user}", "exp1", variant, "search", ("a",), "v", T0)
                )
                if user % 5 == 0:
                    records.append(
                        Event(f"e-{request}", f"{variant}{user}", "a", EventType.CLICK, T0, request)
                    )
    log = tmp_path / "keen.jsonl"
    log.write_bytes(b"".join(encode_lines(records, T0)))
    report = ab_report(log_records(log))
    # Each user is one unit, not ten: var = s_cc / (U n²) = (100 · 200/199 · 0.16) / (200 · 100) against
    # 0.2 · 0.8 / 2000, a design effect of 10 · 200/199.
    assert report.variants[0].rates["ctr"].design_effect == pytest.approx(10 * 200 / 199)
    assert "ctr: a user's lists convert together (design effect 10.1)" in " ".join(report.warnings)
    assert "about 3.2x too narrow" in " ".join(report.warnings)


def test_an_aa_test_finds_no_difference_within_its_intervals(tmp_path: Path) -> None:
    same = dict.fromkeys(("control", "treatment"), RATES["control"])
    report = ab_report(log_records(synthetic_log(tmp_path, 4_000, seed=5, rates=same).path))
    for metric in METRICS:
        rate = report.variants[1].rates[metric]
        assert rate.difference_interval is not None
        assert rate.difference_interval[0] <= 0 <= rate.difference_interval[1]
        assert rate.significant is False


def test_the_report_filters_by_surface_and_experiment(tmp_path: Path) -> None:
    records: list[Event | Exposure] = [
        Exposure("r1", "u1", "exp1", "control", "search", ("a",), "v", T0),
        Exposure("r2", "u2", "exp1", "treatment", "recommendations", ("a",), "v", T0),
        Exposure("r3", "u3", "exp2", "control", "recommendations", ("a",), "v", T0),
    ]
    log = tmp_path / "log.jsonl"
    log.write_bytes(b"".join(encode_lines(records, T0)))
    with pytest.raises(ValueError, match=r"several experiments \['exp1', 'exp2'\]"):
        ab_report(log_records(log))
    report = ab_report(log_records(log), experiment="exp1", surface="search")
    assert [(v.name, v.exposures) for v in report.variants] == [("control", 1)]
    assert report.warnings[-1] == "only 'control' has exposures: nothing to compare"
    with pytest.raises(ValueError, match="no exposures of exp1"):
        ab_report(log_records(log), experiment="exp1", surface="rank")
    with pytest.raises(ValueError, match="control 'nope' has no exposures"):
        ab_report(log_records(log), experiment="exp1", control="nope")


def test_a_malformed_record_is_named_by_file_and_line(tmp_path: Path) -> None:
    folder = tmp_path / "date=2026-12-01"
    folder.mkdir()
    (folder / "part-1.jsonl").write_text('{"record":"exposure","request_id":"r1"}\n')
    with pytest.raises(DataFormatError, match=r"part-1\.jsonl, line 1, field 'experiment'"):
        ab_report(log_records(tmp_path))


def test_the_command_prints_a_table_and_json(big: Synthetic, tmp_path: Path) -> None:
    runner = CliRunner()
    table = runner.invoke(app, ["ab", "report", "--events", str(big.path)])
    assert table.exit_code == 0, table.output
    assert table.output.strip() == render(ab_report(log_records(big.path)))
    assert "95% interval" in table.output
    as_json = runner.invoke(app, ["ab", "report", "--events", str(big.path), "--json", "--confidence", "0.9"])
    assert as_json.exit_code == 0, as_json.output
    data = json.loads(as_json.output)
    assert data["confidence"] == 0.9
    assert [v["name"] for v in data["variants"]] == ["control", "treatment"]
    assert data["variants"][1]["rates"]["ctr"]["successes"] == big.successes["treatment"]["ctr"]
    empty = tmp_path / "empty"
    empty.mkdir()
    failed = runner.invoke(app, ["ab", "report", "--events", str(empty)])
    assert failed.exit_code == 2
    assert "is not an event log" in " ".join(failed.output.split())  # rich wraps long lines


def test_training_reads_the_events_of_a_log_with_exposures_and_skips_the_exposures(tmp_path: Path) -> None:
    records: list[Event | Exposure] = [
        Exposure("r1", "u1", "exp1", "control", "recommendations", ("a", "b"), "v", T0),
        Event("e1", "u1", "b", EventType.CLICK, T0 + timedelta(seconds=1), "r1", "control", 1),
        Event("e2", "u1", "c", EventType.VIEW, T0 + timedelta(seconds=2)),
    ]
    part = tmp_path / "log" / "date=2026-12-01" / "part-1.jsonl"
    part.parent.mkdir(parents=True)
    part.write_bytes(b"".join(encode_lines(records, T0)))
    for path in (tmp_path / "log", part):  # the folder (eventlog format) and one file (generic)
        dataset = load_dataset(path)
        assert dataset.user_ids == ["u1"]
        assert [dataset.item_ids[i] for i in dataset.sequences[0]] == ["b", "c"]
