// Tuning constants of the kernels, in one place, each with the measurement that chose it.
//
// None of them changes a result: they decide how work is split among threads, when rows
// are prefetched or streamed, and how often a long call polls for Ctrl-C.  Every kernel
// is bit-for-bit identical whatever these are.  Measurements: 2-core x86-64 (AVX2) CI
// box, float32, median of the bench/ runs; shapes are (rows, dim, ids).
#pragma once

#include <cstddef>
#include <cstdint>

namespace fe {

// ---- splitting work among threads

// Gather / scatter / coalesce: below this many bytes of rows a call runs on the calling
// thread, waking a worker costs more than it saves.
constexpr int64_t kGrainBytes = 256 * 1024;
// Passes over ids only (validating them, coalesce's planning): ids per chunk.
constexpr int64_t kIdGrain = int64_t(1) << 16;
// Bags, forward and backward (float and reduced-precision tables): work per chunk before a
// second thread pays off; pooling does more work per byte than a copy, so the grain is
// smaller.
constexpr int64_t kBagGrainBytes = 128 * 1024;

// Optimizer passes: below this many bytes of touched rows a pass runs on the calling
// thread (each row is read and written with its slots, more work per byte than a copy).
constexpr int64_t kOptimGrainBytes = 128 * 1024;

// Rows up to this wide are split among workers by owner through a branch-free compaction
// of the owned positions; wider rows keep a branch per id, which then costs less than the
// compaction (measured, 2 threads: scatter_add (100k, 8, 1M) 12.3 -> 6.1 ms;
// (1M, 64, 1M) Zipf 26.4 -> 35.2 ms with the compaction, so it stays off there).
constexpr int64_t kCompactRowBytes = 32;

// ---- prefetching

// Tables larger than this outgrow a core's L2 cache: prefetch rows a few ids ahead
// (measured: gather (10k, 32, 100k), a 1.3 MB table, 284 -> 249 us at 2 threads).
constexpr int64_t kPrefetchTableBytes = 512 * 1024;
// Ids to look ahead in gather / scatter / coalesce loops (one row copy or add per id).
constexpr int64_t kAhead = 12;
// Gradient rows to look ahead in the optimizer passes (rows are random in a large table;
// each row carries its slots, so fewer rows ahead cover the latency).
constexpr int64_t kOptimAhead = 8;
// Ids to look ahead in the pooling loops, which do more work per row (measured: 16-24
// best, 20 chosen).
constexpr int64_t kBagAhead = 20;

// ---- memory

// Gather outputs at least this large are written with non-temporal stores (rows of whole
// 16-byte units, 16-byte aligned output): they will not be read back from cache before
// they are evicted anyway, and streaming stores skip the read-for-ownership.
// FASTEMBED_NO_STREAM=1 turns them off (to compare).
constexpr int64_t kStreamOutBytes = 16 * 1024 * 1024;
// coalesce outputs at least this large are prefaulted by the calling thread in order:
// taken by several workers at once the page faults cost about twice as much (measured).
constexpr int64_t kPrefaultBytes = 1024 * 1024;

// Scratch blocks of this size or more are mmap'ed, so that freeing them returns them to
// the OS at once (scratch.hpp says why).
constexpr size_t kMapBytes = size_t(1) << 20;
// The scratch a thread keeps cached between coalesce calls, all buffers together.  Above
// it the buffers are freed (returned to the OS) at the end of the call.  16 MiB covers
// batches up to ~0.4M ids with no page faults on reuse; larger batches map fresh blocks
// on each call.  Measured (coalesce of 1M ids x 8 float32, one thread, median of 30):
// 30 ms with up to 64 MiB kept (before issue 15), 44 ms with 16 MiB kept and fresh blocks
// faulted page by page, 39 ms with MAP_POPULATE (the kernel fills the block in one go;
// the blocks are nearly always written whole).
constexpr size_t kKeepScratchBytes = size_t(16) << 20;

// ---- interrupts

// Work between two polls: about this many bytes touched (reads + writes), a few ms to a
// few tens of ms on one core, so Ctrl-C lands well within a second even on a loaded
// machine.
constexpr int64_t kPollBytes = int64_t(32) << 20;
// coalesce: positions per piece between polls.  Its passes read at random (map lookups,
// bitmap marks), ~50-100 ns a position when the id range is large, so pieces are bounded
// by count, not bytes: ~20-50 ms each even then.
constexpr int64_t kCoalescePiece = int64_t(1) << 18;
// coalesce of a sparse id range: ids per std::sort leaf of its merge sort (~20 ms).
constexpr int64_t kSortLeaf = int64_t(1) << 18;

// ---- row widths compiled as constants

// A list of row widths (see dispatch_dim in common.hpp).
template <int64_t... W>
struct Widths {};
// Row widths for which the copy / add loops are compiled with a constant width (fully
// unrolled); other widths take the run-time loop.
using RowWidths = Widths<1, 2, 4, 8, 16, 32, 64, 128>;
// The pooling loops: fewer widths, as each one is compiled for every mode, weighting,
// masking and argmax combination (and twice, baseline and SIMD).
using BagWidths = Widths<16, 32, 64, 128>;

}  // namespace fe
