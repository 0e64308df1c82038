"""Optimizers for PyTorch with fused native updates of sparse gradients.

``SparseAdam``, ``Adam``, ``AdamW``, ``Adagrad`` and ``SGD`` are
``torch.optim.Optimizer`` subclasses with torch's names, defaults, formulas and state
keys (``step``, ``exp_avg``, ``exp_avg_sq``, ``sum``, ``momentum_buffer``).  One
parameter group may hold parameters with sparse gradients (COO, as
``nn.Embedding(sparse=True)`` makes them) and parameters with dense ones:

* a dense gradient is applied by torch's own single-tensor implementation, so the
  result is exactly torch.optim's;
* a sparse gradient is applied by ONE fused native pass over its touched rows
  (duplicate ids of an uncoalesced gradient are summed first, natively; plain ``SGD``,
  linear in the gradient, adds the rows in order instead, as torch does).  The update is
  *lazy*: rows without a gradient are not touched, their optimizer state included, as
  ``torch.optim.SparseAdam`` does.  Where torch has the same semantics (``SparseAdam``,
  ``Adagrad``, ``SGD`` without momentum) the formulas are torch's term for term and the
  results agree to an ulp or so per step (torch's vectorized CPU kernels fuse some
  multiply-adds and do not always round ``sqrt`` correctly; ours round every operation,
  so they do not depend on the CPU).  Where torch has none, the lazy extension is:

  - ``Adam``: the moments of a touched row decay by the row's own steps only; the bias
    correction uses the parameter's step count (as ``SparseAdam``);
  - ``AdamW``: the decoupled weight decay ``w *= 1 - lr * weight_decay`` is applied to
    the touched rows only; ``Adam``'s, ``Adagrad``'s and ``SGD``'s L2 weight decay
    (``g += weight_decay * w``) likewise (torch refuses it for sparse ``Adagrad``);
  - ``SGD`` with momentum (and nesterov): the buffer rows of the touched rows are
    updated, the others are left as they are; on the parameter's first step the buffer
    of the touched rows is set to their gradient (torch's ``clone``), after that
    ``buf = momentum * buf + (1 - dampening) * g``.

``SparseAdam`` also takes dense gradients (torch refuses them): they are applied with the
same formula to every element.

Every ``step()`` is all or nothing: every gradient (ids in range, dtypes, shapes) and
every hyperparameter of every group is checked before any parameter or state is
written, and the writes run with Ctrl-C held back, so a ``KeyboardInterrupt`` leaves the
state before or after the whole step.  Parameters must be contiguous CPU tensors; sparse
gradients need float32 or float64 parameters.  Learning rates and the other
hyperparameters are read from the parameter groups at every step, so learning-rate
schedulers work.  Arguments of torch's optimizers that are not implemented here
(``amsgrad``, ``maximize``, ``foreach=True``, ``capturable``, ``differentiable``,
``fused=True``) raise ``ValueError`` at construction (and at ``step()`` if a group is
changed to use them): never a silent difference.
"""
from __future__ import annotations

import math
from typing import Iterable, Union

import torch
from torch.optim import Optimizer as _TorchOptimizer
from torch.optim import adagrad as _t_adagrad
from torch.optim import adam as _t_adam
from torch.optim import sgd as _t_sgd

from .._interrupts import deferred
from . import _native

__all__ = ["SparseAdam", "Adam", "AdamW", "Adagrad", "SGD", "clip_grad_norm_"]

_FLOATS = (torch.float32, torch.float64)


def _scalar_dtype():
    # The dtype torch's optimizers keep a tensor `step` in (float32 unless the default
    # dtype is float64), so state_dicts interchange with torch.optim's.
    return torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32


