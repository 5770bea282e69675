"""Item-CF fitted with Spark: the neighbour table of ``shoprec.recall.itemcf.fit_itemcf``, for interaction
logs too large for one machine's memory. ``shoprec sagemaker itemcf`` runs it as a SageMaker Processing job
in the AWS Spark image (``PySparkProcessor``, ``smspark-submit itemcf_spark.py ...``); it also runs
anywhere pyspark does (``--master local[*]``).

The similarity is fit_itemcf's, computed as a self-join of every user's positions:

* every ordered pair of positions ``p < q`` of one user's training sequence (``q - p <= window`` when a
  window is given) with items ``a = seq[p] != b = seq[q]`` adds ``w = (q - p) ** -distance_power`` to
  ``C[a, b]`` and ``backward_weight * w`` to ``C[b, a]``;
* ``sim(a, b) = C[a, b] / (n_a ** alpha * n_b ** (1 - alpha))`` in float64, then float32, where ``n_x``
  counts ``x``'s occurrences in the training sequences;
* each item keeps its ``k`` best neighbours with ``sim > 0``, ordered by (-sim, neighbour index), padded
  with -1 / 0.0.

Input: the ``sequences`` training format (``docs/data-formats.md``: one user per line, ``user item
item ...``), a file or a folder of such files, local or ``s3://``. Items are indexed as ``load_dataset``
indexes them: every item of the data (held-out positions included), in natural order (ids made of digits
first, numerically). ``--holdout 1`` (the default) fits on ``seq[:-1]`` of users with at least 3 items, as
``shoprec train`` fits the bundle's table (``Split.train_with_valid``); ``2`` fits on ``seq[:-2]`` (the
validation fit) and ``0`` on everything.

Output (``--output-dir``): ``itemcf.npz`` in the bundle's format (arrays ``indices`` int32 [n_items, k] and
``scores`` float32 [n_items, k], a deterministic uncompressed zip as ``BundleWriter.add_npz`` writes it),
``item_ids.json`` (row ``i`` is item ``item_ids[i]``, the bundle's item order) and ``itemcf.json`` (the
parameters and the data's shape). A failure's message also goes to ``/opt/ml/output/message``, which
DescribeProcessingJob reports as the job's ExitMessage.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import sys
import time
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

EXIT_MESSAGE = Path("/opt/ml/output/message")
ITEMCF_FILE = "itemcf.npz"
ITEM_IDS_FILE = "item_ids.json"
META_FILE = "itemcf.json"
MIN_EVAL_LENGTH = 3
"""As ``shoprec.data.split.MIN_EVAL_LENGTH``: shorter users keep every item for training."""
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


class InputError(ValueError):
    """Bad input data or options; the message names the file, user or option."""


def natural_sort_key(item_id: str) -> tuple[int, int, str]:
    """``shoprec.data.loaders.natural_sort_key``: ids of ASCII digits first, numerically, then the rest."""
    if item_id.isascii() and item_id.isdigit():
        return (0, int(item_id), item_id)
    return (1, 0, item_id)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--input", required=True, help="sequences file or folder (local path or s3:// URL)")
    p.add_argument("--output-dir", type=Path, default=Path("/opt/ml/processing/output"))
    p.add_argument("--k", type=int, default=100)
    p.add_argument("--window", type=int, default=0, help="max distance of a pair (0: the whole sequence)")
    p.add_argument("--alpha", type=float, default=0.8)
    p.add_argument("--backward-weight", type=float, default=0.25)
    p.add_argument("--distance-power", type=float, default=0.5)
    p.add_argument("--holdout", type=int, choices=(0, 1, 2), default=1)
    p.add_argument("--master", default="", help="Spark master for a run outside SageMaker, e.g. local[2]")
    p.add_argument("--partitions", type=int, default=0, help="shuffle partitions (0: Spark's setting)")
    p.add_argument("--collect-items", type=int, default=100_000, help="rows brought to the driver at once")
    args = p.parse_args(argv)
    check_params(args)
    return args


def check_params(args: argparse.Namespace) -> None:
    """fit_itemcf's checks, before a cluster is paid for."""
    if args.k < 1:
        raise InputError(f"--k must be >= 1, got {args.k}")
    if args.window < 0:
        raise InputError(f"--window must be >= 1, or 0 for the whole sequence, got {args.window}")
    if not 0.0 <= args.alpha <= 1.0:
        raise InputError(f"--alpha must lie in [0, 1], got {args.alpha}")
    if args.backward_weight < 0:
        raise InputError(f"--backward-weight must be >= 0, got {args.backward_weight}")
    if not math.isfinite(args.distance_power):
        raise InputError(f"--distance-power must be a finite number, got {args.distance_power}")
    if args.collect_items < 1:
        raise InputError(f"--collect-items must be >= 1, got {args.collect_items}")


