"""SageMaker script-mode entry point of the scheduled retraining: the same loop as ``shoprec retrain``.

The retraining state machine (``docs/operations.md``) starts it with three input channels: ``events``
(the event log's ``events/`` prefix), ``served`` (the served version's ``model.tar.gz``) and, when the stack
names a base dataset, ``train``; and the cut, the gate's settings and the training hyper-parameters as
arguments. It writes the new bundle to ``SM_MODEL_DIR`` and the gate's decision with both versions' figures to
``SM_OUTPUT_DATA_DIR/decision.json``. A refused gate is a completed job: the decision says so, and the state
machine raises the alarm instead of deploying.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from datetime import datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
for candidate in (HERE / "src", HERE.parents[1] / "src"):
    if (candidate / "shoprec").is_dir() and str(candidate) not in sys.path:
        sys.path.insert(0, str(candidate))
        break

from shoprec.deploy.gate import GatePolicy  # noqa: E402
from shoprec.deploy.models import unpack_bundle  # noqa: E402
from shoprec.training.config import TrainConfig  # noqa: E402
from shoprec.training.retrain import retrain  # noqa: E402

DECISION_JSON = "decision.json"


def _channel(name: str) -> Path | None:
    value = os.environ.get(f"SM_CHANNEL_{name.upper()}")
    return Path(value) if value else None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    defaults = TrainConfig()
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--events", type=Path, default=_channel("events"))
    p.add_argument("--served", type=Path, default=_channel("served"))
    p.add_argument("--train", type=Path, default=_channel("train"))
    p.add_argument("--model-dir", type=Path, default=Path(os.environ.get("SM_MODEL_DIR", "/opt/ml/model")))
    p.add_argument(
        "--output-data-dir",
        type=Path,
        default=Path(os.environ.get("SM_OUTPUT_DATA_DIR", "/opt/ml/output/data")),
    )
    p.add_argument("--cut", required=True, help="start of the held-out window, ISO-8601 with offset")
    p.add_argument("--gate-metrics", "--gate_metrics", default="NDCG@10,HR@10")
    p.add_argument("--gate-margin", "--gate_margin", type=float, default=0.02)
    p.add_argument("--gate-min-users", "--gate_min_users", type=int, default=100)
    for name, value in defaults.to_dict().items():
        spellings = dict.fromkeys([f"--{name.replace('_', '-')}", f"--{name}"])
        p.add_argument(*spellings, dest=name, type=type(value), default=value)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.events is None or args.served is None:
        raise SystemExit("the events and served channels are required (SM_CHANNEL_EVENTS, SM_CHANNEL_SERVED)")
    config = TrainConfig(**{k: getattr(args, k) for k in TrainConfig().to_dict()})
    policy = GatePolicy.parse(args.gate_metrics, args.gate_margin, args.gate_min_users)
    with tempfile.TemporaryDirectory() as tmp:
        served = Path(tmp) / "served"
        tarballs = sorted(args.served.glob("*.tar.gz"))
        if len(tarballs) != 1:
            raise SystemExit(f"the served channel must hold one model.tar.gz, found {len(tarballs)}")
        unpack_bundle(tarballs[0], served)
        new = Path(tmp) / "new"
        result = retrain(
            args.events,
            served,
            new,
            dataset=args.train,
            cut=datetime.fromisoformat(args.cut),
            config=config,
            policy=policy,
        )
        shutil.copytree(new, args.model_dir, dirs_exist_ok=True)
    args.output_data_dir.mkdir(parents=True, exist_ok=True)
    decision = result.to_json_dict()
    (args.output_data_dir / DECISION_JSON).write_text(json.dumps(decision, indent=2) + "\n")
    print(
        json.dumps({"gate_passed": decision["decision"]["passed"], "window": decision["window"]}), flush=True
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
