"""File helpers: JSON Lines reading with line-numbered errors, atomic writes."""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Iterator

from csr_bench.errors import UserError


def require_file(path: str | os.PathLike, what: str = "file") -> Path:
    p = Path(path)
    if not p.exists():
        raise UserError(f"{p}: {what} not found")
    if not p.is_file():
        raise UserError(f"{p}: expected a {what}, found a directory")
    return p


# A JSON Lines line longer than this is refused before it is parsed. No model answer or data record comes near it
# (16 MiB is about four million tokens); a longer line is a wrong file (a binary, a one-line dump, images inlined
# by mistake), and parsing it would cost memory in proportion.
MAX_JSONL_LINE_BYTES = 16 * 1024 * 1024


def read_jsonl(path: str | os.PathLike, what: str = "JSON Lines file") -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, object) for each non-blank line; a bad line is a UserError naming it.

    Bad lines: malformed JSON, not an object, not UTF-8, longer than MAX_JSONL_LINE_BYTES.
    """
    p = require_file(path, what)
    with p.open("rb") as f:
        lineno = 0
        while True:
            raw = f.readline(MAX_JSONL_LINE_BYTES + 1)
            if not raw:
                return
            lineno += 1
            if len(raw) > MAX_JSONL_LINE_BYTES:
                raise UserError(
                    f"{p}:{lineno}: line longer than {MAX_JSONL_LINE_BYTES >> 20} MiB; expected one JSON object per "
                    "line (is this the right file?)"
                )
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise UserError(f"{p}:{lineno}: not UTF-8 text (byte {e.start} of the line)") from None
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise UserError(f"{p}:{lineno}: malformed JSON ({e.msg} at column {e.colno})") from None
            if not isinstance(obj, dict):
                raise UserError(f"{p}:{lineno}: expected a JSON object, got {type(obj).__name__}")
            yield lineno, obj


def read_append_log(path: str | os.PathLike, *, repair: bool, hint: str = "") -> list[tuple[int, str]]:
    """(line number, line with its newline) for each non-blank line of a log that is appended to and fsynced.

    A kill while appending leaves at most one torn last line (no final newline): with `repair` it is cut off the
    file, so the next append starts on a fresh line; without, it is a UserError. Lines are split on "\n" only:
    str.splitlines() also splits on U+0085, U+2028 and U+2029, which json.dumps(ensure_ascii=False) leaves
    unescaped inside strings (a model output holding one would break its line in two). [] when there is no file.
    """
    p = Path(path)
    if not p.exists():
        return []
    data = p.read_bytes()
    if data and not data.endswith(b"\n"):
        if not repair:
            raise UserError(f"{p}: last line is incomplete (the run was interrupted); rerun to resume it")
        cut = data.rfind(b"\n") + 1
        with p.open("r+b") as f:
            f.truncate(cut)
            f.flush()
            os.fsync(f.fileno())
        data = data[:cut]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UserError(f"{p}: not UTF-8 text (byte {e.start}){hint}") from None
    lines = (part + "\n" for part in text.split("\n")[:-1])
    return [(lineno, line) for lineno, line in enumerate(lines, start=1) if line.strip()]


def read_json(path: str | os.PathLike, what: str = "JSON file") -> Any:
    p = require_file(path, what)
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise UserError(f"{p}:{e.lineno}: malformed JSON ({e.msg})") from None
    except UnicodeDecodeError as e:
        raise UserError(f"{p}: not UTF-8 text (byte {e.start})") from None


def path_inside(root: str | os.PathLike, name: str, where: str, what: str = "image") -> str:
    """`root / name` for a path that a data file names (`where`: the file and its line or key).

    The path must stay inside `root` once resolved: a name that climbs out with "..", an absolute path elsewhere,
    or a symlink that leads out of `root` is a UserError. The joined path is returned unresolved, as given.
    """
    joined = Path(root) / name
    real_root = os.path.realpath(root)
    real = os.path.realpath(joined)
    if os.path.commonpath([real_root, real]) != real_root:
        raise UserError(f"{where}: {what} {name!r} is outside the data root {root} (it resolves to {real})")
    return str(joined)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write via a temporary file in the same folder and os.replace, so readers never see half a file."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        # mkstemp creates 0600; give the file the mode a plain open() would (0666 less the umask).
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, p)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def is_atomic_write_temporary(path: str | os.PathLike, of: str | None = None) -> bool:
    """Whether `path` is the temporary file that a kill during `atomic_write_text` left behind (".NAME.XXXX.tmp"),
    of the file named `of` when given, else of any file."""
    p = Path(path)
    name = re.escape(of) if of is not None else ".+"
    # tempfile's random part is letters, digits and "_".
    return re.fullmatch(rf"\.{name}\.[A-Za-z0-9_]+\.tmp", p.name) is not None and p.is_file()


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False, allow_nan=False) + "\n")