def _number(value, name, lo=None, lo_open=False, hi=None) -> float:
    """A finite float from a number or a one-element tensor, range-checked."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(f"{name} must be a number or a one-element tensor, got a tensor "
                             f"of shape {tuple(value.shape)}")
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if lo is not None and (v <= lo if lo_open else v < lo):
        raise ValueError(f"{name} must be {'>' if lo_open else '>='} {lo}, got {value!r}")
    if hi is not None and not v < hi:
        raise ValueError(f"{name} must be < {hi}, got {value!r}")
    return v


def _betas(value, name="betas"):
    try:
        b1, b2 = value
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a pair (beta1, beta2), got {value!r}") from None
    return (_number(b1, f"{name}[0]", 0.0, hi=1.0), _number(b2, f"{name}[1]", 0.0, hi=1.0))


def _refuse(cls_name, torch_name, group_or_kwargs, defaults) -> None:
    """ValueError for torch arguments this class does not implement, when not default."""
    for name, allowed in defaults.items():
        value = group_or_kwargs.get(name, allowed[0])
        if value not in allowed:
            raise ValueError(
                f"fastembed.torch.optim.{cls_name} does not implement {name}={value!r} "
                f"(only {' or '.join(repr(a) for a in allowed)}); use "
                f"torch.optim.{torch_name} for it")


def _where(gi, pi) -> str:
    return f"parameter {pi} of param_groups[{gi}]"


def _check_param(p, where) -> None:
    if not isinstance(p, torch.Tensor):
        raise TypeError(f"{where} must be a torch.Tensor, got {type(p).__name__}")
    if p.device.type != "cpu":
        raise ValueError(f"{where} is on {p.device}; fastembed.torch.optim updates CPU "
                         f"tensors only")
    if p.layout != torch.strided:
        raise ValueError(f"{where} must be a dense (strided) tensor, got layout {p.layout}")
    if not p.is_contiguous():
        raise ValueError(f"{where} must be contiguous (its stride is {p.stride()} for shape "
                         f"{tuple(p.shape)}); fastembed.torch.optim updates it in place")
    if not (p.is_floating_point()):
        raise TypeError(f"{where} must be a floating-point tensor, got {p.dtype}")


def _rows_view(t):
    """A contiguous tensor as a 2-D numpy view (rows, row size), zero-copy."""
    if t.dim() == 0:
        return t.detach().view(1, 1).numpy()
    return t.detach().view(t.shape[0], math.prod(t.shape[1:])).numpy()


class _SparsePlan:
    """A validated sparse (or, for SparseAdam, dense-as-all-rows) gradient of one param:
    `prepared` by _native.prepare, or for a linear update the raw `ids` and `values`."""

    __slots__ = ("prepared", "table", "ids", "values")

    def __init__(self, prepared, table, ids=None, values=None):
        self.prepared = prepared
        self.table = table
        self.ids = ids
        self.values = values


def _check_ids_in_range(ids, rows, where) -> None:
    if ids.numel() == 0:
        return
    lo, hi = torch.aminmax(ids)
    if lo.item() < 0 or hi.item() >= rows:
        bad = int(torch.nonzero((ids < 0) | (ids >= rows))[0, 0])
        valid = f"valid ids: 0..{rows - 1}" if rows > 0 else "the table is empty"
        raise IndexError(f"{where}: the gradient's indices[{bad}] = {int(ids[bad])} is out of "
                         f"range for a table of {rows} rows ({valid})")


def _prepare_sparse(p, g, where, linear=False):
    """Validate sparse gradient `g` of `p` (nothing is written) and return its plan.

    `linear`: the update is linear in the gradient (plain SGD), so it is applied to the
    uncoalesced rows as they are, and only the ids' range is checked here."""
    if p.dtype not in _FLOATS:
        raise TypeError(f"{where}: sparse gradients need a float32 or float64 parameter, "
                        f"got {p.dtype}")
    _check_grad(p, g, where)
    if g.sparse_dim() != 1 or p.dim() < 1:
        raise ValueError(f"{where}: a sparse gradient must be sparse in its first dimension "
                         f"only (sparse_dim 1, as nn.Embedding makes them), got sparse_dim "
                         f"{g.sparse_dim()}")
    idx = g._indices()
    vals = g._values()
    if idx.dtype not in (torch.int64, torch.int32):
        raise TypeError(f"{where}: the gradient's indices must be int64 or int32, got "
                        f"{idx.dtype}")
    ids = idx[0]
    if not ids.is_contiguous():
        ids = ids.contiguous()
    n = vals.shape[0]
    if n != ids.shape[0]:
        raise ValueError(f"{where}: the gradient has {ids.shape[0]} indices but {n} value "
                         f"rows")
    table = _rows_view(p)
    vals = vals.detach().contiguous().view(n, table.shape[1])
    if linear:
        _check_ids_in_range(ids, table.shape[0], where)
        return _SparsePlan(None, table, ids.numpy(), vals.numpy())
    prepared = _native.prepare(table, ids.numpy(), vals.numpy())
    return _SparsePlan(prepared, table)


