"""BM25 keyword search over title, brand, categories and description (with the ``bm25s`` library).

Field weighting: one BM25 index per field, and an item's score is the weighted sum of its per-field
scores (title 3.0, brand 1.5, categories 1.0, description 0.5 by default).  Separate indices, rather
than repeating the title text inside one document, keep each field's own length normalisation and term
statistics: a word in a 10-word title is strong evidence, the same word somewhere in a 300-word
description is weak, and a long description cannot dilute a title match.  The cost is one sparse score
pass per field, which on a few thousand items is well under a millisecond.

Tokenisation is shared by documents and queries: lowercase, quantities normalised (a number and its
unit become one word, the unit in one short form: "1.75 mm" and "1.75mm" are ``1.75mm``, '3/8"' and
"3/8-Inch" are ``3/8in``, "500 mL" is ``500ml``, "22 AWG" is ``22awg``; fractions such as "1/4" stay one
word; "m" is not a unit, so "3M" stays the brand), words of two or more letters or digits, the English
stopwords of ``bm25s``.  Every word then gives two tokens: its *exact* form with a light plural
folding (a final ``s`` is dropped from words longer than three letters unless they end in ``ss``, ``us``
or ``is``: "calipers" finds "caliper", "glass" stays "glass"), and its Snowball (PyStemmer) English stem
prefixed with ``~`` ("measuring" and "measure" both give ``~measur``).  Both live in the same per-field
index, so every document is exactly twice as long and BM25's length normalisation is unchanged; the
score is ``exact + stem_weight * stem`` (0.5), so a stem match finds word forms the plural folding
misses while an exact match still ranks first.  Stems alone conflate too much ("electrical",
"electric" and "electronics" are all ``electr``; "tubing" is ``tube``) and cost keyword and attribute
queries accuracy on the dev set (docs/search.md, "Lexical channel").

Spelling (:mod:`shoprec.search.spelling`, on by default): the query's misspelled words are corrected
against the catalogue's own vocabulary ("nitrle glovs" -> "nitrile gloves", "ductape" -> "duct tape"),
and the query is searched with its original words *and* their corrections, so a word the catalogue
spells wrong too still finds those items.  :meth:`Bm25Search.correct` reports the corrected query (for a
"showing results for ..." line).

Matching is a disjunction (any query word), ranked by score; the matched set (every item with a
positive score) is what facets count.

:class:`SearchRecall` is the port the search service depends on; a semantic (embedding) search can
implement it later.
"""

from __future__ import annotations

import json
import math
import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol

import bm25s
import numpy as np
import numpy.typing as npt
import Stemmer  # type: ignore[import-not-found]  # PyStemmer ships no type information
from bm25s.stopwords import STOPWORDS_EN

from shoprec.artifacts.specs import SEARCH_INDEX_DIR, SPELLING_FILE, SearchFieldSpec, SearchIndexSpec
from shoprec.catalog import BoolArray, CatalogIndex, IntArray
from shoprec.errors import ArtifactError
from shoprec.recall.channels import top_n
from shoprec.search.spelling import Correction, SpellingCorrector

FloatArray = npt.NDArray[np.float32]

BM25 = "bm25"
DEFAULT_FIELD_WEIGHTS: Mapping[str, float] = MappingProxyType(
    {"title": 3.0, "brand": 1.5, "categories": 1.0, "description": 0.5}
)

DEFAULT_STEM_WEIGHT = 0.5
STEM_PREFIX = "~"
ANALYZER = "shoprec-bm25/1"
"""Names this module's tokenisation (words, quantities, plural folding, stems, stopwords) and the spelling
vocabulary's rules: a prebuilt index records it, and one built by another analyzer is not loaded (its
tokens may not be the ones queries are now split into). Change it with any of them."""

