/* Coverage shim for fuzzing with atheris' PyPI wheel under gcc's AddressSanitizer.
 *
 * The ASan runtime must be preloaded (python is not instrumented), and gcc's libasan
 * exports weak no-op versions of the SanitizerCoverage callbacks
 * (__sanitizer_cov_8bit_counters_init, ..._pcs_init, ..._trace_cmp8, ...).  Being first
 * in the lookup order, they shadow the real ones inside atheris' bundled libFuzzer, so
 * atheris' Python-level coverage never reaches libFuzzer ("Coverage symbols are being
 * provided by a library other than libFuzzer") and fuzzing runs blind.
 *
 * Preloaded before libasan (with ASAN_OPTIONS=verify_asan_link_order=0), this shim
 * defines those callbacks and forwards each to the definition in atheris'
 * core_with_libfuzzer module, found once it is loaded.  Until then they do nothing.
 * Only the coverage callbacks are forwarded: the string-compare hooks are called by
 * ASan's own interceptors (also from inside the dynamic loader), so they are left to
 * libasan.  Used by .ci/fuzz.sh; built with plain gcc, no sanitizer.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <link.h>
#include <stdint.h>
#include <string.h>

static void* core_handle;

static int find_core(struct dl_phdr_info* info, size_t size, void* data) {
  (void)size;
  if (info->dlpi_name && strstr(info->dlpi_name, "atheris/core_with_libfuzzer")) {
    *(const char**)data = info->dlpi_name;
    return 1;
  }
  return 0;
}

static void* resolve(const char* name) {
  if (!core_handle) {
    const char* path = 0;
    dl_iterate_phdr(find_core, &path);
    if (!path) return 0;
    core_handle = dlopen(path, RTLD_NOLOAD | RTLD_LAZY);
    if (!core_handle) return 0;
  }
  return dlsym(core_handle, name);
}

#define FWD(name, params, args)                                 \
  void name params {                                           \
    static void (*fn) params;                                  \
    if (!fn) fn = (void(*) params)resolve(#name);              \
    if (fn) fn args;                                           \
  }

FWD(__sanitizer_cov_8bit_counters_init, (uint8_t* a, uint8_t* b), (a, b))
FWD(__sanitizer_cov_pcs_init, (const uintptr_t* a, const uintptr_t* b), (a, b))
FWD(__sanitizer_cov_trace_cmp1, (uint8_t a, uint8_t b), (a, b))
FWD(__sanitizer_cov_trace_cmp2, (uint16_t a, uint16_t b), (a, b))
FWD(__sanitizer_cov_trace_cmp4, (uint32_t a, uint32_t b), (a, b))
FWD(__sanitizer_cov_trace_cmp8, (uint64_t a, uint64_t b), (a, b))
FWD(__sanitizer_cov_trace_const_cmp1, (uint8_t a, uint8_t b), (a, b))
FWD(__sanitizer_cov_trace_const_cmp2, (uint16_t a, uint16_t b), (a, b))
FWD(__sanitizer_cov_trace_const_cmp4, (uint32_t a, uint32_t b), (a, b))
FWD(__sanitizer_cov_trace_const_cmp8, (uint64_t a, uint64_t b), (a, b))
FWD(__sanitizer_cov_trace_switch, (uint64_t v, uint64_t* cases), (v, cases))
FWD(__sanitizer_cov_trace_div4, (uint32_t v), (v))
FWD(__sanitizer_cov_trace_div8, (uint64_t v), (v))
FWD(__sanitizer_cov_trace_gep, (uintptr_t v), (v))
