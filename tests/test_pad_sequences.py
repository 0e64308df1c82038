"""fe.pad_sequences against Keras 3's pad_sequences.

keras_preprocessing 1.1.2 (with the ``np.unicode_`` alias) runs the same algorithm and
matches Keras 3 everywhere except two string-dtype checks (an ``S`` dtype with a str
value; ``np.dtype(object)`` with a str value): those are fixed cases written from
Keras 3's source, as are the quirks listed in the parity notes.  The native fast path
is also checked against the module's own reference implementation.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fastembed as fe
from fastembed import sequence as fe_sequence

kp_sequence = pytest.importorskip("keras_preprocessing.sequence")
if not hasattr(np, "unicode_"):
    np.unicode_ = np.str_


def same(args, **kw):
    """fe and keras_preprocessing give the same array, or raise the same error."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref = kp_sequence.pad_sequences(*args, **kw)
    except Exception as e:  # noqa: BLE001 - mirror whatever Keras raises
        with pytest.raises(type(e)) as got:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fe.pad_sequences(*args, **kw)
        assert str(got.value) == str(e)
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = fe.pad_sequences(*args, **kw)
    assert out.dtype == ref.dtype and out.shape == ref.shape
    assert np.array_equal(out, ref, equal_nan=out.dtype.kind == "f")
    return out


ints = st.integers(-(2**40), 2**40) | st.integers(-300, 300)
seq_lists = st.lists(st.lists(ints, max_size=7), max_size=6)
kwargs_st = st.fixed_dictionaries({
    "maxlen": st.sampled_from([None, None, 1, 2, 3, 5, 9]),
    "dtype": st.sampled_from(["int32", "int64", "float32", "float64", np.int32, "int8",
                              "int16", "uint8", "bool"]),
    "padding": st.sampled_from(["pre", "post"]),
    "truncating": st.sampled_from(["pre", "post"]),
    "value": st.sampled_from([0, 0.0, -1, 0.5, 2.7, -1.7, 7]),
})


@given(seqs=seq_lists, kw=kwargs_st, form=st.sampled_from(["list", "tuple", "array"]))
def test_differential(seqs, kw, form):
    if form == "tuple":
        seqs = tuple(tuple(s) for s in seqs)
    elif form == "array":
        seqs = [np.array(s, dtype=np.int64) for s in seqs]
    same((seqs,), **kw)


@given(seqs=st.lists(st.lists(st.one_of(st.integers(-5, 5), st.floats(-1e9, 1e9),
                                        st.booleans(), st.integers(2**31 - 3, 2**31 + 3)),
                              max_size=5), min_size=1, max_size=5),
       kw=kwargs_st)