# Units of sizes and quantities, each spelling mapped to one short form.  "m" (metre) is left out: "3 m"
# would become the brand 3M.
_UNIT_FORMS: dict[str, tuple[str, ...]] = {
    "mm": ("mm", "millimeter", "millimeters", "millimetre", "millimetres"),
    "cm": ("cm", "centimeter", "centimeters", "centimetre", "centimetres"),
    "in": ("in", "inch", "inches", '"', "''"),
    "ft": ("ft", "foot", "feet"),
    "ml": ("ml", "milliliter", "milliliters", "millilitre", "millilitres"),
    "l": ("l", "liter", "liters", "litre", "litres"),
    "oz": ("oz", "ounce", "ounces"),
    "lb": ("lb", "lbs", "pound", "pounds"),
    "g": ("g", "gram", "grams"),
    "kg": ("kg", "kilogram", "kilograms"),
    "gal": ("gal", "gallon", "gallons"),
    "v": ("v", "volt", "volts", "vac", "vdc"),
    "w": ("w", "watt", "watts"),
    "a": ("a", "amp", "amps", "ampere", "amperes"),
    "mah": ("mah",),
    "awg": ("awg",),
    "psi": ("psi",),
    "ohm": ("ohm", "ohms"),
}
_UNIT = {form: unit for unit, forms in _UNIT_FORMS.items() for form in forms}
# A number: mixed (2-1/2), a fraction (3/8) or a decimal (1.75), not inside a word or another number.
_NUMBER = r"(?<![\w./])(\d+-\d+/\d+|\d+/\d+|\d+(?:\.\d+)?)"
_QUANTITY = re.compile(
    _NUMBER + "[ -]?(" + "|".join(sorted(map(re.escape, _UNIT), key=len, reverse=True)) + r")(?!\w)"
)
_DIGIT = re.compile(r"\d")
# A number with a fraction or decimals (and what follows it: its unit), or a word of two or more characters.
_TOKEN = re.compile(r"\d+(?:-\d+/\d+|/\d+|\.\d+)\w*|\b\w\w+\b")
STOPWORDS = frozenset(STOPWORDS_EN)
_KEEP_S = ("ss", "us", "is")
_local = threading.local()


def _stem_words(words: list[str]) -> list[str]:
    """Snowball English stems of ``words``, with this thread's stemmer (PyStemmer objects are not
    thread-safe; each keeps its own cache of stemmed words)."""
    stemmer = getattr(_local, "stemmer", None)
    if stemmer is None:
        stemmer = _local.stemmer = Stemmer.Stemmer("english")
    return list(stemmer.stemWords(words))


def words(text: str) -> list[str]:
    """The lowercased words of ``text`` (two or more letters or digits, or a quantity), stopwords
    included: what the tokens are made of, and what spelling correction works on.

    Quantities are normalised first (module docstring): "1.75 mm" and "1.75mm" are ``1.75mm``, '3/8"',
    "3/8 inch" and "3/8-Inch" are ``3/8in``, "500 mL" is ``500ml``; a fraction without a unit stays one
    word (``1/4``), so "1/4 NPT" keeps its size."""
    text = text.lower()
    if _DIGIT.search(text):
        text = _QUANTITY.sub(lambda m: m[1] + _UNIT[m[2]], text)
    return _TOKEN.findall(text)


def _fold(word: str) -> str:
    if len(word) > 3 and word.endswith("s") and not word.endswith(_KEEP_S):
        return word[:-1]
    return word


def tokenize(text: str) -> list[str]:
    """The exact tokens of ``text``: its words without stopwords, plurals folded (module docstring)."""
    return [_fold(w) for w in words(text) if w not in STOPWORDS]


def analyze(text: str) -> tuple[list[str], list[str]]:
    """The exact tokens of ``text`` (:func:`tokenize`) and its stem tokens (``~`` + Snowball stem), one of
    each per word."""
    kept = [w for w in words(text) if w not in STOPWORDS]
    if not kept:
        return [], []
    return [_fold(w) for w in kept], [STEM_PREFIX + s for s in _stem_words(kept)]


def _content_words(texts: Iterable[str]) -> list[list[str]]:
    return [[w for w in words(t) if w not in STOPWORDS] for t in texts]


def _analyze_corpus(docs: list[list[str]], *, stems: bool = True) -> tuple[list[list[int]], dict[str, int]]:
    """Every document's exact tokens followed by its stem tokens when ``stems`` (:func:`analyze`), given
    its words without stopwords, as token ids with the token -> id map (what ``bm25s`` indexes without
    converting tokens itself); each distinct word is folded and stemmed once."""
    distinct = list({w: None for doc in docs for w in doc})
    ids: dict[str, int] = {}
    exact = {w: ids.setdefault(_fold(w), len(ids)) for w in distinct}
    if not stems:
        return [[exact[w] for w in doc] for doc in docs], ids
    stem_tokens = (STEM_PREFIX + s for s in _stem_words(distinct))
    stem = {w: ids.setdefault(t, len(ids)) for w, t in zip(distinct, stem_tokens, strict=True)}
    return [[exact[w] for w in doc] + [stem[w] for w in doc] for doc in docs], ids


@dataclass(frozen=True, eq=False)
class FieldStats:
    """One indexed field: its weight, BM25 parameters and corpus statistics (the token -> id vocabulary,
    each token's document frequency, the number of documents and their mean length in tokens)."""

    name: str
    weight: float
    k1: float
    b: float
    n_docs: int
    mean_length: float
    vocabulary: Mapping[str, int]
    doc_freq: npt.NDArray[np.int64]

    def idf(self, token: str) -> float:
        """Lucene's idf, ``log(1 + (N - df + 0.5) / (df + 0.5))`` (what ``bm25s`` scores with); a token
        the corpus lacks has ``df = 0``."""
        t = self.vocabulary.get(token)
        df = int(self.doc_freq[t]) if t is not None and t < self.doc_freq.size else 0
        return math.log(1.0 + (self.n_docs - df + 0.5) / (df + 0.5))


