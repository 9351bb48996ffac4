import json
import subprocess
import sys


def test_import_is_light_and_fast():
    code = (
        "import sys, time; t = time.perf_counter(); import csr_bench; "
        "import csr_bench.core, csr_bench.suites; "
        "print(time.perf_counter() - t, 'torch' in sys.modules, 'transformers' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out[1] == "False" and out[2] == "False"
    # generous bound (shared CPU); a torch import alone takes seconds
    assert float(out[0]) < 1.0


def test_registry_unknown_name_suggests_closest():
    from csr_bench.core.registry import suites
    from csr_bench.errors import UserError
    import pytest

    with pytest.raises(UserError, match="did you mean pope"):
        suites.get("popee")


def test_entry_point_group_lists_pope():
    from importlib.metadata import entry_points

    names = {ep.name for ep in entry_points(group="csr_bench.suites")}
    assert "pope" in names


def test_registry_decorator_and_entry_points(monkeypatch):
    from csr_bench.core.registry import Registry

    reg = Registry("thing", "csr_bench.nonexistent_group", {"lazy": "json:dumps"})
    assert reg.get("lazy") is json.dumps

    @reg.register("decorated")
    class Decorated:
        pass

    assert reg.get("decorated") is Decorated
    assert reg.names() == ["decorated", "lazy"]
