"""``python -m bench``: run the benchmark suite (``bash bench/run`` sets up its venv first)."""

from __future__ import annotations

from bench.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