def _check_grad(p, g, where) -> None:
    """The checks every gradient passes, sparse or dense: dtype, device, shape."""
    if g.dtype != p.dtype:
        raise TypeError(f"{where}: the gradient must have the parameter's dtype {p.dtype}, "
                        f"got {g.dtype}")
    if g.device.type != "cpu":
        raise ValueError(f"{where}: the gradient is on {g.device}, expected the CPU")
    if tuple(g.shape) != tuple(p.shape):
        raise ValueError(f"{where}: the gradient's shape {tuple(g.shape)} does not match the "
                         f"parameter's {tuple(p.shape)}")


class _Fused(_TorchOptimizer):
    """The shared step: plan (validate everything, allocate missing state), then write."""

    _torch_name = ""
    # torch arguments accepted only with these values: name -> allowed values (first is
    # the default).
    _fixed: dict = {}
    # Whether `step` is a tensor (torch's Adam, Adagrad) or an int (torch's SparseAdam).
    _tensor_step = True

    def _refuse_unsupported(self, values) -> None:
        _refuse(type(self).__name__, self._torch_name, values, self._fixed)

    # -- subclass hooks ---------------------------------------------------------------
    def _group_hyper(self, group) -> dict:
        raise NotImplementedError

    def _slot_init(self, hp) -> dict:
        """name -> initial value of the state tensors a parameter needs."""
        raise NotImplementedError

    def _sparse_hyper(self, hp, state, fresh) -> _native.Hyper:
        raise NotImplementedError

    def _dense_update(self, hp, params, grads, states) -> None:
        raise NotImplementedError

    _dense_via_kernel = False  # SparseAdam: dense gradients as every row

    def _has_step(self) -> bool:
        return True

    def _linear(self, hp) -> bool:
        """Whether the sparse update is `w += scale * g` (no state): see _native.scatter."""
        return False

    # -- the step ---------------------------------------------------------------------
    def _state_plan(self, p, hp, sparse, where):
        """The state tensors `p` will be updated with: {name: tensor}, the existing ones
        when usable, else new ones (committed to self.state only by the write phase)."""
        old = self.state.get(p, {})
        new = {}
        fresh = False
        for name, init in self._slot_init(hp, sparse).items():
            t = old.get(name)
            if t is None:
                fresh = True
                t = torch.full_like(p, init, memory_format=torch.contiguous_format)
            else:
                if not isinstance(t, torch.Tensor) or tuple(t.shape) != tuple(p.shape):
                    raise ValueError(f"{where}: state {name!r} must be a tensor of the "
                                     f"parameter's shape {tuple(p.shape)}, got "
                                     f"{getattr(t, 'shape', type(t).__name__)}")
                if t.dtype != p.dtype or t.device != p.device or not t.is_contiguous() \
                        or t.layout != torch.strided:
                    t = t.to(device=p.device, dtype=p.dtype).contiguous()
            new[name] = t
        if self._has_step():
            step = old.get("step")
            if step is None:
                step = torch.tensor(0.0, dtype=_scalar_dtype()) if self._tensor_step else 0
            elif self._tensor_step and not isinstance(step, torch.Tensor):
                step = torch.tensor(float(step), dtype=_scalar_dtype())
            elif not self._tensor_step and isinstance(step, torch.Tensor):
                step = int(step.item())
            new["step"] = step
        return new, fresh

    @torch.no_grad()
    def step(self, closure=None):
        """Perform one optimization step (all or nothing; see the module's docs).

        Args:
            closure (Callable, optional): A closure that reevaluates the model and
                returns the loss.
        """
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        plans = []
        for gi, group in enumerate(self.param_groups):
            self._refuse_unsupported(group)
            hp = self._group_hyper(group)
            sparse, dense = [], []
            for pi, p in enumerate(group["params"]):
                g = p.grad
                if g is None:
                    continue
                where = _where(gi, pi)
                _check_param(p, where)
                if g.layout == torch.sparse_coo:
                    plan = _prepare_sparse(p, g, where, self._linear(hp))
                    state, fresh = self._state_plan(p, hp, True, where)
                    sparse.append((p, plan, state, fresh))
                elif g.layout == torch.strided:
                    _check_grad(p, g, where)
                    if self._dense_via_kernel:
                        if p.dtype not in _FLOATS:
                            raise TypeError(f"{where}: {type(self).__name__} needs float32 "
                                            f"or float64 parameters, got {p.dtype}")
                        table = _rows_view(p)
                        ids = torch.arange(table.shape[0], dtype=torch.int64).numpy()
                        vals = _rows_view(g.contiguous())
                        plan = _SparsePlan(_native.prepare(table, ids, vals), table)
                        state, fresh = self._state_plan(p, hp, True, where)
                        sparse.append((p, plan, state, fresh))
                    else:
                        state, _ = self._state_plan(p, hp, False, where)
                        dense.append((p, g, state))
                else:
                    raise ValueError(f"{where}: gradients must be dense (strided) or sparse "
                                     f"COO tensors, got layout {g.layout}")
            plans.append((hp, sparse, dense))
        with deferred():
            for hp, sparse, dense in plans:
                for p, plan, state, fresh in sparse:
                    st = self.state[p]
                    st.update(state)
                    if self._has_step():
                        st["step"] += 1  # in place for a tensor step, as torch does
                    h = self._sparse_hyper(hp, st, fresh)
                    if plan.prepared is None:
                        _native.scatter(plan.table, plan.ids, plan.values, -h.lr)
                        continue
                    names = list(self._slot_init(hp, True))
                    s0 = _rows_view(st[names[0]]) if len(names) > 0 else None
                    s1 = _rows_view(st[names[1]]) if len(names) > 1 else None
                    _native.apply(plan.prepared, plan.table, s0, s1, h)
                if dense:
                    for p, _, state in dense:
                        if state:  # torch keeps no state entry for plain SGD
                            self.state[p].update(state)
                    self._dense_update(hp, [d[0] for d in dense], [d[1] for d in dense],
                                       [self.state.get(d[0], {}) for d in dense])
        return loss


