import json

from csr_bench.core.types import SCHEMA_VERSION, ImagePart, Item, Message, RunManifest, Sample


def test_message_parts_and_prompt_hash_are_stable():
    m = Message.user(ImagePart("a.png"), "Is there a dog?")
    assert m.to_dict() == {"role": "user", "parts": [{"path": "a.png", "type": "image"}, {"text": "Is there a dog?", "type": "text"}]}
    a = Item("1", "a.png", (m,))
    b = Item("2", "a.png", (Message.user(ImagePart("a.png"), "Is there a dog?"),))
    c = Item("3", "a.png", (Message.user(ImagePart("a.png"), "Is there a cat?"),))
    assert a.prompt_hash() == b.prompt_hash() != c.prompt_hash()


def test_sample_round_trip_and_no_nan():
    s = Sample("7", "img", "yes", {"correct": 1}, [1.0, 0.0], {"parsed": "yes"}, "abc")
    assert Sample.from_dict(json.loads(s.to_json())) == s
    bad = Sample("7", "img", "yes", {"x": float("nan")}, [1.0], {})
    import pytest

    with pytest.raises(ValueError):
        bad.to_json()


def test_manifest_schema_version_first():
    m = RunManifest(suite="pope", suite_config={}, model={"name": "m"}, seed=0, stat_names=["a"], data_fingerprint="f", n_items=1)
    d = m.to_dict()
    assert next(iter(d)) == "schema_version" and d["schema_version"] == SCHEMA_VERSION
    assert RunManifest.from_dict(d) == m
