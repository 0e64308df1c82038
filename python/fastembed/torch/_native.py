"""The one place fastembed.torch.optim calls into ``_core``'s optimizer kernels.

Two calls, so that a step can validate every sparse gradient before it writes anything:
:func:`prepare` checks and copies a gradient's ids (range-checked, duplicates summed
natively) and :func:`apply` runs the fused pass over the touched rows.  Everything the
kernels need about the method travels in one :class:`Hyper`, so a change of the binding's
signature touches only :func:`apply`.  :func:`scatter` is plain SGD's update, linear in
the gradient, so duplicates need no coalescing: ``w[ids[i]] += scale * values[i]`` in
order, as torch adds an uncoalesced gradient.
"""
from __future__ import annotations

from typing import NamedTuple

from .. import _core
from .._ids import as_ids

# The kernels' methods (fe::OptKind, bound as _core.OptKind).
ADAM = _core.OptKind.ADAM  # the Keras / torch SparseAdam form
TORCH_SGD, TORCH_MOMENTUM, TORCH_NESTEROV, TORCH_ADAGRAD, TORCH_ADAM = (
    _core.OptKind.TORCH_SGD, _core.OptKind.TORCH_MOMENTUM, _core.OptKind.TORCH_NESTEROV,
    _core.OptKind.TORCH_ADAGRAD, _core.OptKind.TORCH_ADAM)
# Weight decay modes of the torch kinds.
WD_NONE, WD_L2, WD_DECOUPLED = 0, 1, 2


class Hyper(NamedTuple):
    """One step's constants for one parameter (the fields of fe::OptHyper)."""
    kind: _core.OptKind
    lr: float = 0.0
    momentum: float = 0.0
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 0.0
    step_size: float = 0.0
    wd_mode: int = WD_NONE
    weight_decay: float = 0.0
    decay: float = 1.0
    dampening: float = 0.0
    init_buf: bool = False
    bias2_sqrt: float = 1.0


def prepare(table, ids, values):
    """Validate a sparse gradient against `table` (numpy views) without writing anything.

    Raises IndexError (an id out of range), TypeError (dtypes) or ValueError (shapes).
    """
    return _core.optim_prepare(table, ids, values)


def apply(prepared, table, s0, s1, h: Hyper) -> None:
    """One fused native pass of `h`'s update over the rows of `prepared` (lazy); `s0`,
    `s1` are the method's state arrays in the order of ``_core.opt_slot_names``."""
    native = _core.OptHyper()
    for field, value in h._asdict().items():
        setattr(native, field, value)
    slots = dict(zip(_core.opt_slot_names(h.kind), (s0, s1)))
    _core.optim_sparse(prepared, table, slots, native, False)


def scatter(table, ids, values, scale: float) -> None:
    """``table[ids[i]] += scale * values[i]`` for i in order (one native pass; every id is
    checked before any write)."""
    _core.scatter_add(table, as_ids(ids), values, scale)