# --- the Spark job --------------------------------------------------------------------------------------


def read_sequences(spark: Any, path: str) -> Any:
    """``(user, items)`` rows of a ``sequences`` file or folder; every user once, with at least one item."""
    from pyspark.sql import functions as F

    try:
        lines = spark.read.text(path)
    except Exception as exc:  # AnalysisException: path does not exist
        raise InputError(f"--input {path}: cannot be read: {str(exc).splitlines()[0]}") from None
    tokens = F.split(F.trim(F.col("value")), r"\s+")
    seqs = (
        lines.where(F.trim(F.col("value")) != "")
        .select(tokens.alias("t"))
        .select(F.col("t")[0].alias("user"), F.expr("slice(t, 2, size(t) - 1)").alias("items"))
    )
    empty = [r["user"] for r in seqs.where(F.size("items") == 0).select("user").limit(5).collect()]
    if empty:
        raise InputError(
            f"{path}: user {empty[0]!r} has no items (users without items: {', '.join(map(repr, empty))}); "
            "expected 'user_id item_id [item_id ...]' per line"
        )
    repeated = seqs.groupBy("user").count().where(F.col("count") > 1).limit(5).collect()
    if repeated:
        users = ", ".join(f"{r['user']!r} ({r['count']} lines)" for r in repeated)
        raise InputError(f"{path}: each user must be on one line in the sequences format; repeated: {users}")
    return seqs


def train_items(holdout: int) -> Any:
    """The training part of ``items``: ``Split.train_with_valid`` (holdout 1) or ``Split.train`` (2)."""
    from pyspark.sql import functions as F

    if holdout == 0:
        return F.col("items")
    return F.when(
        F.size("items") >= MIN_EVAL_LENGTH, F.expr(f"slice(items, 1, size(items) - {holdout})")
    ).otherwise(F.col("items"))


