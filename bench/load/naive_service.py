"""The obvious alternative to shoprec's serving path, for the load test: one FastAPI app that keeps the
PyTorch SASRec in memory and scores every item of the catalogue with it on every request.

No recall stage, no result cache, no ONNX: ``/v1/recommendations`` runs the transformer over the user's
last ``max_len`` items and takes the top k of all ``n_items`` scores; ``/v1/items/{id}/similar`` takes the
cosine of the item's embedding with every item's; ``/v1/search`` counts the query's words in every title
(no inverted index); ``/v1/events`` appends to the in-memory histories (not persisted, unlike shoprec's
state store). The routes and JSON shapes are shoprec's, closely enough that one locustfile drives both.

The weights are the served bundle's: ``ranker.onnx`` holds no PyTorch state dict, so
:func:`sasrec_from_onnx` copies its initialisers back into :class:`shoprec.training.sasrec.SASRec` and
refuses to serve unless torch and onnxruntime agree on real sequences.

Usage (as ``run_load.py`` starts it)::

    .venv/bin/python bench/load/naive_service.py --artifacts artifacts/scientific \\
        --dataset amazon-scientific --port 8001 --workers 2
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import threading
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch
from fastapi import FastAPI, HTTPException, Query
from numpy import typing as npt
from onnx import numpy_helper
from pydantic import BaseModel, ConfigDict, Field

from shoprec.data import load_dataset
from shoprec.training.sasrec import SASRec, SASRecConfig

PARITY_TOL = 1e-3
"""Largest absolute score difference between the recovered torch model and the ONNX graph."""
_WORD = re.compile(r"[a-z0-9]+")


def sasrec_from_onnx(path: Path, cfg: SASRecConfig) -> SASRec:
    """A :class:`SASRec` holding the weights of the exported graph at ``path``.

    The exporter keeps the biases, layer norms and item table under their parameter names (those equal to
    another constant it drops: they keep SASRec's initial values) but folds each ``Linear`` weight into an
    anonymous transposed constant: those are matched to the blocks' ``qkv``,
    ``proj``, ``ff1`` and ``ff2`` by shape, and among equal shapes by trying the assignments until torch's
    scores equal onnxruntime's on the same sequences. Raises ``ValueError`` when none does.
    """
    model = SASRec(cfg).eval()
    graph = onnx.load(str(path)).graph
    inits = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    state = model.state_dict()
    # Parameters the exporter left out as duplicates of another constant (an untrained model's zero
    # biases and unit norms) keep their initial values; the parity check below catches any other gap.
    named = {k: v.numpy() for k, v in state.items()} | {k: v for k, v in inits.items() if k in state}
    named["pos_emb.weight"] = inits["unsqueeze"][0]
    d = cfg.hidden
    wide = [v for k, v in inits.items() if k not in state and v.shape == (d, 3 * d)]
    square = [v for k, v in inits.items() if k not in state and v.shape == (d, d)]
    if len(wide) != cfg.blocks or len(square) != 3 * cfg.blocks:
        raise ValueError(f"{path}: expected {cfg.blocks} qkv and {3 * cfg.blocks} square weights")
    seq, cand = _probe(cfg)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    want = session.run(None, {"item_seq": seq.numpy(), "candidates": cand.numpy()})[0]
    for qkv_order in itertools.permutations(range(cfg.blocks)):
        for square_order in itertools.permutations(range(3 * cfg.blocks)):
            weights = dict(named)
            for b in range(cfg.blocks):
                weights[f"blocks.{b}.qkv.weight"] = wide[qkv_order[b]].T
                for j, name in enumerate(("proj", "ff1", "ff2")):
                    weights[f"blocks.{b}.{name}.weight"] = square[square_order[3 * b + j]].T
            model.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in weights.items()})
            with torch.no_grad():
                got = model(seq, cand).numpy()
            if float(np.abs(got - want).max()) <= PARITY_TOL:
                return model
    raise ValueError(f"{path}: no assignment of its weights reproduces its scores (tolerance {PARITY_TOL})")


def _probe(cfg: SASRecConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Sequences of varied lengths and candidates, enough to tell the weight assignments apart."""
    gen = torch.Generator().manual_seed(0)
    seq = torch.randint(1, cfg.n_items + 1, (4, cfg.max_len), generator=gen)
    for row, length in enumerate((1, 5, cfg.max_len // 2, cfg.max_len)):
        seq[row, : cfg.max_len - length] = 0
    cand = torch.randint(1, cfg.n_items + 1, (4, 32), generator=gen)
    return seq, cand


class EventIn(BaseModel):
    """One interaction, as shoprec's ``POST /v1/events`` takes it."""

    model_config = ConfigDict(extra="ignore")
    event_id: str
    user_id: str
    item_id: str
    type: str


class EventsIn(BaseModel):
    """The events of one request (1..100)."""

    events: list[EventIn] = Field(min_length=1, max_length=100)


class NaiveRecommender:
    """The bundle's catalogue and SASRec weights, the dataset's histories, eager scoring of all items."""

    def __init__(self, artifacts: Path, dataset: str) -> None:
        manifest = json.loads((artifacts / "manifest.json").read_text())
        self.model_version = str(manifest["model_version"])
        self.item_ids: list[str] = json.loads((artifacts / "item_ids.json").read_text())
        self.index = {iid: i for i, iid in enumerate(self.item_ids)}
        titles = {}
        with (artifacts / "catalog.jsonl").open() as f:
            for line in f:
                row = json.loads(line)
                titles[row["item_id"]] = row.get("title") or ""
        self.titles = [titles.get(iid, "") for iid in self.item_ids]
        self.title_words = [frozenset(_WORD.findall(t.lower())) for t in self.titles]
        t = manifest["hyperparameters"]["transformer"]
        self.cfg = SASRecConfig(
            n_items=len(self.item_ids),
            hidden=t["hidden"],
            blocks=t["blocks"],
            heads=t["heads"],
            max_len=t["max_len"],
        )
        self.model = sasrec_from_onnx(artifacts / "ranker.onnx", self.cfg)
        ds = load_dataset(dataset)
        self.histories: dict[str, list[int]] = {
            uid: [self.index[ds.item_ids[i]] for i in seq if ds.item_ids[i] in self.index]
            for uid, seq in zip(ds.user_ids, ds.sequences, strict=True)
        }
        self.seen_events: set[str] = set()
        self.lock = threading.Lock()

    def recommend(self, user_id: str, k: int) -> list[tuple[int, float]]:
        """Top ``k`` of every item's SASRec score after the user's history (its items left out)."""
        with self.lock:
            history = list(self.histories.get(user_id, ()))
        tail = history[-self.cfg.max_len :]
        seq = torch.zeros(1, self.cfg.max_len, dtype=torch.int64)
        if tail:
            seq[0, -len(tail) :] = torch.tensor(tail) + 1
        with torch.no_grad():
            scores = self.model.score_all(seq)[0]
            if history:
                scores[torch.tensor(history)] = float("-inf")
            top = torch.topk(scores, k)
        return list(zip(top.indices.tolist(), top.values.tolist(), strict=True))

    def similar(self, item: int, k: int) -> list[tuple[int, float]]:
        """Top ``k`` items by cosine of SASRec item embeddings, computed against the whole table."""
        with torch.no_grad():
            table = torch.nn.functional.normalize(self.model.item_table(), dim=1)
            scores = table @ table[item]
            scores[item] = float("-inf")
            top = torch.topk(scores, k)
        return list(zip(top.indices.tolist(), top.values.tolist(), strict=True))

    def search(self, query: str, k: int) -> list[tuple[int, float]]:
        """Top ``k`` titles by the share of the query's words they contain, scanning every title."""
        words = set(_WORD.findall(query.lower()))
        if not words:
            return []
        scores: npt.NDArray[np.float64] = np.array(
            [len(words & title) / len(words) for title in self.title_words], dtype=np.float64
        )
        order = np.argsort(-scores, kind="stable")[:k]
        return [(int(i), float(scores[i])) for i in order if scores[i] > 0]

    def ingest(self, events: list[EventIn]) -> tuple[int, int]:
        """Append the events' items to their users' histories; (applied, duplicates)."""
        unknown = sorted({e.item_id for e in events if e.item_id not in self.index})
        if unknown:
            raise HTTPException(422, f"unknown item ids: {', '.join(unknown[:20])}")
        applied = duplicates = 0
        with self.lock:
            for e in events:
                if e.event_id in self.seen_events:
                    duplicates += 1
                    continue
                self.seen_events.add(e.event_id)
                self.histories.setdefault(e.user_id, []).append(self.index[e.item_id])
                applied += 1
        return applied, duplicates

    def listing(self, ranked: list[tuple[int, float]], reason: str) -> dict[str, Any]:
        """shoprec's ListResponse shape."""
        return {
            **self.envelope(),
            "items": [
                {
                    "item_id": self.item_ids[i],
                    "score": score,
                    "channels": ["sasrec"],
                    "reason": reason,
                    "title": self.titles[i] or None,
                }
                for i, score in ranked
            ],
            "cached": False,
            "variant": None,
        }

    def envelope(self) -> dict[str, Any]:
        """Fields every shoprec response carries."""
        return {"model_version": self.model_version, "request_id": str(uuid.uuid4()), "degraded": False}


def create_app(artifacts: Path, dataset: str) -> FastAPI:
    """The naive service over the bundle at ``artifacts`` and the users of ``dataset``."""
    rec = NaiveRecommender(artifacts, dataset)
    app = FastAPI(title="naive SASRec baseline")
    k_query = Query(10, ge=1, le=100)

    @app.get("/v1/health")
    def health() -> dict[str, Any]:
        return {**rec.envelope(), "status": "ok", "n_items": len(rec.item_ids)}

    @app.get("/v1/recommendations/{user_id}")
    def recommendations(user_id: str, k: int = k_query) -> dict[str, Any]:
        return rec.listing(rec.recommend(user_id, k), "scored by SASRec over the whole catalogue")

    @app.get("/v1/items/{item_id}/similar")
    def similar(item_id: str, k: int = k_query) -> dict[str, Any]:
        if item_id not in rec.index:
            raise HTTPException(404, f"unknown item {item_id}")
        return rec.listing(rec.similar(rec.index[item_id], k), f"similar to {item_id}")

    @app.get("/v1/search")
    def search(q: str = Query(min_length=1, max_length=256), k: int = k_query) -> dict[str, Any]:
        return {**rec.listing(rec.search(q, k), f"matches '{q}'"), "facets": {"brand": {}, "category": {}}}

    @app.post("/v1/events")
    def events(body: EventsIn) -> dict[str, Any]:
        applied, duplicates = rec.ingest(body.events)
        return {**rec.envelope(), "applied": applied, "duplicates": duplicates}

    return app


def app_from_env() -> FastAPI:
    """The app of one uvicorn worker, configured by ``NAIVE_ARTIFACTS`` and ``NAIVE_DATASET``."""
    # One intra-op thread per worker: the workers already share the cores between them.
    torch.set_num_threads(int(os.environ.get("NAIVE_TORCH_THREADS", "1")))
    return create_app(Path(os.environ["NAIVE_ARTIFACTS"]), os.environ["NAIVE_DATASET"])


def main() -> None:
    """Serve the naive baseline with uvicorn workers."""
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--artifacts", type=Path, default=Path("artifacts/scientific"))
    parser.add_argument("--dataset", default="amazon-scientific")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    os.environ["NAIVE_ARTIFACTS"] = str(args.artifacts.resolve())
    os.environ["NAIVE_DATASET"] = args.dataset
    uvicorn.run(
        "naive_service:app_from_env",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        app_dir=str(Path(__file__).resolve().parent),
    )


if __name__ == "__main__":
    main()
