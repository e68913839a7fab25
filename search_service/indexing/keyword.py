"""BM25 keyword index (bm25s) over the same chunks as the dense index."""

from __future__ import annotations

import logging
import re
from functools import lru_cache
from pathlib import Path

import bm25s
import numpy as np
import numpy.typing as npt
import Stemmer

# A word as BM25 sees it: letters and digits, with an English contraction ("don't", "it's") kept whole.
WORD_RE = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_WORD_RE = WORD_RE  # the name search_service/ranking/retriever.py imports
# Function words that carry no topic; kept short so domain words like "data" or "model" stay.
STOPWORDS = frozenset([
    "a", "about", "above", "after", "again", "against", "all", "am", "an", "and", "any", "are", "as", "at", "be",
    "because", "been", "before", "being", "below", "between", "both", "but", "by", "can", "could", "did", "do",
    "does", "doing", "down", "during", "each", "few", "for", "from", "further", "had", "has", "have", "having", "he",
    "her", "here", "hers", "him", "his", "how", "i", "if", "in", "into", "is", "it", "its", "itself", "just", "me",
    "more", "most", "my", "no", "nor", "not", "of", "off", "on", "once", "only", "or", "other", "our", "ours", "out",
    "over", "own", "same", "she", "should", "so", "some", "such", "than", "that", "the", "their", "theirs", "them",
    "then", "there", "these", "they", "this", "those", "through", "to", "too", "under", "until", "up", "very", "was",
    "we", "were", "what", "when", "where", "which", "while", "who", "whom", "why", "will", "with", "would", "you",
    "your", "yours", "i'm", "we're", "it's", "don't", "can't", "us", "get", "got", "want", "need", "let", "lets", "s",
    "t",
])
_stemmer = Stemmer.Stemmer("english")
logging.getLogger("bm25s").setLevel(logging.WARNING)  # it logs every index build at DEBUG


@lru_cache(maxsize=65536)
def stem_word(word: str) -> str | None:
    """The stem of one word as BM25 sees it (None for stopwords and single letters); cached."""
    word = word.lower().replace("'", "")
    if word in STOPWORDS or len(word) <= 1:
        return None
    return str(_stemmer.stemWord(word))


def tokenize(text: str) -> list[str]:
    """Lowercase word tokens, stopwords removed, Snowball-stemmed."""
    stems = (stem_word(w) for w in WORD_RE.findall(text.lower()))
    return [stem for stem in stems if stem is not None]


class KeywordIndex:
    """BM25 scores for every chunk, for a query."""

    def __init__(self, retriever: bm25s.BM25) -> None:
        self.retriever = retriever
        self.vocab = retriever.vocab_dict

    @classmethod
    def build(cls, texts: list[str]) -> KeywordIndex:
        """BM25 over ``texts`` (a text with no word left after tokenizing is indexed as one placeholder)."""
        retriever = bm25s.BM25()
        corpus = [tokenize(t) or ["_empty_"] for t in texts]
        retriever.index(corpus, show_progress=False)
        return cls(retriever)

    def scores(self, query: str) -> npt.NDArray[np.float32]:
        """BM25 score of every document for ``query`` (zeros when no query word is known)."""
        tokens = [t for t in tokenize(query) if t in self.vocab]
        n_docs = int(self.retriever.scores["num_docs"])
        if not tokens:
            return np.zeros(n_docs, dtype=np.float32)
        return np.asarray(self.retriever.get_scores(tokens), dtype=np.float32)

    def save(self, directory: Path) -> None:
        """Write the index into ``directory`` (bm25s's own files)."""
        self.retriever.save(str(directory), show_progress=False)

    @classmethod
    def load(cls, directory: Path) -> KeywordIndex:
        """Read an index :meth:`save` wrote."""
        return cls(bm25s.BM25.load(str(directory), show_progress=False))