def fit_top_k(spark: Any, seqs: Any, args: argparse.Namespace) -> tuple[list[str], Any, dict[str, int]]:
    """The item order, the top-k rows ``(a, rank, b, sim)`` (a DataFrame, persisted) and the data's shape."""
    from pyspark import StorageLevel
    from pyspark.sql import Window
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    seqs = seqs.withColumn("uid", F.monotonically_increasing_id())
    item_ids = sorted(
        (r["item"] for r in seqs.select(F.explode("items").alias("item")).distinct().collect()),
        key=natural_sort_key,
    )
    schema = T.StructType([T.StructField("item", T.StringType()), T.StructField("i", T.IntegerType())])
    index = spark.createDataFrame(list(zip(item_ids, range(len(item_ids)), strict=True)), schema)

    events = (
        seqs.select("uid", F.posexplode(train_items(args.holdout)).alias("pos", "item"))
        .join(F.broadcast(index), "item")
        .select("uid", "pos", "i")
        .persist(StorageLevel.MEMORY_AND_DISK)
    )
    counts = events.groupBy("i").agg(F.count(F.lit(1)).cast("double").alias("n"))

    left, right = events.alias("l"), events.alias("r")
    cond = (F.col("l.uid") == F.col("r.uid")) & (F.col("r.pos") > F.col("l.pos"))
    if args.window:
        cond = cond & (F.col("r.pos") - F.col("l.pos") <= args.window)
    distance = (F.col("r.pos") - F.col("l.pos")).cast("double")
    # Co-occurrence in time order, summed per (earlier item x, later item y).
    forward = (
        left.join(right, cond)
        .where(F.col("l.i") != F.col("r.i"))
        .select(
            F.col("l.i").alias("x"),
            F.col("r.i").alias("y"),
            F.pow(distance, F.lit(-float(args.distance_power))).alias("w"),
        )
        .groupBy("x", "y")
        .agg(F.sum("w").alias("w"))
    )
    # C[a, b] = forward(a, b) + backward_weight * forward(b, a)
    parts = forward.select(F.col("x").alias("a"), F.col("y").alias("b"), "w")
    if args.backward_weight > 0:
        backward = forward.select(
            F.col("y").alias("a"),
            F.col("x").alias("b"),
            (F.col("w") * float(args.backward_weight)).alias("w"),
        )
        parts = parts.unionByName(backward)
    co = parts.groupBy("a", "b").agg(F.sum("w").alias("c"))

    alpha = float(args.alpha)
    n_a = counts.select(F.col("i").alias("a"), F.col("n").alias("n_a"))
    n_b = counts.select(F.col("i").alias("b"), F.col("n").alias("n_b"))
    sims = (
        co.join(n_a, "a")
        .join(n_b, "b")
        .select(
            "a",
            "b",
            (F.col("c") / (F.pow(F.col("n_a"), F.lit(alpha)) * F.pow(F.col("n_b"), F.lit(1.0 - alpha))))
            .cast("float")
            .alias("sim"),
        )
        .where(F.col("sim") > 0)
    )
    order = Window.partitionBy("a").orderBy(F.col("sim").desc(), F.col("b").asc())
    top = (
        sims.withColumn("rank", F.row_number().over(order) - 1)
        .where(F.col("rank") < args.k)
        .persist(StorageLevel.MEMORY_AND_DISK)
    )
    shape = {
        "users": int(seqs.count()),
        "interactions": int(seqs.select(F.sum(F.size("items"))).first()[0] or 0),
        "train_interactions": int(events.count()),
    }
    return item_ids, top, shape


def collect_table(top: Any, n_items: int, k: int, chunk_items: int) -> tuple[Any, Any]:
    """The top-k rows as fit_itemcf's arrays, brought to the driver ``chunk_items`` items at a time (as
    Arrow batches through pandas when the driver's Python has pandas, else as rows)."""
    import numpy as np
    from pyspark.sql import functions as F

    try:
        import pandas  # noqa: F401  (toPandas needs it)
    except ImportError:
        as_pandas = False
    else:
        as_pandas = True
    indices = np.full((n_items, k), -1, dtype=np.int32)
    scores = np.zeros((n_items, k), dtype=np.float32)
    for lo in range(0, n_items, chunk_items):
        part = top.where((F.col("a") >= lo) & (F.col("a") < lo + chunk_items)).select("a", "rank", "b", "sim")
        if as_pandas:
            rows = part.toPandas()
            a = rows["a"].to_numpy(np.int64)
            rank = rows["rank"].to_numpy(np.int64)
            b = rows["b"].to_numpy(np.int32)
            sim = rows["sim"].to_numpy(np.float32)
        else:
            collected = part.collect()
            a = np.fromiter((r[0] for r in collected), dtype=np.int64, count=len(collected))
            rank = np.fromiter((r[1] for r in collected), dtype=np.int64, count=len(collected))
            b = np.fromiter((r[2] for r in collected), dtype=np.int32, count=len(collected))
            sim = np.fromiter((r[3] for r in collected), dtype=np.float32, count=len(collected))
        indices[a, rank] = b
        scores[a, rank] = sim
    return indices, scores


