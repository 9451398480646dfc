"""Modules the contenders' worker processes import (each configured by environment)."""
