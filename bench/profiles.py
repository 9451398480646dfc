"""Summarise py-spy raw profiles (``bash bench/run --profile`` writes them to
``bench/.out/profiles/``): ``python -m bench.profiles FILE...`` prints the share of samples
spent in each sqljobs / SQLAlchemy / driver function, inclusive and self."""

from __future__ import annotations

import re
import sys
from collections import Counter
from pathlib import Path

FRAME = re.compile(r"^(?P<func>.+?) \((?P<file>[^()]+?):(?P<line>\d+)\)$")


def _short(frame: str) -> str:
    match = FRAME.match(frame.strip())
    if not match:
        return frame.strip()
    path = match["file"]
    for marker in ("site-packages/", "src/", "lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{path}:{match['func']}"


def summarise(paths: list[Path], top: int = 25) -> str:
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for path in paths:
        for line in path.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if not stack or not count.isdigit():
                continue
            n = int(count)
            total += n
            frames = [_short(f) for f in stack.split(";")]
            for name in set(frames):
                inclusive[name] += n
            own[frames[-1]] += n
    if not total:
        return "no samples"
    out = [f"{total} samples from {len(paths)} file(s)", "", "inclusive (sqljobs frames):"]
    for name, n in inclusive.most_common():
        if name.startswith("sqljobs/"):
            out.append(f"  {100 * n / total:5.1f}%  {name}")
            if len(out) > top + 3:
                break
    out += ["", "self (leaf frames):"]
    out += [f"  {100 * n / total:5.1f}%  {name}" for name, n in own.most_common(top)]
    return "\n".join(out)


def main() -> int:
    print(summarise([Path(p) for p in sys.argv[1:]]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