class SparseAdam(_Fused):
    """torch.optim.SparseAdam with one fused native pass per sparse gradient.

    Same arguments, defaults, formula (term for term) and state (``step`` an int,
    ``exp_avg``, ``exp_avg_sq``).  Unlike torch's, it also takes
    dense gradients (the same lazy formula applied to every element), so one optimizer
    serves a whole model.  ``maximize=True`` is not implemented (ValueError).
    """

    _torch_name = "SparseAdam"
    _fixed = {"maximize": (False,)}
    _tensor_step = False
    _dense_via_kernel = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, maximize=False):
        _number(lr, "lr", 0.0, lo_open=True)
        _number(eps, "eps", 0.0, lo_open=True)
        _betas(betas)
        self._refuse_unsupported({"maximize": maximize})
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps, "maximize": maximize})
        for gi, group in enumerate(self.param_groups):
            for pi, p in enumerate(group["params"]):
                if p.is_sparse:
                    raise ValueError(f"{_where(gi, pi)}: SparseAdam requires dense parameter "
                                     f"tensors")
                if p.is_complex():
                    raise ValueError(f"{_where(gi, pi)}: SparseAdam does not support complex "
                                     f"parameters")

    def _group_hyper(self, group):
        b1, b2 = _betas(group["betas"])
        return {"lr": _number(group["lr"], "lr", 0.0), "beta1": b1, "beta2": b2,
                "eps": _number(group["eps"], "eps", 0.0)}

    def _slot_init(self, hp, sparse=True):
        return {"exp_avg": 0.0, "exp_avg_sq": 0.0}

    def _sparse_hyper(self, hp, state, fresh):
        step = state["step"]
        b1, b2 = hp["beta1"], hp["beta2"]
        # torch/optim/_functional.py sparse_adam, in double as there.
        step_size = hp["lr"] * math.sqrt(1 - b2 ** step) / (1 - b1 ** step)
        return _native.Hyper(_native.ADAM, lr=hp["lr"], beta1=b1, beta2=b2, eps=hp["eps"],
                             step_size=step_size)


