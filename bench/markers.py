"""Reads the marker files the jobs append to (see :mod:`bench.jobbody`), incrementally."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from bench.settings import MARKERS


@dataclass
class Tally:
    """What the jobs of one run reported so far."""

    started: dict[int, float] = field(default_factory=dict)
    finished: dict[int, float] = field(default_factory=dict)
    errors: int = 0
    failed_ids: set[int] = field(default_factory=set)
    messages: Counter[str] = field(default_factory=Counter)

    @property
    def done(self) -> int:
        return len(self.finished)

    def settled(self) -> int:
        """Jobs that finished or failed at least once."""
        return len(self.finished.keys() | self.failed_ids)


class MarkerReader:
    def __init__(self, run: str) -> None:
        self.run = run
        self.tally = Tally()
        self._offsets: dict[Path, int] = {}
        self._partial: dict[Path, str] = {}

    def poll(self) -> Tally:
        if not MARKERS.exists():
            return self.tally
        for path in MARKERS.glob(f"{self.run}.*"):
            offset = self._offsets.get(path, 0)
            with path.open("r") as handle:
                handle.seek(offset)
                chunk = handle.read()
                self._offsets[path] = handle.tell()
            data = self._partial.pop(path, "") + chunk
            lines = data.split("\n")
            if lines[-1]:
                self._partial[path] = lines[-1]
            for line in lines[:-1]:
                self._parse(line)
        return self.tally

    def _parse(self, line: str) -> None:
        kind, _, rest = line.partition(" ")
        if kind == "D":
            i, started, finished = rest.split(" ")
            self.tally.started.setdefault(int(i), float(started))
            self.tally.finished[int(i)] = float(finished)
        elif kind == "E":
            i, _, message = rest.partition(" ")
            self.tally.errors += 1
            self.tally.failed_ids.add(int(i))
            self.tally.messages[message.split(":")[0]] += 1


def clear_markers() -> None:
    if MARKERS.exists():
        for path in MARKERS.iterdir():
            path.unlink()
