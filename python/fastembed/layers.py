"""Embedding layers with sparse gradients: ``Embedding``, ``EmbeddingBag``, ``SparseGradient``.

The layers hold their table as a plain C-contiguous numpy array (``layer.embeddings``)
that optimizers update in place; the lookups, pooling and gradient reductions run in
the native kernels of :mod:`fastembed.ops`. What a layer is made of lives beside it:
the gradient type in ``_gradients``, dtypes and initial values in ``_initializers``,
Keras config translation in ``_keras_config``, the crash-safe save folder in
``_savedir``.
"""
from __future__ import annotations

import numbers
import os
import threading
from typing import Any, ClassVar, Dict, List, Optional, Sequence, Tuple, Type, TypeVar, Union

import numpy as np
import numpy.typing as npt

from . import _bagops, _savedir, ops
from ._gradients import SparseGradient
from ._ids import as_array, as_flag, as_ids
from ._initializers import Initializer, initial_table, is_table_dtype, table_dtype
from ._keras_config import from_keras_config
from ._lowp import QuantizedTable, is_half, quantize_rows, work_dtype
from ._savedir import SavedLayerNotFoundError

__all__ = ["SparseGradient", "Embedding", "EmbeddingBag"]

_Layer = TypeVar("_Layer", bound="Embedding")
_FloatArray = npt.NDArray[np.floating[Any]]


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral) \
            or int(value) <= 0:
        raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value!r} "
                         f"(of type {type(value).__name__}).")
    return int(value)


