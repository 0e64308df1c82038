# cython: language_level=3, boundscheck=False, wraparound=False
"""Text hot loops (filled in by the text-pipeline work)."""

def _placeholder():
    return 0
