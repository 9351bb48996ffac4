"""`csr-bench improve --trust-remote-code`: off by default, and the only way checkpoint code gets to run."""

from __future__ import annotations

import json

import pytest
import torch

from csr_bench.errors import UserError
from tests.models.test_security import remote_code_checkpoint

torch.set_num_threads(1)


class StopAfterLoading(Exception):
    """Raised by the recording from_pretrained of the model: the test needs the loading, not the training."""


@pytest.fixture()
def prompts_file(tmp_path):
    from PIL import Image

    (tmp_path / "data").mkdir()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(tmp_path / "data" / "a.png")
    f = tmp_path / "data" / "prompts.jsonl"
    f.write_text(json.dumps({"image": "a.png", "prompt": "Describe the image."}) + "\n")
    return f


def test_improve_flag_is_what_turns_trust_remote_code_on(prompts_file, tmp_path, monkeypatch):
    """`improve` passes trust_remote_code=True to both from_pretrained calls only with --trust-remote-code."""
    import transformers
    from typer.testing import CliRunner

    from csr_bench.cli import app

    seen: list[tuple[str, object]] = []

    def recording(cls, stop: bool):
        original = cls.from_pretrained

        def from_pretrained(*args, **kwargs):
            seen.append((cls.__name__, kwargs.get("trust_remote_code", "absent")))
            if stop:
                raise StopAfterLoading
            return original(*args, **kwargs)

        monkeypatch.setattr(cls, "from_pretrained", from_pretrained)

    recording(transformers.AutoProcessor, stop=False)
    recording(transformers.AutoModelForImageTextToText, stop=True)
    runner = CliRunner()
    for flag, expected in (([], False), (["--trust-remote-code"], True)):
        seen.clear()
        result = runner.invoke(app, ["improve", "--model", "tiny", "--prompts", str(prompts_file), "--config", "tiny",
                                     "--iterations", "1", "--out", str(tmp_path / f"out{len(flag)}"), *flag])
        assert isinstance(result.exception, StopAfterLoading), result.output
        assert seen == [("AutoProcessor", expected), ("AutoModelForImageTextToText", expected)]


def test_checkpoint_code_does_not_run_without_the_flag(prompts_file, tmp_path):
    """A checkpoint that ships its own code is refused with the eval adapter's message naming the flag."""
    from typer.testing import CliRunner

    from csr_bench.cli import app
    from csr_bench.improvers.csr.improver import load_model

    marker = tmp_path / "marker"
    folder = remote_code_checkpoint(tmp_path / "remote", marker)
    with pytest.raises(UserError, match="--trust-remote-code") as e:
        load_model(str(folder), dtype="float32", device="cpu")
    assert str(folder) in str(e.value) and "\n" not in str(e.value)
    result = CliRunner().invoke(app, ["improve", "--model", str(folder), "--prompts", str(prompts_file),
                                      "--config", "tiny", "--iterations", "1", "--out", str(tmp_path / "out")])
    assert isinstance(result.exception, UserError) and "--trust-remote-code" in str(result.exception)
    assert not marker.exists()
    assert not (tmp_path / "out").exists()  # refused before any work: nothing left behind
