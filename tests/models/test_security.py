"""Security rules: no checkpoint code runs without --trust-remote-code, weights load from safetensors only (a
pickle is never unpickled), and judge keys reach the judge's Authorization header and nothing else.
"""

from __future__ import annotations

import ast
import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import csr_bench
from csr_bench.errors import UserError
from csr_bench.models import TINY_LLAVA_PATH, load_adapter
from tests.judges.chat_server import ChatServer

torch.set_num_threads(1)

PACKAGE = Path(csr_bench.__file__).parent
FIXTURES = Path(__file__).resolve().parents[1] / "suites" / "fixtures"
SECRET = "sk-csr-bench-test-7f3a9c-SECRET"


def python_sources() -> list[tuple[Path, ast.Module]]:
    return [(p, ast.parse(p.read_text(encoding="utf-8"))) for p in sorted(PACKAGE.rglob("*.py"))]


def call_name(node: ast.Call) -> str:
    return ast.unparse(node.func)


# ---------------------------------------------------------------------------------------------------------
# trust_remote_code


def test_trust_remote_code_is_never_on_by_default_in_the_source():
    for path, tree in python_sources():
        for node in ast.walk(tree):
            if isinstance(node, ast.keyword) and node.arg == "trust_remote_code":
                # Passed on from a parameter, never a literal True.
                assert not (isinstance(node.value, ast.Constant) and node.value.value is True), path
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                args = node.args.args + node.args.kwonlyargs
                defaults = [None] * (len(node.args.args) - len(node.args.defaults)) + node.args.defaults + node.args.kw_defaults
                for arg, default in zip(args, defaults):
                    if arg.arg == "trust_remote_code":
                        if isinstance(default, ast.Call) and call_name(default) == "typer.Option":  # a CLI flag
                            default = default.args[0]
                        assert isinstance(default, ast.Constant) and default.value is False, (path, node.name)


def remote_code_checkpoint(folder: Path, marker: Path) -> Path:
    """The tiny LLaVA whose config asks for its own Python code, which would create `marker` when imported."""
    shutil.copytree(TINY_LLAVA_PATH, folder)
    config = json.loads((folder / "config.json").read_text())
    config["model_type"] = "remote_llava"
    config["auto_map"] = {"AutoConfig": "configuration_remote.RemoteConfig",
                          "AutoModelForImageTextToText": "modeling_remote.RemoteModel"}
    (folder / "config.json").write_text(json.dumps(config))
    touch = f"import pathlib\npathlib.Path({str(marker)!r}).write_text('code ran')\n"
    (folder / "configuration_remote.py").write_text(
        touch + "from transformers import LlavaConfig\n\nclass RemoteConfig(LlavaConfig):\n    model_type = 'remote_llava'\n")
    (folder / "modeling_remote.py").write_text(
        touch + "from transformers import LlavaForConditionalGeneration\n\nclass RemoteModel(LlavaForConditionalGeneration):\n    pass\n")
    return folder


def test_checkpoint_code_does_not_run_without_the_flag(tmp_path):
    marker = tmp_path / "marker"
    folder = remote_code_checkpoint(tmp_path / "remote", marker)
    with pytest.raises(UserError, match="--trust-remote-code") as e:
        load_adapter(str(folder))
    assert str(folder) in str(e.value) and "\n" not in str(e.value)
    assert not marker.exists()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from csr_bench.world import WorldConfig, generate_world

    return generate_world(tmp_path_factory.mktemp("world") / "w", config=WorldConfig.quick(seed=0)).root


