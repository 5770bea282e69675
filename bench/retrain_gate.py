"""The retraining gate on real Amazon Scientific sequences: one run that should pass, one that should not.

The scenario replays the shop's last week: a base dataset of every user's items but the last two, an event
log with each user's second-to-last item before the cut and last item after it (the held-out window), and a
served bundle trained on the base alone. ``shoprec retrain``'s loop (:func:`shoprec.training.retrain.retrain`)
then trains a new bundle on the base plus the pre-cut log and gates it against the served one on the window:

* ``same``: the new bundle is trained as the served one was (it has one more item per user): the gate
  should pass;
* ``regressed``: the new bundle's base dataset is a truncated export (the first tenth of the users), the
  kind of broken run the gate exists for: the gate should refuse it. (A badly trained ranker alone is not
  enough: the served pipeline's fusion, fitted on the validation targets, leans on item-CF and popularity,
  which gain from the new events; a one-epoch, 8-wide ranker still passed, by +9 % NDCG@10.)

Usage::

    .venv/bin/python bench/retrain_gate.py [--users 3000] [--epochs 10] [--hidden 32]

Prints both versions' figures and the decision of each run, and writes ``bench-results/retrain_gate.json``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from shoprec.data import load_dataset
from shoprec.deploy.gate import GatePolicy
from shoprec.training.config import TrainConfig
from shoprec.training.pipeline import run_training
from shoprec.training.retrain import retrain

BEFORE = datetime(2026, 11, 1, tzinfo=UTC)
AFTER = datetime(2026, 11, 20, tzinfo=UTC)
CUT = datetime(2026, 11, 15, tzinfo=UTC)
SHOWN = ("HR@10", "NDCG@10", "HR@20", "NDCG@20", "Coverage@10")


def write_scenario(root: Path, users: int) -> tuple[Path, Path, Path]:
    """The base dataset (sequences.txt), a truncated copy of it (its first tenth of the users) and the event
    log of the first ``users`` Scientific users."""
    real = load_dataset("amazon-scientific")
    base, log = root / "base", root / "log" / "date=2026-11-20"
    base.mkdir()
    log.mkdir(parents=True)
    lines, records = [], []
    for u in range(min(users, real.n_users)):
        uid, items = real.user_ids[u], [real.item_ids[i] for i in real.sequences[u]]
        lines.append(" ".join([uid, *items[:-2]]))
        for n, (item, start) in enumerate(((items[-2], BEFORE), (items[-1], AFTER))):
            at = (start + timedelta(minutes=u)).isoformat()
            records.append({"event_id": f"e{u}-{n}", "user_id": uid, "item_id": item, "timestamp": at})
    (base / "sequences.txt").write_text("\n".join(lines) + "\n")
    truncated = root / "truncated"
    truncated.mkdir()
    (truncated / "sequences.txt").write_text("\n".join(lines[: len(lines) // 10]) + "\n")
    (log / "part-1.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return base, truncated, log.parent


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=3000)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("bench-results/retrain_gate.json"))
    args = parser.parse_args()
    config = TrainConfig(hidden=args.hidden, max_epochs=args.epochs, max_len=50, threads=args.threads)
    results = {}
    with tempfile.TemporaryDirectory(prefix="shoprec-retrain-bench-") as tmp:
        base, truncated, log = write_scenario(Path(tmp), args.users)
        served = Path(tmp) / "served"
        t0 = time.perf_counter()
        run_training(base, served, config, text=False)
        print(f"served bundle trained on the base in {time.perf_counter() - t0:.0f} s")
        for name, dataset in (("same", base), ("regressed", truncated)):
            t0 = time.perf_counter()
            result = retrain(
                log,
                served,
                Path(tmp) / name,
                dataset=dataset,
                cut=CUT,
                config=config,
                policy=GatePolicy(),
                text=False,
            )
            seconds = time.perf_counter() - t0
            results[name] = {**result.to_json_dict(), "seconds": round(seconds, 1)}
            window = result.window
            print(
                f"\n{name}: {window['users']} held-out users ({window['dropped']} left out), "
                f"retrain {seconds:.0f} s"
            )
            print(f"  {'metric':<12} {'served':>8} {'new':>8} {'change':>8}")
            for metric in SHOWN:
                old, new = result.served.metrics[metric], result.new.metrics[metric]
                change = f"{(new - old) / old:+.1%}" if old else "-"
                print(f"  {metric:<12} {old:8.4f} {new:8.4f} {change:>8}")
            decision = result.decision
            print("  decision: " + ("PASS" if decision.passed else "REFUSED: " + "; ".join(decision.reasons)))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
