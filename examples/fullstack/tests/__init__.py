"""The full-stack example (examples/fullstack/README.md)."""
