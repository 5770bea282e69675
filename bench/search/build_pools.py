"""Judging pools of the search dev set (bench/search/queries.tsv) on the Amazon Scientific catalogue.

For every query the pool is the union of four members, so that the judgments do not favour one system:

* ``a`` the project's BM25 (``shoprec.search.bm25.Bm25Search``, as served): its top 20;
* ``b`` TF-IDF over character 3- to 5-grams (within word boundaries) of title, brand and categories,
  cosine similarity: its top 20 (robust to misspellings: "nitrle glovs" shares most trigrams with
  "nitrile gloves");
* ``c`` a metadata match: the same character n-gram similarity against each item's leaf category and
  brand only, ties broken by the title's similarity: its top 20;
* ``d`` a reading of the catalogue: one regular expression per query (``MANUAL`` below) over
  ``title || brand || category path``, written by grepping the catalogue for what a shopper means;
  every match, at most ``MANUAL_CAP`` (in catalogue order).

Second round (with ``--bundle``, a bundle with text embeddings), so that the semantic search is judged
on what it finds rather than on what lexical systems found:

* ``e`` the semantic channel as served (``shoprec.search.dense.DenseSearch``: all-MiniLM-L6-v2 query
  vector against the bundle's item text embeddings, with the category prior): its top 20;
* ``f`` the served hybrid search (``shoprec.search.build.build_search``): its top 20;
* ``j`` every item already judged in ``--qrels`` (the first round's pools, so that changing a member's
  system, e.g. the BM25 tokenizer, never drops a judgment).

Usage::

    .venv/bin/python bench/search/build_pools.py [--data-root DIR] [--out bench-results/search-pools]

Writes ``pools.tsv`` (query_id, item_id, members, title, brand, categories) into ``--out``; judging
(bench/search/judge.py) reads it.
"""

from __future__ import annotations

import argparse
import csv
import re
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer

from shoprec.catalog import CatalogIndex
from shoprec.data import load_dataset
from shoprec.search.bm25 import Bm25Search, SearchRecall

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
DEPTH = 20
MANUAL_CAP = 40

