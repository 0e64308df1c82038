"""Optimizers with fused native updates: ``SGD``, ``Adagrad``, ``Adam``.

Keras names, defaults and formulas (see each class).  ``apply_gradients`` takes
``(grad, var)`` pairs where ``var`` is an ``Embedding`` / ``EmbeddingBag`` (``grad`` a
``SparseGradient`` or a dense ``(V, D)`` array) or a float numpy array updated in place
(``grad`` a dense array of its shape).

A sparse update is one native pass over the gradient's unique rows (duplicate indices
are summed first).  With ``lazy=True`` (the default for SGD and Adam) rows without a
gradient are not touched, their optimizer state included: torch ``SparseAdam``
semantics.  With ``lazy=False`` a sparse gradient is applied with the dense Keras
semantics: every row's state decays at every step, in one native pass over the table.
A dense gradient is always a dense update.

Every call that changes state is all or nothing.  ``apply_gradients`` reads and
validates every pair first (the user's objects are read once, before the optimizer's lock
is taken, so a callback in them cannot deadlock or change the plan), then runs the native
updates and the step bookkeeping together with Ctrl-C held back: on any error the
variables and the optimizer state (step counts included) are unchanged, and a
``KeyboardInterrupt`` arrives either before anything changed or after the whole step.
``set_state`` likewise.  One optimizer may be used from several Python threads; each
call holds a lock.
"""
from __future__ import annotations

import math
import operator
import threading

from typing import Any, Optional

import numpy as np

from . import _core
from ._ids import as_flag, as_ids, as_number, as_values
from ._lowp import is_half, work_dtype
from ._interrupts import deferred

__all__ = ["Optimizer", "SGD", "Adagrad", "Adam", "get"]

_Kind = _core.OptKind  # the update formulas, defined once (fe/optim.hpp, bound)


def _native_hyper(kind, **fields):
    """The native update's method and hyperparameters (a bound ``_core.OptHyper``; the
    fields not given keep its defaults, which the method does not read)."""
    h = _core.OptHyper()
    h.kind = kind
    for name, value in fields.items():
        setattr(h, name, value)
    return h


_SPARSE_PARTS = ("indices", "values", "dense_shape")
_MISSING = object()


def _is_sparse(grad) -> bool:
    # On the class: no property of the caller's object runs here.
    return not isinstance(grad, np.ndarray) and all(hasattr(type(grad), n)
                                                    for n in _SPARSE_PARTS)


def _sparse_parts(grad):
    """(indices, values, dense_shape) of a sparse gradient, each attribute read once (a
    property may have side effects), or None for anything else."""
    if isinstance(grad, np.ndarray):
        return None
    parts = []
    for name in _SPARSE_PARTS:
        value = getattr(grad, name, _MISSING)
        if value is _MISSING:
            return None
        parts.append(value)
    return parts


def _is_layer(var) -> bool:
    return not isinstance(var, np.ndarray) and hasattr(var, "embeddings")


def _var_name(var, i) -> str:
    if _is_layer(var):
        return f"variable {i} ({type(var).__name__} {getattr(var, 'name', '')!r})"
    return f"variable {i}"


def _positive(value, name) -> float:
    v = as_number(value, name)
    if not (v > 0 and math.isfinite(v)):
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    return v


def _unit(value, name) -> float:
    v = as_number(value, name)
    if not 0.0 <= v < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {value!r}")
    return v


def _non_negative(value, name) -> float:
    v = as_number(value, name)
    if not (v >= 0.0 and math.isfinite(v)):
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    return v


def _pairs_hint(items) -> str:
    if len(items) == 2 and (isinstance(items[0], np.ndarray) or _is_sparse(items[0])):
        return "; a single pair goes in a list: apply_gradients([(grad, var)])"
    return ""


