"""The README's example runs and prints what its comments say."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


@pytest.mark.skipif(not README.exists(), reason="README.md not beside the tests")
def test_readme_example_runs():
    block = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)[0]
    env: dict = {}
    exec(compile(block, str(README), "exec"), env)
    tok, x = env["tok"], env["x"]
    # "the cat ate the homework" with <OOV> at 1: the=2, cat=3, ate=8, homework=10.
    assert tok.word_index["the"] == 2 and tok.word_index["homework"] == 10
    np.testing.assert_array_equal(x, [[0, 0, 0, 2, 3, 8, 2, 10]])
    assert x.dtype == np.int32
    assert env["pooled"].shape == (1, 16)
    np.testing.assert_array_equal(env["grad"].indices, [2, 3, 8, 10])  # 0 is masked out
    np.testing.assert_array_equal(env["uniq"], [0, 1, 5, 7, 9999])
    import fastembed as fe
    with pytest.raises(IndexError, match=r"ids\[0\] = 10000 is out of range for a table of 10000 rows"):
        fe.ops.gather(env["table"], [10_000])
