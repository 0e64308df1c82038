"""Embedding layers with sparse gradients: ``Embedding``, ``EmbeddingBag``, ``SparseGradient``.

The layers hold their table as a plain C-contiguous numpy array (``layer.embeddings``)
that optimizers update in place; the lookups, pooling and gradient reductions run in
the native kernels of :mod:`fastembed.ops`.
"""
from __future__ import annotations

import contextlib
import errno
import json
import numbers
import operator
import os
import shutil
import threading

import numpy as np

from . import _bagops, ops
from ._ids import as_array, as_flag, as_ids
from ._interrupts import deferred
from ._lowp import QuantizedTable, half_dtype, is_half, quantize_rows, work_dtype

__all__ = ["SparseGradient", "Embedding", "EmbeddingBag"]

_FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
_CONFIG_FILE = "config.json"
_TABLE_FILE = "embeddings.npy"
# Sibling folders used by the atomic save: the new copy is built in `<path>.fe-new`, the
# previous copy waits in `<path>.fe-old` while the two renames happen.
_NEW_SUFFIX = ".fe-new"
_OLD_SUFFIX = ".fe-old"
_KERAS_IGNORED_KEYS = ("batch_input_shape", "input_shape", "batch_size", "build_config",
                       "quantization_config", "sparse")
_KERAS_INITIALIZERS = {"RandomUniform": "uniform", "RandomNormal": "normal",
                       "GlorotUniform": "glorot_uniform", "Zeros": "zeros"}


def _float_dtype(dtype, what="dtype"):
    half = half_dtype(dtype)  # float16, or bfloat16 (TypeError naming ml_dtypes without it)
    if half is not None:
        return half
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{what} must be float32 or float64 (or float16, bfloat16), got "
                        f"{dtype!r}") from None
    if dt not in _FLOAT_DTYPES:
        raise TypeError(f"{what} must be float32 or float64 (or float16, bfloat16), got {dt}")
    return dt


def _saved_table(table):
    """The array np.save writes: bfloat16 (unknown to numpy's file format) as its uint16
    bit patterns; config.json's dtype says how to read them back."""
    return table.view(np.uint16) if table.dtype.name == "bfloat16" else table


def _positive_int(value, name):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral) \
            or int(value) <= 0:
        raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value!r} "
                         f"(of type {type(value).__name__}).")
    return int(value)


def _seed(value):
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"`seed` must be None or a non-negative integer. Received: "
                        f"seed={value!r} (of type {type(value).__name__}).")
    if int(value) < 0:
        raise ValueError(f"`seed` must be None or a non-negative integer. Received: "
                         f"seed={value!r}.")
    return int(value)