class _Slot:
    """The state of one variable: the variable itself, its slot arrays and step count.

    Kept in a list (not a dict keyed by ``id``) so that pickling the optimizer with its
    variables keeps the pairing.
    """

    __slots__ = ("var", "arrays", "step")

    def __init__(self, var, arrays, step=0):
        self.var = var
        self.arrays = arrays
        self.step = step

    def __getstate__(self):
        return (self.var, self.arrays, self.step)

    def __setstate__(self, state):
        self.var, self.arrays, self.step = state


class Optimizer:
    """Base class: slot bookkeeping, validation, state, config.

    Subclasses set ``_slot_names`` (the names of their state arrays, which are the
    native method's: ``_core.opt_slot_names``) and implement ``_checked`` (the validated
    hyperparameters), ``_kind`` (the native method, a ``_core.OptKind``) and ``_hyper``
    (the native hyperparameters of one step); they may override ``_slot_init`` (a slot's
    initial value), ``_needs_slots`` (the slots a configuration uses) and ``_lazy``.
    """

    _slot_names: tuple = ()

    def __init__(self, learning_rate: float, name: Optional[str] = None) -> None:
        self.learning_rate = _positive(learning_rate, "learning_rate")
        self.name = type(self).__name__.lower() if name is None else str(name)
        self._slots: list = []
        self._lock = threading.Lock()

    # -- subclass hooks -------------------------------------------------------------
    def _kind(self, hp):
        raise NotImplementedError

    def _checked(self) -> dict:
        """The hyperparameters, validated and as floats/bools.

        They are public attributes that may be reassigned between steps
        (``opt.learning_rate = 1e-4``); each step validates them before it writes.
        """
        return {"learning_rate": _positive(self.learning_rate, "learning_rate")}

    def _slot_init(self, name, hp) -> float:
        return 0.0

    def _needs_slots(self, hp=None) -> tuple:
        return self._slot_names

    def _lazy(self, hp) -> bool:
        return True

    def _hyper(self, step, hp):
        """The native hyperparameters of this variable's `step`-th update."""
        return _native_hyper(self._kind(hp), lr=hp["learning_rate"])

    def _adopt(self, hp) -> None:
        for key, value in hp.items():
            setattr(self, key, value)

    # -- state ------------------------------------------------------------------------
    @property
    def variables(self) -> list:
        """The variables this optimizer holds state for, in order of first use."""
        return [s.var for s in self._slots]

    @property
    def iterations(self) -> int:
        """The largest per-variable step count (Keras' ``iterations`` when every call
        updates every variable)."""
        return max((s.step for s in self._slots), default=0)

    def _find(self, var):
        for s in self._slots:
            if s.var is var:
                return s
        return None

    def get_slot(self, var, name) -> np.ndarray:
        """The slot array `name` (e.g. ``"m"``, ``"v"``, ``"accumulator"``) of `var`."""
        s = self._find(var)
        if s is None:
            raise KeyError("no state for this variable yet (it has not been updated)")
        if name not in s.arrays:
            raise KeyError(f"unknown slot {name!r}; this optimizer has {list(s.arrays)}")
        return s.arrays[name]

    def get_step(self, var) -> int:
        """How many ``apply_gradients`` calls updated `var` (0 if none)."""
        s = self._find(var)
        return 0 if s is None else s.step

    def get_config(self) -> dict[str, Any]:
        """The constructor arguments (JSON-able)."""
        return {"name": self.name, "learning_rate": self.learning_rate}

    @classmethod
    def from_config(cls, config):
        """Build an optimizer (no state) from :meth:`get_config`'s output."""
        if not isinstance(config, dict):
            raise TypeError(f"from_config takes the dict of get_config(), got "
                            f"{type(config).__name__}")
        return cls(**config)

    def get_state(self) -> dict[str, Any]:
        """The optimizer's state: ``{"config": <JSON-able dict>, "arrays": {name: ndarray}}``.

        ``config`` holds the constructor arguments, the class name, each variable's step
        count and slot names; ``arrays`` holds copies of the slot arrays, named
        ``"<variable number>/<slot>"`` in the order of :attr:`variables` (so the dict can
        be written with ``np.savez``).  Restore with :meth:`set_state`.
        """
        with self._lock:
            slots = [{"step": int(s.step), "slots": sorted(s.arrays),
                      "shape": list(self._array_of(s.var).shape),
                      "dtype": str(self._array_of(s.var).dtype)} for s in self._slots]
            arrays = {f"{i}/{name}": np.array(a, copy=True)
                      for i, s in enumerate(self._slots) for name, a in s.arrays.items()}
        return {"config": {"class_name": type(self).__name__, "config": self.get_config(),
                           "variables": slots},
                "arrays": arrays}

    def set_state(self, state: dict[str, Any], variables: Any = None) -> None:
        """Restore :meth:`get_state`'s output.

        Parameters
        ----------
        state : dict
            ``{"config": ..., "arrays": ...}`` as returned by :meth:`get_state`.
        variables : list, optional
            The variables, in the order of the saved state.  Default: this optimizer's
            own :attr:`variables` (the state must then hold as many).

        Raises
        ------
        ValueError
            When the state does not fit the variables (count, shapes, dtypes, slots).

        All or nothing: the whole state is read and checked before any of it replaces
        the optimizer's (Ctrl-C included).
        """
        if not isinstance(state, dict):
            raise ValueError(f"set_state takes the dict of get_state(), got "
                             f"{type(state).__name__}")
        try:
            new, hyper = self._read_state(state, variables)
        except (KeyError, AttributeError, TypeError) as exc:
            raise ValueError(f"the state does not fit this optimizer: "
                             f"{type(exc).__name__}: {exc}") from None
        with self._lock, deferred():
            self._slots = new
            for key in hyper.get_config():
                setattr(self, key, getattr(hyper, key))

    def _read_state(self, state, variables):
        # Everything the user gave is read here, before the lock: a callback inside it
        # can neither deadlock nor see a half-restored optimizer.
        cfg = state["config"]
        arrays = state["arrays"]
        if cfg.get("class_name", type(self).__name__) != type(self).__name__:
            raise ValueError(f"state of a {cfg.get('class_name')} cannot be loaded into a "
                             f"{type(self).__name__}")
        saved = list(cfg["variables"])
        # The saved hyperparameters, validated by the constructor (applied last).
        hyper = type(self)(**cfg["config"]) if "config" in cfg else self
        if variables is None:
            with self._lock:
                variables = self.variables
        variables = list(variables)
        if len(variables) != len(saved):
            raise ValueError(f"the state holds {len(saved)} variables, got "
                             f"{len(variables)}")
        # The slots the saved configuration needs; SGD may also carry a momentum slot
        # from before momentum was switched off.
        want = set(hyper._needs_slots(hyper._checked()))
        known = set(hyper._slot_names)
        new = []
        for i, (var, info) in enumerate(zip(variables, saved)):
            if not (_is_layer(var) or isinstance(var, np.ndarray)):
                raise TypeError(f"{_var_name(var, i)} must be an Embedding, an EmbeddingBag "
                                f"or a float numpy array, got {type(var).__name__}")
            table = self._array_of(var)
            names = [str(n) for n in info["slots"]]
            if not want <= set(names) <= known:
                raise ValueError(f"variable {i}: saved slots {names}, this "
                                 f"optimizer needs {sorted(want)}")
            slot_arrays = {}
            for name in names:
                a = np.asarray(arrays[f"{i}/{name}"])
                if a.shape != table.shape:
                    raise ValueError(f"variable {i}: slot {name!r} has shape {a.shape}, "
                                     f"the variable {table.shape}")
                if a.dtype.kind not in "fiu":
                    raise TypeError(f"variable {i}: slot {name!r} must hold numbers, got "
                                    f"dtype {a.dtype}")
                slot_arrays[name] = np.array(a, dtype=work_dtype(table.dtype), order="C",
                                             copy=True)
            step = operator.index(info["step"])
            if step < 0:
                raise ValueError(f"variable {i}: negative step count {step}")
            new.append(_Slot(var, slot_arrays, step))
        return new, hyper

    def __getstate__(self):
        d = dict(self.__dict__)
        d.pop("_lock", None)
        return d

    def __setstate__(self, d):
        d = dict(d)
        d["_lock"] = threading.Lock()
        self.__dict__.update(d)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if k != "name")
        return f"{type(self).__name__}({args})"

    # -- updates ----------------------------------------------------------------------
    @staticmethod
    def _array_of(var) -> np.ndarray:
        return var.embeddings if _is_layer(var) else var

    def apply_gradients(self, grads_and_vars: Any) -> None:
        """Apply each ``(grad, var)`` pair.

        Parameters
        ----------
        grads_and_vars : iterable of (grad, var)
            ``var``: an ``Embedding`` / ``EmbeddingBag`` (``grad``: a ``SparseGradient``
            or a dense ``(V, D)`` array) or a float ndarray updated in place (``grad``: a
            dense array of its shape and dtype).  A non-trainable layer is skipped; an
            empty ``SparseGradient`` changes nothing (no step is counted).  A variable
            given twice is updated twice (two steps).

        Raises
        ------
        IndexError
            A gradient index outside ``[0, V)`` (naming its position).
        TypeError
            A gradient of another dtype than its variable, an unknown variable type, an
            item that is not a ``(grad, var)`` pair, a hyperparameter that is not a number.
        ValueError
            Shapes that do not match (``dense_shape`` included), a read-only or
            non-contiguous variable (e.g. a table memory-mapped with mode ``'r'``), a
            hyperparameter out of range.

        All or nothing: every pair is checked before any is applied, so after an error
        neither the variables nor the optimizer state have changed; the updates and the
        step counts are then written with Ctrl-C held back, so a ``KeyboardInterrupt``
        leaves the state before or after the whole call, never in between.
        """
        pairs = self._snapshot(grads_and_vars)
        with self._lock:
            hp = self._checked()
            names = self._needs_slots(hp)
            plan = []
            works = {}  # one float32 copy per half table, shared by its updates in this call
            for i, var, table, grad in pairs:
                # A half table is updated through a float32 copy (the float32 kernels and
                # state), whose updated rows are rounded back to nearest even on commit.
                work, grad = self._wrap(i, var, _half_work, table, grad, works)
                if grad[0] == "sparse":
                    rows = self._wrap(i, var, _prepare, work, grad[1], grad[2])
                    if rows.size == 0:
                        continue
                    plan.append((i, var, (table, work, grad[1]), rows, None))
                else:
                    plan.append((i, var, (table, work, None), None,
                                 self._wrap(i, var, _core.optim_check_dense, work, grad[1])))
            # Steps, hyperparameters and slot arrays of every update are settled (and new
            # slots allocated) before the first write, so that nothing but the native
            # passes themselves runs between the first write and the last.
            entries = {}
            commits = []
            for i, var, table, rows, dense in plan:
                entry = entries.get(id(var))
                if entry is None:
                    entry = entries[id(var)] = self._entry(i, var, table[1], names, hp)
                entry[2] += 1
                arrays = entry[1]
                commits.append((table, rows, dense, arrays, self._hyper(entry[2], hp)))
            all_rows = not self._lazy(hp)
            with deferred():
                for (table, work, touched), rows, dense, slots, h in commits:
                    if rows is not None:
                        _core.optim_sparse(rows, work, slots, h, all_rows)
                    else:
                        _core.optim_dense(work, dense, slots, h)
                    if work is not table:
                        if touched is not None and not all_rows:
                            touched = np.unique(touched)
                            table[touched] = work[touched].astype(table.dtype)
                        else:
                            np.copyto(table, work.astype(table.dtype))
                for slot, arrays, step, var in entries.values():
                    if slot is None:
                        self._slots.append(_Slot(var, arrays, step))
                    else:
                        slot.arrays, slot.step = arrays, step

    def _entry(self, i, var, table, names, hp):
        """[slot or None, slot arrays, step, var] of a variable about to be updated."""
        s = self._find(var)
        arrays = dict(s.arrays) if s is not None else {}
        for name in names:
            a = arrays.get(name)
            if a is None:
                # First update, or a slot this configuration needs that the state lacks
                # (momentum switched on later): it starts from its initial value.
                arrays[name] = np.full(table.shape, self._slot_init(name, hp), dtype=table.dtype)
            elif a.shape != table.shape or a.dtype != table.dtype:
                raise ValueError(f"{_var_name(var, i)}: the variable's shape or dtype changed "
                                 f"({table.shape} {table.dtype}) since its optimizer state "
                                 f"was made ({a.shape} {a.dtype})")
        return [s, arrays, s.step if s is not None else 0, var]

    def _snapshot(self, grads_and_vars):
        """Read every object the caller gave, once: [(i, var, table, grad)] where grad is
        ("sparse", indices, values) or ("dense", array) of plain numpy arrays.

        This runs without the lock: conversions may call back into Python (``__index__``,
        ``__array__``, a generator), which may even use this optimizer.
        """
        if isinstance(grads_and_vars, (str, bytes, np.ndarray)) or _is_sparse(grads_and_vars):
            raise TypeError(f"apply_gradients takes a list of (grad, var) pairs, got "
                            f"{type(grads_and_vars).__name__}")
        try:
            items = list(grads_and_vars)
        except TypeError:
            raise TypeError(f"apply_gradients takes a list of (grad, var) pairs, got "
                            f"{type(grads_and_vars).__name__}") from None
        out = []
        for i, pair in enumerate(items):
            pair = tuple(pair) if isinstance(pair, (tuple, list)) else None
            if pair is None or len(pair) != 2:
                what = type(items[i]).__name__ if pair is None else f"of length {len(pair)}"
                raise TypeError(f"apply_gradients takes (grad, var) pairs; item {i} is "
                                f"{what}{_pairs_hint(items)}")
            grad, var = pair
            table = var if isinstance(var, np.ndarray) else getattr(var, "embeddings", _MISSING)
            if table is _MISSING:
                raise TypeError(f"{_var_name(var, i)} must be an Embedding, an EmbeddingBag "
                                f"or a float numpy array, got {type(var).__name__}")
            if table is not var and not getattr(var, "trainable", True):
                continue
            if getattr(table, "_fe_quantized_rows", False):
                continue  # a quantized layer is frozen: optimizers leave it alone
            if grad is None:
                continue
            floats = isinstance(table, np.ndarray) and (table.dtype.kind == "f"
                                                        or is_half(table.dtype))
            sparse = _sparse_parts(grad)
            if sparse is not None:
                indices, values, dense_shape = sparse
                try:
                    shape = tuple(operator.index(n) for n in dense_shape)
                except TypeError:
                    raise TypeError(f"{_var_name(var, i)}: the gradient's dense_shape must be "
                                    f"integers, got {dense_shape!r}") from None
                if table is var and table.ndim != 2:
                    raise ValueError(f"{_var_name(var, i)}: a SparseGradient needs a 2-D "
                                     f"variable, got shape {table.shape}")
                if shape != tuple(table.shape):
                    raise ValueError(f"{_var_name(var, i)}: the gradient's dense_shape {shape} "
                                     f"does not match the variable's shape "
                                     f"{tuple(table.shape)}")
                if floats:
                    indices = self._wrap(i, var, as_ids, indices, False, "indices")
                    if not isinstance(values, np.ndarray):
                        values = self._wrap(i, var, as_values, values, table.dtype, "values")
                out.append((i, var, table, ("sparse", indices, values)))
            else:
                if floats and not isinstance(grad, np.ndarray):
                    grad = self._wrap(i, var, as_values, grad, table.dtype, "gradient")
                out.append((i, var, table, ("dense", grad)))
        return out

    @staticmethod
    def _wrap(i, var, fn, *args):
        try:
            return fn(*args)
        except (IndexError, TypeError, ValueError) as exc:
            raise type(exc)(f"{_var_name(var, i)}: {exc}") from None


