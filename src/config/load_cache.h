#pragma once

// The estate cache: loading an estate (reading, parsing and typing a few MB of JSON and YAML)
// is most of what `validate`, `render` and `plan` cost on a large estate, and all three load
// the same files. A load on disk is recorded as an image of its result (config/estate_image.h)
// together with every question it asked the file system and the answer it got: each file read
// (its XXH3-128 content hash, or that it did not exist), each is-this-a-file check and each
// directory listing. A later load with the same options, from the same directory, by the same
// build of Phoenix (the binary's build id) asks the same questions again; only when every
// answer is the same does it take the image instead of parsing. The loader depends on nothing
// else, so a hit returns exactly what parsing would: the files are read in full and compared by
// content (not by size or time), and a new stack directory, a removed optional file or an edit
// that keeps the size and the modification time all make a miss.
//
// A bad entry only ever costs a miss: a missing, unreadable, corrupt (checksummed),
// foreign (owned by another user or writable by others) or stale entry is a miss, and a failure
// to write one is ignored; nothing is written into a directory that is not the user's alone.
// Entries are written atomically (a temporary file renamed into place), one per estate and build,
// mode 0600 in a 0700 directory; writing one removes the entries not used for 30 days.

#include <string>

#include "config/loader.h"

namespace phoenix::config {

enum class CacheOutcome {
  kOff,       // no cache directory, or no build id to key entries by
  kHit,       // the entry's answers all held: the image was used
  kMiss,      // no usable entry: loaded, and the entry (re)written
  kMissKept,  // loaded, but the entry could not be written (see `note`) or was not wanted
};

struct CacheReport {
  CacheOutcome outcome = CacheOutcome::kOff;
  std::string entry;  // the entry's path, when there is a cache directory
  std::string note;   // why a miss was a miss, or why nothing was written
};

std::string_view to_string(CacheOutcome outcome);  // "off", "hit", "miss", "miss"

// Loads the estate on disk like load_estate(options, DiskTree), through the cache in
// `cache_dir` (created when missing); with an empty `cache_dir` it is a plain load.
LoadResult load_estate_cached(const LoadOptions& options, const std::string& cache_dir,
                              CacheReport* report = nullptr);

// The cache directory from the environment: $PHOENIX_CACHE_DIR; else
// $XDG_CACHE_HOME/phoenix/estates; else $HOME/.cache/phoenix/estates; empty (no cache) when
// PHOENIX_CACHE_DIR is set but empty, or when none of them is set.
std::string default_cache_dir();

}  // namespace phoenix::config
