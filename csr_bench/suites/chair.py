"""CHAIR (Rohrbach et al., 2018): object hallucination in image captions, scored on COCO 2014.

Bug-compatible with the official scorers:

- variant `pattern` (default; CSR's evaluation through LURE): LisaAnne/Hallucination `utils/chair.py` and its
  Python 3 port Maxlinn/CHAIR-metric-standalone `chair.py` (which adds `recall`). Words are
  `pattern.en.singularize`d (see chair_singularize.py).
- variant `nltk`: shikiw/OPERA `chair.py` (the family of lmms-eval's `coco_cap_chair`): words are lemmatised
  with NLTK's WordNet lemmatiser after NLTK's part-of-speech tagger, and `len` is added. This variant needs
  the nltk package and its tagger and WordNet data (a UserError says how to provide them); the installed
  NLTK's version is recorded in the config, since OPERA pins 3.8.1 and later lemmatisers differ in rare words.

The algorithm, quirks included. A caption is lower-cased and split by `nltk.word_tokenize` (NLTK 3.8.1, see
chair_tokenize.py), so "hot-dog", "dog/cat" or "dog." inside a sentence are single tokens and never match.
Each token is singularised or lemmatised; then, left to right, a token and the next one that form a known
two-word phrase become one word (greedy: "passenger train track" gives "train", "track"). "baby"/"adult" +
animal and "passenger" + jet/train become the second word, "bow tie" becomes "tie", "toilet seat" becomes
"toilet". If "toilet" and "seat" both remain, every "seat" is dropped. Every remaining word found in the
synonym list (chair_vocabulary.json holds it as split: each line split on ", ", so " motor bike" and " cheesecake" keep a space
and never match, nor does "iPhone") is a mention of its line's first word, its node word; duplicates count.
Ground truth of an image is the set of node words of its instance annotations (train and val) and of the
words parsed the same way from all its reference captions (train and val). A mention whose node word is not in
the ground truth is a hallucination; an image absent from the annotations has an empty ground truth, so all
its mentions are hallucinations.

Metrics are ratios of summed per-caption statistics (fractions, not percentages, as in the scorers' JSON):
CHAIR_s = captions with a hallucination / captions, CHAIR_i = hallucinated mentions / mentions,
recall = distinct ground-truth node words mentioned / ground-truth node words (summed over captions), and for
`nltk` len = words after phrase merging / captions (OPERA stores 0.01 x this and prints it x100).

Inputs: a COCO 2014 annotation folder (instances_{train,val}2014.json, captions_{train,val}2014.json) and the
model captions as JSON Lines {"image_id": int, "caption": str} (keys configurable). A JSON file holding a list
of such objects (Maxlinn's format) or {"imgToEval": {key: {...}}} (LisaAnne's and LURE's) is read too.
Item ids: the record's "question_id", else its "id" (decided by the first record; then every record needs
it), else the 0-based line (or list index, or imgToEval key). The resampling unit is the image.

Bad input stops with a UserError naming the file and the line, key or annotation: a missing annotation file,
an annotation whose category is not in the train file's categories or not in the synonym list (the official
scorers stop there with a KeyError), and an image id that is not an integer (the scorers would silently treat
it as an unknown image, every mention a hallucination).

The ground truth is built once per annotation folder and variant, kept in memory, and cached on disk as
gzipped JSON under $CSR_BENCH_CACHE_DIR (default ~/.cache/csr-bench)/chair, named by a hash of the four files'
contents, the variant and the algorithm version (and the NLTK version for `nltk`).
"""

from __future__ import annotations

import contextlib
import gc
import gzip
import hashlib
import io
import json
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterable, Protocol

from csr_bench.core.files import path_inside, read_json, read_jsonl
from csr_bench.core.registry import suite
from csr_bench.core.types import ImagePart, Item, Message
from csr_bench.errors import UserError
from csr_bench.suites.base import Metric, Scored, Suite, ratio
from csr_bench.suites.chair_singularize import singularize
from csr_bench.suites.chair_tokenize import word_tokenize

