"""The offline side at catalogue scale: time and peak memory of the training data pipeline and of item-CF
fitting on a synthetic catalogue of 1M items, from 5M interactions up to 50M.

Every size is one prefix of the same synthetic history file (``bench/scale/synthetic.py``'s generator:
Zipf popularity, histories that stay within a cluster, written in the ``sequences`` training format that
``shoprec train`` reads, one user per line). For each size three steps run, each in its own interpreter
under ``/usr/bin/time -v`` (wall time and peak RSS), with the machine's limits enforced by a watchdog
(a step is stopped when its process tree passes ``--max-rss-gb`` of resident memory or ``--max-minutes``):

``load``     ``shoprec.data.load_dataset`` on the file plus ``leave_one_out``: what ``shoprec train``
             does before any model (the step also saves the sequences as ``.npy`` arrays, untimed, for
             the two steps after it).
``itemcf``   ``fit_itemcf`` on ``train_with_valid()`` (``seq[:-1]``), the fit the bundle holds;
             ``shoprec train`` runs it twice (on ``seq[:-2]`` too, for validation).
``blocked``  (not run by default) ``fit_itemcf_blocked`` (``shoprec.recall.itemcf_blocked``), the same
             table fitted one block of items at a time in bounded memory.
``prep``     the Transformer's data preparation without the model: the training windows
             (``training_windows``: inputs and targets left-padded to ``max_len``), the lengths, one
             epoch's length batches and the sampled softmax's item counts, as ``TrainingSteps.create``
             and ``run_epoch`` make them (torch imported, as in training).

Usage::

    nice -n 10 .venv/bin/python bench/scale/offline_scale.py --interactions 5000000 10000000 \
        --items 1000000 --work /tmp/offline-scale [--out bench-results/offline_scale.jsonl]

prints one JSON object per size (and appends it to ``--out``): the data's shape, then per step
``{"status", "wall_s", "max_rss_mb", ...}`` with the step's own inner timings. A step stopped by the
watchdog has ``status`` ``"over-memory"`` or ``"over-time"`` and the RSS / time at which it was stopped.
Synthetic data: the figures are about time and memory, never about quality.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))
from synthetic import clustered_embeddings, plausible_sequences, power_law_popularity  # noqa: E402

STEPS = ("load", "itemcf", "prep", "blocked")
HELPER_STEPS = ("cache",)
SEQUENCES = "sequences.txt"
MEAN_LENGTH = 8.0
"""The generator's mean history length (``plausible_sequences``' default)."""
USERS_PER_CHUNK = 200_000
MAX_LEN = 50
BATCH_SIZE = 128


# --- the data -------------------------------------------------------------------------------------------


def generate(n_items: int, n_users: int, out: Path, *, seed: int = 0) -> dict[str, Any]:
    """Write ``n_users`` synthetic histories over ``n_items`` items to ``out`` (``sequences`` format:
    ``user item item ...``, item ids the item's number), streamed in chunks of users. The smaller sizes are
    prefixes of this file: the same catalogue and the same kind of histories, fewer users."""
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    # The catalogue's popularity and clusters exactly as synthetic_catalogue draws them; the vectors are
    # drawn at 8 dimensions (only their clusters are used here).
    popularity = power_law_popularity(n_items, rng)
    n_clusters = max(8, round(float(np.sqrt(n_items))))
    _, cluster = clustered_embeddings(n_items, 8, rng, n_clusters=n_clusters, popularity=popularity)
    interactions = 0
    user = 0
    tmp = out.with_suffix(".partial")
    with tmp.open("w", encoding="ascii") as f:
        while user < n_users:
            chunk = min(USERS_PER_CHUNK, n_users - user)
            seqs = plausible_sequences(cluster, popularity, rng, n_users=chunk)
            lines = []
            for seq in seqs:
                user += 1
                interactions += seq.size
                lines.append(f"{user} " + " ".join(map(str, seq.tolist())))
            f.write("\n".join(lines) + "\n")
            print(f"  generated {user:,} users, {interactions:,} interactions", file=sys.stderr, flush=True)
    tmp.rename(out)
    return {"users": user, "interactions": interactions, "generate_s": round(time.perf_counter() - t0, 1)}


def prefix_file(source: Path, out: Path, target_interactions: int) -> dict[str, int]:
    """The first users of ``source`` holding at least ``target_interactions`` interactions, to ``out``."""
    users = interactions = 0
    with source.open(encoding="ascii") as src, out.open("w", encoding="ascii") as dst:
        for line in src:
            if interactions >= target_interactions:
                break
            dst.write(line)
            users += 1
            interactions += line.count(" ")
    return {"users": users, "interactions": interactions}


# --- the steps (each in its own interpreter) ------------------------------------------------------------


def _cached_sequences(data: Path) -> list[np.ndarray]:
    flat = np.load(data / "flat.npy")
    lengths = np.load(data / "lengths.npy")
    return list(np.split(flat, np.cumsum(lengths)[:-1])) if lengths.size else []


def step_load(data: Path) -> dict[str, Any]:
    from shoprec.data import leave_one_out, load_dataset

    t0 = time.perf_counter()
    ds = load_dataset(data / SEQUENCES, "sequences")
    t_load = time.perf_counter() - t0
    split = leave_one_out(ds)
    t_split = time.perf_counter() - t0 - t_load
    out = {
        "load_s": round(t_load, 1),
        "split_s": round(t_split, 1),
        "users": ds.n_users,
        "items": ds.n_items,
        "interactions": ds.n_interactions,
        "train_interactions": split.n_train_interactions,
    }
    lengths = np.fromiter((len(s) for s in ds.sequences), dtype=np.int64, count=ds.n_users)
    np.save(data / "lengths.npy", lengths)
    np.save(data / "flat.npy", np.concatenate(ds.sequences))
    (data / "n_items").write_text(str(ds.n_items))
    return out


def step_cache(data: Path) -> dict[str, Any]:
    """Not a measured step: the sequences as ``.npy`` arrays without ``load_dataset``, for a size whose
    load step was stopped, so that item-CF and the data preparation are still measured there. Item ids are
    numbers, so ``np.unique``'s order is ``load_dataset``'s natural order."""
    t0 = time.perf_counter()
    parts, lengths = [], []
    with (data / SEQUENCES).open(encoding="ascii") as f:
        for line in f:
            row = np.fromstring(line, dtype=np.int64, sep=" ")
            parts.append(row[1:])
            lengths.append(row.size - 1)
    ids, flat = np.unique(np.concatenate(parts), return_inverse=True)
    del parts
    np.save(data / "lengths.npy", np.asarray(lengths, dtype=np.int64))
    np.save(data / "flat.npy", flat.astype(np.int64).ravel())
    (data / "n_items").write_text(str(ids.size))
    return {"cache_s": round(time.perf_counter() - t0, 1), "items": int(ids.size)}


def step_itemcf(data: Path) -> dict[str, Any]:
    from shoprec.data.split import MIN_EVAL_LENGTH
    from shoprec.recall.itemcf import fit_itemcf

    n_items = int((data / "n_items").read_text())
    seqs = _cached_sequences(data)
    train = [s[:-1] if len(s) >= MIN_EVAL_LENGTH else s for s in seqs]  # Split.train_with_valid()
    t0 = time.perf_counter()
    cf = fit_itemcf(train, n_items)
    fit_s = time.perf_counter() - t0
    filled = int(np.count_nonzero(cf.indices >= 0))
    return {
        "fit_s": round(fit_s, 1),
        "n_items": n_items,
        "k": cf.k,
        "neighbours_per_item": round(filled / max(n_items, 1), 1),
        "table_mb": round((cf.indices.nbytes + cf.scores.nbytes) / 2**20, 1),
    }


def step_blocked(data: Path, block_pairs: int = 0) -> dict[str, Any]:
    from shoprec.data.split import MIN_EVAL_LENGTH
    from shoprec.recall.itemcf_blocked import DEFAULT_MAX_BLOCK_PAIRS, fit_itemcf_blocked

    n_items = int((data / "n_items").read_text())
    seqs = _cached_sequences(data)
    train = [s[:-1] if len(s) >= MIN_EVAL_LENGTH else s for s in seqs]  # Split.train_with_valid()
    t0 = time.perf_counter()
    cf = fit_itemcf_blocked(train, n_items, **({"max_block_pairs": block_pairs} if block_pairs else {}))
    fit_s = time.perf_counter() - t0
    filled = int(np.count_nonzero(cf.indices >= 0))
    return {
        "fit_s": round(fit_s, 1),
        "n_items": n_items,
        "k": cf.k,
        "neighbours_per_item": round(filled / max(n_items, 1), 1),
        "max_block_pairs": block_pairs or DEFAULT_MAX_BLOCK_PAIRS,
    }


def step_prep(data: Path) -> dict[str, Any]:
    import torch

    from shoprec.data.split import MIN_EVAL_LENGTH
    from shoprec.training.trainer import length_batches, training_windows

    n_items = int((data / "n_items").read_text())
    seqs = _cached_sequences(data)
    train = [s[:-2] if len(s) >= MIN_EVAL_LENGTH else s for s in seqs]  # Split.train
    t0 = time.perf_counter()
    inputs, targets = training_windows(train, MAX_LEN)
    t_windows = time.perf_counter() - t0
    lengths = (inputs > 0).sum(dim=1)
    batches = length_batches(lengths, BATCH_SIZE, torch.Generator().manual_seed(42))
    t_batches = time.perf_counter() - t0 - t_windows
    flat = np.concatenate(train)
    counts = torch.from_numpy(np.bincount(flat, minlength=n_items))
    total = time.perf_counter() - t0
    return {
        "prep_s": round(total, 1),
        "windows_s": round(t_windows, 1),
        "batches_s": round(t_batches, 1),
        "windows": int(inputs.shape[0]),
        "windows_mb": round((inputs.nbytes + targets.nbytes) / 2**20, 1),
        "batches": len(batches),
        "counted_items": int(counts.numel()),
    }


# --- running a step under /usr/bin/time -v with a watchdog ---------------------------------------------


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants (the step's ``/usr/bin/time`` and the interpreter under it)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        todo.extend(children.get(p, []))
    return found


def _tree_rss_kb(pids: list[int]) -> int:
    """Resident memory of ``pids`` together, in KiB (those that have gone count 0)."""
    total = 0
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


def run_step(
    step: str, data: Path, *, max_rss_gb: float, max_minutes: float, block_pairs: int = 0
) -> dict[str, Any]:
    argv = ["/usr/bin/time", "-v", sys.executable, str(Path(__file__).resolve()), "--step", step]
    argv += ["--data", str(data), "--block-pairs", str(block_pairs)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stopped: list[str] = []
    peak = [0]

    def watch() -> None:
        t0 = time.monotonic()
        while proc.poll() is None:
            pids = _tree(proc.pid)
            rss = _tree_rss_kb(pids)
            peak[0] = max(peak[0], rss)
            over = "over-memory" if rss > max_rss_gb * 2**20 else ""
            if not over and time.monotonic() - t0 > max_minutes * 60:
                over = "over-time"
            if over:
                stopped.append(over)
                for p in reversed(pids):  # the interpreter first, then /usr/bin/time
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(p, signal.SIGKILL)
                return
            time.sleep(0.25)

    watcher = threading.Thread(target=watch, daemon=True)
    t0 = time.perf_counter()
    watcher.start()
    stdout, stderr = proc.communicate()
    watcher.join()
    wall = time.perf_counter() - t0
    result: dict[str, Any] = {"wall_s": round(wall, 1)}
    match = re.search(r"Maximum resident set size \(kbytes\): (\d+)", stderr)
    max_rss_kb = int(match.group(1)) if match else peak[0]
    result["max_rss_mb"] = round(max(max_rss_kb, peak[0]) / 1024)
    if stopped:
        result["status"] = stopped[0]
        return result
    if proc.returncode != 0:
        result["status"] = f"failed (exit {proc.returncode})"
        result["error"] = stderr.strip().splitlines()[-25:]
        return result
    result["status"] = "ok"
    result.update(json.loads(stdout.strip().splitlines()[-1]))
    return result


def load_averages() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--interactions", type=int, nargs="+", default=[5_000_000, 10_000_000, 20_000_000, 50_000_000]
    )
    p.add_argument("--items", type=int, default=1_000_000)
    p.add_argument("--work", type=Path, default=Path("/tmp/offline-scale"))
    p.add_argument("--out", type=Path, default=None, help="append each size's JSON line to this file")
    p.add_argument("--steps", nargs="+", choices=STEPS, default=list(STEPS[:3]))
    p.add_argument("--max-rss-gb", type=float, default=6.0)
    p.add_argument("--max-minutes", type=float, default=20.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--generate",
        type=int,
        default=0,
        help="interactions of the generated file the sizes are prefixes of (default: the largest size)",
    )
    p.add_argument(
        "--block-pairs", type=int, default=0, help="blocked step: max_block_pairs (0: the default)"
    )
    p.add_argument("--step", choices=STEPS + HELPER_STEPS, help=argparse.SUPPRESS)
    p.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.step:  # one step, in the interpreter /usr/bin/time measures
        steps = {"load": step_load, "itemcf": step_itemcf, "prep": step_prep, "blocked": step_blocked}
        run = {**steps, "cache": step_cache}[args.step]
        result = step_blocked(args.data, args.block_pairs) if args.step == "blocked" else run(args.data)
        print(json.dumps(result), flush=True)
        return 0

    sizes = sorted(args.interactions)
    args.work.mkdir(parents=True, exist_ok=True)
    total = max(args.generate, sizes[-1])
    largest = args.work / f"items{args.items}-seed{args.seed}-users{round(total / MEAN_LENGTH)}.txt"
    generated: dict[str, Any] = {}
    if not largest.exists():
        print(f"generating {total:,} interactions over {args.items:,} items ...", file=sys.stderr)
        generated = generate(args.items, round(total / MEAN_LENGTH), largest, seed=args.seed)
    for size in sizes:
        data = args.work / f"n{size}"
        data.mkdir(exist_ok=True)
        shape = prefix_file(largest, data / SEQUENCES, size)
        row: dict[str, Any] = {
            "target_interactions": size,
            "catalogue_items": args.items,
            **shape,
            "file_mb": round((data / SEQUENCES).stat().st_size / 2**20, 1),
        }
        if generated and size == total:
            row["generate_s"] = generated["generate_s"]
        row["load_before"] = load_averages()
        if "load" in args.steps:
            for stale in ("flat.npy", "lengths.npy", "n_items"):
                (data / stale).unlink(missing_ok=True)
        for step in args.steps:
            if step != "load" and not (data / "flat.npy").exists():
                # The load step was stopped (or not asked for): arrays from a plain parse instead.
                row["cache"] = run_step(
                    "cache", data, max_rss_gb=args.max_rss_gb, max_minutes=args.max_minutes
                )
            print(f"{size:,} interactions: {step} ...", file=sys.stderr, flush=True)
            row[step] = run_step(
                step,
                data,
                max_rss_gb=args.max_rss_gb,
                max_minutes=args.max_minutes,
                block_pairs=args.block_pairs,
            )
        row["load_after"] = load_averages()
        line = json.dumps(row)
        print(line, flush=True)
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            with args.out.open("a", encoding="utf-8") as f:
                f.write(line + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