class SparseGradient:
    """A row-sparse gradient of a ``(V, D)`` table.

    Parameters
    ----------
    indices : array_like of int, shape (K,)
        Row ids, stored as int64. They may repeat (an uncoalesced gradient); see
        :meth:`coalesce`.
    values : ndarray, shape (K, D)
        Float32 or float64 rows, one per index (the table's dtype).
    dense_shape : tuple of int
        ``(V, D)``, the shape of the table the gradient belongs to.

    Raises
    ------
    TypeError
        `indices` that are not integers (floats, bools, strings), `values` that are not
        float32 or float64, a `dense_shape` that does not hold integers.
    ValueError
        A `dense_shape` that is not two non-negative sizes, `indices` that are not 1-D,
        `values` whose shape is not ``(len(indices), dim)``, ragged lists.
    IndexError
        An index outside ``[0, V)``, naming its position.
    """

    __slots__ = ("indices", "values", "dense_shape")

    def __init__(self, indices, values, dense_shape):
        try:
            shape = tuple(operator.index(s) for s in dense_shape)
        except TypeError:
            raise TypeError(f"dense_shape must be a (rows, dim) pair of integers, got "
                            f"{dense_shape!r}") from None
        if len(shape) != 2 or shape[0] < 0 or shape[1] < 0:
            raise ValueError(f"dense_shape must be (rows, dim) with non-negative sizes, "
                             f"got {shape!r}")
        idx = as_ids(indices, name="indices")
        if idx.ndim != 1:
            raise ValueError(f"indices must be 1-D (K,), got shape {idx.shape}")
        idx = np.ascontiguousarray(idx, dtype=np.int64)
        if not isinstance(values, np.ndarray):
            values = as_array(values, "values", dtype=np.float32)
        if values.dtype.kind == "f" and not values.dtype.isnative:
            values = values.astype(values.dtype.newbyteorder("="))
        if values.dtype not in _FLOAT_DTYPES and not is_half(values.dtype):
            raise TypeError(f"values must be float32 or float64 (or float16, bfloat16), got "
                            f"dtype {values.dtype}")
        if values.shape != (idx.shape[0], shape[1]):
            raise ValueError(f"values must have shape (len(indices), dim) = "
                             f"{(idx.shape[0], shape[1])}, got {values.shape}")
        if idx.size:
            bad = np.flatnonzero((idx < 0) | (idx >= shape[0]))
            if bad.size:
                i = int(bad[0])
                raise IndexError(f"indices[{i}] = {int(idx[i])} is out of range for "
                                 f"dense_shape {shape}")
        self.indices = idx
        self.values = np.ascontiguousarray(values)
        self.dense_shape = shape

    def __getstate__(self):
        return (self.indices, self.values, self.dense_shape)

    def __setstate__(self, state):
        self.indices, self.values, self.dense_shape = state

    def __repr__(self):
        return (f"SparseGradient(rows={self.indices.shape[0]}, dense_shape={self.dense_shape}, "
                f"dtype={self.values.dtype})")

    @property
    def dtype(self):
        return self.values.dtype

    def coalesce(self):
        """Return the equivalent gradient with sorted unique indices and summed rows."""
        if is_half(self.values.dtype):  # summed in float32, rounded once
            uniq, vals = ops.coalesce(self.indices, self.values.astype(np.float32))
            return SparseGradient(uniq, vals.astype(self.values.dtype), self.dense_shape)
        uniq, vals = ops.coalesce(self.indices, self.values)
        return SparseGradient(uniq, vals, self.dense_shape)

    def is_coalesced(self):
        """True when the indices are strictly increasing (sorted and unique)."""
        return bool(np.all(self.indices[1:] > self.indices[:-1]))

    def to_dense(self):
        """Return the ``dense_shape`` array with each row's values summed in."""
        out = np.zeros(self.dense_shape, dtype=self.values.dtype)
        ops.scatter_add(out, self.indices, self.values)
        return out


def _initial_table(init, shape, dtype, seed):
    if isinstance(init, str):
        key = init.lower()
        rng = np.random.default_rng(seed)
        if key in ("uniform", "random_uniform", "randomuniform"):
            return rng.uniform(-0.05, 0.05, size=shape).astype(dtype)
        if key in ("normal", "random_normal", "randomnormal"):
            return rng.normal(0.0, 0.05, size=shape).astype(dtype)
        if key in ("glorot_uniform", "glorotuniform", "xavier_uniform"):
            limit = np.sqrt(6.0 / (shape[0] + shape[1]))
            return rng.uniform(-limit, limit, size=shape).astype(dtype)
        if key == "zeros":
            return np.zeros(shape, dtype=dtype)
        raise ValueError(f"unknown embeddings_initializer {init!r}; expected 'uniform', "
                         f"'normal', 'glorot_uniform', 'zeros', a callable or an array")
    if callable(init):
        value = np.asarray(init(shape, dtype=dtype))
    else:
        value = np.asarray(init)
    if value.shape != shape:
        raise ValueError(f"embeddings_initializer gave shape {value.shape}, expected {shape}")
    if value.dtype.kind not in "fiu":
        raise TypeError(f"embeddings_initializer gave dtype {value.dtype}, expected floats")
    return np.array(value, dtype=dtype, order="C", copy=True)


class SavedLayerNotFoundError(FileNotFoundError, ValueError):
    """:meth:`Embedding.load` of a path that does not exist.

    A ``FileNotFoundError`` (``errno`` ENOENT, ``filename`` the path); also a
    ``ValueError``, which is what a missing path raised before, so handlers written for
    either keep working.
    """

    def __init__(self, *args):
        if len(args) == 1:  # the path (unpickling passes errno, strerror, filename)
            args = (errno.ENOENT, os.strerror(errno.ENOENT), args[0])
        super().__init__(*args)

    def __str__(self):
        return f"{self.filename} holds no saved embedding layer: no such file or folder"


