"""Spelling correction of search queries against the catalogue's own vocabulary.

The vocabulary is every word of the catalogue's titles, brands, category paths and descriptions (the
words BM25 indexes, :func:`shoprec.search.bm25.words`, stopwords left out) with its number of
occurrences, plus every pair of adjacent words that occurs at least twice in a title or a category path,
written joined ("duct tape" as ``ducttape``) so that a run-together query word can be split.

A query word is corrected when

* it is not in the vocabulary: to the closest entry (Damerau-Levenshtein with adjacent transpositions,
  ``editdistpy``), at most 1 edit for words of up to 4 letters and 2 edits for longer ones, ties going
  to the most frequent entry; entries seen only once are not candidates (a word seen once is as likely
  a typo of the catalogue as a word);
* it is in the vocabulary but rare (seen at most ``rare_count`` times, 3) and an entry one edit away is
  at least ``ratio`` (10) times more frequent: catalogue texts carry typos too ("infared" three times
  against 84 "infrared", "vaccum" twice against 482 "vacuum"), and a shopper who types such a word
  nearly always means the common one.

Words shorter than ``min_length`` (4) letters, stopwords, words with a digit (sizes, models, units) and
English words (``valid``: the word list ``symspellpy`` ships, :class:`EnglishWords`) are never corrected:
without that list, plain words that the catalogue happens to lack became its words ("flooded" ->
"loaded", "listen" -> "listed").  Every other word is kept as it is, so a query in the catalogue's words
is left alone.  Candidates are found by scanning the entries whose length is within the edit budget (no
precomputed delete index): building is one pass of counting (about 0.15 s from words already split on the
4,344 Scientific items), and a query with a misspelled word takes a few milliseconds.
"""

from __future__ import annotations

import importlib.util
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import chain, pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from editdistpy import damerau_osa

if TYPE_CHECKING:
    from shoprec.catalog import CatalogIndex

DEFAULT_MIN_LENGTH = 4
DEFAULT_MIN_COUNT = 2
DEFAULT_RARE_COUNT = 3
DEFAULT_RATIO = 10.0

_WORD = re.compile(r"\b\w\w+\b")
_DIGIT = re.compile(r"\d")
ENGLISH_DICTIONARY = "frequency_dictionary_en_82_765.txt"


class WordList(Protocol):
    def __contains__(self, word: object) -> bool: ...


class EnglishWords:
    """The 82,765 English words of the frequency dictionary that ``symspellpy`` ships (SCOWL words seen in
    Google Books), read on the first membership test: the file (1.3 MB, ``word count`` per line) is kept
    as one string and searched, which is quicker than parsing it into a set for the few lookups a query
    makes (both under a millisecond; loading it costs about 2 ms once).  Empty when ``symspellpy`` is not
    installed."""

    def __init__(self, path: Path | None = None) -> None:
        self._path = path
        self._text: str | None = None
        self._lock = threading.Lock()

    def _load(self) -> str:
        if self._text is None:
            with self._lock:
                if self._text is None:
                    path = self._path or _symspellpy_file(ENGLISH_DICTIONARY)
                    text = path.read_text(encoding="utf-8") if path is not None else ""
                    self._text = "\n" + text
        return self._text

    def __contains__(self, word: object) -> bool:
        return isinstance(word, str) and word.isalpha() and f"\n{word} " in self._load()


def _symspellpy_file(name: str) -> Path | None:
    """A data file of the ``symspellpy`` package, found without importing the package."""
    spec = importlib.util.find_spec("symspellpy")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / name
    return path if path.is_file() else None


_ENGLISH = EnglishWords()


@dataclass(frozen=True)
class Correction:
    """A query and its corrected form; ``changes`` maps each corrected word to its replacement."""

    query: str
    corrected: str
    changes: tuple[tuple[str, str], ...] = ()

    @property
    def changed(self) -> bool:
        return bool(self.changes)


def _max_edits(word: str) -> int:
    return 1 if len(word) <= 4 else 2


