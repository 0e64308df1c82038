"""Sparse optimizers (filled in by the layers work)."""
from __future__ import annotations
