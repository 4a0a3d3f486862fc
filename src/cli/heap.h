#pragma once

namespace phoenix::cli {

// Asks the kernel for transparent huge pages for the heap (mimalloc's segments), where the
// machine allows them on request (THP "madvise" or "always"). Loading a large estate allocates a
// value per JSON or YAML value; with 4 KiB pages every fresh page of the heap costs a page fault,
// which on a virtual machine was half of a 1,000-guest `validate`. Does nothing when
// MIMALLOC_LARGE_OS_PAGES is set (the user's choice stands) or in builds without mimalloc.
void prefer_huge_pages_for_heap();

}  // namespace phoenix::cli