def _fsync_dir(path):
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _complete_copy(folder):
    # config.json is written last (after the table is on disk), so its presence marks
    # a complete copy.
    return os.path.isfile(os.path.join(folder, _CONFIG_FILE)) and \
        os.path.isfile(os.path.join(folder, _TABLE_FILE))


class Embedding:
    """Turns non-negative integer ids into dense vectors of size ``output_dim``.

    Parameters
    ----------
    input_dim : int
        Size of the vocabulary (largest id + 1).
    output_dim : int
        Size of each vector.
    embeddings_initializer : str, callable or array, default "uniform"
        ``"uniform"`` (U(-0.05, 0.05), as Keras), ``"normal"`` (N(0, 0.05)),
        ``"glorot_uniform"``, ``"zeros"``, a callable ``f(shape, dtype=...)`` or an array
        of shape ``(input_dim, output_dim)``.
    mask_zero : bool, default False
        ``compute_mask`` returns ``ids != 0``.
    input_length : int, optional
        When set, ``ids.shape[-1]`` must equal it.
    weights : ndarray or [ndarray], optional
        Initial table (copied; overrides the initializer).
    trainable : bool, default True
        Optimizers leave a non-trainable layer untouched.
    dtype : {"float32", "float64", "float16", "bfloat16"}
        A half table (bfloat16 needs ``ml_dtypes``) halves the memory; lookups return
        its dtype, bags float32 (accumulated in float32); gradients are summed in float32
        and rounded once to the table's dtype; optimizers keep float32 state and round
        each updated row to nearest, ties to even. Saved as ``embeddings.npy`` (bfloat16
        as its uint16 bit patterns, ``config.json`` naming the dtype).
    seed : int, optional
        Seed of the random initializers.
    name : str, optional

    Notes
    -----
    :meth:`backward` without ``ids=`` uses the ids of the most recent call of the layer
    *in the calling thread*: threads that share a layer each get the gradient of their
    own call.  Calling the layer again (for evaluation, say) replaces them, so a layer
    used on several inputs before one backward pass (a shared embedding) passes each
    call's ids: ``backward(grad, ids=...)``.  A copy or pickle of the layer takes the
    ids of the copying thread's last call along.
    """

    _counter = 0
    _kind = "embedding"

    def __init__(self, input_dim, output_dim, embeddings_initializer="uniform",
                 mask_zero=False, input_length=None, weights=None, trainable=True,
                 dtype="float32", seed=None, name=None, **kwargs):
        # Keras config keys that carry nothing here (always None in our configs).
        for key in ("embeddings_regularizer", "activity_regularizer", "embeddings_constraint"):
            if kwargs.pop(key, None) is not None:
                raise ValueError(f"{key} is not supported by fastembed")
        if kwargs:
            raise TypeError(f"unexpected keyword arguments: {sorted(kwargs)}")
        self.input_dim = _positive_int(input_dim, "input_dim")
        self.output_dim = _positive_int(output_dim, "output_dim")
        if input_length is not None:
            input_length = _positive_int(input_length, "input_length")
        self.input_length = input_length
        self.mask_zero = as_flag(mask_zero, "mask_zero")
        self.trainable = as_flag(trainable, "trainable")
        self.dtype = _float_dtype(dtype)
        self.seed = _seed(seed)
        self._calls = threading.local()
        if name is None:
            Embedding._counter += 1
            name = f"{self._kind}_{Embedding._counter}"
        self.name = str(name)
        self.embeddings_initializer = (embeddings_initializer
                                       if isinstance(embeddings_initializer, str) else "custom")
        shape = (self.input_dim, self.output_dim)
        if weights is not None:
            self.embeddings = np.zeros(shape, dtype=self.dtype)
            # Keras: a one-element list holds the matrix; anything else is the matrix.
            one = isinstance(weights, (list, tuple)) and len(weights) == 1
            self.set_weights(list(weights) if one else [weights])
        else:
            init = embeddings_initializer
            if isinstance(init, str) and init == "custom":
                init = "zeros"  # from a config: the table comes from elsewhere (weights, load)
            self.embeddings = _initial_table(init, shape, self.dtype, self.seed)

    # -- the last call, per thread ----------------------------------------------------
    # What backward() needs from the forward call: (ids,) for an Embedding, (ids, offsets,
    # per_sample_weights, argmax) for an EmbeddingBag.  Kept per thread, so that threads
    # sharing a layer never pair a gradient with another thread's ids; stored as one
    # tuple, so that a call is recorded whole or not at all.
    def _record(self, call):
        self._calls.last = call

    def _last_call(self):
        return getattr(self._calls, "last", None)

    @property
    def _last_ids(self):
        """The ids of this thread's most recent call (None before the first)."""
        call = self._last_call()
        return None if call is None else call[0]

    def __getstate__(self):
        state = dict(self.__dict__)
        state.pop("_calls", None)
        state["_last_call"] = self._last_call()
        return state

    def __setstate__(self, state):
        state = dict(state)
        call = state.pop("_last_call", None)
        # Pickles of earlier versions kept the last call in plain attributes.
        legacy_ids, legacy_bag = state.pop("_last_ids", None), state.pop("_last", None)
        if call is None:
            call = legacy_bag if legacy_bag is not None else (
                (legacy_ids,) if legacy_ids is not None else None)
        calls = threading.local()
        if call is not None:
            calls.last = call
        state["_calls"] = calls
        self.__dict__.update(state)

    # -- weights -------------------------------------------------------------------
    def get_weights(self):
        """Return ``[copy of the table]`` (a quantized layer's dequantized table)."""
        if isinstance(self.embeddings, QuantizedTable):
            return [self.embeddings.dequantize()]
        return [np.array(self.embeddings, copy=True)]

    def set_weights(self, weights):
        """Copy ``weights[0]`` into the table (shape checked, dtype and order converted)."""
        if not isinstance(weights, (list, tuple)) or len(weights) != 1:
            raise ValueError(f"set_weights expects a list of one array [W], got "
                             f"{type(weights).__name__} of length "
                             f"{len(weights) if hasattr(weights, '__len__') else '?'}")
        w = as_array(weights[0], "weights[0]")
        if w.shape != self.embeddings.shape:
            raise ValueError(f"Layer {self.name} weight shape {self.embeddings.shape} is not "
                             f"compatible with provided weight shape {w.shape}.")
        if w.dtype.kind not in "fiu" and not is_half(w.dtype):
            raise TypeError(f"weights must be numbers, got dtype {w.dtype}")
        if isinstance(self.embeddings, QuantizedTable):
            raise ValueError(f"{self.name} is quantized (frozen, read-only); set the weights "
                             f"of the float layer and quantize it again")
        if not self.embeddings.flags.writeable:
            raise ValueError(f"the table of {self.name} is read-only (memory-mapped with "
                             f"mode 'r'); it cannot be updated")
        np.copyto(self.embeddings, w, casting="unsafe")

    @property
    def weights(self):
        return [self.embeddings]

    # -- forward / backward --------------------------------------------------------
    def _ids(self, ids):
        arr = as_ids(ids, allow_float=True)
        if isinstance(ids, np.ndarray) and np.may_share_memory(arr, ids):
            arr = arr.copy()  # kept for backward: the caller may reuse its buffer
        return arr

    def _check_length(self, arr):
        if self.input_length is not None and (arr.ndim == 0 or arr.shape[-1] != self.input_length):
            raise ValueError(f'"input_length" is {self.input_length}, but received input has '
                             f"shape {arr.shape}")

    def __call__(self, ids):
        """Look up ``ids`` (any integer array-like) -> ``ids.shape + (output_dim,)``."""
        arr = self._ids(ids)
        self._check_length(arr)
        out = ops.gather(self.embeddings, arr)
        self._record((arr,))
        return out

    call = __call__

    def compute_mask(self, ids, mask=None):
        """``ids != 0`` when ``mask_zero``, else None."""
        if not self.mask_zero:
            return None
        return as_ids(ids, allow_float=True) != 0

    def compute_output_shape(self, input_shape):
        return tuple(input_shape) + (self.output_dim,)

    def backward(self, grad_output, ids=None):
        """Gradient of the table for the last call in this thread (or for `ids`).

        Parameters
        ----------
        grad_output : array_like, shape ids.shape + (output_dim,)
        ids : array_like, optional
            Defaults to the ids of the most recent call of the layer in the calling
            thread.  Pass them when the layer was called on several inputs before this
            backward pass (each call's gradient needs that call's ids).

        Returns
        -------
        SparseGradient
            Sorted unique indices and, per index, the sum of its gradient rows.
        """
        if ids is None:
            call = self._last_call()
            if call is None:
                raise ValueError(f"backward() needs the ids: call the layer first or pass "
                                 f"ids= (the ids of the last call are kept per thread, and "
                                 f"this thread has not called {self.name!r})")
            arr = call[0]
        else:
            arr = as_ids(ids, allow_float=True)
            if arr.size:
                flat = arr.reshape(-1)
                bad = np.flatnonzero((flat < 0) | (flat >= self.input_dim))
                if bad.size:
                    i = int(bad[0])
                    pos = ("[" + ", ".join(str(int(j)) for j in np.unravel_index(i, arr.shape))
                           + "]") if arr.ndim else ""
                    raise IndexError(f"ids{pos} = {int(flat[i])} is out of range for a table "
                                     f"of {self.input_dim} rows")
        grad = self._grad_array(grad_output, arr.shape + (self.output_dim,),
                                None if ids is not None else
                                "pass ids= for the gradient of another call")
        uniq, vals = ops.coalesce(arr, grad)
        return SparseGradient(uniq, self._grad_values(vals), self.embeddings.shape)

    def _grad_values(self, vals):
        # Gradients are summed in float32 and, for a half table, rounded once to its dtype
        # (SparseGradient values are in the table's dtype).
        dt = self.embeddings.dtype
        return vals.astype(dt) if is_half(dt) else vals

    def _grad_array(self, grad_output, shape, last_call_hint=None):
        g = as_array(grad_output, "grad_output")
        if is_half(g.dtype):
            g = g.astype(np.float32)
        if g.dtype.kind not in "fiu":
            raise TypeError(f"grad_output must be floats, got dtype {g.dtype}")
        if g.shape != shape:
            # A gradient meant for an earlier call (the layer was called again since).
            where = (f" (the output of this thread's last call of {self.name!r})"
                     if last_call_hint else "")
            fix = f"; {last_call_hint}" if last_call_hint else ""
            raise ValueError(f"grad_output must have shape {shape}{where}, got "
                             f"{g.shape}{fix}")
        return np.ascontiguousarray(g, dtype=work_dtype(self.embeddings.dtype))

    # -- config / persistence ------------------------------------------------------
    def get_config(self):
        """Keras-style config (no weights; ``input_length`` kept)."""
        return {
            "name": self.name,
            "trainable": self.trainable,
            "dtype": str(self.dtype),
            "input_dim": self.input_dim,
            "output_dim": self.output_dim,
            "embeddings_initializer": self.embeddings_initializer,
            "embeddings_regularizer": None,
            "activity_regularizer": None,
            "embeddings_constraint": None,
            "mask_zero": self.mask_zero,
            "input_length": self.input_length,
            "seed": self.seed if isinstance(self.seed, (int, type(None))) else None,
        }

    @classmethod
    def from_config(cls, config):
        """Build a layer from ``get_config()`` output (with a freshly initialized table).

        Keras configs are read too: base-layer keys that carry no meaning here
        (``batch_input_shape``, ``build_config``...) are dropped, a serialized dtype policy
        or initializer dict is reduced to its name.
        """
        if not isinstance(config, dict):
            raise TypeError(f"from_config takes the dict of get_config(), got "
                            f"{type(config).__name__}")
        cfg = dict(config)
        for key in _KERAS_IGNORED_KEYS:
            cfg.pop(key, None)
        dtype = cfg.get("dtype")
        if isinstance(dtype, dict):  # Keras 3 DTypePolicy
            cfg["dtype"] = (dtype.get("config") or {}).get("name", "float32")
        init = cfg.get("embeddings_initializer")
        if isinstance(init, dict):  # a serialized Keras initializer
            name = init.get("class_name", "")
            cfg["embeddings_initializer"] = _KERAS_INITIALIZERS.get(name, name)
            seed = (init.get("config") or {}).get("seed")
            if cfg.get("seed") is None and isinstance(seed, int):
                cfg["seed"] = seed
        return cls(**cfg)

    def save(self, path):
        """Write ``path/`` with ``config.json`` and ``embeddings.npy``, atomically.

        The new copy is written and fsynced in ``<path>.fe-new`` and then swapped in with
        two renames (the old copy waits in ``<path>.fe-old``), so a crash at any moment
        leaves a complete old or new copy that :meth:`load` reads.
        """
        if isinstance(self.embeddings, QuantizedTable):
            raise ValueError(f"{self.name} is quantized: save its table with "
                             f"layer.embeddings.save(path) and read it back with "
                             f"fe.QuantizedTable.load(path, mmap_mode='r')")
        path = os.fspath(path).rstrip(os.sep) or os.sep
        new, old = path + _NEW_SUFFIX, path + _OLD_SUFFIX
        if os.path.exists(path) and not os.path.isdir(path):
            raise ValueError(f"{path} exists and is not a folder")
        if os.path.isdir(path):
            # The swap replaces the whole folder: never take a user's other files with it.
            others = sorted(set(os.listdir(path)) - {_CONFIG_FILE, _TABLE_FILE,
                                                     _CONFIG_FILE + ".tmp"})
            if others:
                raise ValueError(f"{path} holds other files than a saved layer ({others[:3]}"
                                 f"{' ...' if len(others) > 3 else ''}); save into a new or "
                                 f"empty folder")
        parent = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(path):
            # A crash between the two renames of an earlier save: put its best complete
            # copy back at `path` first, so that it stays the old copy of this save.
            for cand in (new, old):
                if os.path.isdir(cand) and _complete_copy(cand):
                    os.rename(cand, path)
                    _fsync_dir(parent)
                    break
        if os.path.exists(new):
            shutil.rmtree(new)
        cfg = self.get_config()
        cfg["class_name"] = type(self).__name__
        with contextlib.ExitStack() as held:
            try:
                os.makedirs(new)
                table_path = os.path.join(new, _TABLE_FILE)
                with open(table_path, "wb") as f:
                    np.save(f, _saved_table(np.ascontiguousarray(self.embeddings)),
                            allow_pickle=False)
                    f.flush()
                    os.fsync(f.fileno())
                tmp_cfg = os.path.join(new, _CONFIG_FILE + ".tmp")
                with open(tmp_cfg, "w", encoding="utf-8") as f:
                    json.dump(cfg, f, indent=2, sort_keys=True)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp_cfg, os.path.join(new, _CONFIG_FILE))
                _fsync_dir(new)
                # From here on Ctrl-C is held back until the swap, the remap of a table
                # that maps the replaced file and the removal of the old copy are done.
                held.enter_context(deferred())
            except BaseException:
                # Ctrl-C or a full disk while writing: the old copy is in place; do not
                # leave a half-written new one behind.
                shutil.rmtree(new, ignore_errors=True)
                raise
            self._swap_in(path, new, old, parent)

    def _swap_in(self, path, new, old, parent):
        if os.path.isdir(path):
            if os.path.exists(old):
                shutil.rmtree(old)
            os.rename(path, old)
            _fsync_dir(parent)
        os.rename(new, path)
        _fsync_dir(parent)
        emb = self.embeddings
        if isinstance(emb, np.memmap) and emb.filename and \
                os.path.abspath(emb.filename) == os.path.abspath(os.path.join(path, _TABLE_FILE)):
            # The table maps the file just replaced: map the new one, so that "r+" updates
            # keep going to the file at `path`.
            table = np.load(os.path.join(path, _TABLE_FILE), mmap_mode=emb.mode,
                            allow_pickle=False)
            self.embeddings = table.view(self.dtype) if table.dtype != self.dtype else table
        if os.path.exists(old):
            shutil.rmtree(old, ignore_errors=True)

    @classmethod
    def load(cls, path, mmap_mode=None):
        """Read a layer written by :meth:`save`.

        Parameters
        ----------
        path : str or os.PathLike
        mmap_mode : {None, "r", "r+"}
            ``"r"`` memory-maps the table read-only (lookups work, in-place updates raise
            ValueError); ``"r+"`` maps it writable, so updates go to the file.
        """
        if mmap_mode not in (None, "r", "r+"):
            raise ValueError(f"mmap_mode must be None, 'r' or 'r+', got {mmap_mode!r}")
        path = os.fspath(path).rstrip(os.sep) or os.sep
        folder = None
        # After a crash between the two renames of save(), the complete copies are the
        # new one (preferred) and the old one.
        for cand in (path, path + _NEW_SUFFIX, path + _OLD_SUFFIX):
            if os.path.isdir(cand) and _complete_copy(cand):
                if cand == path + _NEW_SUFFIX and os.path.isdir(path):
                    continue  # an unfinished later save next to a good copy
                folder = cand
                break
        if folder is None:
            if not os.path.exists(path):
                raise SavedLayerNotFoundError(path)
            raise ValueError(f"{path} holds no saved embedding layer (expected a folder with "
                             f"{_CONFIG_FILE} and {_TABLE_FILE})")
        cfg_path = os.path.join(folder, _CONFIG_FILE)
        try:
            with open(cfg_path, encoding="utf-8") as f:
                cfg = json.load(f)
        except (OSError, ValueError) as exc:
            raise ValueError(f"{cfg_path}: unreadable config: {exc}") from None
        if not isinstance(cfg, dict):
            raise ValueError(f"{cfg_path}: the config must be a JSON object")
        class_name = cfg.pop("class_name", cls.__name__)
        target = cls
        if cls is Embedding and class_name == "EmbeddingBag":
            target = EmbeddingBag
        table_path = os.path.join(folder, _TABLE_FILE)
        try:
            table = np.load(table_path, mmap_mode=mmap_mode, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise ValueError(f"{table_path}: unreadable table: {exc}") from None
        if table.dtype == np.uint16 and cfg.get("dtype") == "bfloat16":
            table = table.view(_float_dtype("bfloat16"))  # saved as its bit patterns
        if table.ndim != 2 or (table.dtype not in _FLOAT_DTYPES and table.dtype != np.float16
                               and table.dtype.name != "bfloat16"):
            raise ValueError(f"{table_path}: expected a 2-D float32/float64/float16/bfloat16 "
                             f"table, got shape {table.shape} dtype {table.dtype}")
        try:
            layer = target.from_config(dict(cfg, embeddings_initializer="zeros"))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{cfg_path}: bad config: {exc}") from None
        if layer.embeddings.shape != table.shape:
            raise ValueError(f"{table_path}: table shape {table.shape} does not match the "
                             f"config's ({layer.input_dim}, {layer.output_dim})")
        if mmap_mode is None:
            table = np.ascontiguousarray(table)
        elif not table.flags.c_contiguous:
            raise ValueError(f"{table_path}: a Fortran-ordered table cannot be memory-mapped")
        layer.embeddings = table
        layer.dtype = table.dtype
        layer.embeddings_initializer = cfg.get("embeddings_initializer", "uniform")
        return layer

    @classmethod
    def from_pretrained(cls, matrix, trainable=False, mask_zero=False, **kwargs):
        """A layer whose table is a copy of `matrix` (frozen by default)."""
        m = as_array(matrix, "matrix")
        if m.ndim != 2:
            raise ValueError(f"matrix must be 2-D (input_dim, output_dim), got shape {m.shape}")
        dtype = kwargs.pop("dtype", m.dtype if m.dtype in _FLOAT_DTYPES or is_half(m.dtype)
                           else np.float32)
        return cls(m.shape[0], m.shape[1], weights=[m], trainable=trainable,
                   mask_zero=mask_zero, dtype=dtype, **kwargs)

    def quantize(self, bits=8):
        """A frozen copy of this layer whose table is row-quantized to `bits` (8 or 4).

        The copy looks up (and pools) float32 values dequantized on the fly from a
        :class:`~fastembed.QuantizedTable` (``layer.embeddings``), is not trainable, and
        optimizers leave it alone. This layer is unchanged.

        Raises
        ------
        ValueError
            `bits` not 8 or 4, or a row holding NaN or infinite values.
        """
        q = quantize_rows(self.embeddings, bits)
        layer = object.__new__(type(self))
        state = dict(self.__dict__)
        state.pop("_calls", None)
        layer.__dict__.update(state)
        layer._calls = threading.local()
        layer.embeddings = q
        layer.trainable = False
        layer.dtype = np.dtype(np.float32)
        layer.name = f"{self.name}_q{bits}"
        return layer

    def __repr__(self):
        return (f"{type(self).__name__}(input_dim={self.input_dim}, output_dim={self.output_dim}, "
                f"name={self.name!r}, trainable={self.trainable})")


class EmbeddingBag(Embedding):
    """Pools each bag of ids into one vector: ``mode`` is ``"sum"``, ``"mean"`` or ``"max"``.

    Takes the constructor arguments of :class:`Embedding` plus `mode`. ``bag(ids)`` pools
    each row of a 2-D ``(B, L)`` array; ``bag(ids, offsets=offsets)`` pools the 1-D ids
    into bags starting at `offsets` (torch's ``EmbeddingBag``). ``per_sample_weights``
    (shape of ids) weights each row (sum and mean). With ``mask_zero`` the id 0 is left
    out of every bag.  :meth:`backward` is the gradient of the most recent call in the
    calling thread (see :class:`Embedding`).
    """

    _kind = "embedding_bag"

    def __init__(self, input_dim, output_dim, mode="mean", **kwargs):
        if mode not in ("sum", "mean", "max"):
            raise ValueError(f"mode must be 'sum', 'mean' or 'max', got {mode!r}")
        self.mode = mode
        super().__init__(input_dim, output_dim, **kwargs)

    def __call__(self, ids, offsets=None, per_sample_weights=None):
        """Pool `ids` -> ``(B, output_dim)``; see the class docstring."""
        arr = self._ids(ids)
        if offsets is None:
            self._check_length(arr)
        offs = None
        if offsets is not None:
            offs = as_ids(offsets, allow_float=True, name="offsets")
            if isinstance(offsets, np.ndarray) and np.may_share_memory(offs, offsets):
                offs = offs.copy()
        psw = None
        if per_sample_weights is not None:
            psw = as_array(per_sample_weights, "per_sample_weights")
            if psw.dtype.kind not in "fiu":
                raise TypeError(f"per_sample_weights must be floats, got dtype {psw.dtype}")
            psw = np.array(psw, dtype=work_dtype(self.embeddings.dtype), order="C", copy=True)
        out, argmax = _bagops.bag_forward(self.embeddings, arr, offs, self.mode, psw,
                                       self.mask_zero, self.mode == "max")
        self._record((arr, offs, psw, argmax))
        return out

    call = __call__

    def backward(self, grad_output, ids=None):
        """Gradient of the table for the last call in this thread, as a coalesced
        SparseGradient.

        For ``max`` each output element's gradient goes to the row that supplied the
        maximum (the first one on ties). `ids` is accepted for symmetry with
        :class:`Embedding` and must be None (the gradient needs the pooling of the last
        call).
        """
        if ids is not None:
            raise ValueError("EmbeddingBag.backward computes the gradient of its last call; "
                             "pass ids=None")
        call = self._last_call()
        if call is None:
            raise ValueError(f"backward() needs a forward call first (the last call is kept "
                             f"per thread, and this thread has not called {self.name!r})")
        arr, offs, psw, argmax = call
        nbags = arr.shape[0] if offs is None else offs.shape[0]
        grad = self._grad_array(grad_output, (nbags, self.output_dim),
                                "for the gradient of another call, call the layer on its "
                                "inputs again first (or on all inputs at once and split)")
        uniq, vals = _bagops.bag_backward(grad, arr, offs, self.mode, psw, self.mask_zero, argmax,
                                       self.input_dim)
        return SparseGradient(uniq, self._grad_values(vals), self.embeddings.shape)

    def get_config(self):
        cfg = super().get_config()
        cfg["mode"] = self.mode
        return cfg