class Adam(_Fused):
    """torch.optim.Adam; sparse gradients by one fused lazy native pass (see the module).

    Same arguments, defaults and state (``step`` a tensor, ``exp_avg``, ``exp_avg_sq``);
    dense gradients give exactly torch's results.  ``decoupled_weight_decay=True`` is
    AdamW.  ``amsgrad``, ``maximize``, ``foreach=True``, ``capturable``,
    ``differentiable`` and ``fused=True`` are not implemented (ValueError).
    """

    _torch_name = "Adam"
    _fixed = {"amsgrad": (False,), "maximize": (False,), "foreach": (None, False),
              "capturable": (False,), "differentiable": (False,), "fused": (None, False)}

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                 amsgrad=False, *, foreach=None, maximize=False, capturable=False,
                 differentiable=False, fused=None, decoupled_weight_decay=False):
        _number(lr, "lr", 0.0)
        _number(eps, "eps", 0.0)
        _betas(betas)
        _number(weight_decay, "weight_decay", 0.0)
        opts = {"amsgrad": amsgrad, "foreach": foreach, "maximize": maximize,
                "capturable": capturable, "differentiable": differentiable, "fused": fused}
        self._refuse_unsupported(opts)
        defaults = {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay,
                    "decoupled_weight_decay": bool(decoupled_weight_decay), **opts}
        super().__init__(params, defaults)

    def _group_hyper(self, group):
        b1, b2 = _betas(group["betas"])
        return {"lr": _number(group["lr"], "lr", 0.0), "beta1": b1, "beta2": b2,
                "eps": _number(group["eps"], "eps", 0.0),
                "weight_decay": _number(group["weight_decay"], "weight_decay", 0.0),
                "decoupled": bool(group.get("decoupled_weight_decay", False))}

    def _slot_init(self, hp, sparse=True):
        return {"exp_avg": 0.0, "exp_avg_sq": 0.0}

    def _sparse_hyper(self, hp, state, fresh):
        step = float(state["step"].item())
        lr, b1, b2, wd = hp["lr"], hp["beta1"], hp["beta2"], hp["weight_decay"]
        # torch/optim/adam.py _single_tensor_adam, in double as there.
        step_size = lr / (1 - b1 ** step)
        bias2_sqrt = (1 - b2 ** step) ** 0.5
        mode = _native.WD_NONE
        if wd != 0:
            mode = _native.WD_DECOUPLED if hp["decoupled"] else _native.WD_L2
        return _native.Hyper(_native.TORCH_ADAM, lr=lr, beta1=b1, beta2=b2, eps=hp["eps"],
                             step_size=step_size, wd_mode=mode, weight_decay=wd,
                             decay=1 - lr * wd, bias2_sqrt=bias2_sqrt)

    def _dense_update(self, hp, params, grads, states):
        _t_adam.adam(params, grads, [s["exp_avg"] for s in states],
                     [s["exp_avg_sq"] for s in states], [], [s["step"] for s in states],
                     foreach=False, capturable=False, differentiable=False, fused=False,
                     grad_scale=None, found_inf=None, has_complex=False,
                     decoupled_weight_decay=hp["decoupled"], amsgrad=False,
                     beta1=hp["beta1"], beta2=hp["beta2"], lr=hp["lr"],
                     weight_decay=hp["weight_decay"], eps=hp["eps"], maximize=False)


class AdamW(Adam):
    """torch.optim.AdamW (Adam with decoupled weight decay, default 1e-2).

    On a sparse gradient the decay ``w *= 1 - lr * weight_decay`` is applied to the
    touched rows only (lazy); on a dense gradient, to every element, as torch does.
    """

    _torch_name = "AdamW"

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                 amsgrad=False, *, maximize=False, foreach=None, capturable=False,
                 differentiable=False, fused=None):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, foreach=foreach,
                         maximize=maximize, capturable=capturable,
                         differentiable=differentiable, fused=fused,
                         decoupled_weight_decay=True)

    def __setstate__(self, state):
        super().__setstate__(state)
        for group in self.param_groups:
            group["decoupled_weight_decay"] = True