VARIANTS = ("pattern", "nltk")
ANNOTATION_FILES = (
    "instances_train2014.json",
    "instances_val2014.json",
    "captions_train2014.json",
    "captions_val2014.json",
)
# Bumped when a change here changes any ground truth, so stale disk caches are not used.
GROUND_TRUTH_VERSION = 1
TOKENIZER = "nltk-3.8.1-word_tokenize"
DEFAULT_PROMPT = "Please describe this image in detail."

# ---------------------------------------------------------------------------------------------------------
# The scorers' hard-coded vocabulary.

_VOCABULARY_FILE = Path(__file__).with_name("chair_vocabulary.json")
# Two-word phrases that are one COCO word ("stove top oven" has three words and never matches).
_COCO_DOUBLE_WORDS = (
    "motor bike", "motor cycle", "air plane", "traffic light", "street light", "traffic signal",
    "stop light", "fire hydrant", "stop sign", "parking meter", "suit case", "sports ball", "baseball bat",
    "baseball glove", "tennis racket", "wine glass", "hot dog", "cell phone", "mobile phone", "teddy bear",
    "hair drier", "potted plant", "bow tie", "laptop computer", "stove top oven", "hot dog", "teddy bear",
    "home plate", "train track",
)  # fmt: skip
# "baby bird" is a bird, not a person; "passenger jet" a jet.
_ANIMAL_WORDS = ("bird", "cat", "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "animal", "cub")
_VEHICLE_WORDS = ("jet", "train")


@dataclass(frozen=True)
class Vocabulary:
    objects: frozenset[str]  # every synonym, as split from the list
    node_word: dict[str, str]  # synonym -> first word of its line (a later line wins)
    double_words: dict[str, str]  # "w1 w2" -> the word it counts as
    first_words: frozenset[str]  # first words of the phrases
    relevant: frozenset[str]  # every word whose exact form can change a result


@lru_cache(maxsize=1)
def vocabulary() -> Vocabulary:
    objects: set[str] = set()
    node_word: dict[str, str] = {}
    for entry in json.loads(_VOCABULARY_FILE.read_text(encoding="utf-8"))["nodes"]:
        synonyms = [entry["node"], *entry["synonyms"]]
        objects.update(synonyms)
        for s in synonyms:
            node_word[s] = synonyms[0]
    double = {w: w for w in _COCO_DOUBLE_WORDS}
    for animal in _ANIMAL_WORDS:
        double[f"baby {animal}"] = animal
        double[f"adult {animal}"] = animal
    for vehicle in _VEHICLE_WORDS:
        double[f"passenger {vehicle}"] = vehicle
    double["bow tie"] = "tie"
    double["toilet seat"] = "toilet"
    double["wine glas"] = "wine glass"  # pattern singularises "glass" to "glas"
    phrase_words = {w for phrase in double for w in phrase.split(" ")}
    return Vocabulary(
        objects=frozenset(objects),
        node_word=node_word,
        double_words=double,
        first_words=frozenset(phrase.split(" ")[0] for phrase in double),
        relevant=frozenset(objects | phrase_words),
    )


@dataclass(frozen=True)
class CaptionWords:
    mentions: list[str]  # matched words, in order, duplicates kept
    node_words: list[str]  # their COCO node words
    words: list[str]  # all words after phrase merging (OPERA's len counts these)


def merge_words(words: list[str], vocab: Vocabulary) -> CaptionWords:
    """Phrase merging, the toilet/seat rule and synonym lookup, on singularised or lemmatised words."""
    merged = words
    if not vocab.first_words.isdisjoint(words):
        # Greedy left to right: a phrase can start only where no earlier phrase took the word.
        merged = []
        i, n = 0, len(words)
        for j in [j for j, w in enumerate(words) if w in vocab.first_words]:
            if j >= i and j + 1 < n:
                phrase = words[j] + " " + words[j + 1]
                if phrase in vocab.double_words:
                    merged.extend(words[i:j])
                    merged.append(vocab.double_words[phrase])
                    i = j + 2
        merged.extend(words[i:])
    kept = merged
    if "toilet" in merged and "seat" in merged:
        kept = [w for w in merged if w != "seat"]
    mentions = [w for w in kept if w in vocab.objects]
    return CaptionWords(mentions, [vocab.node_word[w] for w in mentions], merged)


# ---------------------------------------------------------------------------------------------------------
# Word normalisers of the two variants.


class Normaliser(Protocol):
    def __call__(self, tokens: list[str]) -> list[str]: ...


_singular_cache: dict[str, str] = {}


def singularize_tokens(tokens: list[str]) -> list[str]:
    out = list(map(_singular_cache.get, tokens))
    if None in out:
        for k, t in enumerate(tokens):
            if out[k] is None:
                out[k] = _singular_cache[t] = singularize(t)
    return out


class NltkTools(Protocol):
    """What the `nltk` variant needs from NLTK: its POS tagger and WordNet lemmatiser.

    A tool set may also have `tags_at(tokens, positions)`, the tags `tag(tokens)` gives at those positions.
    """

    version: str

    def tag(self, tokens: list[str]) -> list[str]: ...

    def lemmatize(self, word: str, pos: str) -> str: ...


def perceptron_tags_at(
    tagger: Any, tokens: list[str], positions: list[int], memo: dict[tuple, str] | None = None
) -> list[str]:
    """The tags NLTK's PerceptronTagger.tag(tokens) gives at `positions`, tagging only what they depend on.

    The tagger goes left to right; a word's tag depends on the words around it and on the two tags before
    it. A word of the tagger's tag dictionary always gets its dictionary tag, so the chain can start right
    after two such words (or at the start of the text), and only the stretch from there to each wanted
    position is tagged, with the tagger's own features and model. `memo` keeps the model's answers by
    what its features are made of (the word, the normalised words from two before to two after, the two
    previous tags), which repeat a lot across captions.
    """
    tagdict = tagger.tagdict
    start = tagger.START
    tags: dict[int, str] = {}

    def known(j: int) -> str | None:
        if j < 0:
            return start[-j - 1]  # -1: "-START-", -2: "-START2-"
        return tags.get(j) or tagdict.get(tokens[j]) or None

    # Normalised words, padded like the tagger's context; filled only around the words tagged here.
    context: list[str | None] = start + [None] * len(tokens) + tagger.END
    for i in sorted(set(positions)):
        if i in tags:
            continue
        k = i
        while k > 0 and not (known(k - 1) and known(k - 2)):
            k -= 1
        prev, prev2 = known(k - 1), known(k - 2)
        for j in range(k, i + 1):
            tag = tagdict.get(tokens[j])
            if not tag:
                for c in range(max(j, 2), min(j + 5, len(tokens) + 2)):
                    if context[c] is None:
                        context[c] = tagger.normalize(tokens[c - 2])
                key = (tokens[j], *context[j : j + 5], prev, prev2)  # context is offset by the two START words
                tag = memo.get(key) if memo is not None else None
                if tag is None:
                    tag, _ = tagger.model.predict(tagger._get_features(j, tokens[j], context, prev, prev2))
                    if memo is not None:
                        if len(memo) > 1_000_000:
                            memo.clear()
                        memo[key] = tag
            tags[j] = tag
            prev2, prev = prev, tag
    return [tags[i] for i in positions]


_NLTK_DATA_HELP = (
    "NLTK data cannot be downloaded at run time: put it in a folder named by the NLTK_DATA environment "
    "variable (or one of nltk.data.path): taggers/averaged_perceptron_tagger_eng/ (NLTK >= 3.9; "
    "taggers/averaged_perceptron_tagger/ before) and corpora/wordnet/ (WordNet 3.0: Debian's wordnet-base "
    "and wordnet-sense-index packages have its files in /usr/share/wordnet, to which NLTK also needs a "
    "'lexnames' file), e.g. from `python -m nltk.downloader -d DIR averaged_perceptron_tagger_eng wordnet` "
    "run on a machine with internet access"
)


class InstalledNltk:
    """NLTK's PerceptronTagger and WordNetLemmatizer, as OPERA's chair.py uses them."""

    def __init__(self) -> None:
        try:
            import nltk
            from nltk.stem import WordNetLemmatizer
            from nltk.tag.perceptron import PerceptronTagger
        except ImportError:
            raise UserError("CHAIR variant 'nltk' needs the nltk package: pip install nltk") from None
        self.version = nltk.__version__
        try:
            self._tagger = PerceptronTagger()
            from nltk.corpus import wordnet

            wordnet.ensure_loaded()
        except (LookupError, OSError) as e:
            missing = str(e).strip().splitlines()
            what = next((line.strip() for line in missing if "Resource" in line), type(e).__name__)
            raise UserError(f"CHAIR variant 'nltk': NLTK data not found ({what}). {_NLTK_DATA_HELP}") from None
        self._lemmatizer = WordNetLemmatizer()
        self._predictions: dict[tuple, str] = {}

    def tag(self, tokens: list[str]) -> list[str]:
        return [tag for _, tag in self._tagger.tag(tokens)]

    def tags_at(self, tokens: list[str], positions: list[int]) -> list[str]:
        return perceptron_tags_at(self._tagger, tokens, positions, self._predictions)

    def lemmatize(self, word: str, pos: str) -> str:
        return self._lemmatizer.lemmatize(word, pos=pos)


def _wordnet_pos(tag: str) -> str:
    # OPERA's get_wordnet_pos, with its fallback to noun.
    if tag.startswith("J"):
        return "a"
    if tag.startswith("V"):
        return "v"
    if tag.startswith("R"):
        return "r"
    return "n"


class NltkLemmatiser:
    """Tag, then lemmatise each token with the WordNet POS of its tag (OPERA).

    The tag only matters where it can change a result: a token with a single lemma over the four WordNet POS,
    or whose differing lemmas are all words that can never match or form a phrase, is lemmatised as a noun
    without tagging (its lemma may then differ from OPERA's, which changes no count), and the tagger only
    tags what the other tokens' tags depend on (`perceptron_tags_at`).
    """

    def __init__(self, tools: NltkTools, vocab: Vocabulary):
        self.tools = tools
        self.vocab = vocab
        self._lemma: dict[tuple[str, str], str] = {}
        self._info: dict[str, tuple[str, bool]] = {}

    def lemma(self, word: str, pos: str) -> str:
        key = (word, pos)
        v = self._lemma.get(key)
        if v is None:
            v = self._lemma[key] = self.tools.lemmatize(word, pos)
        return v

    def _noun_lemma_and_needs_tag(self, word: str) -> tuple[str, bool]:
        info = self._info.get(word)
        if info is None:
            lemmas = {p: self.lemma(word, p) for p in "nvar"}
            distinct = set(lemmas.values())
            info = self._info[word] = (lemmas["n"], len(distinct) > 1 and not self.vocab.relevant.isdisjoint(distinct))
        return info

    def __call__(self, tokens: list[str]) -> list[str]:
        infos = [self._noun_lemma_and_needs_tag(t) for t in tokens]
        lemmas = [noun for noun, _ in infos]
        positions = [k for k, (_, needs_tag) in enumerate(infos) if needs_tag]
        if positions:
            tags_at = getattr(self.tools, "tags_at", None)
            if tags_at is not None:
                tags = tags_at(tokens, positions)
            else:
                full = self.tools.tag(tokens)
                tags = [full[k] for k in positions]
            for k, tag in zip(positions, tags):
                lemmas[k] = self.lemma(tokens[k], _wordnet_pos(tag))
        return lemmas


# ---------------------------------------------------------------------------------------------------------
# Ground truth.


@dataclass(frozen=True)
class GroundTruth:
    objects: dict[int, frozenset[str]]  # image id -> node words
    key: str


_HASH_MEMO: dict[tuple[str, int, int], str] = {}


def file_sha256(path: Path) -> str:
    """Content hash, remembered per (path, size, mtime) within the process."""
    st = path.stat()
    memo_key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    digest = _HASH_MEMO.get(memo_key)
    if digest is None:
        h = hashlib.sha256()
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        digest = h.hexdigest()
        _HASH_MEMO[memo_key] = digest
    return digest


def annotation_paths(folder: str | os.PathLike) -> dict[str, Path]:
    root = Path(folder)
    if not root.is_dir():
        raise UserError(
            f"{root}: COCO annotation folder not found (expected a folder with {', '.join(ANNOTATION_FILES)})"
        )
    paths = {name: root / name for name in ANNOTATION_FILES}
    for name, p in paths.items():
        if not p.is_file():
            raise UserError(f"{p}: COCO 2014 annotation file missing (CHAIR needs {', '.join(ANNOTATION_FILES)})")
    return paths


def _load_coco(path: Path) -> dict[str, Any]:
    """The file's dataset, read through pycocotools' COCO API (its progress prints are kept off stdout)."""
    from pycocotools.coco import COCO

    # Millions of small lists and dicts: the cyclic garbage collector would rescan them over and over while
    # they are created, which makes loading COCO's instances files about a third slower.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            coco = COCO(str(path))
    except json.JSONDecodeError as e:
        raise UserError(f"{path}:{e.lineno}: malformed JSON ({e.msg})") from None
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: not UTF-8 text (byte {e.start})") from None
    except (AssertionError, TypeError, KeyError) as e:
        raise UserError(f"{path}: not a COCO annotation file ({type(e).__name__}: {e})") from None
    finally:
        if gc_was_enabled:
            gc.enable()
    if not isinstance(coco.dataset.get("annotations"), list):
        raise UserError(f"{path}: expected a COCO annotation file with an 'annotations' list")
    return coco.dataset


def _field(ann: Any, key: str, path: Path, index: int) -> Any:
    if not isinstance(ann, dict) or key not in ann:
        raise UserError(f"{path}: annotation {index} has no '{key}'")
    return ann[key]


def build_ground_truth(
    paths: dict[str, Path], caption_words: Callable[[str], CaptionWords], vocab: Vocabulary, key: str
) -> GroundTruth:
    objects: dict[int, set[str]] = {}
    train = _load_coco(paths["instances_train2014.json"])
    # The scorers take the category list of the train file for both splits.
    categories = train.get("categories")
    if not isinstance(categories, list):
        raise UserError(f"{paths['instances_train2014.json']}: expected a 'categories' list")
    category_name = {c["id"]: c["name"] for c in categories if isinstance(c, dict) and "id" in c and "name" in c}
    node_of_category: dict[Any, str] = {}
    for name in ("instances_val2014.json", "instances_train2014.json"):
        path = paths[name]
        dataset = train if name == "instances_train2014.json" else _load_coco(path)
        for i, ann in enumerate(dataset["annotations"]):
            cat = _field(ann, "category_id", path, i)
            node = node_of_category.get(cat)
            if node is None:
                if cat not in category_name:
                    raise UserError(
                        f"{path}: annotation {i} has category_id {cat!r}, which is not in the categories of "
                        f"{paths['instances_train2014.json'].name} (the official scorer stops with a KeyError)"
                    )
                if category_name[cat] not in vocab.node_word:
                    raise UserError(
                        f"{path}: annotation {i} has category {cat!r} '{category_name[cat]}', which is not an object "
                        "of CHAIR's COCO synonym list (the official scorer stops with a KeyError); CHAIR scores "
                        "the 80 COCO 2014 categories"
                    )
                node = node_of_category[cat] = vocab.node_word[category_name[cat]]
            objects.setdefault(_field(ann, "image_id", path, i), set()).add(node)
        del dataset
    del train
    for name in ("captions_val2014.json", "captions_train2014.json"):
        path = paths[name]
        dataset = _load_coco(path)
        for i, ann in enumerate(dataset["annotations"]):
            caption = _field(ann, "caption", path, i)
            if not isinstance(caption, str):
                raise UserError(f"{path}: annotation {i} has a caption that is not a string")
            nodes = caption_words(caption).node_words
            target = objects.setdefault(_field(ann, "image_id", path, i), set())
            if nodes:
                target.update(nodes)
        del dataset
    return GroundTruth({k: frozenset(v) for k, v in objects.items()}, key)


def default_cache_dir() -> Path:
    root = os.environ.get("CSR_BENCH_CACHE_DIR")
    return (Path(root) if root else Path.home() / ".cache" / "csr-bench") / "chair"


def _read_cache(path: Path, key: str) -> GroundTruth | None:
    try:
        with gzip.open(path, "rt", encoding="utf-8") as f:
            data = json.load(f)
        if data.get("key") != key:
            return None
        return GroundTruth({int(k): frozenset(v) for k, v in data["objects"].items()}, key)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None  # a damaged cache is rebuilt


def _write_cache(path: Path, gt: GroundTruth) -> None:
    payload = json.dumps({"key": gt.key, "objects": {str(k): sorted(v) for k, v in gt.objects.items()}})
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", compresslevel=1, mtime=0) as f:
        f.write(payload.encode())
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(buf.getvalue())
        os.replace(tmp, path)
    except OSError:
        pass  # the cache is an optimisation; an unwritable cache folder is not an error


_GROUND_TRUTH: dict[str, GroundTruth] = {}


# ---------------------------------------------------------------------------------------------------------
# The suite.


def _image_id(value: Any, where: str, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise UserError(
            f"{where}: '{key}' must be an integer COCO image id, got {json.dumps(value)} "
            "(the official scorers would silently count every object of such a caption as hallucinated)"
        )
    return value


@suite("chair")
class ChairSuite(Suite):
    name: ClassVar[str] = "chair"
    description: ClassVar[str] = "CHAIR object hallucination in captions on COCO 2014 (CHAIR_s, CHAIR_i, recall)"
    stat_names: ClassVar[tuple[str, ...]] = (
        "captions",
        "hallucinated_captions",
        "mentions",
        "hallucinated_mentions",
        "gt_objects",
        "recalled_objects",
        "words",
    )

    def __init__(
        self,
        annotations: str | Path,
        *,
        variant: str = "pattern",
        image_id_key: str = "image_id",
        caption_key: str = "caption",
        prompts: str | Path | None = None,
        image_root: str | Path | None = None,
        cache_dir: str | Path | None = None,
        disk_cache: bool = True,
        nltk_tools: NltkTools | None = None,
    ):
        if variant not in VARIANTS:
            raise UserError(f"unknown CHAIR variant '{variant}'; expected one of {', '.join(VARIANTS)}")
        self.annotations = Path(annotations)
        self.paths = annotation_paths(self.annotations)
        self.variant = variant
        self.image_id_key = image_id_key
        self.caption_key = caption_key
        self.prompts = Path(prompts) if prompts is not None else None
        # Relative image paths of the prompts file resolve against this folder (default: the file's own).
        self.image_root = Path(image_root) if image_root is not None else None
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.disk_cache = disk_cache
        self.vocab = vocabulary()
        self._nltk_tools = nltk_tools
        self._normalise: Normaliser | None = None
        self._gt: GroundTruth | None = None

    # -- configuration ------------------------------------------------------------------------------------

    def _normaliser(self) -> Normaliser:
        if self._normalise is None:
            if self.variant == "pattern":
                self._normalise = singularize_tokens
            else:
                if self._nltk_tools is None:
                    self._nltk_tools = InstalledNltk()
                self._normalise = NltkLemmatiser(self._nltk_tools, self.vocab)
        return self._normalise

    def config_dict(self) -> dict[str, Any]:
        config: dict[str, Any] = {
            "variant": self.variant,
            "image_id_key": self.image_id_key,
            "caption_key": self.caption_key,
            "tokenizer": TOKENIZER,
            "ground_truth_version": GROUND_TRUTH_VERSION,
        }
        if self.variant == "nltk":
            self._normaliser()
            config["nltk_version"] = self._nltk_tools.version  # type: ignore[union-attr]
        return config

    def data_fingerprint(self) -> str:
        h = hashlib.sha256()
        for name in ANNOTATION_FILES:
            p = self.paths[name]
            h.update(f"{name}\t{p.stat().st_size}\t{file_sha256(p)}\n".encode())
        return "sha256:" + h.hexdigest()

    def metrics(self) -> list[Metric]:
        ms = [
            Metric("CHAIR_s", ratio(1, 0), False, "captions with a hallucinated object / captions"),
            Metric("CHAIR_i", ratio(3, 2), False, "hallucinated object mentions / object mentions"),
            Metric("recall", ratio(5, 4), True, "ground-truth objects mentioned / ground-truth objects"),
        ]
        if self.variant == "nltk":
            ms.append(Metric("len", ratio(6, 0), True, "words per caption after phrase merging (not a quality score)"))
        return ms

    # -- words and ground truth ---------------------------------------------------------------------------

    def caption_words(self, caption: str) -> CaptionWords:
        tokens = word_tokenize(caption.lower())
        return merge_words(self._normaliser()(tokens), self.vocab)

    def ground_truth_key(self) -> str:
        ident = {
            "version": GROUND_TRUTH_VERSION,
            "variant": self.variant,
            "tokenizer": TOKENIZER,
            "files": {name: file_sha256(self.paths[name]) for name in ANNOTATION_FILES},
        }
        if self.variant == "nltk":
            self._normaliser()
            ident["nltk_version"] = self._nltk_tools.version  # type: ignore[union-attr]
        return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:32]

    def ground_truth(self) -> GroundTruth:
        if self._gt is not None:
            return self._gt
        key = self.ground_truth_key()
        gt = _GROUND_TRUTH.get(key)
        cache_file = self.cache_dir / f"ground-truth-{key}.json.gz"
        if gt is None and self.disk_cache:
            gt = _read_cache(cache_file, key)
        if gt is None:
            gt = build_ground_truth(self.paths, self.caption_words, self.vocab, key)
            if self.disk_cache:
                _write_cache(cache_file, gt)
        _GROUND_TRUTH[key] = gt
        self._gt = gt
        return gt

    # -- items --------------------------------------------------------------------------------------------

    def _records(self, path: Path, what: str) -> Iterable[tuple[str, str, dict[str, Any]]]:
        """(default item id, location for messages, record) of a JSONL file, a JSON list or imgToEval."""
        if path.suffix == ".json":
            data = read_json(path, what)
            if isinstance(data, dict) and isinstance(data.get("imgToEval"), dict):
                for k, obj in data["imgToEval"].items():
                    if not isinstance(obj, dict):
                        raise UserError(f"{path}: imgToEval['{k}']: expected a JSON object")
                    yield str(k), f"{path}: imgToEval['{k}']", obj
                return
            if not isinstance(data, list):
                raise UserError(f"{path}: expected a list of caption objects or {{\"imgToEval\": {{...}}}}")
            for i, obj in enumerate(data):
                if not isinstance(obj, dict):
                    raise UserError(f"{path}: entry {i}: expected a JSON object")
                yield str(i), f"{path}: entry {i}", obj
            return
        for lineno, obj in read_jsonl(path, what):
            yield str(lineno - 1), f"{path}:{lineno}", obj

    def _item_ids(self, records: Iterable[tuple[str, str, dict[str, Any]]]):
        id_key: str | None = None
        seen: dict[str, str] = {}
        for n, (default_id, where, obj) in enumerate(records):
            if n == 0:
                id_key = next((k for k in ("question_id", "id") if k in obj), None)
            if id_key is None:
                item_id = default_id
            elif id_key not in obj:
                raise UserError(f"{where}: missing key '{id_key}' (the first record has it, so every record needs it)")
            else:
                item_id = str(obj[id_key])
            if item_id in seen:
                raise UserError(f"{where}: duplicate item id '{item_id}' (first at {seen[item_id]})")
            seen[item_id] = where
            yield item_id, where, obj

    def read_predictions(self, captions_path: str | Path) -> list[tuple[Item, str]]:
        """The items and captions of a model's caption file."""
        path = Path(captions_path)
        out: list[tuple[Item, str]] = []
        for item_id, where, obj in self._item_ids(self._records(path, "captions file")):
            for key in (self.image_id_key, self.caption_key):
                if key not in obj:
                    raise UserError(f"{where}: missing key '{key}'")
            image_id = _image_id(obj[self.image_id_key], where, self.image_id_key)
            caption = obj[self.caption_key]
            if not isinstance(caption, str):
                raise UserError(f"{where}: '{self.caption_key}' must be a string, got {json.dumps(caption)}")
            item = Item(id=item_id, unit=str(image_id), messages=(), target=image_id, meta={"source": where})
            out.append((item, caption))
        return out

    def items(self) -> list[Item]:
        """Items to caption, from the prompts file: JSON Lines {"image_id", "image", "prompt"}."""
        if self.prompts is None:
            raise UserError("CHAIR needs a prompts file (JSON Lines with image_id, image, prompt) to run a model")
        base = self.image_root if self.image_root is not None else self.prompts.parent
        out = []
        for item_id, where, obj in self._item_ids(self._records(self.prompts, "prompts file")):
            for key in ("image_id", "image"):
                if key not in obj:
                    raise UserError(f"{where}: missing key '{key}'")
            image_id = _image_id(obj["image_id"], where, "image_id")
            prompt = obj.get("prompt", DEFAULT_PROMPT)
            if not isinstance(obj["image"], str) or not isinstance(prompt, str):
                raise UserError(f"{where}: 'image' and 'prompt' must be strings")
            message = Message.user(ImagePart(path_inside(base, obj["image"], where)), prompt)
            out.append(Item(id=item_id, unit=str(image_id), messages=(message,), target=image_id))
        return out

    # -- scoring ------------------------------------------------------------------------------------------

    def score(self, item: Item, output: str | None) -> Scored:
        image_id = item.target if isinstance(item.target, int) else int(item.unit)
        ground_truth = self.ground_truth().objects.get(image_id, frozenset())
        words = self.caption_words(output or "")
        hallucinated = [n for n in words.node_words if n not in ground_truth]
        recalled = {n for n in words.node_words if n in ground_truth}
        n_mentions = len(words.node_words)
        stats = [
            1.0,
            float(bool(hallucinated)),
            float(n_mentions),
            float(len(hallucinated)),
            float(len(ground_truth)),
            float(len(recalled)),
            float(len(words.words)),
        ]
        scores = {
            "CHAIR_s": int(bool(hallucinated)),
            "CHAIR_i": len(hallucinated) / n_mentions if n_mentions else 0.0,
            "recall": len(recalled) / len(ground_truth) if ground_truth else 0.0,
        }
        details = {
            "mentioned": list(words.node_words),
            "hallucinated": hallucinated,
            "ground_truth": sorted(ground_truth),
        }
        if output is None:
            details["missing_output"] = True
        return Scored(scores=scores, stats=stats, details=details)