def test_eval_flag_is_what_turns_trust_remote_code_on(world, tmp_path, monkeypatch):
    """`csr-bench eval` passes trust_remote_code=True to both from_pretrained calls only with --trust-remote-code."""
    import transformers
    from typer.testing import CliRunner

    from csr_bench.cli import app

    seen: list[tuple[str, object]] = []

    def recording(cls):
        original = cls.from_pretrained

        def from_pretrained(*args, **kwargs):
            seen.append((cls.__name__, kwargs.get("trust_remote_code", "absent")))
            return original(*args, **kwargs)

        monkeypatch.setattr(cls, "from_pretrained", from_pretrained)

    recording(transformers.AutoProcessor)
    recording(transformers.AutoModelForImageTextToText)
    base = ["eval", "--model", "tiny", "--world", str(world), "--suite", "pope_random", "--limit", "1",
            "--threads", "1", "--max-new-tokens", "2"]
    runner = CliRunner()
    for flag, expected in (([], False), (["--trust-remote-code"], True)):
        seen.clear()
        result = runner.invoke(app, [*base, "--out", str(tmp_path / f"out{len(flag)}"), *flag])
        assert result.exit_code == 0, result.output
        assert seen == [("AutoProcessor", expected), ("AutoModelForImageTextToText", expected)]


# ---------------------------------------------------------------------------------------------------------
# Weights: safetensors only


class CreatesFileWhenUnpickled:
    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def pickle_weights(path: Path, marker: Path) -> None:
    path.write_bytes(pickle.dumps({"weight": CreatesFileWhenUnpickled(marker)}))


def test_model_loading_uses_safetensors_only_in_the_source():
    """Every weight-loading call asks for safetensors; nothing calls torch.load or imports pickle."""
    weight_loaders = []
    for path, tree in python_sources():
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] + ([node.module] if isinstance(node, ast.ImportFrom) else [])
                assert not any(n and n.split(".")[0] in ("pickle", "dill", "cloudpickle", "joblib") for n in names), path
            if isinstance(node, ast.Call):
                name = call_name(node)
                assert name not in ("torch.load", "torch.jit.load", "pickle.load", "pickle.loads"), (path, name)
                if name.endswith("np.load") or name.endswith("numpy.load"):
                    assert not any(k.arg == "allow_pickle" for k in node.keywords), path
                loader = name.split(".")[-2] if name.endswith(".from_pretrained") else ""
                if loader and not loader.endswith(("Processor", "Tokenizer", "TokenizerFast", "Config")):
                    weight_loaders.append((path.name, name))
                    assert any(k.arg == "use_safetensors" and isinstance(k.value, ast.Constant) and k.value.value is True
                               for k in node.keywords), (path, name)
    assert ("hf.py", "AutoModelForImageTextToText.from_pretrained") in weight_loaders


def test_pickled_checkpoint_folder_is_refused_and_never_unpickled(tmp_path):
    marker = tmp_path / "unpickled"
    folder = tmp_path / "pickled"
    shutil.copytree(TINY_LLAVA_PATH, folder, ignore=shutil.ignore_patterns("*.safetensors"))
    pickle_weights(folder / "pytorch_model.bin", marker)
    with pytest.raises(UserError, match="not safetensors"):
        load_adapter(str(folder))
    assert not marker.exists()


def test_pickled_checkpoint_in_the_hub_cache_is_refused_and_never_unpickled(tmp_path):
    """A Hub id resolved from the local cache skips the folder check: from_pretrained(use_safetensors=True) refuses it."""
    marker = tmp_path / "unpickled"
    snapshot = tmp_path / "hub" / "models--someone--pickled-llava" / "snapshots" / ("0" * 40)
    shutil.copytree(TINY_LLAVA_PATH, snapshot, ignore=shutil.ignore_patterns("*.safetensors"))
    pickle_weights(snapshot / "pytorch_model.bin", marker)
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("0" * 40)
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1"}
    code = ("from csr_bench.models import load_adapter\n"
            "from csr_bench.errors import UserError\n"
            "try:\n    load_adapter('someone/pickled-llava')\nexcept UserError as e:\n    print('UserError:', e)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("UserError: someone/pickled-llava: weights are not safetensors"), proc.stdout + proc.stderr
    assert not marker.exists()


@pytest.mark.parametrize("layout", ["open_clip", "transformers"])
def test_pickled_clip_is_refused_and_never_unpickled(tmp_path, layout):
    from csr_bench.improvers.csr.clip import load_clip_scorer
    from csr_bench.world.tiny_clip import TINY_CLIP_PATH

    marker = tmp_path / "unpickled"
    folder = tmp_path / "clip"
    if layout == "open_clip":
        shutil.copytree(TINY_CLIP_PATH, folder, ignore=shutil.ignore_patterns("*.safetensors"))
        pickle_weights(folder / "open_clip_pytorch_model.bin", marker)
    else:
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps({"model_type": "clip"}))
        pickle_weights(folder / "pytorch_model.bin", marker)
    with pytest.raises(UserError, match="safetensors"):
        load_clip_scorer(str(folder))
    assert not marker.exists()


