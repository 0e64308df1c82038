// Pretrained word-vector files: GloVe text, word2vec text / binary, fastText .vec.
//
// Contract (pure C++17, no Python):
//
//   VecSource src{fd, size, data, block, intr}
//     Either data != nullptr: the whole file is data[0, size) (a buffer the caller
//     owns and keeps unchanged, parsed in place and never read past data + size), or
//     fd: a descriptor read from its current position with read(2), at most kReadStep
//     bytes per call, each read preceded by poll(2) with a kPollMs timeout so that a
//     stalled pipe never blocks the caller for longer than that between two polls of
//     `intr`.  size = the file's size when the caller opened it, or -1 when unknown
//     (pipes, devices): with a size, reading stops there (bytes appended later are not
//     read) and an end of file before it means the file shrank (ErrKind::Shrunk).  No
//     mapping is ever read, so a file truncated meanwhile cannot fault.  The size also
//     rejects lying headers early; nothing is allocated from a count or dimension
//     read from the file: buffers grow with the bytes actually read.  block: bytes
//     per parse step.
//
//   Bounds (input that cannot be a vectors file is refused early, never buffered
//   without end): a line longer than kMaxLine bytes (LineTooLong), a binary word
//   longer than kMaxWord bytes (WordTooLong), a dimension above kMaxDim (DimTooBig).
//   Every size computed from file contents is checked before it is multiplied or
//   allocated (TooBig when a product cannot fit in 64 bits).
//
//   Interrupts: `intr` is polled from the calling thread between reads, while a pipe
//   has no data, and between parse chunks (~512 KiB of text or one block of binary
//   records); once it fires the call returns false with ErrKind::Interrupted and
//   whatever it read is dropped (`out` is the caller's to discard).
//
//   load_vectors<T>(src, format, limit, out) -> bool
//     T is float or double.  Works through the file in blocks (src.block bytes, default
//     kMaxBlock, plus one line); each block is split at line ends into chunks that are
//     parsed on all threads (fe::parallel_for), each chunk writing its rows in place
//     (a first pass counts its lines, and gives a row slot only to those long enough
//     to hold a row, 2*D+1 bytes: values never outgrow the bytes read); then, in file
//     order, it appends:
//       out.words / out.word_end   the words' UTF-8 bytes, word r is
//                                  words[word_end[r-1] .. word_end[r])
//       out.values                 rows x dim values, row-major
//       out.rows, out.dim, out.format (the detected format), out.header_count (or -1)
//     `limit` (-1: none) and a header's count stop the reading: at most
//     min(limit, header count) vectors are read and the rest of the file is not parsed.
//     Returns false and fills out.error on the first problem in file order (only
//     problems in the rows that are read count).  Line numbers are 1-based physical
//     lines (the header is line 1); byte offsets (binary) are 0-based from the file start.
//     Results are identical for any thread count: each line is parsed on its own and
//     per-chunk results are concatenated in order.  Duplicate words are kept here (the
//     caller decides); parsing never throws except std::bad_alloc.
//
//   Text lines: `word v1 ... vD`, fields separated by runs of ' ' / '\t'; trailing
//   spaces, '\r' (CRLF), blank lines and a UTF-8 BOM are tolerated.  A line with more
//   than D+1 fields (glove.840B words containing spaces) takes its last D fields as the
//   values and the rest as the word, unless all of the extra fields are numbers (then it
//   is a ragged row).  Numbers are decimal (optional sign, digits, '.', exponent); each
//   is rounded to float64 exactly and then to T, as numpy's float32 cast of a string
//   does; nan, inf and values that overflow T are errors.
//   Binary: header line, then per vector: word bytes, ' ', D little-endian float32;
//   newlines before a word are skipped (the C tool writes one after each vector).
#pragma once

#include <cstdint>
#include <cstdlib>
#include <limits>
#include <new>
#include <string>
#include <utility>
#include <vector>

#include <sys/mman.h>

#include "fe/interrupt.hpp"