# What a shopper means, read off the catalogue (grep); matched case-insensitively against
# "title || brand || category path".
MANUAL: dict[str, str] = {
    "k01": r"digital.{0,30}caliper|caliper.{0,40}digital|electronic.{0,30}caliper",
    "k02": r"nitrile.{0,60}glove|glove.{0,60}nitrile",
    "k03": r"\bpla\b.{0,80}filament|filament.{0,80}\bpla\b",
    "k04": r"duct tape|duck tape|\|\| duct tape",
    "k05": r"heat.?shrink",
    "k06": r"\bph\b.{0,40}(meter|tester|pen)|ph meters",
    "k07": r"beaker",
    "k08": r"\bvise\b|bench vises",
    "k09": r"electrical tape|vinyl.{0,30}tape|electrical.{0,20}insulating tape",
    "k10": r"super ?glue|cyanoacrylate|krazy glue|instant adhesive|\bca glue",
    "k11": r"butt (connector|terminal|splice)|butt terminals",
    "k12": r"oscilloscope",
    "k13": r"stethoscope",
    "k14": r"infrared.{0,40}thermometer|\bir\b.{0,30}thermometer|non.?contact.{0,40}thermometer",
    "k15": r"hydrometer",
    "k16": r"ball valve",
    "k17": r"neodymium|rare earth magnet",
    "k18": r"breadboard|prototyping boards",
    "k19": r"wet.?dry.{0,20}vac|wet/dry",
    "k20": r"erlenmeyer|conical flask",
    "k21": r"test tube",
    "k22": r"refractometer",
    "n01": r"caliper|micrometer|thickness gauge|feeler gauge|sheet metal gauge|wire gauge",
    "n02": r"epoxy|cyanoacrylate|super ?glue|jb ?weld|metal.{0,20}(glue|adhesive|bond)",
    "n03": r"gaff(er|ers)? tape|stage tape|cable (cover|protector)",
    "n04": r"desiccant|silica gel|dehumidif|humidity (pack|absorb)",
    "n05": (
        r"infrared.{0,40}thermometer|\bir\b.{0,30}thermometer|"
        r"non.?contact.{0,40}thermometer|laser thermometer"
    ),
    "n06": r"glove|apron|chemical.{0,20}resist",
    "n07": r"hydrometer|refractometer|brix|specific gravity",
    "n08": r"\bph\b|pool.{0,30}test|chlorine",
    "n09": r"borescope|endoscope|inspection camera|snake camera",
    "n10": r"\bvise\b|clamp|bench dog|bench vises",
    "n11": r"wet.?dry.{0,20}vac|wet/dry|water pump|utility pump|sump|squeegee",
    "n12": r"heat.?shrink|electrical tape|liquid electrical|liquid tape",
    "n13": (
        r"thread seal|ptfe.{0,30}tape|pipe.{0,20}(dope|"
        r"sealant|joint compound)|teflon tape|thread sealants"
    ),
    "n14": r"dolly|dollies|hand truck|furniture (slider|mover)|moving strap|lifting strap",
    "n15": r"lubricant|wd-?40|\blube\b|grease|silicone spray|3-in-one|oil\b",
    "n16": r"multimeter|clamp meter|voltmeter|ammeter|volt.{0,20}amp.{0,20}meter|current tester",
    "n17": r"stethoscope",
    "n18": r"caster",
    "n19": r"pegboard|peg board|tool (holder|hanger)|magnetic tool",
    "n20": r"safety can|gas can|flammable|hazardous storage",
    "n21": r"step drill|unibit|hole saw|sheet metal.{0,20}(drill|hole)",
    "n22": r"\btpu\b|\btpe\b|flexible.{0,30}filament|ninjaflex|filaflex|semiflex",
    "t01": r"nitrile.{0,60}glove|glove.{0,60}nitrile",
    "t02": r"digital.{0,30}caliper|caliper.{0,40}digital|electronic.{0,30}caliper",
    "t03": r"oscilloscope",
    "t04": r"stethoscope",
    "t05": r"hydrometer",
    "t06": r"erlenmeyer|conical flask",
    "t07": r"breadboard|prototyping boards",
    "t08": r"heat.?shrink",
    "t09": r"electrical tape|vinyl.{0,30}tape|electrical.{0,20}insulating tape",
    "t10": r"beaker",
    "t11": r"refractometer",
    "t12": r"borescope|endoscope|inspection camera|snake camera",
    "t13": r"desiccant|silica gel",
    "t14": r"infrared.{0,40}thermometer|\bir\b.{0,30}thermometer|non.?contact.{0,40}thermometer",
    "t15": r"magnif|loupe",
    "t16": r"duct tape|duck tape",
    "t17": r"multimeter",
    "t18": r"pipet",
    "t19": r"vacuum|\bvac\b",
    "t20": r"\bpla\b.{0,80}filament|filament.{0,80}\bpla\b",
    "a01": r"mitutoyo|micrometer",
    "a02": r"\bm3\b|m3x|m3-",
    "a03": r"1\.75 ?mm.{0,60}\bpla\b|\bpla\b.{0,60}1\.75 ?mm",
    "a04": r"(3 ?mm|2\.85 ?mm).{0,60}\babs\b|\babs\b.{0,60}(3 ?mm|2\.85 ?mm)",
    "a05": r"100 ?ml.{0,40}beaker|beaker.{0,60}100 ?ml",
    "a06": r"500 ?ml.{0,40}(erlenmeyer|flask)|(erlenmeyer|flask).{0,60}500 ?ml",
    "a07": r"3m.{0,60}(electrical|vinyl).{0,20}tape|scotch.{0,40}(electrical|vinyl).{0,20}tape",
    "a08": r"loctite|threadlock|thread ?locker",
    "a09": r"hatchbox|petg",
    "a10": r"22 ?awg|22 ?gauge|22-\d+ ?awg|\d+-22 ?awg",
    "a11": r"1/4.{0,10}npt|npt.{0,10}1/4",
    "a12": r"stainless.{0,60}(flat )?washer|washer.{0,60}stainless",
    "a13": r"10 ?k.{0,20}(potentiometer|ohm)|potentiometer",
    "a14": r"12 ?v.{0,40}(power supply|adapter|transformer)|power supply.{0,40}12 ?v|power supplies",
    "a15": r"shop-?vac|filter.{0,40}(vac|vacuum)|(vac|vacuum).{0,40}filter",
    "a16": r"gorilla.{0,40}tape|\|\| gorilla",
    "a17": r"\b608\b|skateboard bearing|deep groove ball bearing",
    "a18": r"hose clamp",
    "a19": r"sonicare|toothbrush",
    "a20": r"k.?type|thermocouple",
}


def read_queries(path: Path) -> list[tuple[str, str, str]]:
    with path.open(encoding="utf-8") as f:
        rows = list(csv.reader(f, delimiter="\t"))
    return [(r[0], r[1], r[2]) for r in rows[1:] if r]


def item_texts(catalog: CatalogIndex) -> list[str]:
    return [
        f"{catalog.titles[i]} || {catalog.brands[i]} || {' > '.join(catalog.categories[i])}"
        for i in range(catalog.n_items)
    ]


def top(scores: np.ndarray, n: int) -> list[int]:
    """Indices of the ``n`` best positive scores, best first (ties: smaller index)."""
    idx = np.flatnonzero(scores > 0)
    idx = idx[np.lexsort((idx, -scores[idx]))]
    return [int(i) for i in idx[:n]]