# ---------------------------------------------------------------------------------------------------------
# Judge keys


def files_containing(root: Path, secret: str) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]


def test_judge_key_from_the_environment_reaches_only_the_authorization_header(tmp_path):
    """`csr-bench score llava_wild` with the key in CSR_BENCH_JUDGE_KEY: every file it writes (run folder, judge
    cache, anything under its HOME) and its console output are free of the key; the server saw it each time."""
    home = tmp_path / "home"
    home.mkdir()
    with ChatServer(lambda body: "8 7\nThe second answer is shorter.") as server:
        env = {**os.environ, "HOME": str(home), "CSR_BENCH_JUDGE_URL": server.base_url, "CSR_BENCH_JUDGE_KEY": SECRET,
               "CSR_BENCH_CACHE": str(home / "cache")}
        env.pop("OPENAI_API_KEY", None)
        args = ["score", "llava_wild", "--data", str(FIXTURES / "llava_wild"), "--answers",
                str(FIXTURES / "llava_wild" / "answers.jsonl"), "--judge", "openai:gpt-test", "--out", str(tmp_path / "run")]
        proc = subprocess.run([sys.executable, "-m", "csr_bench", *args], capture_output=True, text=True, env=env,
                              cwd=tmp_path, timeout=300)
        assert proc.returncode == 0, proc.stderr
        assert len(server.auth_headers) == 6 and set(server.auth_headers) == {f"Bearer {SECRET}"}
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name == "judge_cache.jsonl" for p in written) and (tmp_path / "run" / "manifest.json").is_file()
    assert files_containing(tmp_path, SECRET) == []
    assert SECRET not in proc.stdout + proc.stderr


def test_judge_key_given_as_an_argument_is_not_written_even_when_the_judge_fails(tmp_path):
    from csr_bench.judges import OpenAIJudge
    from csr_bench.runner.scoring import offline_manifest, score_pairs, summarize
    from csr_bench.runner.store import write_run_atomically
    from csr_bench.suites.mmvet import MMVetSuite

    replies = iter(["0.7"] + [("status", 500)] * 100)
    with ChatServer(lambda body: next(replies)) as server:
        judge = OpenAIJudge("gpt-test", base_url=server.base_url, api_key=SECRET, cache_dir=tmp_path / "cache",
                            max_retries=1, backoff=0.0)
        suite = MMVetSuite(FIXTURES / "mmvet", judge=judge)
        answers = suite.read_predictions(FIXTURES / "mmvet" / "results.json")
        items = suite.items()[:2]
        samples = score_pairs(suite, [(it, answers[it.id]) for it in items])
        assert set(server.auth_headers) == {f"Bearer {SECRET}"}
    assert samples[0].scores["grade"] == 0.7 and samples[1].scores["judge_missing"] == 1  # second item: HTTP 500s
    summary = summarize(suite, samples, n_resamples=20)
    manifest = offline_manifest(suite, model_name="m", n_items=len(samples), predictions_file="results.json")
    write_run_atomically(tmp_path / "run", manifest, samples, summary)
    assert files_containing(tmp_path, SECRET) == []
    assert SECRET not in repr(judge) + json.dumps(judge.describe()) + json.dumps(judge.counters.errors)


def test_credentials_written_into_a_judge_url_are_not_recorded():
    from csr_bench.judges import OpenAIJudge
    from csr_bench.judges.openai_client import url_without_credentials

    assert url_without_credentials("https://user:s3cret@judge.example:8443/v1?x=1") == "https://judge.example:8443/v1?x=1"
    assert url_without_credentials("http://127.0.0.1:9/v1") == "http://127.0.0.1:9/v1"
    judge = OpenAIJudge("gpt-test", base_url="https://user:s3cret@judge.example/v1", api_key="k")
    assert "s3cret" not in json.dumps(judge.describe())
