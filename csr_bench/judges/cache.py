"""A persistent cache of judge replies: one JSON line per successful call, appended.

Append-safe: each entry is written with a single `os.write` on a file opened with O_APPEND, so concurrent
writers never interleave within a line, and a line cut short by a crash is skipped on reading (and fenced off by
a newline before the next append). Only successful replies are stored: a failed call is tried again next time.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

CACHE_FILE = "judge_cache.jsonl"


class JudgeCache:
    def __init__(self, folder: str | os.PathLike):
        self.path = Path(folder) / CACHE_FILE
        self._entries: dict[str, dict[str, Any]] = {}
        self._needs_newline = False
        self._load()

    def _load(self) -> None:
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        self._needs_newline = bool(data) and not data.endswith(b"\n")
        for line in data.split(b"\n"):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError):
                continue  # a line cut short by an interrupted writer
            if isinstance(entry, dict) and isinstance(entry.get("key"), str) and isinstance(entry.get("text"), str):
                self._entries[entry["key"]] = entry

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> dict[str, Any] | None:
        return self._entries.get(key)

    def put(self, key: str, request: dict[str, Any], text: str, model: str = "") -> None:
        entry = {"key": key, "request": request, "text": text, "model": model, "created": time.time()}
        line = json.dumps(entry, ensure_ascii=False) + "\n"
        data = (("\n" if self._needs_newline else "") + line).encode()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            written = os.write(fd, data)
            while written < len(data):  # only on exotic file systems
                written += os.write(fd, data[written:])
        finally:
            os.close(fd)
        self._needs_newline = False
        self._entries[key] = entry