class Adagrad(_Fused):
    """torch.optim.Adagrad; sparse gradients by one fused native pass.

    Same arguments, defaults and state (``step`` a tensor and ``sum``, created at
    construction as torch does).  On sparse gradients the results are torch's (to an ulp
    or so per step); ``weight_decay`` also works on sparse gradients (L2 on the touched
    rows, lazy; torch refuses it).  ``maximize``, ``foreach=True``, ``differentiable`` and
    ``fused=True`` are not implemented (ValueError).
    """

    _torch_name = "Adagrad"
    _fixed = {"foreach": (None, False), "maximize": (False,), "differentiable": (False,),
              "fused": (None, False)}

    def __init__(self, params, lr=1e-2, lr_decay=0, weight_decay=0,
                 initial_accumulator_value=0, eps=1e-10, foreach=None, *, maximize=False,
                 differentiable=False, fused=None):
        _number(lr, "lr", 0.0)
        _number(lr_decay, "lr_decay", 0.0)
        _number(weight_decay, "weight_decay", 0.0)
        _number(initial_accumulator_value, "initial_accumulator_value", 0.0)
        _number(eps, "eps", 0.0)
        opts = {"foreach": foreach, "maximize": maximize, "differentiable": differentiable,
                "fused": fused}
        self._refuse_unsupported(opts)
        defaults = {"lr": lr, "lr_decay": lr_decay, "eps": eps, "weight_decay": weight_decay,
                    "initial_accumulator_value": initial_accumulator_value, **opts}
        super().__init__(params, defaults)
        for group in self.param_groups:
            for p in group["params"]:
                state = self.state[p]
                state["step"] = torch.tensor(0.0, dtype=_scalar_dtype())
                state["sum"] = torch.full_like(p, initial_accumulator_value,
                                               memory_format=torch.contiguous_format)

    def _group_hyper(self, group):
        return {"lr": _number(group["lr"], "lr", 0.0),
                "lr_decay": _number(group["lr_decay"], "lr_decay", 0.0),
                "eps": _number(group["eps"], "eps", 0.0),
                "weight_decay": _number(group["weight_decay"], "weight_decay", 0.0),
                "init": _number(group.get("initial_accumulator_value", 0.0),
                                "initial_accumulator_value", 0.0)}

    def _slot_init(self, hp, sparse=True):
        return {"sum": hp["init"]}

    def _sparse_hyper(self, hp, state, fresh):
        step = float(state["step"].item())
        clr = hp["lr"] / (1 + (step - 1) * hp["lr_decay"])
        wd = hp["weight_decay"]
        return _native.Hyper(_native.TORCH_ADAGRAD, lr=clr, eps=hp["eps"],
                             wd_mode=_native.WD_L2 if wd != 0 else _native.WD_NONE,
                             weight_decay=wd)

    def _dense_update(self, hp, params, grads, states):
        _t_adagrad.adagrad(params, grads, [s["sum"] for s in states],
                           [s["step"] for s in states], fused=False, grad_scale=None,
                           found_inf=None, has_sparse_grad=False, foreach=False,
                           differentiable=False, has_complex=False, lr=hp["lr"],
                           weight_decay=hp["weight_decay"], lr_decay=hp["lr_decay"],
                           eps=hp["eps"], maximize=False)


