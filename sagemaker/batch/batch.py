"""SageMaker Processing entry point: the same batch recommendations as ``shoprec batch``.

``shoprec sagemaker batch`` starts it as ``python3 batch.py --k 20 ...`` with the published bundle in
``/opt/ml/processing/input/model``, the dataset in ``/opt/ml/processing/input/data`` and
``/opt/ml/processing/output`` uploaded to S3 when the job ends; it stages the ``shoprec`` package into
``src/`` beside this file (a local checkout works as well).

With several instances, each lists every n-th user from its own place among the job's hosts
(``/opt/ml/config/resourceconfig.json``) into ``recommendations.part-<i>-of-<n>.jsonl``; the parts together
hold every user once. One instance writes ``recommendations.jsonl``. A failure's message goes to
``/opt/ml/output/message``, which DescribeProcessingJob reports as the job's ExitMessage.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
for candidate in (HERE / "src", HERE.parents[1] / "src"):
    if (candidate / "shoprec").is_dir() and str(candidate) not in sys.path:
        sys.path.insert(0, str(candidate))
        break

from shoprec.errors import ShopRecError  # noqa: E402
from shoprec.services.batch import run_batch  # noqa: E402

RESOURCE_CONFIG = Path("/opt/ml/config/resourceconfig.json")
EXIT_MESSAGE = Path("/opt/ml/output/message")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--model-dir", type=Path, default=Path("/opt/ml/processing/input/model"))
    p.add_argument("--data-dir", type=Path, default=Path("/opt/ml/processing/input/data"))
    p.add_argument("--output-dir", type=Path, default=Path("/opt/ml/processing/output"))
    p.add_argument("--dataset-path", "--dataset_path", default="", help="file or folder inside --data-dir")
    p.add_argument("--format", default="auto")
    p.add_argument("--k", type=int, default=20)
    p.add_argument("--threads", type=int, default=0, help="onnxruntime threads (0: all cores)")
    p.add_argument("--shard", default="", help="i/n: this instance's share (default: from the job's hosts)")
    return p.parse_args(argv)


def shard_of(arg: str, resource_config: Path = RESOURCE_CONFIG) -> tuple[int, int]:
    """``(i, n)`` from ``--shard i/n``, else this host's place among the job's hosts, else ``(0, 1)``."""
    if arg:
        index, sep, count = arg.partition("/")
        if not (sep and index.isdigit() and count.isdigit()):
            raise ValueError(f"--shard {arg!r}: expected i/n, e.g. 0/4")
        return int(index), int(count)
    if not resource_config.is_file():
        return 0, 1
    config = json.loads(resource_config.read_text(encoding="utf-8"))
    hosts = sorted(config["hosts"])
    return hosts.index(config["current_host"]), len(hosts)


def output_name(index: int, count: int) -> str:
    return "recommendations.jsonl" if count == 1 else f"recommendations.part-{index:05d}-of-{count:05d}.jsonl"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    try:
        index, count = shard_of(args.shard)
        dataset = args.data_dir / args.dataset_path if args.dataset_path else args.data_dir
        summary = run_batch(
            args.model_dir,
            dataset,
            args.output_dir / output_name(index, count),
            k=args.k,
            fmt=args.format,
            threads=args.threads,
            shard=(index, count),
        )
    except (ShopRecError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        if EXIT_MESSAGE.parent.is_dir():
            EXIT_MESSAGE.write_text(str(exc)[:1024], encoding="utf-8")
        return 2
    # CloudWatch keeps stdout: one JSON line that metric filters can read.
    print(
        json.dumps(
            {
                "users": summary.users,
                "k": summary.k,
                "model_version": summary.model_version,
                "shard": f"{index}/{count}",
                "cold": summary.cold,
                "degraded": summary.degraded,
                "seconds": round(time.perf_counter() - started, 1),
                "out": str(summary.out),
            }
        ),
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
