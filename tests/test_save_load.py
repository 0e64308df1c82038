"""Embedding.save / Embedding.load: bit-exact round trips, memory maps, crash safety."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

import fastembed as fe
from fastembed import _savedir


def same_layer(a, b):
    assert type(a) is type(b)
    assert a.get_config() == b.get_config()
    assert a.embeddings.dtype == b.embeddings.dtype
    assert a.embeddings.tobytes() == b.embeddings.tobytes()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_round_trip_bit_for_bit(tmp_path, dtype):
    e = fe.Embedding(50, 7, dtype=dtype, seed=5, mask_zero=True, input_length=3,
                     trainable=False, name="words")
    e.embeddings[3] = np.nan  # odd values survive too
    e.embeddings[4] = -0.0
    e.save(tmp_path / "m")
    assert sorted(os.listdir(tmp_path)) == ["m"]
    assert sorted(os.listdir(tmp_path / "m")) == ["config.json", "embeddings.npy"]
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    assert cfg["input_length"] == 3 and cfg["input_dim"] == 50
    got = fe.Embedding.load(tmp_path / "m")
    same_layer(got, e)
    assert got.embeddings.flags.c_contiguous and got.embeddings.flags.writeable
    np.testing.assert_array_equal(got([[1, 2, 3]]), e([[1, 2, 3]]))


def test_bag_round_trip_and_overwrite(tmp_path):
    b = fe.EmbeddingBag(20, 4, mode="max", seed=1)
    path = str(tmp_path / "bag") + os.sep  # a trailing separator is fine
    b.save(path)
    got = fe.Embedding.load(path)  # the saved class is restored
    assert isinstance(got, fe.EmbeddingBag) and got.mode == "max"
    same_layer(got, b)
    b.embeddings[:] = 1.5
    b.save(path)  # overwrite: the new copy replaces the old one
    same_layer(fe.EmbeddingBag.load(path), b)
    assert sorted(os.listdir(tmp_path)) == ["bag"]


def test_mmap_read_only_serves_lookups_and_refuses_updates(tmp_path):
    e = fe.Embedding(100, 8, seed=2)
    e.save(tmp_path / "m")
    m = fe.Embedding.load(tmp_path / "m", mmap_mode="r")
    assert isinstance(m.embeddings, np.memmap) and not m.embeddings.flags.writeable
    ids = np.array([[1, 5, 99], [0, 0, 7]])
    np.testing.assert_array_equal(m(ids), e(ids))
    bag = fe.ops.embedding_bag(m.embeddings, ids, mode="mean")
    np.testing.assert_allclose(bag, e.embeddings[ids].mean(1), rtol=1e-6)
    before = np.array(m.embeddings).tobytes()
    with pytest.raises(ValueError, match="read-only"):
        fe.ops.scatter_add(m.embeddings, [1, 2], np.ones((2, 8), np.float32))
    with pytest.raises(ValueError, match="read-only"):
        m.set_weights([np.zeros((100, 8))])
    assert np.array(m.embeddings).tobytes() == before
    assert fe.Embedding.load(tmp_path / "m").embeddings.tobytes() == before


def test_mmap_read_write_updates_the_file(tmp_path):
    e = fe.Embedding(30, 4, seed=3)
    e.save(tmp_path / "m")
    m = fe.Embedding.load(tmp_path / "m", mmap_mode="r+")
    assert m.embeddings.flags.writeable
    fe.ops.scatter_add(m.embeddings, [2, 2, 5], np.ones((3, 4), np.float32))
    m.embeddings.flush()
    expect = e.embeddings.copy()
    np.add.at(expect, [2, 2, 5], np.ones((3, 4), np.float32))
    again = fe.Embedding.load(tmp_path / "m")
    np.testing.assert_array_equal(again.embeddings, expect)


def test_saving_a_memory_mapped_layer_over_its_own_folder(tmp_path):
    e = fe.Embedding(10, 3, seed=1)
    e.save(tmp_path / "m")
    m = fe.Embedding.load(tmp_path / "m", mmap_mode="r")
    expect = np.array(m.embeddings)
    m.save(tmp_path / "m")
    np.testing.assert_array_equal(fe.Embedding.load(tmp_path / "m").embeddings, expect)


def test_read_write_map_follows_a_save_over_its_own_folder(tmp_path):
    e = fe.Embedding(10, 3, seed=1)
    e.save(tmp_path / "m")
    m = fe.Embedding.load(tmp_path / "m", mmap_mode="r+")
    m.save(tmp_path / "m")
    fe.ops.scatter_add(m.embeddings, [4], np.ones((1, 3), np.float32))
    m.embeddings.flush()
    expect = e.embeddings.copy()
    expect[4] += 1
    np.testing.assert_array_equal(fe.Embedding.load(tmp_path / "m").embeddings, expect)


class Crash(RuntimeError):
    pass


def crash_on_rename(monkeypatch, which):
    """Make the `which`-th os.rename call (1-based) raise, as a crash at that moment."""
    real = os.rename
    calls = {"n": 0}

    def fake(src, dst, *a, **k):
        calls["n"] += 1
        if calls["n"] == which:
            raise Crash(f"crash at rename {which}")
        return real(src, dst, *a, **k)

    monkeypatch.setattr(_savedir.os, "rename", fake)


def two_versions(tmp_path):
    old = fe.Embedding(40, 6, seed=1, name="v")
    old.save(tmp_path / "m")
    new = fe.Embedding(40, 6, seed=2, name="v")
    return old, new


def test_crash_before_swap_leaves_old_copy(tmp_path, monkeypatch):
    old, new = two_versions(tmp_path)
    crash_on_rename(monkeypatch, 1)  # path -> path.fe-old fails: the new copy is complete
    with pytest.raises(Crash):
        new.save(tmp_path / "m")
    monkeypatch.undo()
    assert os.path.isdir(tmp_path / "m.fe-new")
    same_layer(fe.Embedding.load(tmp_path / "m"), old)
    new.save(tmp_path / "m")  # the next save finishes the job and cleans up
    same_layer(fe.Embedding.load(tmp_path / "m"), new)
    assert sorted(os.listdir(tmp_path)) == ["m"]


def test_crash_between_renames_leaves_new_copy(tmp_path, monkeypatch):
    old, new = two_versions(tmp_path)
    crash_on_rename(monkeypatch, 2)  # path.fe-new -> path fails: nothing at `path`
    with pytest.raises(Crash):
        new.save(tmp_path / "m")
    monkeypatch.undo()
    assert not os.path.exists(tmp_path / "m")
    same_layer(fe.Embedding.load(tmp_path / "m"), new)
    # only the old copy survived (e.g. the new folder was lost): load reads it
    os.rename(tmp_path / "m.fe-new", tmp_path / "elsewhere")
    same_layer(fe.Embedding.load(tmp_path / "m"), old)
    third = fe.Embedding(40, 6, seed=3, name="v")
    third.save(tmp_path / "m")
    same_layer(fe.Embedding.load(tmp_path / "m"), third)
    assert sorted(os.listdir(tmp_path)) == ["elsewhere", "m"]


def test_crash_between_renames_then_save_again(tmp_path, monkeypatch):
    old, new = two_versions(tmp_path)
    crash_on_rename(monkeypatch, 2)
    with pytest.raises(Crash):
        new.save(tmp_path / "m")
    monkeypatch.undo()
    # a further save that crashes while writing its table still leaves a complete copy
    third = fe.Embedding(40, 6, seed=3, name="v")
    real_save = np.save

    def bad_save(f, arr, **kw):
        f.write(b"\x93NUMPY partial")
        raise Crash("crash while writing the table")

    monkeypatch.setattr(_savedir.np, "save", bad_save)
    with pytest.raises(Crash):
        third.save(tmp_path / "m")
    monkeypatch.setattr(_savedir.np, "save", real_save)
    same_layer(fe.Embedding.load(tmp_path / "m"), new)


def test_crash_while_writing_keeps_old_copy(tmp_path, monkeypatch):
    old, new = two_versions(tmp_path)

    def bad_dump(*a, **k):
        raise Crash("crash while writing the config")

    monkeypatch.setattr(_savedir.json, "dump", bad_dump)
    with pytest.raises(Crash):
        new.save(tmp_path / "m")
    monkeypatch.undo()
    same_layer(fe.Embedding.load(tmp_path / "m"), old)


def test_crash_in_cleanup_keeps_new_copy(tmp_path, monkeypatch):
    old, new = two_versions(tmp_path)
    real = _savedir.shutil.rmtree

    def bad_rmtree(p, *a, **k):
        if str(p).endswith(".fe-old"):
            raise Crash("crash while removing the old copy")
        return real(p, *a, **k)

    monkeypatch.setattr(_savedir.shutil, "rmtree", bad_rmtree)
    with pytest.raises(Crash):
        new.save(tmp_path / "m")
    monkeypatch.undo()
    same_layer(fe.Embedding.load(tmp_path / "m"), new)


def test_first_save_crash_leaves_nothing_loadable(tmp_path, monkeypatch):
    e = fe.Embedding(5, 2)
    crash_on_rename(monkeypatch, 1)
    with pytest.raises(Crash):
        e.save(tmp_path / "m")
    monkeypatch.undo()
    # the complete new copy is found
    same_layer(fe.Embedding.load(tmp_path / "m"), e)


def test_load_errors(tmp_path):
    with pytest.raises(ValueError, match="holds no saved embedding layer"):
        fe.Embedding.load(tmp_path / "missing")
    e = fe.Embedding(6, 2)
    e.save(tmp_path / "m")
    with pytest.raises(ValueError, match="mmap_mode"):
        fe.Embedding.load(tmp_path / "m", mmap_mode="w")
    (tmp_path / "m" / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="config.json: unreadable config"):
        fe.Embedding.load(tmp_path / "m")
    cfg = e.get_config()
    cfg["input_dim"] = 7
    (tmp_path / "m" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="does not match"):
        fe.Embedding.load(tmp_path / "m")
    cfg["input_dim"] = 6
    (tmp_path / "m" / "config.json").write_text(json.dumps(cfg))
    np.save(tmp_path / "m" / "embeddings.npy", np.zeros((6, 2), np.int32))
    with pytest.raises(ValueError, match="float32/float64"):
        fe.Embedding.load(tmp_path / "m")
    np.save(tmp_path / "m" / "embeddings.npy", np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError, match="unreadable table"):
        fe.Embedding.load(tmp_path / "m")
    (tmp_path / "f").write_text("x")
    with pytest.raises(ValueError, match="not a folder"):
        e.save(tmp_path / "f")


def test_save_refuses_a_folder_with_other_files(tmp_path):
    folder = tmp_path / "proj"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    emb = fe.Embedding(3, 2, seed=0)
    with pytest.raises(ValueError, match="other files than a saved layer"):
        emb.save(folder)
    assert sorted(os.listdir(folder)) == ["notes.txt"]
    assert (folder / "notes.txt").read_text() == "mine"
