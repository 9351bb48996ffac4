"""Kill-and-resume helpers: start `csr-bench` commands as real processes, SIGKILL them at chosen moments, and check
that what a kill leaves on disk is never half-written.

Starting `python -m csr_bench` costs ~8 s of imports (torch, transformers, trl) on two loaded cores, which would
make dozens of kills unaffordable in CI. So commands run in children forked from one `ForkServer`: a Python
process that imported those libraries once (and computed nothing, so no thread pool exists at fork time). Each
child runs `csr_bench.cli.main()` with the command's argv, exactly as the console script does, and is an
ordinary process: SIGKILL stops it between any two instructions, mid-write included.
"""

from __future__ import annotations

import atexit
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

_SERVER = r"""
import json, os, sys, traceback
os.environ["TOKENIZERS_PARALLELISM"] = "false"
import torch
torch.set_num_threads(1)
import transformers, peft, datasets, open_clip, trl
from trl import DPOConfig, DPOTrainer
import csr_bench.cli, csr_bench.runner.evaluate, csr_bench.models.hf
import csr_bench.improvers.csr.improver, csr_bench.improvers.csr.dpo, csr_bench.improvers.csr.search
import csr_bench.improvers.csr.clip, csr_bench.world.tiny_clip
reply = os.fdopen(os.dup(1), "w")
reply.write("ready\n"); reply.flush()
for line in sys.stdin:
    cmd = json.loads(line)
    if cmd["op"] == "run":
        pid = os.fork()
        if pid == 0:
            try:
                log = os.open(cmd["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                os.dup2(log, 1); os.dup2(log, 2)
                null = os.open(os.devnull, os.O_RDONLY); os.dup2(null, 0)
                os.chdir(cmd["cwd"])
                sys.argv = ["csr-bench", *cmd["args"]]
                code = 0
                try:
                    csr_bench.cli.main()
                except SystemExit as e:
                    code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
            except BaseException:
                traceback.print_exc(); code = 1
            sys.stdout.flush(); sys.stderr.flush()
            os._exit(code)
        reply.write(json.dumps({"pid": pid}) + "\n")
    elif cmd["op"] in ("poll", "wait"):
        got, status = os.waitpid(cmd["pid"], 0 if cmd["op"] == "wait" else os.WNOHANG)
        reply.write(json.dumps({"code": os.waitstatus_to_exitcode(status) if got else None}) + "\n")
    reply.flush()
"""


class ForkServer:
    """Runs `csr-bench ARGS` in forked children of one pre-imported interpreter (see the module docstring)."""

    def __init__(self) -> None:
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
        self._proc = subprocess.Popen([sys.executable, "-c", _SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      text=True, env=env, cwd=Path(__file__).resolve().parent.parent)
        assert self._proc.stdout.readline().strip() == "ready", "the fork server did not start"

    def _ask(self, **cmd) -> dict:
        self._proc.stdin.write(json.dumps(cmd) + "\n")
        self._proc.stdin.flush()
        return json.loads(self._proc.stdout.readline())

    def start(self, args: list[str], log: Path) -> int:
        """Start `csr-bench *args` (stdout and stderr to `log`); returns the child's pid."""
        return self._ask(op="run", args=[str(a) for a in args], log=str(log), cwd=os.getcwd())["pid"]

    def poll(self, pid: int) -> int | None:
        """The child's exit code (negative: killed by that signal), or None while it runs."""
        return self._ask(op="poll", pid=pid)["code"]

    def wait(self, pid: int) -> int:
        return self._ask(op="wait", pid=pid)["code"]

    def run(self, args: list[str], log: Path) -> int:
        return self.wait(self.start(args, log))

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.stdin.close()
            self._proc.wait(timeout=30)


_shared: ForkServer | None = None


def fork_server() -> ForkServer:
    """One fork server per test session (its start is the ~8 s of imports that the children then skip)."""
    global _shared
    if _shared is None:
        _shared = ForkServer()
        atexit.register(_shared.close)
    return _shared


def run_and_kill(server: ForkServer, args: list[str], log: Path, trigger: Callable[[], bool], delay: float = 0.0,
                 timeout: float = 300.0) -> bool:
    """Start `csr-bench *args`; once `trigger()` holds, wait `delay` seconds and SIGKILL the process.

    Returns True if it was killed, False if it finished first (it must then have succeeded).
    """
    pid = server.start(args, log)
    fired = None
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            code = server.poll(pid)
            if code is not None:
                pid = None
                assert code == 0, f"csr-bench {' '.join(map(str, args))} failed ({code}):\n{log.read_text()[-3000:]}"
                return False
            if fired is None and trigger():
                fired = time.monotonic()
            if fired is not None and time.monotonic() - fired >= delay:
                os.kill(pid, signal.SIGKILL)
                code, pid = server.wait(pid), None
                if code == 0:  # it finished just before the signal
                    return False
                assert code == -signal.SIGKILL, f"exit {code}:\n{log.read_text()[-3000:]}"
                return True
            time.sleep(0.005)
        raise AssertionError(f"csr-bench {' '.join(map(str, args))} ran past {timeout} s:\n{log.read_text()[-3000:]}")
    finally:
        if pid is not None:  # the test failed or timed out while the child ran: leave no orphan behind
            os.kill(pid, signal.SIGKILL)
            server.wait(pid)


def complete_lines(path: Path) -> int:
    """Newline-terminated lines of a file (0 if absent): what an append-and-fsync writer has finished."""
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def whole_lines(path: Path) -> list[bytes]:
    """The newline-terminated lines of a file, without a torn last one (split on b"\n" only)."""
    return path.read_bytes().split(b"\n")[:-1]


def _hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def assert_nothing_half_written(root: Path) -> list[Path]:
    """What a kill may leave under `root`: every visible *.json parses, every *.safetensors opens, and every
    *.jsonl holds whole JSON lines plus at most one torn last line (no final newline). Hidden entries are the
    temporaries of atomic writes (".NAME.*.tmp", ".model.*"), which no reader opens. Returns the jsonl files
    that end in a torn line (the resume must drop it)."""
    torn = []
    for path in sorted(root.rglob("*")):
        if not path.is_file() or _hidden(path, root):
            continue
        if path.suffix == ".json":
            json.loads(path.read_text(encoding="utf-8"))
        elif path.suffix == ".jsonl":
            data = path.read_bytes()
            lines = data.split(b"\n")
            *whole, last = lines  # `last` is b"" when the file ends with a newline
            for n, line in enumerate(whole, start=1):
                assert isinstance(json.loads(line), dict), f"{path}:{n}: not a JSON object"
            if last:
                torn.append(path)
        elif path.suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(path), "np") as f:
                for key in f.keys():
                    f.get_tensor(key)
    return torn


def hidden_leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.startswith(".")]
