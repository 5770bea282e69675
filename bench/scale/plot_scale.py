"""The curves of ``bench/bench_scale.py`` over catalogue sizes: one PNG of bundle size, cold start,
latency, memory and the ANN index's recall and speed-up against the number of items.

Usage::

    .venv/bin/python bench/scale/plot_scale.py bench-results/scale/*.json --out docs/scale.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

PANELS = (
    ("bundle_mb", "bundle (MiB)", None),
    ("cold_start_s", "cold start (s)", 1.5),
    ("p99_ms", "warm p50 / p99 (ms)", 20.0),
    ("rss_mb", "peak RSS (MiB)", 3072.0),
    ("ann_recall_at_100", "ANN recall@100 vs exact", 0.95),
    ("ann_speedup", "ANN speed-up (exact / ANN)", 20.0),
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("reports", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, default=Path("docs/scale.png"))
    args = parser.parse_args()
    rows = sorted((json.loads(p.read_text()) for p in args.reports), key=lambda r: r["items"])
    items = [r["items"] for r in rows]
    fig, axes = plt.subplots(2, 3, figsize=(13, 7))
    for ax, (key, title, goal) in zip(axes.flat, PANELS, strict=True):
        points = [(n, r[key]) for n, r in zip(items, rows, strict=True) if r[key] is not None]
        ax.plot([n for n, _ in points], [v for _, v in points], marker="o", label=key)
        if key == "p99_ms":
            ax.plot(items, [r["p50_ms"] for r in rows], marker="o", label="p50_ms")
            ax.legend()
        if goal is not None:
            ax.axhline(goal, color="grey", linestyle="--", linewidth=1)
        ax.set_xscale("log")
        ax.set_title(title)
        ax.set_xlabel("items")
        ax.grid(True, alpha=0.3)
    fig.suptitle("shoprec at catalogue scale (synthetic bundles; dashed: the goal at 1M items)")
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