class SGD(_Fused):
    """torch.optim.SGD; sparse gradients by one fused native pass, momentum included.

    Same arguments, defaults and state (``momentum_buffer`` when ``momentum != 0``).
    Momentum and nesterov work on sparse gradients (lazily: see the module's docs).
    ``maximize``, ``foreach=True``, ``differentiable`` and ``fused=True`` are not
    implemented (ValueError).
    """

    _torch_name = "SGD"
    _fixed = {"maximize": (False,), "foreach": (None, False), "differentiable": (False,),
              "fused": (None, False)}

    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0,
                 nesterov=False, *, maximize=False, foreach=None, differentiable=False,
                 fused=None):
        _number(lr, "lr", 0.0)
        _number(momentum, "momentum", 0.0)
        _number(dampening, "dampening")
        _number(weight_decay, "weight_decay", 0.0)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        opts = {"maximize": maximize, "foreach": foreach, "differentiable": differentiable,
                "fused": fused}
        self._refuse_unsupported(opts)
        defaults = {"lr": lr, "momentum": momentum, "dampening": dampening,
                    "weight_decay": weight_decay, "nesterov": bool(nesterov), **opts}
        super().__init__(params, defaults)

    def _has_step(self):
        return False

    def _linear(self, hp):
        # torch adds an uncoalesced gradient's rows one by one; so do we, in one pass.
        return hp["momentum"] == 0 and hp["weight_decay"] == 0

    def _group_hyper(self, group):
        hp = {"lr": _number(group["lr"], "lr", 0.0),
              "momentum": _number(group["momentum"], "momentum", 0.0),
              "dampening": _number(group["dampening"], "dampening"),
              "weight_decay": _number(group["weight_decay"], "weight_decay", 0.0),
              "nesterov": bool(group["nesterov"])}
        if hp["nesterov"] and (hp["momentum"] <= 0 or hp["dampening"] != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        return hp

    def _slot_init(self, hp, sparse=True):
        # A dense step leaves a missing buffer to torch, which clones the gradient.
        return {"momentum_buffer": 0.0} if hp["momentum"] != 0 and sparse else {}

    def _sparse_hyper(self, hp, state, fresh):
        wd = hp["weight_decay"]
        kind = _native.TORCH_SGD
        if hp["momentum"] != 0:
            kind = _native.TORCH_NESTEROV if hp["nesterov"] else _native.TORCH_MOMENTUM
        return _native.Hyper(kind, lr=hp["lr"], momentum=hp["momentum"],
                             dampening=hp["dampening"], init_buf=fresh,
                             wd_mode=_native.WD_L2 if wd != 0 else _native.WD_NONE,
                             weight_decay=wd)

    def _dense_update(self, hp, params, grads, states):
        bufs = [s.get("momentum_buffer") for s in states] if hp["momentum"] != 0 else []
        _t_sgd.sgd(params, grads, bufs, has_sparse_grad=False, foreach=False, fused=False,
                   grad_scale=None, found_inf=None, weight_decay=hp["weight_decay"],
                   momentum=hp["momentum"], lr=hp["lr"], dampening=hp["dampening"],
                   nesterov=hp["nesterov"], maximize=False)
        if hp["momentum"] != 0:
            for p, b in zip(params, bufs):
                self.state[p]["momentum_buffer"] = b


_TensorOrTensors = Union[torch.Tensor, Iterable[torch.Tensor]]


def clip_grad_norm_(parameters: _TensorOrTensors, max_norm: float, norm_type: float = 2.0,
                    error_if_nonfinite: bool = False, foreach=None) -> torch.Tensor:
    """Clip the gradients of `parameters` (sparse COO and dense mixed) to `max_norm`.

    torch.nn.utils.clip_grad_norm_'s semantics: the total norm is the `norm_type` norm of
    all gradients together as if they were one vector (a sparse gradient counts as its
    dense equivalent: duplicate ids of an uncoalesced gradient are summed first); if it
    exceeds `max_norm`, every gradient is multiplied in place by
    ``max_norm / (total_norm + 1e-6)``.  Returns the total norm (a tensor).
    `foreach` is accepted for compatibility; it does not change the result.
    """
    if isinstance(parameters, torch.Tensor):
        parameters = [parameters]
    grads = [p.grad for p in parameters if p.grad is not None]
    max_norm = _number(max_norm, "max_norm")
    norm_type = float(norm_type)
    if not grads:
        return torch.tensor(0.0)
    norms = []
    for g in grads:
        if g.layout == torch.sparse_coo:
            # The norm of the dense gradient: duplicates must be summed first.
            v = g.coalesce()._values()
        elif g.layout == torch.strided:
            v = g
        else:
            raise ValueError(f"clip_grad_norm_: gradients must be dense or sparse COO, got "
                             f"layout {g.layout}")
        norms.append(torch.linalg.vector_norm(v, norm_type))
    first = grads[0].device
    total = torch.linalg.vector_norm(torch.stack([n.to(first) for n in norms]), norm_type)
    if error_if_nonfinite and torch.logical_or(total.isnan(), total.isinf()):
        raise RuntimeError(
            f"The total norm of order {norm_type} for gradients from `parameters` is "
            f"non-finite, so it cannot be clipped. To disable this error and scale the "
            f"gradients by the non-finite norm anyway, set `error_if_nonfinite=False`")
    coef = torch.clamp(max_norm / (total + 1e-6), max=1.0)
    with torch.no_grad(), deferred():
        for g in grads:
            c = coef.to(g.device, g.dtype)
            if g.layout == torch.sparse_coo:
                g._values().mul_(c)
            else:
                g.mul_(c)
    return total
