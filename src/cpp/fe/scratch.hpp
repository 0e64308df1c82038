// Scratch memory for the coalesce / bag-backward / optimizer passes.
//
// Blocks of kMapBytes or more are taken straight from the OS (mmap) and given back to it
// when freed (munmap).  Through malloc they would not be: glibc raises its mmap threshold
// to the size of the last large block freed (up to 32 MiB), after which blocks of a few
// MB come from per-thread arenas that it rarely trims, so many short-lived threads that
// each coalesced a batch left hundreds of MB of RSS behind (issue 15).  With mmap a freed
// block leaves the RSS at once, on any thread, whatever the allocator's state.
//
//   big_vector<T>: a std::vector whose large buffers are mmap'ed.
//   kKeepScratchBytes (tuning.hpp): how much of it one thread may keep between calls.
#pragma once

#include <sys/mman.h>

#include <cstddef>
#include <cstdlib>
#include <new>
#include <vector>

#include "fe/tuning.hpp"  // kMapBytes, kKeepScratchBytes

#ifndef MAP_POPULATE  // Linux only; elsewhere blocks are faulted in page by page
#define MAP_POPULATE 0
#endif

namespace fe {

template <class T>
struct MapAlloc {
  using value_type = T;
  MapAlloc() noexcept = default;
  template <class U>
  MapAlloc(const MapAlloc<U>&) noexcept {}

  T* allocate(size_t n) {
    if (n > static_cast<size_t>(-1) / sizeof(T)) throw std::bad_alloc();
    const size_t bytes = n * sizeof(T);
    if (bytes >= kMapBytes) {
      void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
      if (p == MAP_FAILED) throw std::bad_alloc();
      return static_cast<T*>(p);
    }
    void* p = std::malloc(bytes ? bytes : 1);
    if (!p) throw std::bad_alloc();
    return static_cast<T*>(p);
  }
  void deallocate(T* p, size_t n) noexcept {
    const size_t bytes = n * sizeof(T);
    if (bytes >= kMapBytes)
      munmap(p, bytes);
    else
      std::free(p);
  }
  template <class U>
  bool operator==(const MapAlloc<U>&) const noexcept { return true; }
  template <class U>
  bool operator!=(const MapAlloc<U>&) const noexcept { return false; }
};

template <class T>
using big_vector = std::vector<T, MapAlloc<T>>;

// Bytes held by a vector's buffer.
template <class V>
size_t held_bytes(const V& v) noexcept {
  return v.capacity() * sizeof(typename V::value_type);
}

// Frees a vector's buffer.
template <class V>
void release(V& v) noexcept {
  V().swap(v);
}

}  // namespace fe