# --- the writer -----------------------------------------------------------------------------------------


def write_neighbour_table(
    out_dir: Path,
    indices: Any,
    scores: Any,
    item_ids: Sequence[str],
    meta: Mapping[str, Any] | None = None,
) -> list[Path]:
    """Write a neighbour table as a bundle holds it: ``itemcf.npz`` (``indices`` int32 and ``scores``
    float32, [n_items, k], the arrays ``fit_itemcf`` returns in an ``ItemCFNeighbours``), the item order
    ``item_ids.json`` and ``itemcf.json`` (``meta``). The zip is uncompressed with fixed timestamps, byte for
    byte what ``BundleWriter.add_npz`` writes for the same arrays."""
    import numpy as np

    indices = np.asarray(indices)
    scores = np.asarray(scores)
    n_items = len(item_ids)
    if indices.dtype != np.int32 or scores.dtype != np.float32:
        raise ValueError(f"indices must be int32 and scores float32, got {indices.dtype} and {scores.dtype}")
    if indices.ndim != 2 or indices.shape != scores.shape or indices.shape[0] != n_items:
        raise ValueError(
            f"indices {indices.shape} and scores {scores.shape} must both be ({n_items}, k), one row per item"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    npz = out_dir / ITEMCF_FILE
    with zipfile.ZipFile(npz, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for key, array in sorted({"indices": indices, "scores": scores}.items()):
            info = zipfile.ZipInfo(f"{key}.npy", date_time=_ZIP_EPOCH)
            info.external_attr = 0o644 << 16
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(array), allow_pickle=False)
            zf.writestr(info, buf.getbuffer())
    ids = out_dir / ITEM_IDS_FILE
    ids.write_text(json.dumps(list(item_ids), ensure_ascii=False) + "\n", encoding="utf-8")
    written = [npz, ids]
    if meta is not None:
        path = out_dir / META_FILE
        path.write_text(json.dumps(dict(meta), indent=2, sort_keys=True) + "\n", encoding="utf-8")
        written.append(path)
    return written


# --- entry point ----------------------------------------------------------------------------------------


def spark_session(args: argparse.Namespace) -> Any:
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName("shoprec-itemcf")
    if args.master:
        builder = builder.master(args.master).config("spark.ui.enabled", "false")
    if args.partitions:
        builder = builder.config("spark.sql.shuffle.partitions", str(args.partitions))
    return builder.config("spark.sql.execution.arrow.pyspark.enabled", "true").getOrCreate()


def run(args: argparse.Namespace, spark: Any) -> dict[str, Any]:
    started = time.perf_counter()
    seqs = read_sequences(spark, args.input)
    item_ids, top, shape = fit_top_k(spark, seqs, args)
    indices, scores = collect_table(top, len(item_ids), args.k, args.collect_items)
    meta = {
        "n_items": len(item_ids),
        **shape,
        "fit": {
            "k": args.k,
            "window": args.window or None,
            "alpha": args.alpha,
            "backward_weight": args.backward_weight,
            "distance_power": args.distance_power,
            "holdout": args.holdout,
        },
        "input": args.input,
        "neighbours": int((indices >= 0).sum()),
        "seconds": round(time.perf_counter() - started, 1),
    }
    write_neighbour_table(args.output_dir, indices, scores, item_ids, meta)
    return meta


def main(argv: Iterable[str] | None = None) -> int:
    try:
        args = parse_args(list(argv) if argv is not None else None)
        spark = spark_session(args)
        try:
            meta = run(args, spark)
        finally:
            spark.stop()
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        if EXIT_MESSAGE.parent.is_dir():
            EXIT_MESSAGE.write_text(str(exc)[:1024], encoding="utf-8")
        return 2
    print(json.dumps(meta), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
