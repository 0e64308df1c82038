"""Thread and fork safety of the native ops, run as crash-isolated probes.

Each scenario below is a plain function full of asserts.  The tests run it in a fresh
interpreter (``python -X faulthandler this_file.py <scenario>``) with a timeout, so a
crash, a hang or a sanitizer report fails that one test instead of killing pytest.

Documented results checked here:
- lookups running while another thread updates the table see every element either
  before or after each update (updates are integer-valued, so every value a lookup can
  see is a whole number between the first and the last state);
- updates from several threads to disjoint rows give exactly the serial result; updates
  to overlapping rows (Hogwild, no lock) may lose additions but never crash or write
  outside the table;
- ids rewritten by another thread during a call never cause an out-of-bounds access: the
  call either succeeds or raises IndexError, and nothing is half-applied;
- after ``os.fork()`` (and ``multiprocessing`` with the fork start method) the child can
  use every op with 2 threads, the pool restarting its workers.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np

HERE = os.path.abspath(__file__)
TIMEOUT = float(os.environ.get("FASTEMBED_PROBE_TIMEOUT", "240"))


def run_scenario(name: str, timeout: float = TIMEOUT) -> str:
    """Runs one scenario in a child interpreter; fails on crash, hang or non-zero exit."""
    import pytest

    env = dict(os.environ)
    # The child must import the same fastembed as this process.
    import fastembed

    pkg_parent = os.path.dirname(os.path.dirname(os.path.abspath(fastembed.__file__)))
    env["PYTHONPATH"] = os.pathsep.join(
        [pkg_parent] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    proc = subprocess.Popen([sys.executable, "-X", "faulthandler", HERE, name],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                            start_new_session=True, text=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the probe and any child it forked
        out, _ = proc.communicate()
        pytest.fail(f"scenario {name} hung (>{timeout:.0f} s); output:\n{out[-4000:]}")
    if proc.returncode != 0:
        pytest.fail(f"scenario {name} exited with {proc.returncode}; output:\n{out[-6000:]}")
    assert f"scenario {name} ok" in out, out[-4000:]
    return out


# -- helpers used inside the probes ----------------------------------------------------------

def _run_threads(targets, seconds):
    """Runs each target(stop_event) in its own thread for `seconds`; re-raises failures."""
    stop = threading.Event()
    errors = []

    def wrap(fn):
        def run():
            try:
                fn(stop)
            except BaseException as exc:  # noqa: BLE001 - reported to the main thread
                errors.append(exc)
                stop.set()
        return run

    ts = [threading.Thread(target=wrap(t), daemon=True) for t in targets]
    for t in ts:
        t.start()
    stop.wait(seconds)
    stop.set()
    for t in ts:
        t.join(60)
        assert not t.is_alive(), "a worker thread did not finish"
    if errors:
        raise errors[0]


def _whole_between(a, lo, hi):
    assert np.all(a == np.round(a)), "a lookup saw a torn or partial value"
    assert np.all(a >= lo) and np.all(a <= hi), (a.min(), a.max(), lo, hi)


# -- scenarios --------------------------------------------------------------------------------

def scenario_gather_during_scatter():
    """Readers gather while writers scatter_add +1 into disjoint row blocks."""
    import fastembed as fe

    fe.set_num_threads(2)
    rows, dim, writers = 4096, 32, 3
    table = np.zeros((rows, dim), np.float32)
    rng = np.random.default_rng(0)
    adds = [np.zeros(rows, np.int64) for _ in range(writers)]
    blocks = np.array_split(np.arange(rows), writers)

    def writer(w):
        def run(stop):
            r = np.random.default_rng(w)
            own = blocks[w]
            while not stop.is_set():
                ids = r.choice(own, size=20_000).astype(np.int32 if w % 2 else np.int64)
                fe.ops.scatter_add(table, ids, np.ones((ids.size, dim), np.float32))
                np.add.at(adds[w], ids, 1)
        return run

    seen_max = [0.0]

    def reader(stop):
        r = np.random.default_rng(99)
        last = np.zeros((rows, dim), np.float32)
        while not stop.is_set():
            ids = r.integers(0, rows, 50_000)
            got = fe.ops.gather(table, ids)
            _whole_between(got, 0, 1e7)
            # Each row only grows: a later lookup never sees less than an earlier one.
            full = fe.ops.gather(table, np.arange(rows))
            assert np.all(full >= last), "a lookup went backwards"
            last = full
            seen_max[0] = max(seen_max[0], float(full.max()))

    _run_threads([writer(w) for w in range(writers)] + [reader, reader], 3.0)
    expect = sum(adds).astype(np.float32)[:, None] * np.ones(dim, np.float32)
    assert np.array_equal(table, expect), "disjoint concurrent updates lost additions"
    assert seen_max[0] > 0 and rng is not None


def scenario_hogwild_overlapping():
    """Writers scatter into the same rows at once: no crash, values stay plausible."""
    import fastembed as fe

    fe.set_num_threads(2)
    rows, dim = 64, 16
    table = np.zeros((rows, dim), np.float64)
    calls = [0, 0, 0]

    def writer(w):
        def run(stop):
            r = np.random.default_rng(w)
            while not stop.is_set():
                ids = r.integers(0, rows, 30_000)
                fe.ops.scatter_add(table, ids, np.ones((ids.size, dim)))
                calls[w] += ids.size
        return run

    def reader(stop):
        while not stop.is_set():
            _whole_between(fe.ops.gather(table, np.arange(rows)), 0, sum(calls) + 1e9)

    _run_threads([writer(0), writer(1), writer(2), reader], 2.0)
    # Lost updates are allowed without a lock, invented ones are not.
    assert table.sum() <= sum(calls) * dim
    assert table.sum() > 0
    _whole_between(table, 0, sum(calls))


def scenario_ids_mutated_during_scatter():
    """Another thread flips one id between valid and invalid while scatter_add runs."""
    import fastembed as fe

    fe.set_num_threads(2)
    rows, dim, n = 1000, 8, 200_000
    for dtype in (np.int64, np.int32):
        table = np.zeros((rows, dim), np.float32)
        ids = (np.arange(n) % rows).astype(dtype)
        k = n // 2
        bad_values = [rows, -1, np.iinfo(dtype).max, np.iinfo(dtype).min, rows + 7]
        ok_calls, errors, skipped = [0], [0], [0]

        def flipper(stop):
            i = 0
            while not stop.is_set():
                ids[k] = bad_values[i % len(bad_values)]
                for _ in range(300):  # dwell, so calls see both states
                    pass
                ids[k] = 5
                ids[k - 1] = 3
                for _ in range(300):
                    pass
                ids[k - 1] = (k - 1) % rows
                i += 1

        def caller(stop):
            values = np.ones((n, dim), np.float32)
            while not stop.is_set():
                snap = table.tobytes()
                before = table.sum(dtype=np.float64)
                try:
                    fe.ops.scatter_add(table, ids, values)
                except IndexError as exc:
                    assert f"ids[{k}]" in str(exc), str(exc)
                    assert table.tobytes() == snap, "a failed call wrote rows"
                    errors[0] += 1
                    continue
                added = table.sum(dtype=np.float64) - before
                # Every position is added once, except position k if it turned bad after
                # the validation pass (skipped at use).
                assert added in (n * dim, (n - 1) * dim), added
                ok_calls[0] += 1
                skipped[0] += added != n * dim

        _run_threads([flipper, caller], 2.0)
        assert ok_calls[0] + errors[0] > 0
        assert np.all(table >= 0) and np.all(table == np.round(table))
        print(dtype.__name__, "calls ok", ok_calls[0], "refused", errors[0],
              "bad at use, skipped", skipped[0])


def scenario_ids_mutated_during_gather_and_coalesce():
    import fastembed as fe

    fe.set_num_threads(2)
    rows, dim, n = 500, 16, 200_000
    table = np.arange(rows * dim, dtype=np.float32).reshape(rows, dim)
    ids = np.arange(n, dtype=np.int64) % rows
    k = 12_345
    good = (k % rows, 7)

    def flipper(stop):
        while not stop.is_set():
            ids[k] = -5
            ids[k] = good[1]
            ids[k] = 2**62
            ids[k] = good[0]

    def caller(stop):
        values = np.ones((n, dim), np.float32)
        out = np.empty((n, dim), np.float32)
        while not stop.is_set():
            for use_out in (False, True):
                try:
                    got = fe.ops.gather(table, ids, out=out) if use_out else \
                        fe.ops.gather(table, ids)
                except IndexError as exc:
                    assert f"ids[{k}]" in str(exc), str(exc)
                    continue
                mask = np.ones(n, bool)
                mask[k] = False
                assert np.array_equal(got[mask], table[(np.arange(n) % rows)[mask]])
                assert any(np.array_equal(got[k], table[g]) for g in good), got[k]
            try:
                uniq, summed = fe.ops.coalesce(ids, values)
            except IndexError as exc:
                assert f"ids[{k}]" in str(exc), str(exc)
                continue
            assert summed.sum() == n * dim
            assert uniq.min() >= 0

    _run_threads([flipper, caller], 2.0)


def scenario_set_num_threads_while_running():
    """Resizing the pool while other threads run ops: results stay exact."""
    import fastembed as fe

    rows, dim = 2000, 64
    table = np.random.default_rng(0).standard_normal((rows, dim)).astype(np.float32)
    ids = np.random.default_rng(1).integers(0, rows, 100_000)
    expect = table[ids]
    target0 = np.zeros((rows, dim), np.float32)
    serial = target0.copy()
    np.add.at(serial, ids[:50_000], table[ids[:50_000]])

    def resizer(stop):
        n = 0
        while not stop.is_set():
            fe.set_num_threads(1 + n % 3)
            n += 1
            time.sleep(0.001)

    def gatherer(stop):
        while not stop.is_set():
            assert np.array_equal(fe.ops.gather(table, ids), expect)

    def scatterer(stop):
        while not stop.is_set():
            t = target0.copy()
            fe.ops.scatter_add(t, ids[:50_000], expect[:50_000])
            # Bit-identical to the serial order for any thread count.
            assert np.array_equal(t, serial)

    _run_threads([resizer, gatherer, gatherer, scatterer], 2.0)
    fe.set_num_threads(2)


def scenario_layers_and_optimizer_threads():
    """Embedding lookups during optimizer updates; concurrent apply_gradients."""
    import fastembed as fe
    from fastembed import optimizers

    fe.set_num_threads(2)
    rows, dim = 3000, 16
    emb = fe.Embedding(rows, dim, embeddings_initializer="zeros")
    opt = optimizers.SGD(learning_rate=1.0)
    writers = 3
    blocks = np.array_split(np.arange(rows), writers)
    subtracted = [np.zeros(rows, np.int64) for _ in range(writers)]
    refused = []

    def writer(w):
        def run(stop):
            r = np.random.default_rng(w)
            while not stop.is_set():
                idx = r.choice(blocks[w], size=2000)
                g = fe.SparseGradient(idx, np.ones((idx.size, dim), np.float32), (rows, dim))
                try:
                    opt.apply_gradients([(g, emb)])
                except RuntimeError as exc:  # refusing concurrent use is allowed, clearly
                    assert "concurren" in str(exc).lower() or "thread" in str(exc).lower()
                    refused.append(exc)
                    continue
                np.add.at(subtracted[w], idx, 1)
        return run

    def reader(stop):
        r = np.random.default_rng(7)
        while not stop.is_set():
            ids = r.integers(0, rows, (64, 50))
            got = emb(ids)
            assert got.shape == (64, 50, dim)
            _whole_between(got, -1e7, 0)

    _run_threads([writer(w) for w in range(writers)] + [reader], 3.0)
    expect = -sum(subtracted).astype(np.float32)[:, None] * np.ones(dim, np.float32)
    assert np.array_equal(emb.embeddings, expect)
    print("refused", len(refused))

    # Adam: concurrent calls on one optimizer either all count or are refused clearly.
    emb2 = fe.Embedding(rows, dim, embeddings_initializer="zeros")
    adam = optimizers.Adam(learning_rate=0.01)
    done = [0]

    def adam_writer(w):
        def run(stop):
            r = np.random.default_rng(w)
            while not stop.is_set():
                idx = r.choice(blocks[w], size=500)
                g = fe.SparseGradient(idx, np.ones((idx.size, dim), np.float32), (rows, dim))
                try:
                    adam.apply_gradients([(g, emb2)])
                except RuntimeError as exc:
                    assert "concurren" in str(exc).lower() or "thread" in str(exc).lower()
                    continue
                done[0] += 1
        return run

    _run_threads([adam_writer(w) for w in range(writers)], 2.0)
    assert np.isfinite(emb2.embeddings).all()
    assert adam.get_step(emb2) == done[0], (adam.get_step(emb2), done[0])


def _all_ops_check(tag):
    """Runs every op with 2 threads on data big enough to use the pool; checks results."""
    import fastembed as fe

    fe.set_num_threads(2)
    rng = np.random.default_rng(3)
    rows, dim, n = 4000, 64, 60_000
    table = rng.standard_normal((rows, dim)).astype(np.float32)
    ids = rng.integers(0, rows, n)
    assert np.array_equal(fe.ops.gather(table, ids), table[ids]), tag
    t = np.zeros_like(table)
    fe.ops.scatter_add(t, ids, table[ids])
    ref = np.zeros_like(table)
    np.add.at(ref, ids, table[ids])
    assert np.array_equal(t, ref), tag
    u, s = fe.ops.coalesce(ids, table[ids])
    assert np.array_equal(u, np.unique(ids)), tag
    assert np.array_equal(s, ref[u]), tag
    bag = fe.ops.embedding_bag(table, ids.reshape(-1, 20), mode="sum")
    assert np.allclose(bag, table[ids.reshape(-1, 20)].sum(1), rtol=1e-5, atol=1e-4), tag
    emb = fe.Embedding(rows, dim, weights=[table])
    assert np.array_equal(emb(ids.reshape(-1, 30)), table[ids].reshape(-1, 30, dim)), tag
    from fastembed import optimizers

    opt = optimizers.SGD(learning_rate=0.5)
    g = fe.SparseGradient(ids, np.ones((n, dim), np.float32), (rows, dim))
    before = emb.embeddings.copy()
    opt.apply_gradients([(g, emb)])
    counts = np.bincount(ids, minlength=rows).astype(np.float32)
    assert np.allclose(emb.embeddings, before - 0.5 * counts[:, None], atol=1e-4), tag
    # The pool really runs workers here: more than one OS thread after a parallel op.
    big = rng.integers(0, rows, 400_000)
    fe.ops.gather(table, big)
    return len(os.listdir("/proc/self/task"))


def scenario_fork_after_parallel_op():
    import fastembed as fe

    _all_ops_check("parent before fork")
    assert fe.get_num_threads() == 2
    for _ in range(3):
        pid = os.fork()
        if pid == 0:  # child
            code = 1
            try:
                tasks = _all_ops_check("child")
                code = 0 if tasks >= 2 else 3
            except BaseException:  # noqa: BLE001
                import traceback

                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
        _all_ops_check("parent after fork")


def scenario_fork_while_pool_busy():
    """Fork while another thread of the parent is inside a 2-thread op."""
    import fastembed as fe

    fe.set_num_threads(2)
    rng = np.random.default_rng(5)
    table = rng.standard_normal((4000, 64)).astype(np.float32)
    ids = rng.integers(0, 4000, 300_000)

    def busy(stop):
        while not stop.is_set():
            fe.ops.gather(table, ids)

    stop = threading.Event()
    th = threading.Thread(target=busy, args=(stop,), daemon=True)
    th.start()
    time.sleep(0.2)
    try:
        for _ in range(5):
            pid = os.fork()
            if pid == 0:
                code = 1
                try:
                    _all_ops_check("child of busy parent")
                    code = 0
                except BaseException:  # noqa: BLE001
                    import traceback

                    traceback.print_exc()
                finally:
                    sys.stdout.flush()
                    os._exit(code)
            _, status = os.waitpid(pid, 0)
            assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
    finally:
        stop.set()
        th.join()


def _mp_worker(seed):
    import fastembed as fe

    assert fe.get_num_threads() == 2
    _all_ops_check(f"mp worker {seed}")
    rng = np.random.default_rng(seed)
    table = rng.standard_normal((100, 8)).astype(np.float32)
    ids = rng.integers(0, 100, 50)
    return fe.ops.gather(table, ids).tobytes() == table[ids].tobytes()


def scenario_multiprocessing_fork():
    import multiprocessing as mp

    _all_ops_check("parent")
    ctx = mp.get_context("fork")
    with ctx.Pool(2) as pool:
        results = pool.map(_mp_worker, range(4))
    assert results == [True] * 4
    _all_ops_check("parent after pool")


SCENARIOS = {name[len("scenario_"):]: fn for name, fn in list(globals().items())
             if name.startswith("scenario_")}


# -- tests -------------------------------------------------------------------------------------

def test_gather_during_scatter():
    run_scenario("gather_during_scatter")


def test_hogwild_overlapping_writers():
    run_scenario("hogwild_overlapping")


def test_ids_mutated_during_scatter():
    run_scenario("ids_mutated_during_scatter")


def test_ids_mutated_during_gather_and_coalesce():
    run_scenario("ids_mutated_during_gather_and_coalesce")


def test_set_num_threads_while_running():
    run_scenario("set_num_threads_while_running")


def test_layers_and_optimizer_threads():
    run_scenario("layers_and_optimizer_threads")


def test_fork_after_parallel_op():
    run_scenario("fork_after_parallel_op")


def test_fork_while_pool_busy():
    run_scenario("fork_while_pool_busy")


def test_multiprocessing_fork():
    run_scenario("multiprocessing_fork")


if __name__ == "__main__":
    SCENARIOS[sys.argv[1]]()
    print(f"scenario {sys.argv[1]} ok", flush=True)
