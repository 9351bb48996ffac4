"""Tasks: a suite bound to its data (one POPE split, CHAIR on the probe images, ...), by name.

A task is what `csr-bench eval --suite` names. Real data is given with `--data` (the suite's main file or
folder) and `--image-root`; the embedded world (`--world DIR`) names its tasks itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from csr_bench.errors import UserError

# Short answers need few tokens; descriptions more. Suites may declare their own `max_new_tokens`.
DEFAULT_MAX_NEW_TOKENS = 128


@dataclass(frozen=True)
class Task:
    name: str
    suite: str
    data: Path  # the suite constructor's first argument: its main file or folder
    kwargs: dict[str, Any] = field(default_factory=dict)

    def build(self):
        from csr_bench.core.registry import suites

        cls = suites.get(self.suite)
        return cls(self.data, **self.kwargs)


def world_tasks(world: str | Path) -> dict[str, Task]:
    """The embedded world's tasks, read from the files `csr-bench world generate` wrote (official formats)."""
    w = Path(world)
    if not (w / "world.json").is_file():
        raise UserError(f"{w}: not a world folder (no world.json); create one with 'csr-bench world generate --out {w}'")
    val_images = w / "images" / "val2014"
    tasks = {
        f"pope_{split}": Task(f"pope_{split}", "pope", w / "pope" / f"coco_pope_{split}.json", {"image_root": val_images})
        for split in ("random", "popular", "adversarial")
    }
    tasks["chair_probe"] = Task("chair_probe", "chair", w / "annotations", {"prompts": w / "captions" / "probe_prompts.jsonl", "image_root": w})
    tasks["chair_val"] = Task("chair_val", "chair", w / "annotations", {"prompts": w / "captions" / "val_prompts.jsonl", "image_root": w})
    tasks["mme"] = Task("mme", "mme", w / "mme" / "eval_tool" / "Your_Results", {"tasks": "present"})
    tasks["mmbench"] = Task("mmbench", "mmbench", w / "mmbench" / "mmbench_dev_en.tsv")
    tasks["gqa"] = Task("gqa", "gqa", w / "gqa" / "testdev_balanced_questions.json")
    tasks["vizwiz"] = Task("vizwiz", "vizwiz", w / "vizwiz" / "val.json")
    # Judge-style suites, graded by the world's own judge from its ground truth (no network).
    if (w / "llava_wild" / "questions.jsonl").is_file():
        tasks["llava_wild"] = Task("llava_wild", "llava_wild", w / "llava_wild", {"judge": "world"})
    if (w / "mmvet" / "mm-vet.json").is_file():
        tasks["mmvet"] = Task("mmvet", "mmvet", w / "mmvet", {"judge": "world"})
    return tasks


def resolve_tasks(names: list[str], *, world: Path | None, data: Path | None, image_root: Path | None) -> list[Task]:
    import difflib

    from csr_bench.core.registry import suites

    if world is not None:
        known = world_tasks(world)
        out = []
        for n in names:
            if n not in known:
                close = difflib.get_close_matches(n, list(known), n=3, cutoff=0.5)
                hint = f"did you mean {', '.join(close)}?" if close else f"known: {', '.join(known)}"
                raise UserError(f"unknown world task '{n}'; {hint}")
            out.append(known[n])
        return out
    if data is None:
        raise UserError("give --world DIR, or --data FILE_OR_DIR (with one --suite) for real data")
    if len(names) != 1:
        raise UserError(f"--data names the data of one suite; got {len(names)} suites ({', '.join(names)})")
    suites.get(names[0])  # unknown names fail here with suggestions
    kwargs: dict[str, Any] = {} if image_root is None else {"image_root": image_root}
    return [Task(names[0], names[0], data, kwargs)]