class SearchRecall(Protocol):
    """Finds catalogue items for a text query."""

    @property
    def name(self) -> str: ...

    def match(self, query: str) -> tuple[IntArray, FloatArray]:
        """Every item matching ``query`` with its score, best first (ties: smaller index)."""
        ...

    def search(self, query: str, n: int, mask: BoolArray | None = None) -> tuple[IntArray, FloatArray]:
        """The ``n`` best matches within ``mask`` (``None``: all items), best first."""
        ...


class LexicalMatches:
    """``match`` and ``search`` of a lexical channel from its ``scores`` (every item's score for a query;
    an item matches when its score is positive)."""

    def scores(self, query: str) -> FloatArray:
        raise NotImplementedError

    def match(self, query: str) -> tuple[IntArray, FloatArray]:
        scores = self.scores(query)
        idx = np.flatnonzero(scores > 0)
        idx = idx[np.lexsort((idx, -scores[idx]))]
        return idx, scores[idx]

    def search(self, query: str, n: int, mask: BoolArray | None = None) -> tuple[IntArray, FloatArray]:
        scores = self.scores(query)
        positive = scores > 0
        idx = top_n(scores, n, positive if mask is None else positive & mask)
        return idx, scores[idx]


class Bm25Search(LexicalMatches):
    """Field-weighted BM25 over a :class:`CatalogIndex`; build it once per bundle."""

    name = BM25

    def __init__(
        self,
        n_items: int,
        fields: Mapping[str, tuple[Any, float]],
        *,
        stem_weight: float = DEFAULT_STEM_WEIGHT,
        spelling: SpellingCorrector | None = None,
        doc_lengths: Mapping[str, float] | None = None,
    ) -> None:
        """Use :meth:`build`.  ``fields`` maps a field name to (indexed ``bm25s.BM25``, weight);
        ``doc_lengths`` each field's mean document length in tokens (for :meth:`field_stats`)."""
        self.n_items = n_items
        self.stem_weight = stem_weight
        self.spelling = spelling
        self._fields = dict(fields)
        self._doc_lengths = dict(doc_lengths or {})

    @classmethod
    def build(
        cls,
        catalog: CatalogIndex,
        *,
        weights: Mapping[str, float] = DEFAULT_FIELD_WEIGHTS,
        k1: float = 1.2,
        b: float = 0.75,
        stem_weight: float = DEFAULT_STEM_WEIGHT,
        spelling: bool = True,
    ) -> Bm25Search:
        """Index the catalogue's fields named in ``weights`` (``title``, ``brand``, ``categories``,
        ``description``); fields with weight 0 are not indexed.  ``stem_weight`` weighs stem matches
        against exact ones (0: exact tokens only).  ``spelling`` builds a :class:`SpellingCorrector`
        over all four fields (whatever their weights) from the same words, about 0.15 s more on the
        4,344 Scientific items."""
        if stem_weight < 0:
            raise ValueError(f"stem_weight must be >= 0, got {stem_weight}")
        texts: dict[str, Sequence[str]] = {
            "title": catalog.titles,
            "brand": catalog.brands,
            "categories": [" ".join(path) for path in catalog.categories],
            "description": catalog.descriptions,
        }
        unknown = set(weights) - set(texts)
        if unknown:
            raise ValueError(f"unknown search fields {sorted(unknown)}; expected some of {sorted(texts)}")
        for name, weight in weights.items():
            if weight < 0:
                raise ValueError(f"field weight must be >= 0, got {name}={weight}")
        used = [name for name in texts if spelling or weights.get(name, 0) > 0]
        docs = {name: _content_words(texts[name]) for name in used}
        fields: dict[str, tuple[Any, float]] = {}
        doc_lengths: dict[str, float] = {}
        for name, weight in weights.items():
            if weight == 0:
                continue
            corpus, token_ids = _analyze_corpus(docs[name], stems=stem_weight > 0)
            if not token_ids:
                continue  # bm25s cannot index a field that is empty everywhere
            index = bm25s.BM25(k1=k1, b=b)
            index.index((corpus, token_ids), show_progress=False)
            fields[name] = (index, weight)
            doc_lengths[name] = float(np.mean([len(doc) for doc in corpus]))
        corrector = None
        if spelling:
            corrector = SpellingCorrector.from_words(
                [doc for name in texts for doc in docs[name]],
                [*docs["title"], *docs["categories"]],
                skip=STOPWORDS,
            )
        return cls(
            catalog.n_items,
            fields,
            stem_weight=stem_weight,
            spelling=corrector,
            doc_lengths=doc_lengths,
        )

    def save(self, directory: Path, *, name: str = SEARCH_INDEX_DIR) -> SearchIndexSpec:
        """Write the index into ``directory`` (a bundle's folder ``name``): each field's ``bm25s`` arrays
        and vocabulary under ``<field>/``, the spelling vocabulary as ``spelling.json``; return the spec
        that :meth:`load` reads it back with."""
        if not self._fields:
            raise ValueError("the catalogue has no text to index")
        directory.mkdir(parents=True, exist_ok=True)
        for field, (index, _) in self._fields.items():
            index.save(directory / field, show_progress=False)
        if self.spelling is not None:
            text = json.dumps(
                self.spelling.to_dict(), ensure_ascii=False, sort_keys=True, separators=(",", ":")
            )
            (directory / SPELLING_FILE).write_text(text, encoding="utf-8")
        first = next(iter(self._fields.values()))[0]
        return SearchIndexSpec(
            dir=name,
            analyzer=ANALYZER,
            n_items=self.n_items,
            k1=float(first.k1),
            b=float(first.b),
            stem_weight=self.stem_weight,
            fields={
                field: SearchFieldSpec(weight=weight, mean_length=self._doc_lengths.get(field, 1.0))
                for field, (_, weight) in self._fields.items()
            },
            spelling=self.spelling is not None,
        )

    @classmethod
    def load(cls, directory: Path, spec: SearchIndexSpec, *, mmap: bool = True) -> Bm25Search:
        """The index that :meth:`save` wrote to ``directory``, its score arrays memory-mapped (``mmap``):
        pages are read when a query first touches them, and processes on one host share them.
        ``ArtifactError`` when a file is unreadable or does not match ``spec``."""
        if spec.analyzer != ANALYZER:
            raise ArtifactError(
                f"{directory}: the index was built by analyzer {spec.analyzer!r}, not {ANALYZER!r}"
            )
        fields: dict[str, tuple[Any, float]] = {}
        try:
            for field, fspec in spec.fields.items():
                index = bm25s.BM25.load(directory / field, mmap=mmap, show_progress=False)
                n_docs = index.scores["num_docs"]
                if n_docs != spec.n_items:
                    raise ArtifactError(
                        f"{directory / field}: indexes {n_docs} items, the spec says {spec.n_items}"
                    )
                fields[field] = (index, fspec.weight)
            spelling = None
            if spec.spelling:
                obj = json.loads((directory / SPELLING_FILE).read_text(encoding="utf-8"))
                spelling = SpellingCorrector.from_dict(obj)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ArtifactError(f"{directory}: cannot load the search index: {exc}") from None
        return cls(
            spec.n_items,
            fields,
            stem_weight=spec.stem_weight,
            spelling=spelling,
            doc_lengths={field: fspec.mean_length for field, fspec in spec.fields.items()},
        )

    def field_stats(self) -> list[FieldStats]:
        """Each indexed field's weight and corpus statistics: what scoring a document outside the index
        against this index's statistics needs (:mod:`shoprec.search.live`)."""
        out = []
        for name, (index, weight) in self._fields.items():
            indptr = np.asarray(index.scores["indptr"], dtype=np.int64)
            out.append(
                FieldStats(
                    name=name,
                    weight=weight,
                    k1=float(index.k1),
                    b=float(index.b),
                    n_docs=int(index.scores["num_docs"]),
                    mean_length=self._doc_lengths.get(name, 1.0),
                    vocabulary=index.vocab_dict,
                    doc_freq=np.diff(indptr),
                )
            )
        return out

    def query_tokens(self, query: str) -> list[tuple[list[str], float]]:
        """The query's token groups with their weights, as :meth:`scores` searches them: the exact tokens
        of the original and corrected words (weight 1) and their stems (``stem_weight``)."""
        correction = self.correct(query)
        # The original words and their corrections: a corrected word that the catalogue has (rarely)
        # still finds the items that spell it so.
        exact, stems = analyze(query + " " + correction.corrected if correction.changed else query)
        groups = [(list(dict.fromkeys(exact)), 1.0)]
        if self.stem_weight > 0:
            groups.append((list(dict.fromkeys(stems)), self.stem_weight))
        return groups

    def correct(self, query: str) -> Correction:
        """``query`` with its misspelled words corrected to the catalogue's (unchanged without spelling)."""
        if self.spelling is None:
            return Correction(query, query)
        return self.spelling.correct(query, words)

    def scores(self, query: str) -> FloatArray:
        """The weighted BM25 score of every item for ``query`` (0 where no query word occurs)."""
        total = np.zeros(self.n_items, dtype=np.float32)
        groups = self.query_tokens(query)
        for index, weight in self._fields.values():
            for tokens, group_weight in groups:
                ids = index.get_tokens_ids(tokens)
                if ids:
                    scores = np.asarray(index.get_scores_from_ids(ids), dtype=np.float32)
                    total += (weight * group_weight) * scores
        return total
