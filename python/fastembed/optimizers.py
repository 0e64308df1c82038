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

Every pair of an ``apply_gradients`` call is validated before anything is written: on
any error the variables and the optimizer state (step counts included) are unchanged.
One optimizer may be used from several Python threads; each call holds a lock.
"""
from __future__ import annotations

import math
import threading

import numpy as np

from . import _core

__all__ = ["Optimizer", "SGD", "Adagrad", "Adam", "get"]

_SGD, _MOMENTUM, _NESTEROV, _ADAGRAD, _ADAM = 0, 1, 2, 3, 4


def _is_sparse(grad) -> bool:
    return (hasattr(grad, "indices") and hasattr(grad, "values")
            and hasattr(grad, "dense_shape") and not isinstance(grad, np.ndarray))


def _is_layer(var) -> bool:
    return not isinstance(var, np.ndarray) and hasattr(var, "embeddings")


def _var_name(var, i) -> str:
    if _is_layer(var):
        return f"variable {i} ({type(var).__name__} {getattr(var, 'name', '')!r})"
    return f"variable {i}"


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

    Subclasses set ``_slot_names`` and implement ``_kind`` and ``_slot_init``.
    """

    _slot_names: tuple = ()

    def __init__(self, learning_rate, name=None):
        self.learning_rate = float(learning_rate)
        if not self.learning_rate > 0 or not math.isfinite(self.learning_rate):
            raise ValueError(f"learning_rate must be a positive number, got {learning_rate!r}")
        self.name = name or type(self).__name__.lower()
        self._slots: list = []
        self._lock = threading.Lock()

    # -- subclass hooks -------------------------------------------------------------
    def _kind(self) -> int:
        raise NotImplementedError

    def _slot_init(self, name) -> float:
        return 0.0

    def _needs_slots(self) -> tuple:
        return self._slot_names

    def _lazy(self) -> bool:
        return True

    def _step_size(self, step) -> float:
        return 0.0

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

    def get_config(self) -> dict:
        """The constructor arguments (JSON-able)."""
        return {"name": self.name, "learning_rate": self.learning_rate}

    @classmethod
    def from_config(cls, config):
        """Build an optimizer (no state) from :meth:`get_config`'s output."""
        return cls(**config)

    def get_state(self) -> dict:
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

    def set_state(self, state, variables=None) -> None:
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
        """
        try:
            self._set_state(state, variables)
        except (KeyError, AttributeError, TypeError) as exc:
            raise ValueError(f"the state does not fit this optimizer: "
                             f"{type(exc).__name__}: {exc}") from None

    def _set_state(self, state, variables) -> None:
        cfg = state["config"]
        arrays = state["arrays"]
        if cfg.get("class_name", type(self).__name__) != type(self).__name__:
            raise ValueError(f"state of a {cfg.get('class_name')} cannot be loaded into a "
                             f"{type(self).__name__}")
        saved = cfg["variables"]
        # The saved hyperparameters, validated by the constructor (applied last).
        hyper = type(self)(**cfg["config"]) if "config" in cfg else self
        with self._lock:
            if variables is None:
                variables = self.variables
            variables = list(variables)
            if len(variables) != len(saved):
                raise ValueError(f"the state holds {len(saved)} variables, got "
                                 f"{len(variables)}")
            new = []
            for i, (var, info) in enumerate(zip(variables, saved)):
                table = self._array_of(var)
                want = set(self._needs_slots())
                if set(info["slots"]) != want:
                    raise ValueError(f"variable {i}: saved slots {info['slots']}, this "
                                     f"optimizer needs {sorted(want)}")
                slot_arrays = {}
                for name in info["slots"]:
                    a = np.asarray(arrays[f"{i}/{name}"])
                    if a.shape != table.shape:
                        raise ValueError(f"variable {i}: slot {name!r} has shape {a.shape}, "
                                         f"the variable {table.shape}")
                    slot_arrays[name] = np.array(a, dtype=table.dtype, order="C", copy=True)
                step = int(info["step"])
                if step < 0:
                    raise ValueError(f"variable {i}: negative step count {step}")
                new.append(_Slot(var, slot_arrays, step))
            self._slots = new
            for key in hyper.get_config():
                setattr(self, key, getattr(hyper, key))

    def __getstate__(self):
        d = dict(self.__dict__)
        d.pop("_lock", None)
        return d

    def __setstate__(self, d):
        self.__dict__.update(d)
        self._lock = threading.Lock()

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if k != "name")
        return f"{type(self).__name__}({args})"

    # -- updates ----------------------------------------------------------------------
    @staticmethod
    def _array_of(var) -> np.ndarray:
        return var.embeddings if _is_layer(var) else var

    def apply_gradients(self, grads_and_vars) -> None:
        """Apply each ``(grad, var)`` pair.

        Parameters
        ----------
        grads_and_vars : iterable of (grad, var)
            ``var``: an ``Embedding`` / ``EmbeddingBag`` (``grad``: a ``SparseGradient``
            or a dense ``(V, D)`` array) or a float ndarray updated in place (``grad``: a
            dense array of its shape and dtype).  A non-trainable layer is skipped; an
            empty ``SparseGradient`` changes nothing (no step is counted).

        Raises
        ------
        IndexError
            A gradient index outside ``[0, V)`` (naming its position).
        TypeError
            A gradient of another dtype than its variable, or an unknown variable type.
        ValueError
            Shapes that do not match (``dense_shape`` included), a read-only or
            non-contiguous variable (e.g. a table memory-mapped with mode ``'r'``).

        Every pair is checked before any is applied: after an error neither the
        variables nor the optimizer state have changed.
        """
        pairs = list(grads_and_vars)
        with self._lock:
            plan = [p for p in (self._prepare(i, pair) for i, pair in enumerate(pairs))
                    if p is not None]
            # New slots are allocated before the first write too, so that not even a
            # MemoryError can leave some variables updated and others not.
            fresh = {}
            for var, table, _, _ in plan:
                if self._find(var) is None and id(var) not in fresh:
                    fresh[id(var)] = {name: np.full(table.shape, self._slot_init(name),
                                                    dtype=table.dtype)
                                      for name in self._needs_slots()}
            for item in plan:
                self._apply(*item, fresh)

    def _prepare(self, i, pair):
        try:
            grad, var = pair
        except (TypeError, ValueError):
            raise TypeError(f"apply_gradients takes (grad, var) pairs; item {i} is "
                            f"{type(pair).__name__}") from None
        if _is_layer(var):
            if not getattr(var, "trainable", True):
                return None
            table = var.embeddings
        elif isinstance(var, np.ndarray):
            table = var
        else:
            raise TypeError(f"{_var_name(var, i)} must be an Embedding, an EmbeddingBag or a "
                            f"float numpy array, got {type(var).__name__}")
        if grad is None:
            return None
        if _is_sparse(grad):
            if not _is_layer(var) and table.ndim != 2:
                raise ValueError(f"{_var_name(var, i)}: a SparseGradient needs a 2-D variable, "
                                 f"got shape {table.shape}")
            shape = tuple(int(s) for s in grad.dense_shape)
            if shape != tuple(table.shape):
                raise ValueError(f"{_var_name(var, i)}: the gradient's dense_shape {shape} does "
                                 f"not match the variable's shape {tuple(table.shape)}")
            rows = self._wrap(i, var, _core.optim_prepare, table, grad.indices, grad.values)
            if rows.size == 0:
                return None
            return (var, table, rows, None)
        g = self._wrap(i, var, _core.optim_check_dense, table, grad)
        return (var, table, None, g)

    @staticmethod
    def _wrap(i, var, fn, *args):
        try:
            return fn(*args)
        except (IndexError, TypeError, ValueError) as exc:
            raise type(exc)(f"{_var_name(var, i)}: {exc}") from None

    def _apply(self, var, table, rows, dense, fresh):
        s = self._find(var)
        arrays = s.arrays if s is not None else fresh[id(var)]
        step = (s.step if s is not None else 0) + 1
        names = self._needs_slots()
        s0 = arrays[names[0]] if len(names) > 0 else None
        s1 = arrays[names[1]] if len(names) > 1 else None
        h = self._hyper(step)
        if rows is not None:
            _core.optim_sparse(rows, table, s0, s1, *h, not self._lazy())
        else:
            _core.optim_dense(table, dense, s0, s1, *h)
        if s is None:
            self._slots.append(_Slot(var, arrays, step))
        else:
            s.step = step

    def _hyper(self, step):
        return (self._kind(), self.learning_rate, 0.0, 0.9, 0.999, 1e-7, 0.0)


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

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, lazy=True, name=None):
        super().__init__(learning_rate, name)
        self.momentum = float(momentum)
        if not 0.0 <= self.momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum!r}")
        self.nesterov = bool(nesterov)
        self.lazy = bool(lazy)

    def _kind(self):
        if self.momentum == 0.0:
            return _SGD
        return _NESTEROV if self.nesterov else _MOMENTUM

    def _needs_slots(self):
        return () if self.momentum == 0.0 else ("momentum",)

    def _lazy(self):
        return self.lazy or self.momentum == 0.0

    def _hyper(self, step):
        return (self._kind(), self.learning_rate, self.momentum, 0.9, 0.999, 1e-7, 0.0)

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

    _slot_names = ("accumulator",)

    def __init__(self, learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7,
                 name=None):
        super().__init__(learning_rate, name)
        self.initial_accumulator_value = float(initial_accumulator_value)
        if not self.initial_accumulator_value >= 0.0:
            raise ValueError(f"initial_accumulator_value must be >= 0, got "
                             f"{initial_accumulator_value!r}")
        self.epsilon = float(epsilon)
        if not self.epsilon >= 0.0:
            raise ValueError(f"epsilon must be >= 0, got {epsilon!r}")

    def _kind(self):
        return _ADAGRAD

    def _slot_init(self, name):
        return self.initial_accumulator_value

    def _hyper(self, step):
        return (_ADAGRAD, self.learning_rate, 0.0, 0.9, 0.999, self.epsilon, 0.0)

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

    _slot_names = ("m", "v")

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, lazy=True,
                 name=None):
        super().__init__(learning_rate, name)
        self.beta_1 = float(beta_1)
        self.beta_2 = float(beta_2)
        for n, b in (("beta_1", self.beta_1), ("beta_2", self.beta_2)):
            if not 0.0 <= b < 1.0:
                raise ValueError(f"{n} must be in [0, 1), got {b!r}")
        self.epsilon = float(epsilon)
        if not self.epsilon >= 0.0:
            raise ValueError(f"epsilon must be >= 0, got {epsilon!r}")
        self.lazy = bool(lazy)

    def _kind(self):
        return _ADAM

    def _lazy(self):
        return self.lazy

    def _hyper(self, step):
        step_size = (self.learning_rate * math.sqrt(1.0 - self.beta_2 ** step)
                     / (1.0 - self.beta_1 ** step))
        return (_ADAM, self.learning_rate, 0.0, self.beta_1, self.beta_2, self.epsilon,
                step_size)

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
