#include "cli/heap.h"

#include <sys/mman.h>

#include <cstdint>
#include <cstdlib>

#ifdef PHOENIX_MIMALLOC
#include <mimalloc.h>
#endif

namespace phoenix::cli {

void prefer_huge_pages_for_heap() {
#ifdef PHOENIX_MIMALLOC
  if (std::getenv("MIMALLOC_LARGE_OS_PAGES") != nullptr) return;
  // Segments mimalloc maps from now on: it maps them 2 MiB-aligned and advises huge pages. A
  // thread's first segment too (the loader's parsing threads allocate most values): mimalloc
  // commits it lazily by default, which rules huge pages out for it.
  mi_option_set_enabled(mi_option_large_os_pages, true);
  mi_option_set(mi_option_eager_commit_delay, 0);
  // The segment it mapped before main (the dynamic loader's first malloc) serves most of a
  // command's small allocations: advise it too. mimalloc 2.0 maps segments of 32 MiB, aligned
  // to their size. Advice only: if the guess were wrong, pages would stay 4 KiB and nothing
  // else would change, so the result is not checked.
  constexpr std::uintptr_t kSegment = std::uintptr_t{32} << 20;
  void* probe = mi_malloc(1);
  auto segment = reinterpret_cast<std::uintptr_t>(probe) & ~(kSegment - 1);
  (void)madvise(reinterpret_cast<void*>(segment), kSegment, MADV_HUGEPAGE);
  mi_free(probe);
#endif
}

}  // namespace phoenix::cli