class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum.

    ``v = momentum * v - lr * g; w += v`` (nesterov: ``w += momentum * v - lr * g``);
    with ``momentum == 0``: ``w -= lr * g`` and no state.

    Parameters
    ----------
    learning_rate : float, default 0.01
    momentum : float, default 0.0
        In ``[0, 1)``.
    nesterov : bool, default False
    lazy : bool, default True
        With a sparse gradient, ``True`` leaves the momentum of rows without gradient
        untouched; ``False`` decays every row's momentum (and moves its weights) at every
        step, as Keras does.  Without momentum both are the same.
    """

    _slot_names = _core.opt_slot_names(_Kind.MOMENTUM)

    def __init__(self, learning_rate: float = 0.01, momentum: float = 0.0,
                 nesterov: bool = False, lazy: bool = True,
                 name: Optional[str] = None) -> None:
        super().__init__(learning_rate, name)
        self.momentum, self.nesterov, self.lazy = momentum, nesterov, lazy
        self._adopt(self._checked())

    def _checked(self):
        return {**super()._checked(), "momentum": _unit(self.momentum, "momentum"),
                "nesterov": as_flag(self.nesterov, "nesterov"),
                "lazy": as_flag(self.lazy, "lazy")}

    def _kind(self, hp):
        if hp["momentum"] == 0.0:
            return _Kind.SGD
        return _Kind.NESTEROV if hp["nesterov"] else _Kind.MOMENTUM

    def _needs_slots(self, hp=None):
        hp = self._checked() if hp is None else hp
        return () if hp["momentum"] == 0.0 else ("momentum",)

    def _lazy(self, hp):
        return hp["lazy"] or hp["momentum"] == 0.0

    def _hyper(self, step, hp):
        return _native_hyper(self._kind(hp), lr=hp["learning_rate"], momentum=hp["momentum"])

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov,
                "lazy": self.lazy}


class Adagrad(Optimizer):
    """Adagrad, Keras' formula: ``a += g**2; w -= lr * g / sqrt(a + epsilon)``.

    Rows without gradient are never changed (the same with dense or lazy semantics).

    Parameters
    ----------
    learning_rate : float, default 0.001
    initial_accumulator_value : float, default 0.1
        Starting value of ``a`` (>= 0).
    epsilon : float, default 1e-7
        Inside the square root, as in Keras (torch adds it outside; with ``a >= 0.1`` the
        two agree to float32 precision).
    """

    _slot_names = _core.opt_slot_names(_Kind.ADAGRAD)

    def __init__(self, learning_rate: float = 0.001, initial_accumulator_value: float = 0.1,
                 epsilon: float = 1e-7, name: Optional[str] = None) -> None:
        super().__init__(learning_rate, name)
        self.initial_accumulator_value, self.epsilon = initial_accumulator_value, epsilon
        self._adopt(self._checked())

    def _checked(self):
        return {**super()._checked(),
                "initial_accumulator_value": _non_negative(self.initial_accumulator_value,
                                                           "initial_accumulator_value"),
                "epsilon": _non_negative(self.epsilon, "epsilon")}

    def _kind(self, hp):
        return _Kind.ADAGRAD

    def _slot_init(self, name, hp):
        return hp["initial_accumulator_value"]

    def _hyper(self, step, hp):
        return _native_hyper(_Kind.ADAGRAD, lr=hp["learning_rate"], eps=hp["epsilon"])

    def get_config(self):
        return {**super().get_config(),
                "initial_accumulator_value": self.initial_accumulator_value,
                "epsilon": self.epsilon}


class Adam(Optimizer):
    """Adam with Keras' defaults and epsilon placement.

    ``m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g**2;
    w -= lr * sqrt(1 - b2**t) / (1 - b1**t) * m / (sqrt(v) + epsilon)``, where ``t``
    counts the ``apply_gradients`` calls that updated this variable.

    Parameters
    ----------
    learning_rate : float, default 0.001
    beta_1, beta_2 : float, default 0.9, 0.999
        In ``[0, 1)``.
    epsilon : float, default 1e-7
    lazy : bool, default True
        With a sparse gradient, ``True`` updates only the rows in the gradient, their
        moments included (torch ``SparseAdam``); ``False`` decays every row's moments and
        moves every row at every step (Keras' dense Adam).
    """

    _slot_names = _core.opt_slot_names(_Kind.ADAM)

    def __init__(self, learning_rate: float = 0.001, beta_1: float = 0.9,
                 beta_2: float = 0.999, epsilon: float = 1e-7, lazy: bool = True,
                 name: Optional[str] = None) -> None:
        super().__init__(learning_rate, name)
        self.beta_1, self.beta_2, self.epsilon, self.lazy = beta_1, beta_2, epsilon, lazy
        self._adopt(self._checked())

    def _checked(self):
        return {**super()._checked(), "beta_1": _unit(self.beta_1, "beta_1"),
                "beta_2": _unit(self.beta_2, "beta_2"),
                "epsilon": _non_negative(self.epsilon, "epsilon"),
                "lazy": as_flag(self.lazy, "lazy")}

    def _kind(self, hp):
        return _Kind.ADAM

    def _lazy(self, hp):
        return hp["lazy"]

    def _hyper(self, step, hp):
        b1, b2 = hp["beta_1"], hp["beta_2"]
        step_size = hp["learning_rate"] * math.sqrt(1.0 - b2 ** step) / (1.0 - b1 ** step)
        return _native_hyper(_Kind.ADAM, lr=hp["learning_rate"], beta1=b1, beta2=b2,
                             eps=hp["epsilon"], step_size=step_size)

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon, "lazy": self.lazy}


def get(identifier):
    """An optimizer from a name (``"sgd"``, ``"adagrad"``, ``"adam"``), a config dict
    (``{"class_name": ..., "config": ...}``) or an optimizer (returned as is)."""
    if isinstance(identifier, Optimizer):
        return identifier
    classes = {"sgd": SGD, "adagrad": Adagrad, "adam": Adam}
    if isinstance(identifier, str):
        key = identifier.lower()
        if key not in classes:
            raise ValueError(f"unknown optimizer {identifier!r}; expected one of "
                             f"{sorted(classes)}")
        return classes[key]()
    if isinstance(identifier, dict) and "class_name" in identifier:
        return get(identifier["class_name"]).from_config(identifier.get("config", {}))
    raise ValueError(f"cannot build an optimizer from {identifier!r}")


def _prepare(table, indices, values):
    """The validated, coalesced sparse gradient of one update (``_core.SparseRows``)."""
    return _core.optim_prepare(table, as_ids(indices), values)


def _half_work(table, grad, works):
    """(work table, grad) for one update: the table itself, or for a float16 / bfloat16
    table a float32 copy and the gradient upcast (it must have the table's dtype)."""
    if not (isinstance(table, np.ndarray) and is_half(table.dtype)):
        return table, grad
    if not table.flags.writeable:
        raise ValueError("the variable is read-only (e.g. a memory map opened with mode "
                         "'r'); in-place updates need a writeable array")
    if not (table.flags.c_contiguous and table.flags.aligned):
        raise ValueError("the variable must be a C-contiguous, aligned array to be updated "
                         "in place")
    vals = grad[2] if grad[0] == "sparse" else grad[1]
    if not isinstance(vals, np.ndarray) or vals.dtype != table.dtype:
        got = vals.dtype if isinstance(vals, np.ndarray) else type(vals).__name__
        raise TypeError(f"the gradient must have the variable's dtype {table.dtype}, got {got}")
    vals = vals.astype(np.float32)
    grad = ("sparse", grad[1], vals) if grad[0] == "sparse" else ("dense", vals)
    work = works.get(id(table))
    if work is None:
        work = works[id(table)] = (table, table.astype(np.float32))
    return work[1], grad
