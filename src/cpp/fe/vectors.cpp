// Definitions and explicit instantiations (float, double) of the pretrained-vector
// parser (contract in vectors.hpp).
#include "fe/vectors.hpp"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>
#include <string>
#include <system_error>
#include <type_traits>
#include <vector>

#include <poll.h>
#include <unistd.h>
#if defined(__linux__)
#include <sys/mman.h>
#endif

#include "fe/common.hpp"
#include "fe/interrupt.hpp"
#include "fe/parallel.hpp"

namespace fe {
namespace vec {
namespace {

// a * b and a + b for sizes (both >= 0): false when the result would not fit in int64.
FE_INLINE bool mul_size(int64_t a, int64_t b, int64_t& r) noexcept {
  return !__builtin_mul_overflow(a, b, &r);
}
FE_INLINE bool add_size(int64_t a, int64_t b, int64_t& r) noexcept {
  return !__builtin_add_overflow(a, b, &r);
}

// ---------------------------------------------------------------- small parsers

FE_INLINE bool is_sep(char c) noexcept { return c == ' ' || c == '\t'; }
FE_INLINE bool is_digit(char c) noexcept { return static_cast<unsigned char>(c - '0') < 10; }

// Returns the position of the first invalid byte of s[0, n) as UTF-8, or -1.  Rejects
// overlong forms, surrogates and code points above U+10FFFF, as Python's strict decoder.
inline int64_t utf8_invalid_at(const unsigned char* s, int64_t n) noexcept {
  int64_t i = 0;
  while (i < n) {
    // ASCII runs: 8 bytes at a time.
    while (i + 8 <= n) {
      uint64_t w;
      std::memcpy(&w, s + i, 8);
      if (w & 0x8080808080808080ull) break;
      i += 8;
    }
    if (i >= n) break;
    const unsigned c = s[i];
    if (c < 0x80) { ++i; continue; }
    int len;
    unsigned lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) len = 2;
    else if (c == 0xE0) { len = 3; lo = 0xA0; }
    else if (c == 0xED) { len = 3; hi = 0x9F; }
    else if (c >= 0xE1 && c <= 0xEF) len = 3;
    else if (c == 0xF0) { len = 4; lo = 0x90; }
    else if (c >= 0xF1 && c <= 0xF3) len = 4;
    else if (c == 0xF4) { len = 4; hi = 0x8F; }
    else return i;
    if (i + len > n) return i;
    if (s[i + 1] < lo || s[i + 1] > hi) return i;
    for (int k = 2; k < len; ++k)
      if ((s[i + k] & 0xC0) != 0x80) return i;
    i += len;
  }
  return -1;
}

// Exactly representable powers of ten (Clinger's fast path).
constexpr double kPow10[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                               1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                               1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

constexpr uint64_t kPow10i[9] = {1, 10, 100, 1000, 10000, 100000, 1000000, 10000000,
                                  100000000};

// Counts the decimal digits at s (at most 8, more gives 9) and stores their value.  Reads
// 8 bytes at once when they are inside [s, e) (SWAR: classify, then combine pairs).
FE_INLINE int64_t leading_digits(const char* s, const char* e, uint64_t& val) noexcept {
  if (e - s >= 8) {
    uint64_t w;
    std::memcpy(&w, s, 8);
    const uint64_t x = w - 0x3030303030303030ull;
    // High bit of a byte set when the byte is below '0' or above '9'.
    const uint64_t nd = ((w + 0x4646464646464646ull) | x) & 0x8080808080808080ull;
    const int n = nd ? __builtin_ctzll(nd) >> 3 : 8;
    if (n == 0) { val = 0; return 0; }
    uint64_t v = x << (8 * (8 - n));  // zeros in front act as leading zeros
    v = ((v & 0x0F0F0F0F0F0F0F0Full) * 2561) >> 8;
    v = ((v & 0x00FF00FF00FF00FFull) * 6553601) >> 16;
    v = ((v & 0x0000FFFF0000FFFFull) * 42949672960001ull) >> 32;
    val = v;
    if (n == 8 && e - s > 8 && is_digit(s[8])) return 9;
    return n;
  }
  uint64_t v = 0;
  int64_t n = 0;
  while (s + n < e && is_digit(s[n])) {
    if (n == 8) return 9;
    v = v * 10 + static_cast<unsigned>(s[n] - '0');
    ++n;
  }
  val = v;
  return n;
}

enum class NumStatus { Ok, Bad, Overflow };

// Parses the decimal number that spans exactly [p, e) (one field) into the correctly
// rounded double.  Short decimals (<= 19 significant digits, |exponent| <= 22 after
// scaling, mantissa < 2^53) take one exact multiply or divide; others go to
// std::from_chars, which is exact.
inline NumStatus parse_number(const char* p, const char* e, double& out) noexcept {
  const char* s = p;
  bool neg = false;
  if (s < e && (*s == '-' || *s == '+')) { neg = *s == '-'; ++s; }
  const char* digits_begin = s;
  uint64_t m = 0;
  int sig = 0;          // significant digits taken into m
  int64_t exp10 = 0;
  bool any = false, lost = false;
  for (; s < e && is_digit(*s); ++s) {
    any = true;
    if (m == 0 && *s == '0') continue;
    if (sig < 19) { m = m * 10 + static_cast<unsigned>(*s - '0'); ++sig; }
    else { ++exp10; lost = true; }
  }
  if (s < e && *s == '.') {
    ++s;
    for (; s < e && is_digit(*s); ++s) {
      any = true;
      if (m == 0 && *s == '0') { --exp10; continue; }
      if (sig < 19) { m = m * 10 + static_cast<unsigned>(*s - '0'); ++sig; --exp10; }
      else lost = true;
    }
  }
  if (!any) return NumStatus::Bad;
  if (s < e && (*s == 'e' || *s == 'E')) {
    ++s;
    bool eneg = false;
    if (s < e && (*s == '-' || *s == '+')) { eneg = *s == '-'; ++s; }
    if (s >= e || !is_digit(*s)) return NumStatus::Bad;
    int64_t x = 0;
    for (; s < e && is_digit(*s); ++s)
      if (x < 100000000) x = x * 10 + (*s - '0');
    exp10 += eneg ? -x : x;
  }
  if (s != e) return NumStatus::Bad;
  if (m == 0) { out = neg ? -0.0 : 0.0; return NumStatus::Ok; }
  if (!lost && m <= (uint64_t(1) << 53) && exp10 >= -22 && exp10 <= 22) {
    double v = static_cast<double>(m);
    v = exp10 < 0 ? v / kPow10[-exp10] : v * kPow10[exp10];
    out = neg ? -v : v;
    return NumStatus::Ok;
  }
  // Slow, exact path.  from_chars takes no '+', so start after the sign.
  double v = 0;
  auto r = std::from_chars(digits_begin, e, v, std::chars_format::general);
  if (r.ec == std::errc::result_out_of_range) {
    // Underflow reads as zero (as Python and numpy do); overflow is an error.
    const int64_t magnitude = exp10 + sig;  // ~ decimal exponent of the leading digit + 1
    if (magnitude < 0) { out = neg ? -0.0 : 0.0; return NumStatus::Ok; }
    return NumStatus::Overflow;
  }
  if (r.ec != std::errc() || r.ptr != e) return NumStatus::Bad;
  if (!std::isfinite(v)) return NumStatus::Overflow;
  out = neg ? -v : v;
  return NumStatus::Ok;
}

constexpr double kInvPow10[9] = {1.0, 1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8};

// The common case in one scan: [-]digits[.digits] with at most 8 digits on each side,
// ending at a separator or at e.  Returns the end of the number, or nullptr to ask for
// parse_number on the whole field (exponents, '+', long mantissas, junk).
//
// Exact: the result is round_T(round_double(m / 10^k)), what numpy's string cast gives.
//  - double: the Clinger fast path, m <= 2^53 and 10^k exact, so one division is
//    correctly rounded.
//  - float, |x| < 2^16, k <= 8 (no division, which dominated the profile): x = m * 1e-k
//    in double is within (1 + 2^-53)^2 - 1 < 2.3e-16 of m / 10^k, relatively.  A float
//    rounding midpoint M * 2^e (M odd, 2^24 <= M < 2^25) that is below 2^16 has e < -8,
//    so it is never a k-digit decimal (k <= 8), and |m / 10^k - M * 2^e| >=
//    1 / (10^k * 2^-e): relatively at least 1 / (10^8 * 2^25) > 2.9e-16.  So m / 10^k,
//    its double rounding and the product all lie on the same side of every midpoint
//    and round to the same float.
template <class T>
FE_INLINE const char* fast_number(const char* s, const char* e, T& out) noexcept {
  bool neg = false;
  if (*s == '-') { neg = true; ++s; }
  uint64_t m = 0;
  int64_t nd = 0, frac = 0;
  const int64_t k = leading_digits(s, e, m);
  if (k > 8) return nullptr;
  nd = k;
  s += k;
  if (s < e && *s == '.') {
    ++s;
    uint64_t f = 0;
    frac = leading_digits(s, e, f);
    if (frac > 8) return nullptr;
    m = m * kPow10i[frac] + f;
    nd += frac;
    s += frac;
  }
  if (nd == 0 || m > (uint64_t(1) << 53)) return nullptr;
  if (s < e && !is_sep(*s)) return nullptr;
  if (std::is_same<T, float>::value) {
    const double x = static_cast<double>(m) * kInvPow10[frac];
    if (x < 65536.0) {
      const T r = static_cast<T>(x);
      out = neg ? -r : r;
      return s;
    }
  }
  double v = static_cast<double>(m);
  if (frac) v /= kPow10[frac];
  out = static_cast<T>(neg ? -v : v);
  return s;
}

// "count dim" with both non-negative decimal integers (at most 18 digits each).
inline bool parse_header(const char* b, const char* e, int64_t& count, int64_t& dim) noexcept {
  while (b < e && is_sep(*b)) ++b;
  while (e > b && (is_sep(e[-1]) || e[-1] == '\r')) --e;
  int64_t vals[2];
  for (int k = 0; k < 2; ++k) {
    const char* s = b;
    int64_t v = 0;
    while (b < e && is_digit(*b)) {
      if (b - s >= 18) return false;
      v = v * 10 + (*b - '0');
      ++b;
    }
    if (b == s) return false;
    vals[k] = v;
    if (k == 0) {
      if (b >= e || !is_sep(*b)) return false;
      while (b < e && is_sep(*b)) ++b;
    }
  }
  if (b != e) return false;
  count = vals[0];
  dim = vals[1];
  return true;
}

inline void set_token(ParseError& err, const char* b, const char* e) {
  err.token.assign(b, static_cast<size_t>(std::min<int64_t>(e - b, 48)));
}

// ---------------------------------------------------------------- one text line

struct LineOut {
  const char* word_b;
  const char* word_e;
};

// "nan", "inf", "infinity" in any case, with an optional sign.
inline bool is_nonfinite_name(const char* s, const char* e) noexcept {
  if (s < e && (*s == '+' || *s == '-')) ++s;
  auto eq = [&](const char* w) {
    const int64_t n = static_cast<int64_t>(std::strlen(w));
    if (e - s != n) return false;
    for (int64_t i = 0; i < n; ++i)
      if ((s[i] | 0x20) != w[i]) return false;
    return true;
  };
  return eq("nan") || eq("inf") || eq("infinity");
}

// Splits [b, e) into fields (separated by runs of separators); returns the count and
// stores the (begin, end) pairs in f.
inline int64_t split_fields(const char* b, const char* e, std::vector<const char*>& f) {
  f.clear();
  int64_t n = 0;
  const char* s = b;
  while (s < e) {
    while (s < e && is_sep(*s)) ++s;
    if (s >= e) break;
    const char* t = s;
    while (t < e && !is_sep(*t)) ++t;
    f.push_back(s);
    f.push_back(t);
    ++n;
    s = t;
  }
  return n;
}

// Parses one non-blank, right-trimmed line [b, e) with D values into row[0, D).
// Returns ErrKind::None and the word's span, or an error with err.found/token filled.
template <class T>
ErrKind parse_line(const char* b, const char* e, int64_t D, T* FE_RESTRICT row, LineOut& lo,
                   ParseError& err, std::vector<const char*>& scratch) {
  // Fast path: word, then exactly D well-formed numbers.
  if (!is_sep(*b)) {
    const char* w = b;
    while (w < e && !is_sep(*w)) ++w;
    const char* s = w;
    int64_t j = 0;
    bool ok = true;
    for (; j < D; ++j) {
      while (s < e && is_sep(*s)) ++s;
      if (s >= e) { ok = false; break; }
      double v;
      const char* t = fast_number<T>(s, e, row[j]);  // below 2^53: finite in float too
      if (!t) {
        t = s;
        while (t < e && !is_sep(*t)) ++t;
        if (parse_number(s, t, v) != NumStatus::Ok) { ok = false; break; }
        const T x = static_cast<T>(v);
        if (!std::isfinite(x)) { ok = false; break; }
        row[j] = x;
      }
      s = t;
    }
    if (ok) {
      while (s < e && is_sep(*s)) ++s;
      if (s == e) {
        lo.word_b = b;
        lo.word_e = w;
        return ErrKind::None;
      }
    }
  }
  // Slow path: count fields, then decide between a word with spaces and a ragged row.
  const int64_t n = split_fields(b, e, scratch);
  if (n < D + 1) {
    err.expected = D;
    err.found = n > 0 ? n - 1 : 0;
    return n == 0 ? ErrKind::EmptyWord : ErrKind::Ragged;
  }
  const int64_t first_value = n - D;
  if (n > D + 1) {
    bool all_numbers = true;
    for (int64_t k = 1; k < first_value && all_numbers; ++k) {
      double v;
      all_numbers = parse_number(scratch[2 * k], scratch[2 * k + 1], v) != NumStatus::Bad;
    }
    if (all_numbers) {
      err.expected = D;
      err.found = n - 1;
      return ErrKind::Ragged;
    }
  }
  for (int64_t j = 0; j < D; ++j) {
    const char* s = scratch[2 * (first_value + j)];
    const char* t = scratch[2 * (first_value + j) + 1];
    double v;
    const NumStatus st = parse_number(s, t, v);
    const T x = static_cast<T>(v);
    if (st != NumStatus::Ok || !std::isfinite(x)) {
      set_token(err, s, t);
      err.found = j;  // field position among the values
      // "nan", "inf" and "1e999" are numbers, just not finite ones.
      return (st != NumStatus::Bad || is_nonfinite_name(s, t)) ? ErrKind::NonFinite
                                                               : ErrKind::BadNumber;
    }
    row[j] = x;
  }
  lo.word_b = scratch[0];
  lo.word_e = scratch[2 * (first_value - 1) + 1];
  return ErrKind::None;
}

// ---------------------------------------------------------------- the block reader

class BlockBuffer {
 public:
  explicit BlockBuffer(const VecSource& src) : src_(src), mem_(src.data) {}

  const char* begin() const { return data() + pos_; }
  const char* end() const { return data() + end_; }
  int64_t avail() const { return end_ - pos_; }
  bool eof() const { return eof_; }
  int64_t offset_of(const char* p) const { return base_ + (p - data()); }
  void consume_to(const char* p) { pos_ = p - data(); }

  // Keeps the unconsumed bytes and reads until at least `want` bytes are available or
  // the file ends.  Returns false on an I/O error, an interrupt or a file that shrank
  // (error() says which).
  bool fill(int64_t want) {
    if (eof_ || avail() >= want) return true;
    if (mem_) {  // a window on the whole file
      end_ = pos_ + std::min(want, src_.size - pos_);
      eof_ = end_ == src_.size;
      return true;
    }
    if (pos_ > 0) {
      std::memmove(buf_.data(), buf_.data() + pos_, static_cast<size_t>(end_ - pos_));
      base_ += pos_;
      end_ -= pos_;
      pos_ = 0;
    }
    // No more than the file holds when its size is known.
    if (src_.size >= 0) want = std::min(want, std::max<int64_t>(src_.size - base_, end_));
    if (static_cast<int64_t>(buf_.size()) < want) buf_.resize(static_cast<size_t>(want));
    while (end_ < want) {
      if (src_.size >= 0 && base_ + end_ >= src_.size) break;
      if (src_.intr.poll()) return set_error(ErrKind::Interrupted);
      int64_t n = std::min(want - end_, kReadStep);
      if (src_.size >= 0) n = std::min(n, src_.size - (base_ + end_));
      const int64_t r = read_some(buf_.data() + end_, n);
      if (r == kNoData) continue;
      if (r < 0) {
        errno_ = errno;
        return set_error(ErrKind::Io);
      }
      if (r == 0) {
        if (src_.size >= 0) return set_error(ErrKind::Shrunk);
        eof_ = true;
        break;
      }
      end_ += r;
    }
    if (src_.size >= 0 && base_ + end_ >= src_.size) eof_ = true;
    return true;
  }
  bool set_error(ErrKind k) {
    err_ = k;
    return false;
  }
  void clear_error() { err_ = ErrKind::None; }
  ErrKind error() const { return err_; }
  int io_errno() const { return errno_; }
  int64_t bytes_read() const { return base_ + end_; }
  int64_t size() const { return src_.size; }
  bool poll() const { return src_.intr.poll(); }
  const Interrupt& intr() const { return src_.intr; }
  int64_t block() const { return std::max<int64_t>(16, src_.block); }
  int64_t first_block() const { return std::min(kFirstBlock, block()); }

 private:
  static constexpr int64_t kNoData = -2;

  // One read(2) of at most n bytes after poll(2) says there is something to read (data
  // or end of file); kNoData when nothing came within kPollMs or a signal arrived.
  int64_t read_some(char* dst, int64_t n) {
    pollfd p{src_.fd, POLLIN, 0};
    const int ready = ::poll(&p, 1, kPollMs);
    if (ready == 0) return kNoData;
    if (ready < 0) return errno == EINTR ? kNoData : -1;
    const ssize_t r = ::read(src_.fd, dst, static_cast<size_t>(n));
    if (r < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) return kNoData;
    return static_cast<int64_t>(r);
  }

  const char* data() const { return mem_ ? mem_ : buf_.data(); }

  const VecSource& src_;
  const char* mem_;
  ValueVec<char> buf_;
  int64_t pos_ = 0, end_ = 0, base_ = 0;
  bool eof_ = false;
  ErrKind err_ = ErrKind::None;
  int errno_ = 0;
};

// Makes sure a whole line starting at buf.begin() is in the buffer; returns its end
// (the '\n' or buf.end() at end of file), or nullptr when reading failed or the line
// is longer than kMaxLine (buf.error() says which).
inline const char* ensure_line(BlockBuffer& buf) {
  for (;;) {
    const void* nl = std::memchr(buf.begin(), '\n', static_cast<size_t>(buf.avail()));
    const char* le = nl ? static_cast<const char*>(nl) : buf.eof() ? buf.end() : nullptr;
    if (le) {
      if (le - buf.begin() > kMaxLine) {
        buf.set_error(ErrKind::LineTooLong);
        return nullptr;
      }
      return le;
    }
    if (buf.avail() > kMaxLine) {
      buf.set_error(ErrKind::LineTooLong);
      return nullptr;
    }
    if (!buf.fill(std::min(buf.avail() * 2 + buf.first_block(), kMaxLine + 1))) return nullptr;
  }
}

inline const char* rtrim(const char* b, const char* e) {
  while (e > b && (is_sep(e[-1]) || e[-1] == '\r')) --e;
  return e;
}

// ---------------------------------------------------------------- text body

// A text row needs at least 2*D+1 bytes (a word, then D separators and D digits), so a
// line shorter than that is never a row: it gets no slot in the values buffer, whose
// size is then bounded by the bytes read, whatever dimension a header claims.
FE_INLINE bool holds_row(const char* s, const char* le, int64_t D) noexcept {
  return le - s >= 2 * D + 1;  // D <= kMaxDim: no overflow
}

template <class T>
struct TextChunk {
  const char* b = nullptr;
  const char* e = nullptr;
  int64_t lines = 0;      // physical lines in the chunk
  int64_t slots = 0;      // lines long enough to hold a row (holds_row)
  int64_t row0 = 0;       // first row slot in the block (sum of previous chunks' slots)
  int64_t rows = 0;       // rows parsed
  std::string words;
  std::vector<int64_t> ends;
  ErrKind err = ErrKind::None;
  int64_t err_line = 0;   // 0-based line within the chunk
  ParseError info;
};

template <class T>
void parse_text_chunk(TextChunk<T>& c, int64_t D, T* values) {
  std::vector<const char*> scratch;
  std::vector<T> short_row;  // the values of a line too short to be a row (an error)
  const char* s = c.b;
  int64_t line = 0;
  T* row = values + c.row0 * D;
  while (s < c.e) {
    const char* nl = static_cast<const char*>(std::memchr(s, '\n', static_cast<size_t>(c.e - s)));
    const char* le = nl ? nl : c.e;
    const char* te = rtrim(s, le);
    if (le - s > kMaxLine) {
      c.err = ErrKind::LineTooLong;
      c.info.found = le - s;
      c.err_line = line;
      return;
    }
    if (te > s) {
      const bool slot = holds_row(s, le, D);
      if (!slot && short_row.empty()) short_row.resize(static_cast<size_t>(D));
      LineOut lo;
      ErrKind k = parse_line<T>(s, te, D, slot ? row : short_row.data(), lo, c.info, scratch);
      if (k == ErrKind::None && !slot) k = ErrKind::Ragged;  // unreachable, see holds_row
      if (k == ErrKind::None) {
        const int64_t bad = utf8_invalid_at(reinterpret_cast<const unsigned char*>(lo.word_b),
                                            lo.word_e - lo.word_b);
        if (bad >= 0) {
          k = ErrKind::BadUtf8;
          c.info.offset = bad;
        }
      }
      if (k != ErrKind::None) {
        c.err = k;
        c.err_line = line;
        return;
      }
      c.words.append(lo.word_b, static_cast<size_t>(lo.word_e - lo.word_b));
      c.ends.push_back(static_cast<int64_t>(c.words.size()));
      ++c.rows;
      row += D;
    }
    ++line;
    s = le + 1;
  }
}

template <class T>
bool fail(VectorsResult<T>& out, ErrKind k, int64_t line, int64_t offset) {
  out.error.kind = k;
  out.error.line = line;
  out.error.offset = offset;
  return false;
}

// The buffer's error (I/O, interrupt, a file that shrank, a line without end).
template <class T>
bool buf_fail(VectorsResult<T>& out, const BlockBuffer& buf, int64_t line, int64_t offset) {
  out.error.io_errno = buf.io_errno();
  if (buf.error() == ErrKind::Shrunk) {
    out.error.expected = buf.size();
    out.error.found = buf.bytes_read();
  } else if (buf.error() == ErrKind::LineTooLong) {
    out.error.expected = kMaxLine;
    out.error.found = buf.avail();
  }
  return fail(out, buf.error() == ErrKind::None ? ErrKind::Io : buf.error(), line, offset);
}

// Calls fn(c) for every c in [0, n) on all threads, each thread taking the next chunk
// when it is done: on a shared machine a descheduled thread does not hold the others
// up.  fn must write only to chunk c's own outputs, so the result does not depend on
// which thread ran which chunk.  The calling thread (part 0 of parallel_for) polls
// `intr` before each chunk it takes; once it fires no thread starts another chunk and
// the call returns false.
template <class F>
bool for_each_chunk(int64_t n, const Interrupt& intr, const F& fn) {
  std::atomic<int64_t> next{0};
  std::atomic<bool> stop{false};
  const int64_t workers = std::max<int64_t>(1, std::min<int64_t>(n, get_num_threads()));
  parallel_for(workers, 1, [&](int64_t wb, int64_t we, int part) {
    for (int64_t w = wb; w < we; ++w)
      for (int64_t c = next.fetch_add(1); c < n; c = next.fetch_add(1)) {
        if (part == 0 && intr.poll()) stop.store(true, std::memory_order_relaxed);
        if (stop.load(std::memory_order_relaxed)) return;
        fn(c);
      }
  });
  return !stop.load();
}

// Splits [b, e) (whole lines) into about `parts` chunks at line boundaries.
template <class T>
void split_chunks(const char* b, const char* e, int64_t parts, std::vector<TextChunk<T>>& cs) {
  cs.clear();
  const int64_t n = e - b;
  const char* s = b;
  for (int64_t p = 1; p <= parts && s < e; ++p) {
    const char* t = p == parts ? e : b + n * p / parts;
    if (t < s) t = s;
    if (t < e) {
      const void* nl = std::memchr(t, '\n', static_cast<size_t>(e - t));
      t = nl ? static_cast<const char*>(nl) + 1 : e;
    }
    if (t > s) {
      cs.emplace_back();
      cs.back().b = s;
      cs.back().e = t;
    }
    s = t;
  }
}

// Capacity for the rows still to come: the size left / the first line's length, with
// room to spare, never more than `need` or than the rows the bytes left can hold.
inline int64_t estimate_rows(int64_t left_bytes, int64_t line_bytes, int64_t min_row_bytes,
                             int64_t need) {
  if (left_bytes < 0) return 0;
  int64_t est = left_bytes / std::max<int64_t>(1, line_bytes);
  est += est / 8 + 1024;
  est = std::min(est, left_bytes / std::max<int64_t>(1, min_row_bytes) + 1);
  return std::min(est, need);
}

// Room for `rows` more rows of D values.  Only a hint: a size that would not fit, or
// memory the system refuses (a sparse file of a terabyte claims many rows), leaves the
// vector to grow with the rows actually parsed.
template <class T>
void reserve_rows(ValueVec<T>& v, int64_t rows, int64_t D) {
  int64_t n = 0;
  if (!mul_size(rows, D, n) || !add_size(n, static_cast<int64_t>(v.size()), n)) return;
  try {
    v.reserve(static_cast<size_t>(n));
  } catch (const std::bad_alloc&) {
  } catch (const std::length_error&) {
  }
}

// D in [1, kMaxDim].
template <class T>
bool parse_text_body(BlockBuffer& buf, int64_t D, int64_t need, int64_t first_line,
                     int64_t file_size, VectorsResult<T>& out) {
  bool first_block = true;
  int64_t line_no = first_line;  // 1-based number of the next line
  std::vector<TextChunk<T>> cs;
  int64_t avg_row_bytes = 0;
  int64_t bytes_done = 0;
  while (out.rows < need) {
    // Size the next read: a full block, or about what the remaining rows need.
    const int64_t block = buf.block();
    int64_t want = block;
    if (need != std::numeric_limits<int64_t>::max()) {
      const int64_t per = avg_row_bytes > 0 ? avg_row_bytes : 16 * D + 32;
      const int64_t left = need - out.rows;
      if (left < block / per)  // then left * per < block: no overflow below
        want = std::min(block, std::max<int64_t>(left * per + left * per / 8 + 4096,
                                                 int64_t(64) << 10));
    }
    if (!buf.fill(std::max(want, buf.avail()))) return buf_fail(out, buf, line_no, -1);
    if (buf.avail() == 0) break;
    const char* b = buf.begin();
    const char* e = buf.end();
    if (!buf.eof()) {
      // Whole lines only; a line longer than the block makes the buffer grow.
      const char* p = e;
      while (p > b && p[-1] != '\n') --p;
      if (p == b) {
        const char* le = ensure_line(buf);
        if (!le) return buf_fail(out, buf, line_no, -1);
        b = buf.begin();
        e = le < buf.end() ? le + 1 : le;
      } else {
        e = p;
      }
    }
    const int64_t nbytes = e - b;
    if (first_block && file_size >= 0) {
      first_block = false;
      const void* nl = std::memchr(b, '\n', static_cast<size_t>(nbytes));
      const int64_t line_bytes = nl ? static_cast<const char*>(nl) - b + 1 : nbytes;
      reserve_rows(out.values,
                   estimate_rows(file_size - buf.offset_of(b), line_bytes, 2 * D + 1, need), D);
    }
    // ~512 KiB chunks: enough of them for the threads to balance.
    const int64_t parts = std::max<int64_t>(1, std::min<int64_t>(1024, nbytes >> 19));
    split_chunks<T>(b, e, parts, cs);
    // Pass 1: count lines and row slots, so every chunk can write its rows in place.
    const int64_t nc = static_cast<int64_t>(cs.size());
    if (!for_each_chunk(nc, buf.intr(), [&](int64_t c) {
          int64_t lines = 0, slots = 0;
          const char* s = cs[c].b;
          while (s < cs[c].e) {
            const void* nl = std::memchr(s, '\n', static_cast<size_t>(cs[c].e - s));
            const char* le = nl ? static_cast<const char*>(nl) : cs[c].e;
            ++lines;
            slots += holds_row(s, le, D);
            s = le + 1;
          }
          cs[c].lines = lines;
          cs[c].slots = slots;
        }))
      return fail(out, ErrKind::Interrupted, line_no, -1);
    int64_t slots = 0;
    for (auto& c : cs) {
      c.row0 = slots;
      slots += c.slots;
    }
    // slots * D <= nbytes / 2: bounded by the bytes read, checked all the same.
    int64_t nvals = 0;
    const size_t old = out.values.size();
    if (!mul_size(slots, D, nvals) || !add_size(nvals, static_cast<int64_t>(old), nvals))
      return fail(out, ErrKind::TooBig, line_no, -1);
    out.values.resize(static_cast<size_t>(nvals));
    T* vals = out.values.data() + old;
    // Pass 2: parse.
    if (!for_each_chunk(nc, buf.intr(), [&](int64_t c) { parse_text_chunk<T>(cs[c], D, vals); }))
      return fail(out, ErrKind::Interrupted, line_no, -1);
    // Concatenate in order; the first error among the rows we keep wins.
    int64_t kept = 0;
    bool done = false;
    for (auto& c : cs) {
      const int64_t left = need - out.rows;
      if (c.err != ErrKind::None && c.rows < left) {
        out.error = c.info;
        if (c.err == ErrKind::LineTooLong) out.error.expected = kMaxLine;
        return fail(out, c.err, line_no + c.err_line, out.error.offset);
      }
      const int64_t take = std::min(c.rows, left);
      if (take > 0 && c.row0 != kept)
        std::memmove(vals + kept * D, vals + c.row0 * D, static_cast<size_t>(take * D) * sizeof(T));
      const int64_t base = static_cast<int64_t>(out.words.size());
      if (take > 0) {
        const int64_t wbytes = c.ends[take - 1];
        out.words.append(c.words.data(), static_cast<size_t>(wbytes));
        for (int64_t r = 0; r < take; ++r) out.word_end.push_back(base + c.ends[r]);
      }
      kept += take;
      out.rows += take;
      line_no += c.lines;
      if (out.rows >= need) { done = true; break; }
    }
    out.values.resize(old + static_cast<size_t>(kept * D));
    bytes_done += nbytes;
    if (out.rows > 0) avg_row_bytes = std::max<int64_t>(1, bytes_done / out.rows);
    buf.consume_to(e);
    if (done) break;
    if (buf.eof() && buf.avail() == 0) break;
  }
  return true;
}

// ---------------------------------------------------------------- binary body

struct BinRecord {
  int64_t word_b, word_e, vals;  // offsets in the current buffer
};

// D in [1, kMaxDim]: a record is at most kMaxWord + 1 + 4 * kMaxDim bytes.
template <class T>
bool parse_binary_body(BlockBuffer& buf, int64_t D, int64_t need, int64_t file_size,
                       VectorsResult<T>& out) {
  const int64_t vbytes = 4 * D;
  std::vector<BinRecord> recs;
  if (file_size >= 0)
    reserve_rows(out.values,
                 estimate_rows(file_size - buf.offset_of(buf.begin()), vbytes + 2, vbytes + 1,
                               need),
                 D);
  while (out.rows < need) {
    if (buf.poll()) return fail(out, ErrKind::Interrupted, -1, buf.offset_of(buf.begin()));
    if (!buf.fill(std::max(buf.block(), buf.avail())))
      return buf_fail(out, buf, -1, buf.offset_of(buf.begin()));
    const char* base = buf.begin();
    const char* e = buf.end();
    const char* s = base;
    recs.clear();
    // Sequential scan: records have variable length, so only a walk finds them.
    while (out.rows + static_cast<int64_t>(recs.size()) < need) {
      while (s < e && *s == '\n') ++s;
      if (s >= e) break;
      const int64_t look = std::min<int64_t>(e - s, kMaxWord + 1);
      const char* sp = static_cast<const char*>(std::memchr(s, ' ', static_cast<size_t>(look)));
      if (!sp && look > kMaxWord) {
        out.error.expected = kMaxWord;
        set_token(out.error, s, s + look);
        return fail(out, ErrKind::WordTooLong, -1, buf.offset_of(s));
      }
      if (!sp || e - (sp + 1) < vbytes) {
        if (!buf.eof()) break;  // the record continues in the next block
        if (sp == nullptr) out.error.token.assign(s, static_cast<size_t>(std::min<int64_t>(e - s, 48)));
        out.error.expected = vbytes;
        out.error.found = sp ? e - (sp + 1) : -1;
        return fail(out, ErrKind::Truncated, -1, buf.offset_of(s));
      }
      if (sp == s) return fail(out, ErrKind::EmptyWord, -1, buf.offset_of(s));
      recs.push_back({s - base, sp - base, sp + 1 - base});
      s = sp + 1 + vbytes;
    }
    const int64_t n = static_cast<int64_t>(recs.size());
    if (n == 0) {
      if (buf.eof()) break;
      // Newlines before the record are done with; the record is larger than the buffer:
      // grow it (bounded: the scan above refuses a word beyond kMaxWord).
      buf.consume_to(s);
      if (!buf.fill(buf.avail() * 2 + vbytes + buf.first_block()))
        return buf_fail(out, buf, -1, buf.offset_of(buf.begin()));
      continue;
    }
    // n records of 4*D bytes each lie in the buffer: n * D is bounded by its size.
    int64_t nvals = 0;
    const size_t old = out.values.size();
    if (!mul_size(n, D, nvals) || !add_size(nvals, static_cast<int64_t>(old), nvals))
      return fail(out, ErrKind::TooBig, -1, buf.offset_of(base));
    out.values.resize(static_cast<size_t>(nvals));
    T* vals = out.values.data() + old;
    // One slot per possible part (the pool never uses more than 256 threads).
    std::vector<int64_t> bad(257, -1);
    std::vector<int64_t> bad_kind(bad.size(), 0);
    parallel_for(n, 4096, [&](int64_t rb, int64_t re, int part) {
      for (int64_t r = rb; r < re; ++r) {
        const BinRecord& rc = recs[r];
        const unsigned char* w = reinterpret_cast<const unsigned char*>(base + rc.word_b);
        const int64_t u = utf8_invalid_at(w, rc.word_e - rc.word_b);
        if (u >= 0) { bad[part] = r; bad_kind[part] = u; return; }
        const char* src = base + rc.vals;
        T* dst = vals + r * D;
        for (int64_t j = 0; j < D; ++j) {
          uint32_t bits;
          std::memcpy(&bits, src + 4 * j, 4);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
          bits = __builtin_bswap32(bits);
#endif
          float f;
          std::memcpy(&f, &bits, 4);
          if (!std::isfinite(f)) { bad[part] = r; bad_kind[part] = -1 - j; return; }
          dst[j] = static_cast<T>(f);
        }
      }
    });
    int64_t first = -1, kind = 0;
    for (size_t p = 0; p < bad.size(); ++p)
      if (bad[p] >= 0 && (first < 0 || bad[p] < first)) { first = bad[p]; kind = bad_kind[p]; }
    if (first >= 0) {
      const BinRecord& rc = recs[first];
      if (kind >= 0) {
        out.error.token.assign(base + rc.word_b,
                               static_cast<size_t>(std::min<int64_t>(rc.word_e - rc.word_b, 48)));
        return fail(out, ErrKind::BadUtf8, -1, buf.offset_of(base + rc.word_b) + kind);
      }
      const int64_t j = -1 - kind;
      out.error.found = j;
      set_token(out.error, base + rc.word_b, base + rc.word_e);
      return fail(out, ErrKind::NonFinite, -1, buf.offset_of(base + rc.vals + 4 * j));
    }
    const int64_t wbase = static_cast<int64_t>(out.words.size());
    int64_t wlen = 0;
    for (const auto& rc : recs) wlen += rc.word_e - rc.word_b;
    out.words.reserve(static_cast<size_t>(wbase + wlen));
    for (const auto& rc : recs) {
      out.words.append(base + rc.word_b, static_cast<size_t>(rc.word_e - rc.word_b));
      out.word_end.push_back(static_cast<int64_t>(out.words.size()));
    }
    out.rows += n;
    buf.consume_to(s);
  }
  return true;
}

// ---------------------------------------------------------------- entry point

}  // namespace

template <class T>
bool load_vectors(const VecSource& src, Format fmt, int64_t limit, VectorsResult<T>& out) {
  BlockBuffer buf(src);
  const int64_t want_first =
      std::min(buf.first_block(), limit >= 0 ? int64_t(64) << 10 : kFirstBlock);
  if (!buf.fill(want_first)) return buf_fail(out, buf, 1, 0);
  // A UTF-8 byte order mark is not part of the first word.
  if (buf.avail() >= 3 && std::memcmp(buf.begin(), "\xEF\xBB\xBF", 3) == 0)
    buf.consume_to(buf.begin() + 3);
  int64_t line_no = 1;
  // Skip leading blank lines (text formats only would have them; harmless otherwise).
  const char* le = nullptr;
  for (;;) {
    le = ensure_line(buf);
    if (!le) return buf_fail(out, buf, line_no, -1);
    if (buf.avail() == 0) return fail(out, ErrKind::Empty, line_no, -1);
    if (rtrim(buf.begin(), le) > buf.begin() || le == buf.end()) break;
    buf.consume_to(le + 1);
    ++line_no;
  }
  const char* b = buf.begin();
  int64_t count = -1, dim = -1;
  const bool has_header = parse_header(b, le, count, dim);
  if (fmt == Format::Word2VecText || fmt == Format::FastText || fmt == Format::Word2VecBinary) {
    if (!has_header) {
      set_token(out.error, b, rtrim(b, le));
      return fail(out, ErrKind::BadHeader, line_no, -1);
    }
  }
  const bool use_header = has_header && fmt != Format::Glove;
  const int64_t header_line = line_no;
  const int64_t size = src.size;
  int64_t need = limit >= 0 ? limit : std::numeric_limits<int64_t>::max();
  if (use_header) {
    out.header_count = count;
    if (dim < 1) {
      set_token(out.error, b, rtrim(b, le));
      return fail(out, ErrKind::BadHeader, line_no, -1);
    }
    need = std::min(need, count);
    buf.consume_to(le < buf.end() ? le + 1 : le);
    ++line_no;
    // Decide text vs binary from the first record: a text line holds a word and then
    // numbers separated by spaces; float32 bytes practically never do.
    Format f = fmt;
    if (f == Format::Auto) {
      f = Format::Word2VecText;
      if (count > 0) {
        // Blank lines after the header say nothing; the binary reader skips newlines
        // before a word too.
        const char* l2;
        for (;;) {
          l2 = ensure_line(buf);
          if (!l2) break;
          if (rtrim(buf.begin(), l2) > buf.begin() || l2 == buf.end()) break;
          buf.consume_to(l2 + 1);
          ++line_no;
        }
        if (!l2 && buf.error() != ErrKind::LineTooLong) return buf_fail(out, buf, line_no, -1);
        if (!l2) {
          // No line end within kMaxLine bytes: not a text line, but binary records need
          // none (gensim writes no newlines); the binary reader has its own bounds.
          buf.clear_error();
          f = Format::Word2VecBinary;
        } else {
          const char* s = buf.begin();
          const char* t = rtrim(s, l2);
          std::vector<const char*> fl;
          const int64_t n = split_fields(s, t, fl);
          // A ragged first row is still text (and reported as ragged).
          bool text = n >= 2 && std::memchr(s, '\0', static_cast<size_t>(t - s)) == nullptr;
          for (int64_t k = std::max<int64_t>(1, n - dim); text && k < n; ++k) {
            double v;
            text = parse_number(fl[2 * k], fl[2 * k + 1], v) != NumStatus::Bad;
          }
          if (!text) f = Format::Word2VecBinary;
        }
      }
    }
    out.format = f;
    out.dim = dim;
    // Reject a header that cannot be true before reading further: each vector needs at
    // least 4*D+1 bytes (binary) or 2*D+1 (text).
    if (size >= 0 && need > 0) {
      const int64_t rec = f == Format::Word2VecBinary ? 4 : 2;
      const int64_t body = std::max<int64_t>(0, size - buf.offset_of(buf.begin()));
      int64_t rec_bytes = 0;
      const bool fits = dim <= body && mul_size(rec, dim, rec_bytes) &&
                        need <= (body + 1) / (rec_bytes + 1);
      if (!fits) {
        out.error.expected = count;
        out.error.found = dim;
        out.error.offset = body;
        return fail(out, ErrKind::HeaderTooBig, header_line, body);
      }
    }
    if (dim > kMaxDim) {
      out.error.found = dim;
      return fail(out, ErrKind::DimTooBig, header_line, -1);
    }
    bool ok = f == Format::Word2VecBinary
                  ? parse_binary_body<T>(buf, dim, need, size, out)
                  : parse_text_body<T>(buf, dim, need, line_no, size, out);
    if (!ok) return false;
    if (out.rows < need) {
      out.error.expected = need;
      out.error.found = out.rows;
      return fail(out, ErrKind::TooFew, header_line, -1);
    }
    return true;
  }
  // GloVe: no header; the first line's field count gives the dimension.
  out.format = Format::Glove;
  std::vector<const char*> fl;
  const int64_t n = split_fields(b, rtrim(b, le), fl);
  if (n < 2) {
    set_token(out.error, b, rtrim(b, le));
    return fail(out, ErrKind::NoValues, line_no, -1);
  }
  out.dim = n - 1;
  if (out.dim > kMaxDim) {
    out.error.found = out.dim;
    return fail(out, ErrKind::DimTooBig, line_no, -1);
  }
  return parse_text_body<T>(buf, out.dim, need, line_no, size, out);
}

template bool load_vectors<float>(const VecSource&, Format, int64_t, VectorsResult<float>&);
template bool load_vectors<double>(const VecSource&, Format, int64_t, VectorsResult<double>&);

}  // namespace vec
}  // namespace fe
