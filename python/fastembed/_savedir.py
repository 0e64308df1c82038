"""The folder a layer is saved in, written so that a crash never loses it.

A saved layer is a folder holding ``config.json`` and ``embeddings.npy``. A save writes
and fsyncs the new copy in the sibling ``<path>.fe-new``, then swaps it in with two
renames, the previous copy waiting in ``<path>.fe-old`` in between. At every moment one
of the three folders holds a complete copy, and :func:`read` finds it: a crash at any
point leaves the old copy or the new one, never a mix.
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
from typing import Any, Callable, Dict, Literal, NamedTuple, Optional, cast

import numpy as np
import numpy.typing as npt

from ._initializers import is_table_dtype, table_dtype
from ._interrupts import deferred

__all__ = ["CONFIG_FILE", "TABLE_FILE", "MmapMode", "SavedLayerNotFoundError", "SavedCopy",
           "write", "read", "reopened"]

MmapMode = Literal["r", "r+"]

CONFIG_FILE = "config.json"
TABLE_FILE = "embeddings.npy"
_NEW_SUFFIX = ".fe-new"
_OLD_SUFFIX = ".fe-old"


class SavedLayerNotFoundError(FileNotFoundError, ValueError):
    """:meth:`Embedding.load` of a path that does not exist.

    A ``FileNotFoundError`` (``errno`` ENOENT, ``filename`` the path); also a
    ``ValueError``, which is what a missing path raised before, so handlers written for
    either keep working.
    """

    def __init__(self, *args: Any) -> None:
        if len(args) == 1:  # the path (unpickling passes errno, strerror, filename)
            args = (errno.ENOENT, os.strerror(errno.ENOENT), args[0])
        super().__init__(*args)

    def __str__(self) -> str:
        return f"{self.filename} holds no saved embedding layer: no such file or folder"


class SavedCopy(NamedTuple):
    """What :func:`read` found: the config dict and the table, with their file names."""

    config: Dict[str, Any]
    config_path: str
    table: npt.NDArray[Any]
    table_path: str


def _fsync_dir(path: str) -> None:
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


def _complete_copy(folder: str) -> bool:
    # config.json is written last (after the table is on disk), so its presence marks
    # a complete copy.
    return os.path.isfile(os.path.join(folder, CONFIG_FILE)) and \
        os.path.isfile(os.path.join(folder, TABLE_FILE))


def _file_array(table: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """The array np.save writes: bfloat16 (unknown to numpy's file format) as its uint16
    bit patterns; config.json's dtype says how to read them back."""
    return table.view(np.uint16) if table.dtype.name == "bfloat16" else table


def _normalized(path: "str | os.PathLike[str]") -> str:
    return os.fspath(path).rstrip(os.sep) or os.sep


def write(path: "str | os.PathLike[str]", config: Dict[str, Any], table: npt.NDArray[Any],
          after_swap: Optional[Callable[[str], None]] = None) -> None:
    """Save `config` and `table` as the folder `path`, replacing an earlier save there.

    `after_swap` is called with the new table file's name once the new copy is in place
    and before the old copy is removed, with Ctrl-C still held back (the caller re-maps
    a table that mapped the replaced file there).

    Raises ValueError when `path` is a file or a folder holding other files than a saved
    layer (the swap replaces the whole folder), and OSError from the file system: an error
    while writing leaves the previous copy in place and removes the partial new one; an
    error during the swap leaves complete copies that :func:`read` finds.
    """
    path = _normalized(path)
    new, old = path + _NEW_SUFFIX, path + _OLD_SUFFIX
    if os.path.exists(path) and not os.path.isdir(path):
        raise ValueError(f"{path} exists and is not a folder")
    if os.path.isdir(path):
        # The swap replaces the whole folder: never take a user's other files with it.
        others = sorted(set(os.listdir(path)) - {CONFIG_FILE, TABLE_FILE,
                                                 CONFIG_FILE + ".tmp"})
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
    with contextlib.ExitStack() as held:
        try:
            os.makedirs(new)
            with open(os.path.join(new, TABLE_FILE), "wb") as f:
                np.save(f, _file_array(np.ascontiguousarray(table)), allow_pickle=False)
                f.flush()
                os.fsync(f.fileno())
            tmp_cfg = os.path.join(new, CONFIG_FILE + ".tmp")
            with open(tmp_cfg, "w", encoding="utf-8") as f:
                json.dump(config, f, indent=2, sort_keys=True)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp_cfg, os.path.join(new, CONFIG_FILE))
            _fsync_dir(new)
            # From here on Ctrl-C is held back until the swap, `after_swap` and the
            # removal of the old copy are done.
            held.enter_context(deferred())
        except BaseException:
            # Ctrl-C or a full disk while writing: the old copy is in place; do not
            # leave a half-written new one behind.
            shutil.rmtree(new, ignore_errors=True)
            raise
        if os.path.isdir(path):
            if os.path.exists(old):
                shutil.rmtree(old)
            os.rename(path, old)
            _fsync_dir(parent)
        os.rename(new, path)
        _fsync_dir(parent)
        if after_swap is not None:
            after_swap(os.path.join(path, TABLE_FILE))
        if os.path.exists(old):
            shutil.rmtree(old, ignore_errors=True)


def read(path: "str | os.PathLike[str]", mmap_mode: Optional[MmapMode] = None) -> SavedCopy:
    """The complete copy saved at `path` (or left beside it by a crash during a save).

    The table is a float32/float64/float16/bfloat16 2-D array, memory-mapped with
    `mmap_mode` when given. Raises :class:`SavedLayerNotFoundError` when `path` does not
    exist, ValueError when it holds no complete copy or an unreadable one.
    """
    path = _normalized(path)
    folder = None
    # After a crash between the two renames of write(), the complete copies are the
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
                         f"{CONFIG_FILE} and {TABLE_FILE})")
    cfg_path = os.path.join(folder, CONFIG_FILE)
    try:
        with open(cfg_path, encoding="utf-8") as f:
            cfg = json.load(f)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{cfg_path}: unreadable config: {exc}") from None
    if not isinstance(cfg, dict):
        raise ValueError(f"{cfg_path}: the config must be a JSON object")
    table_path = os.path.join(folder, TABLE_FILE)
    try:
        table: npt.NDArray[Any] = np.load(table_path, mmap_mode=mmap_mode, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{table_path}: unreadable table: {exc}") from None
    if table.dtype == np.uint16 and cfg.get("dtype") == "bfloat16":
        table = table.view(table_dtype("bfloat16"))  # saved as its bit patterns
    if table.ndim != 2 or not is_table_dtype(table.dtype):
        raise ValueError(f"{table_path}: expected a 2-D float32/float64/float16/bfloat16 "
                         f"table, got shape {table.shape} dtype {table.dtype}")
    return SavedCopy(cfg, cfg_path, table, table_path)


def reopened(table: npt.NDArray[Any], table_file: str,
             dtype: np.dtype[Any]) -> npt.NDArray[Any]:
    """`table`, or, when it memory-maps `table_file` (just replaced by a save), a map of
    the new file in the same mode, so that "r+" updates keep going to the saved file."""
    if isinstance(table, np.memmap) and table.filename and \
            os.path.abspath(table.filename) == os.path.abspath(table_file):
        new: npt.NDArray[Any] = np.load(table_file, mmap_mode=cast(MmapMode, table.mode),
                                        allow_pickle=False)
        return new.view(dtype) if new.dtype != dtype else new
    return table
