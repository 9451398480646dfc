"""sqljobs benchmark suite: ``bash bench/run`` (see bench/README.md)."""