def _seed(value: Any) -> Optional[int]:
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"`seed` must be None or a non-negative integer. Received: "
                        f"seed={value!r} (of type {type(value).__name__}).")
    if int(value) < 0:
        raise ValueError(f"`seed` must be None or a non-negative integer. Received: "
                         f"seed={value!r}.")
    return int(value)


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

    # One counter for every layer class: default names are embedding_1, embedding_bag_2...
    _counter: ClassVar[int] = 0
    _kind: ClassVar[str] = "embedding"
    # Every layer class by name, for load() to rebuild the class a folder was saved from.
    _classes: ClassVar[Dict[str, Type[Embedding]]] = {}

    embeddings: Any  # _FloatArray, a np.memmap of one, or a QuantizedTable
    dtype: np.dtype[Any]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        Embedding._classes.setdefault(cls.__name__, cls)

    def __init__(self, input_dim: int, output_dim: int,
                 embeddings_initializer: Initializer = "uniform", mask_zero: bool = False,
                 input_length: Optional[int] = None,
                 weights: Union[npt.ArrayLike, Sequence[npt.ArrayLike], None] = None,
                 trainable: bool = True, dtype: Any = "float32", seed: Optional[int] = None,
                 name: Optional[str] = None, **kwargs: Any) -> None:
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
        self.dtype = table_dtype(dtype)
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
            matrix: Any = weights[0] if one else weights  # type: ignore[index]
            self.set_weights([matrix])
        else:
            init = embeddings_initializer
            if isinstance(init, str) and init == "custom":
                init = "zeros"  # from a config: the table comes from elsewhere (weights, load)
            self.embeddings = initial_table(init, shape, self.dtype, self.seed)

    # -- the last call, per thread ----------------------------------------------------
    # What backward() needs from the forward call: (ids,) for an Embedding, (ids, offsets,
    # per_sample_weights, argmax) for an EmbeddingBag.  Kept per thread, so that threads
    # sharing a layer never pair a gradient with another thread's ids; stored as one
    # tuple, so that a call is recorded whole or not at all.
    def _record(self, call: Tuple[Any, ...]) -> None:
        self._calls.last = call

    def _last_call(self) -> Optional[Tuple[Any, ...]]:
        return getattr(self._calls, "last", None)

    @property
    def _last_ids(self) -> Optional[npt.NDArray[np.signedinteger[Any]]]:
        """The ids of this thread's most recent call (None before the first)."""
        call = self._last_call()
        return None if call is None else call[0]

    def __getstate__(self) -> Dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_calls", None)
        state["_last_call"] = self._last_call()
        return state

    def __setstate__(self, state: Dict[str, Any]) -> None:
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
    def get_weights(self) -> List[_FloatArray]:
        """Return ``[copy of the table]`` (a quantized layer's dequantized table)."""
        if isinstance(self.embeddings, QuantizedTable):
            return [self.embeddings.dequantize()]
        return [np.array(self.embeddings, copy=True)]

    def set_weights(self, weights: Sequence[npt.ArrayLike]) -> None:
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
    def weights(self) -> List[Any]:
        return [self.embeddings]

    # -- forward / backward --------------------------------------------------------
    def _ids(self, ids: npt.ArrayLike) -> npt.NDArray[np.signedinteger[Any]]:
        arr = as_ids(ids, allow_float=True)
        if isinstance(ids, np.ndarray) and np.may_share_memory(arr, ids):
            arr = arr.copy()  # kept for backward: the caller may reuse its buffer
        return arr

    def _check_length(self, arr: npt.NDArray[Any]) -> None:
        if self.input_length is not None and (arr.ndim == 0 or arr.shape[-1] != self.input_length):
            raise ValueError(f'"input_length" is {self.input_length}, but received input has '
                             f"shape {arr.shape}")

    def __call__(self, ids: npt.ArrayLike) -> _FloatArray:
        """Look up ``ids`` (any integer array-like) -> ``ids.shape + (output_dim,)``."""
        arr = self._ids(ids)
        self._check_length(arr)
        out: _FloatArray = ops.gather(self.embeddings, arr)
        self._record((arr,))
        return out

    call = __call__

    def compute_mask(self, ids: npt.ArrayLike,
                     mask: Any = None) -> Optional[npt.NDArray[np.bool_]]:
        """``ids != 0`` when ``mask_zero``, else None."""
        if not self.mask_zero:
            return None
        nonzero: npt.NDArray[np.bool_] = as_ids(ids, allow_float=True) != 0
        return nonzero

    def compute_output_shape(self, input_shape: Sequence[Optional[int]]
                             ) -> Tuple[Optional[int], ...]:
        return tuple(input_shape) + (self.output_dim,)

    def backward(self, grad_output: npt.ArrayLike,
                 ids: Optional[npt.ArrayLike] = None) -> SparseGradient:
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

    def _grad_values(self, vals: _FloatArray) -> _FloatArray:
        # Gradients are summed in float32 and, for a half table, rounded once to its dtype
        # (SparseGradient values are in the table's dtype).
        dt = self.embeddings.dtype
        return vals.astype(dt) if is_half(dt) else vals

    def _grad_array(self, grad_output: npt.ArrayLike, shape: Tuple[int, ...],
                    last_call_hint: Optional[str] = None) -> _FloatArray:
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
    def get_config(self) -> Dict[str, Any]:
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
    def from_config(cls: Type[_Layer], config: Dict[str, Any]) -> _Layer:
        """Build a layer from ``get_config()`` output (with a freshly initialized table).

        Keras configs are read too: base-layer keys that carry no meaning here
        (``batch_input_shape``, ``build_config``...) are dropped, a serialized dtype policy
        or initializer dict is reduced to its name.
        """
        if not isinstance(config, dict):
            raise TypeError(f"from_config takes the dict of get_config(), got "
                            f"{type(config).__name__}")
        return cls(**from_keras_config(config))

    def save(self, path: Union[str, os.PathLike[str]]) -> None:
        """Write ``path/`` with ``config.json`` and ``embeddings.npy``, atomically.

        The new copy is written and fsynced in ``<path>.fe-new`` and then swapped in with
        two renames (the old copy waits in ``<path>.fe-old``), so a crash at any moment
        leaves a complete old or new copy that :meth:`load` reads.
        """
        if isinstance(self.embeddings, QuantizedTable):
            raise ValueError(f"{self.name} is quantized: save its table with "
                             f"layer.embeddings.save(path) and read it back with "
                             f"fe.QuantizedTable.load(path, mmap_mode='r')")
        cfg = self.get_config()
        cfg["class_name"] = type(self).__name__
        _savedir.write(path, cfg, self.embeddings, self._remap_saved)

    def _remap_saved(self, table_file: str) -> None:
        self.embeddings = _savedir.reopened(self.embeddings, table_file, self.dtype)

    @classmethod
    def load(cls: Type[_Layer], path: Union[str, os.PathLike[str]],
             mmap_mode: Optional[_savedir.MmapMode] = None) -> _Layer:
        """Read a layer written by :meth:`save`.

        The layer is of the class it was saved from when that is `cls` or a subclass
        (``Embedding.load`` of a saved ``EmbeddingBag`` gives an ``EmbeddingBag``), else
        of `cls`.

        Parameters
        ----------
        path : str or os.PathLike
        mmap_mode : {None, "r", "r+"}
            ``"r"`` memory-maps the table read-only (lookups work, in-place updates raise
            ValueError); ``"r+"`` maps it writable, so updates go to the file.
        """
        if mmap_mode not in (None, "r", "r+"):
            raise ValueError(f"mmap_mode must be None, 'r' or 'r+', got {mmap_mode!r}")
        saved = _savedir.read(path, mmap_mode)
        cfg, table = saved.config, saved.table
        saved_class = Embedding._classes.get(cfg.pop("class_name", cls.__name__), cls)
        target: Type[_Layer] = saved_class if issubclass(saved_class, cls) else cls
        try:
            layer = target.from_config(dict(cfg, embeddings_initializer="zeros"))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{saved.config_path}: bad config: {exc}") from None
        if layer.embeddings.shape != table.shape:
            raise ValueError(f"{saved.table_path}: table shape {table.shape} does not match "
                             f"the config's ({layer.input_dim}, {layer.output_dim})")
        if mmap_mode is None:
            table = np.ascontiguousarray(table)
        elif not table.flags.c_contiguous:
            raise ValueError(f"{saved.table_path}: a Fortran-ordered table cannot be "
                             f"memory-mapped")
        layer.embeddings = table
        layer.dtype = table.dtype
        layer.embeddings_initializer = cfg.get("embeddings_initializer", "uniform")
        return layer

    @classmethod
    def from_pretrained(cls: Type[_Layer], matrix: npt.ArrayLike, trainable: bool = False,
                        mask_zero: bool = False, **kwargs: Any) -> _Layer:
        """A layer whose table is a copy of `matrix` (frozen by default)."""
        m = as_array(matrix, "matrix")
        if m.ndim != 2:
            raise ValueError(f"matrix must be 2-D (input_dim, output_dim), got shape {m.shape}")
        dtype = kwargs.pop("dtype", m.dtype if is_table_dtype(m.dtype) else np.float32)
        return cls(m.shape[0], m.shape[1], weights=[m], trainable=trainable,
                   mask_zero=mask_zero, dtype=dtype, **kwargs)

    def quantize(self: _Layer, bits: int = 8) -> _Layer:
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

    def __repr__(self) -> str:
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

    def __init__(self, input_dim: int, output_dim: int, mode: str = "mean",
                 **kwargs: Any) -> None:
        if mode not in ("sum", "mean", "max"):
            raise ValueError(f"mode must be 'sum', 'mean' or 'max', got {mode!r}")
        self.mode = mode
        super().__init__(input_dim, output_dim, **kwargs)

    def __call__(self, ids: npt.ArrayLike,
                 offsets: Optional[npt.ArrayLike] = None,
                 per_sample_weights: Optional[npt.ArrayLike] = None) -> _FloatArray:
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
        result: _FloatArray = out
        return result

    call = __call__

    def backward(self, grad_output: npt.ArrayLike,
                 ids: Optional[npt.ArrayLike] = None) -> SparseGradient:
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
        uniq, vals = _bagops.bag_backward(grad, arr, offs, self.mode, psw, self.mask_zero,
                                          argmax, self.input_dim)
        return SparseGradient(uniq, self._grad_values(vals), self.embeddings.shape)

    def get_config(self) -> Dict[str, Any]:
        cfg = super().get_config()
        cfg["mode"] = self.mode
        return cfg