class SpellingCorrector:
    """Corrects query words to the catalogue's vocabulary (module docstring); build it with :meth:`build`
    or :meth:`from_words`."""

    def __init__(
        self,
        counts: Mapping[str, int],
        joined: Mapping[str, tuple[str, int]],
        *,
        min_length: int = DEFAULT_MIN_LENGTH,
        min_count: int = DEFAULT_MIN_COUNT,
        rare_count: int = DEFAULT_RARE_COUNT,
        ratio: float = DEFAULT_RATIO,
        skip: Iterable[str] = (),
        valid: WordList | None = _ENGLISH,
    ) -> None:
        """``counts``: word -> occurrences; ``joined``: a joined pair of words -> (the two words separated
        by a space, occurrences of the pair); ``skip``: words never corrected (stopwords); ``valid``:
        words that are never corrected although the catalogue lacks them (English words by default;
        ``None``: none)."""
        self.counts = dict(counts)
        self.valid = valid
        self.min_length = min_length
        self.rare_count = rare_count
        self.ratio = ratio
        self.min_count = min_count
        self._skip = frozenset(skip)
        self.joined = {
            text: (replacement, n)
            for text, (replacement, n) in joined.items()
            if n >= min_count and " " in replacement
        }
        entries = dict(self.joined)
        for word, n in self.counts.items():
            if n >= min_count and not _has_digit(word) and (word not in entries or entries[word][1] < n):
                entries[word] = (word, n)
        # Per length: the entries' texts, and in parallel their replacements and occurrences.
        self._by_length: dict[int, tuple[list[str], list[str], list[int]]] = {}
        for text, (replacement, n) in entries.items():
            texts, replacements, counts_ = self._by_length.setdefault(len(text), ([], [], []))
            texts.append(text)
            replacements.append(replacement)
            counts_.append(n)
        self.n_entries = len(entries)

    @classmethod
    def build(
        cls,
        catalog: CatalogIndex,
        *,
        valid: WordList | None = _ENGLISH,
        min_count: int = DEFAULT_MIN_COUNT,
        min_length: int = DEFAULT_MIN_LENGTH,
        rare_count: int = DEFAULT_RARE_COUNT,
        ratio: float = DEFAULT_RATIO,
    ) -> SpellingCorrector:
        """The corrector of ``catalog``'s vocabulary: the words of its titles, brands, category paths and
        descriptions, and the adjacent pairs of its titles and category paths."""
        from shoprec.search.bm25 import STOPWORDS, words

        def content(texts: Iterable[str]) -> list[list[str]]:
            return [[w for w in words(t) if w not in STOPWORDS] for t in texts]

        titles = content(catalog.titles)
        categories = content(" ".join(path) for path in catalog.categories)
        documents = [*titles, *content(catalog.brands), *categories, *content(catalog.descriptions)]
        return cls.from_words(
            documents,
            [*titles, *categories],
            skip=STOPWORDS,
            valid=valid,
            min_count=min_count,
            min_length=min_length,
            rare_count=rare_count,
            ratio=ratio,
        )

    @classmethod
    def from_words(
        cls,
        documents: Iterable[Sequence[str]],
        phrases: Iterable[Sequence[str]] = (),
        *,
        skip: Iterable[str] = (),
        valid: WordList | None = _ENGLISH,
        min_count: int = DEFAULT_MIN_COUNT,
        min_length: int = DEFAULT_MIN_LENGTH,
        rare_count: int = DEFAULT_RARE_COUNT,
        ratio: float = DEFAULT_RATIO,
    ) -> SpellingCorrector:
        """Count the words of ``documents`` (word lists of every text) and the adjacent pairs of
        ``phrases`` (word lists of titles and category paths)."""
        counts = Counter(chain.from_iterable(documents))
        numeric = {w for w in counts if _has_digit(w)}
        pairs = Counter(chain.from_iterable(pairwise(doc) for doc in phrases))
        joined: dict[str, tuple[str, int]] = {}
        for (a, b), n in pairs.items():
            if n < min_count or a in numeric or b in numeric:
                continue
            text = a + b
            if text not in joined or joined[text][1] < n:
                joined[text] = (f"{a} {b}", n)
        return cls(
            counts,
            joined,
            skip=skip,
            valid=valid,
            min_count=min_count,
            min_length=min_length,
            rare_count=rare_count,
            ratio=ratio,
        )

    def to_dict(self) -> dict[str, Any]:
        """The corrector as JSON values: its vocabulary and parameters (:meth:`from_dict` reads it back; the
        English word list is not part of it)."""
        return {
            "counts": self.counts,
            "joined": {text: list(pair) for text, pair in self.joined.items()},
            "skip": sorted(self._skip),
            "min_length": self.min_length,
            "min_count": self.min_count,
            "rare_count": self.rare_count,
            "ratio": self.ratio,
        }

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any], *, valid: WordList | None = _ENGLISH) -> SpellingCorrector:
        """The corrector that :meth:`to_dict` wrote; ``ValueError`` when ``obj`` is malformed."""
        try:
            counts = {str(w): int(n) for w, n in obj["counts"].items()}
            joined = {str(t): (str(r), int(n)) for t, (r, n) in obj["joined"].items()}
            return cls(
                counts,
                joined,
                skip=[str(w) for w in obj["skip"]],
                min_length=int(obj["min_length"]),
                min_count=int(obj["min_count"]),
                rare_count=int(obj["rare_count"]),
                ratio=float(obj["ratio"]),
                valid=valid,
            )
        except KeyError as exc:
            raise ValueError(f"spelling vocabulary lacks {exc}") from None
        except (AttributeError, TypeError, ValueError) as exc:
            raise ValueError(f"malformed spelling vocabulary: {exc}") from None

    def suggest(self, word: str) -> str | None:
        """The replacement of one lowercased word (possibly two words), or ``None`` to keep it."""
        if len(word) < self.min_length or word in self._skip or _has_digit(word):
            return None
        seen = self.counts.get(word, 0)
        if seen > self.rare_count or (self.valid is not None and word in self.valid):
            return None
        budget = 1 if seen else _max_edits(word)
        best: tuple[int, int, str] | None = None  # (edits, -occurrences, replacement)
        distance = damerau_osa.distance
        for length in range(len(word) - budget, len(word) + budget + 1):
            if length not in self._by_length:
                continue
            texts, replacements, counts = self._by_length[length]
            for i, text in enumerate(texts):
                d = distance(word, text, budget)
                if d >= 0 and replacements[i] != word:
                    key = (d, -counts[i], replacements[i])
                    if best is None or key < best:
                        best = key
        if best is None:
            return None
        if seen and -best[1] < self.ratio * seen:
            return None
        return best[2]

    def correct(self, query: str, split: Callable[[str], Sequence[str]] | None = None) -> Correction:
        """Correct the words of ``query`` (``split(query)``: its lowercased words, by default those BM25
        indexes) and write the corrected query: ``query`` with each corrected word replaced in place."""
        if split is None:
            from shoprec.search.bm25 import words

            split = words
        changes: dict[str, str] = {}
        for word in dict.fromkeys(split(query)):
            replacement = self.suggest(word)
            if replacement is not None:
                changes[word] = replacement
        if not changes:
            return Correction(query, query)
        corrected = _WORD.sub(lambda m: changes.get(m.group(0).lower(), m.group(0)), query)
        return Correction(query, corrected, tuple(changes.items()))


def _has_digit(word: str) -> bool:
    return _DIGIT.search(word) is not None