namespace fe {
namespace vec {

enum class Format { Auto = 0, Glove = 1, Word2VecText = 2, Word2VecBinary = 3, FastText = 4 };

enum class ErrKind {
  None = 0,
  Io,             // read failed (io_errno)
  BadHeader,      // header line is not "count dim" (token)
  HeaderTooBig,   // header count x dim cannot fit in the file (expected=count, found=dim)
  NoValues,       // first GloVe line has no values (cannot infer the dimension)
  Ragged,         // expected D values, found `found`
  BadNumber,      // token is not a number
  NonFinite,      // token is nan / inf / overflows the dtype
  EmptyWord,      // a line / record without a word
  BadUtf8,        // the word is not valid UTF-8 (offset: byte within the word)
  Truncated,      // binary: the file ends inside a record
  TooFew,         // header announced `expected` vectors, the file holds `found`
  Empty,          // the file holds no line at all
  Interrupted,    // intr.poll() asked the call to stop
  Shrunk,         // end of file before the size given at open (expected=size, found=read)
  LineTooLong,    // a line of more than kMaxLine bytes (expected=kMaxLine, found=bytes)
  WordTooLong,    // binary: no space within kMaxWord bytes (expected=kMaxWord)
  DimTooBig,      // a dimension above kMaxDim (found=dim)
  TooBig,         // a size computed from the file does not fit in 64 bits
};

struct ParseError {
  ErrKind kind = ErrKind::None;
  int64_t line = -1;    // 1-based line (text) or -1
  int64_t offset = -1;  // byte offset (binary; for BadUtf8 in text: byte within the word)
  int64_t expected = 0;
  int64_t found = 0;
  std::string token;    // offending field (at most 48 bytes)
  int io_errno = 0;
};

constexpr int64_t kMaxBlock = int64_t(64) << 20;
constexpr int64_t kFirstBlock = int64_t(1) << 20;
// Bounds on what a vectors file can hold.  The longest real lines are a few hundred KB
// (4096 dims of ~12 characters); 2^20 dims of 60-character numbers still fit a line.
constexpr int64_t kMaxLine = int64_t(64) << 20;
constexpr int64_t kMaxWord = int64_t(1) << 20;
constexpr int64_t kMaxDim = int64_t(1) << 20;
// One read(2) at most: a blocking read of a slow device returns within this much data,
// so the interrupt is polled often.
constexpr int64_t kReadStep = int64_t(8) << 20;
// poll(2) timeout on the fd: the longest a stalled pipe keeps the interrupt unpolled.
constexpr int kPollMs = 50;

struct VecSource {
  int fd = -1;
  int64_t size = -1;
  // Memory mode: when set, the whole file is data[0, size), parsed in place without
  // copies; `fd` is not used.  The caller keeps the memory alive and unchanged: a
  // mapping of a file that another process may truncate does not qualify (SIGBUS).
  const char* data = nullptr;
  // Bytes parsed per step (tests shrink it to cross block boundaries often).
  int64_t block = kMaxBlock;
  Interrupt intr;
};

// Leaves new elements uninitialised: every value slot is written by the parser before
// it is kept, so zero-filling hundreds of megabytes first would be wasted bandwidth.
// Large buffers are 2 MiB aligned and marked for transparent huge pages (Linux): the
// parser fills hundreds of megabytes, and 4 KiB page faults were a visible share of it.
template <class T>
struct DefaultInitAlloc {
  using value_type = T;
  template <class U>
  struct rebind { using other = DefaultInitAlloc<U>; };
  DefaultInitAlloc() = default;
  template <class U>
  DefaultInitAlloc(const DefaultInitAlloc<U>&) noexcept {}
  T* allocate(size_t n) {
    if (n > std::numeric_limits<size_t>::max() / sizeof(T)) throw std::bad_alloc();
    const size_t bytes = n * sizeof(T);
    void* p = nullptr;
    if (bytes >= (size_t(4) << 20)) {
      const size_t huge = size_t(2) << 20;
      if (posix_memalign(&p, huge, (bytes + huge - 1) / huge * huge) != 0) p = nullptr;
#if defined(__linux__) && defined(MADV_HUGEPAGE)
      if (p) madvise(p, (bytes + huge - 1) / huge * huge, MADV_HUGEPAGE);
#endif
    } else {
      p = std::malloc(bytes ? bytes : 1);
    }
    if (!p) throw std::bad_alloc();
    return static_cast<T*>(p);
  }
  void deallocate(T* p, size_t) noexcept { std::free(p); }
  template <class U>
  bool operator==(const DefaultInitAlloc<U>&) const noexcept { return true; }
  template <class U>
  bool operator!=(const DefaultInitAlloc<U>&) const noexcept { return false; }
  template <class U>
  void construct(U* p) noexcept { ::new (static_cast<void*>(p)) U; }
  template <class U, class... A>
  void construct(U* p, A&&... a) { ::new (static_cast<void*>(p)) U(std::forward<A>(a)...); }
};

template <class T>
using ValueVec = std::vector<T, DefaultInitAlloc<T>>;

template <class T>
struct VectorsResult {
  int64_t rows = 0;
  int64_t dim = 0;
  Format format = Format::Auto;
  int64_t header_count = -1;
  std::string words;
  std::vector<int64_t> word_end;
  ValueVec<T> values;  // rows * dim, row-major
  ParseError error;
};


template <class T>
bool load_vectors(const VecSource& src, Format fmt, int64_t limit, VectorsResult<T>& out);

}  // namespace vec
}  // namespace fe