def test_fast_path_matches_reference(seqs, kw):
    kw = dict(kw)
    args = (seqs, kw.pop("maxlen"), kw.pop("dtype"), kw.pop("padding"),
            kw.pop("truncating"), kw.pop("value"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ref = fe_sequence._pad_reference(*args)
        except Exception as e:  # noqa: BLE001
            with pytest.raises(type(e)):
                fe.pad_sequences(*args)
            return
        fast = fe_sequence._pad_fast(*args)
        out = fe.pad_sequences(*args)
    for got in (out,) if fast is None else (out, fast):
        assert got.dtype == ref.dtype and np.array_equal(got, ref, equal_nan=True)


BASIC = [[1, 2, 3], [4, 5], [6]]


@pytest.mark.parametrize("kw, expected", [
    ({}, [[1, 2, 3], [0, 4, 5], [0, 0, 6]]),
    ({"padding": "post"}, [[1, 2, 3], [4, 5, 0], [6, 0, 0]]),
    ({"maxlen": 2}, [[2, 3], [4, 5], [0, 6]]),
    ({"maxlen": 2, "truncating": "post"}, [[1, 2], [4, 5], [0, 6]]),
    ({"maxlen": 2, "truncating": "post", "padding": "post"}, [[1, 2], [4, 5], [6, 0]]),
    ({"value": -1, "maxlen": 5}, [[-1, -1, 1, 2, 3], [-1, -1, -1, 4, 5], [-1, -1, -1, -1, 6]]),
    ({"maxlen": np.int64(2)}, [[2, 3], [4, 5], [0, 6]]),
])
def test_basic(kw, expected):
    out = same((BASIC,), **kw)
    assert out.dtype == np.int32 and out.tolist() == expected


def test_fast_path_is_taken():
    # the common inputs go through the native loop (and agree with the reference)
    for seqs in (BASIC, tuple(map(tuple, BASIC)), [np.array(s) for s in BASIC]):
        for dtype in ("int32", "int64", "float32", "float64"):
            fast = fe_sequence._pad_fast(seqs, 2, dtype, "pre", "post", -1)
            assert fast is not None
            ref = fe_sequence._pad_reference(seqs, 2, dtype, "pre", "post", -1)
            assert fast.dtype == ref.dtype and np.array_equal(fast, ref)


def test_values_and_casts():
    assert same((BASIC,), dtype="float32", value=0.5).tolist() == [
        [1, 2, 3], [0.5, 4, 5], [0.5, 0.5, 6]]
    for v, fill in ((0.5, 0), (1.7, 1), (-1.7, -1)):
        assert same(([[1]],), maxlen=2, value=v).tolist() == [[fill, 1]]
    assert same(([[1.9, -2.7]],)).tolist() == [[1, -2]]
    with pytest.warns(RuntimeWarning):
        out = fe.pad_sequences([[1]], maxlen=2, value=np.nan)
    assert out.tolist() == [[-2147483648, 1]]
    same(([[1]],), maxlen=2, value=None)
    with pytest.raises(OverflowError, match="out of bounds for int8"):
        fe.pad_sequences([[300]], dtype=np.int8)
    same(([[300]],), dtype=np.int8)
    same(([[2**31]],))
    same(([[2**70]],), dtype="int64")
    assert same(([[16777217]],), dtype="float32").tolist() == [[16777216.0]]
    assert same(([[1, 0, 2]],), maxlen=4, dtype=bool).tolist() == [[False, True, False, True]]


def test_empty_inputs():
    assert same(([[1, 2], []],)).tolist() == [[1, 2], [0, 0]]
    out = same(([[], []],))
    assert out.shape == (2, 0) and out.dtype == np.int32
    assert same(([[], []],), maxlen=3).tolist() == [[0, 0, 0], [0, 0, 0]]
    with pytest.raises(ValueError, match="zero-size array to reduction operation maximum"):
        fe.pad_sequences([])
    out = same(([],), maxlen=3)
    assert out.shape == (0, 3)


def test_maxlen_quirks():
    with pytest.raises(ValueError, match=r"could not broadcast input array from shape "
                                         r"\(3,\) into shape \(0,\)"):
        fe.pad_sequences(BASIC, maxlen=0)
    same((BASIC,), maxlen=0)
    assert same((BASIC,), maxlen=0, truncating="post").shape == (3, 0)
    assert same(([[], []],), maxlen=0).shape == (2, 0)
    with pytest.raises(ValueError, match="negative dimensions are not allowed"):
        fe.pad_sequences(BASIC, maxlen=-1)
    with pytest.raises(TypeError, match="'float' object cannot be interpreted as an integer"):
        fe.pad_sequences(BASIC, maxlen=2.0)


def test_bad_padding_and_truncating_are_lazy():
    with pytest.raises(ValueError, match='^Padding type "middle" not understood$'):
        fe.pad_sequences(BASIC, padding="middle")
    with pytest.raises(ValueError, match='^Truncating type "middle" not understood$'):
        fe.pad_sequences(BASIC, truncating="middle")
    assert fe.pad_sequences([[]], maxlen=2, truncating="x").tolist() == [[0, 0]]
    assert fe.pad_sequences([[], []], maxlen=1, padding="x").tolist() == [[0], [0]]
    same((BASIC,), padding="middle")
    same((BASIC,), truncating="middle")


def test_iterable_errors():
    with pytest.raises(ValueError, match="^`sequences` must be iterable.$"):
        fe.pad_sequences(iter(BASIC))
    with pytest.raises(ValueError) as e:
        fe.pad_sequences([1, 2])
    assert str(e.value) == "`sequences` must be a list of iterables. Found non-iterable: 1"
    same(([[1], 2],))


def test_strings():
    out = same(([["a", "bb"], ["c"]],), dtype=object, value="<pad>")
    assert out.dtype == object and out.tolist() == [["a", "bb"], ["<pad>", "c"]]
    assert same(([["a", "bb"], ["c"]],), dtype="<U5").tolist() == [["a", "bb"], ["0.0", "c"]]
    # dtype=str is '<U1': every string is cut to one character
    assert same(([["a", "bb"], ["c"]],), dtype=str).tolist() == [["a", "b"], ["0", "c"]]
    with pytest.raises(ValueError) as e:
        fe.pad_sequences([["a"]], value="x")
    assert str(e.value) == ("`dtype` int32 is not compatible with `value`'s type: "
                            "<class 'str'>\nYou should set `dtype=object` for variable "
                            "length strings.")
    same(([["a"]],), value="x")
    with pytest.raises(ValueError, match="invalid literal for int"):
        fe.pad_sequences([["a"]])
    for spelling in ("object", "O"):
        with pytest.raises(ValueError, match="not compatible with `value`'s type"):
            fe.pad_sequences([["a"]], dtype=spelling, value="-")
    assert same(([["a", "bb"]],), maxlen=3, dtype="S2", value=b"-").tolist() == [
        [b"-", b"a", b"bb"]]


def test_keras3_string_checks():
    # Keras 3 tests `dtype is not object`: np.dtype(object) with a str value is refused
    # (keras_preprocessing 1.1.2 accepted it).
    with pytest.raises(ValueError) as e:
        fe.pad_sequences([["a"]], dtype=np.dtype(object), value="-")
    assert str(e.value).startswith("`dtype` object is not compatible with `value`'s type")
    # ... and a bytes dtype counts as a string dtype: the str value is encoded
    # (keras_preprocessing 1.1.2 refused it).
    out = fe.pad_sequences([["a"]], maxlen=2, dtype="S2", value="-")
    assert out.dtype == np.dtype("S2") and out.tolist() == [[b"-", b"a"]]


def test_nested_samples():
    out = same(([[[1, 2], [3, 4]], [[5, 6]]],))
    assert out.shape == (2, 2, 2) and out[1].tolist() == [[0, 0], [5, 6]]
    same(([[], [[1, 2]], [[5, 6, 7]]],))
    with pytest.raises(ValueError) as e:
        fe.pad_sequences([[[1, 2]], [[1, 2, 3]]])
    assert str(e.value) == ("Shape of sample (3,) of sequence at position 1 is different "
                            "from expected shape (2,)")
    with pytest.raises(ValueError, match="inhomogeneous"):
        fe.pad_sequences([[[1], [2, 3]]])


def test_array_inputs_and_no_mutation():
    a2 = np.arange(12).reshape(3, 4)
    assert same((a2,), maxlen=3).tolist() == [[1, 2, 3], [5, 6, 7], [9, 10, 11]]
    same((a2,), maxlen=6, padding="post")
    for arr in (a2, a2.astype(np.float64) + 0.5, a2.T, (a2 > 4), np.zeros((2, 0), int)):
        for kw in ({}, {"maxlen": 2, "truncating": "post"}, {"maxlen": 5, "value": -1.5},
                   {"maxlen": 3, "dtype": "float32", "padding": "post"}):
            same((arr,), **kw)
    rows = [np.array([1, 2, 3], dtype=np.int8), np.array([], dtype=np.int64),
            np.arange(10)[::3], np.array([1.9, -2.5])]
    same((rows,), maxlen=2)
    same((rows,), maxlen=5, padding="post", dtype="float32")
    frozen = np.arange(5, dtype=np.int32)
    frozen.flags.writeable = False
    same(([frozen, frozen[:2]],), maxlen=3)
    data = [[1, 2, 3], [4]]
    fe.pad_sequences(data, maxlen=2)
    assert data == [[1, 2, 3], [4]]
    big = [list(range(i % 37)) for i in range(2000)]
    same((big,), maxlen=30)
    same((big,), maxlen=30, truncating="post", padding="post", dtype="int64", value=-3)