class CharNgrams:
    """TF-IDF cosine over character n-grams of ``docs`` (members b and c)."""

    def __init__(self, docs: Sequence[str]) -> None:
        self.vectorizer = TfidfVectorizer(
            analyzer="char_wb", ngram_range=(3, 5), sublinear_tf=True, lowercase=True
        )
        self.matrix = self.vectorizer.fit_transform(docs)

    def scores(self, query: str) -> np.ndarray:
        q = self.vectorizer.transform([query])
        return np.asarray((self.matrix @ q.T).toarray()).ravel()


def build_pools(
    catalog: CatalogIndex,
    queries: list[tuple[str, str, str]],
    *,
    semantic: SearchRecall | None = None,
    hybrid: SearchRecall | None = None,
    judged: dict[str, set[str]] | None = None,
) -> list[dict[str, str]]:
    bm25 = Bm25Search.build(catalog)
    position = {item_id: i for i, item_id in enumerate(catalog.item_ids)}
    texts = item_texts(catalog)
    full = CharNgrams(
        [
            f"{catalog.titles[i]} {catalog.brands[i]} {' '.join(catalog.categories[i])}"
            for i in range(catalog.n_items)
        ]
    )
    meta = CharNgrams(
        [
            f"{catalog.categories[i][-1] if catalog.categories[i] else ''} {catalog.brands[i]}"
            for i in range(catalog.n_items)
        ]
    )
    titles = CharNgrams(catalog.titles)
    rows: list[dict[str, str]] = []
    for query_id, _kind, text in queries:
        members: dict[int, set[str]] = {}

        def add(items: Sequence[int], member: str, members: dict[int, set[str]] = members) -> None:
            for i in items:
                members.setdefault(int(i), set()).add(member)

        idx, _ = bm25.search(text, DEPTH)
        add(idx.tolist(), "a")
        add(top(full.scores(text), DEPTH), "b")
        meta_scores = meta.scores(text)
        # Category/brand similarity first; the title's similarity only orders items of one category.
        add(top(meta_scores + 1e-3 * titles.scores(text) * (meta_scores > 0), DEPTH), "c")
        pattern = re.compile(MANUAL[query_id], re.IGNORECASE)
        add([i for i, t in enumerate(texts) if pattern.search(t)][:MANUAL_CAP], "d")
        if semantic is not None:
            add(semantic.search(text, DEPTH)[0].tolist(), "e")
        if hybrid is not None:
            add(hybrid.search(text, DEPTH)[0].tolist(), "f")
        if judged is not None:
            add([position[i] for i in judged.get(query_id, ()) if i in position], "j")
        for i in sorted(members):
            rows.append(
                {
                    "query_id": query_id,
                    "item_id": catalog.item_ids[i],
                    "members": "".join(sorted(members[i])),
                    "title": catalog.titles[i],
                    "brand": catalog.brands[i],
                    "categories": " > ".join(catalog.categories[i]),
                }
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", type=Path, default=None)
    parser.add_argument("--dataset", default="amazon-scientific")
    parser.add_argument("--queries", type=Path, default=HERE / "queries.tsv")
    parser.add_argument("--out", type=Path, default=ROOT / "bench-results" / "search-pools")
    parser.add_argument("--bundle", type=Path, help="a bundle with text embeddings: members e and f")
    parser.add_argument("--qrels", type=Path, help="judgments to keep in the pools: member j")
    args = parser.parse_args()
    queries = read_queries(args.queries)
    missing = [q for q, _, _ in queries if q not in MANUAL]
    if missing:
        raise SystemExit(f"no MANUAL pattern for {', '.join(missing)}")
    ds = load_dataset(args.dataset, data_root=args.data_root)
    rows_by_id = {k: asdict(v) for k, v in (ds.catalog or {}).items()}
    catalog = CatalogIndex.build(ds.item_ids, rows_by_id)
    semantic = hybrid = None
    if args.bundle is not None:
        from shoprec.artifacts import load_bundle
        from shoprec.search.build import build_search
        from shoprec.search.hybrid import HybridSearch

        built = build_search(load_bundle(args.bundle), catalog)
        if not isinstance(built, HybridSearch):
            raise SystemExit(f"{args.bundle}: the bundle has no text embeddings")
        semantic, hybrid = built.semantic, built
    judged: dict[str, set[str]] | None = None
    if args.qrels is not None:
        judged = {}
        for line in args.qrels.read_text(encoding="utf-8").splitlines():
            if line.strip():
                query_id, _, item_id, _grade = line.split()
                judged.setdefault(query_id, set()).add(item_id)
    rows = build_pools(catalog, queries, semantic=semantic, hybrid=hybrid, judged=judged)
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / "pools.tsv"
    with out.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]), delimiter="\t", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    per_query = len(rows) / len(queries)
    print(
        f"{len(rows)} pooled (query, item) pairs for {len(queries)} queries "
        f"({per_query:.1f} per query) -> {out}"
    )


if __name__ == "__main__":
    main()
