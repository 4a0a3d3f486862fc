#pragma once

#include <deque>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <ostream>
#include <string>

#include "base/diagnostics.h"
#include "config/loader.h"

namespace phoenix::cli {

// Exit codes (DESIGN.md §3).
inline constexpr int kExitOk = 0;
inline constexpr int kExitInvalid = 1;
inline constexpr int kExitPartial = 2;
inline constexpr int kExitLocked = 3;
inline constexpr int kExitUnreachable = 4;

enum class OutputFormat { kText, kJson };

// Options every command takes.
struct GlobalOptions {
  std::string config_dir;
  std::optional<std::string> stacks_dir;
  std::optional<std::string> bin_dir;
  std::optional<std::string> state_dir;  // journal and lock (default $PHOENIX_STATE_DIR, else
                                         // /var/lib/phoenix)
  OutputFormat output = OutputFormat::kText;
  int jobs = 4;
  bool dry_run = false;
  int verbose = 0;
  bool colour = false;  // decided from the terminal and NO_COLOR
  // The estate cache (config/load_cache.h); empty: none (--no-cache, or PHOENIX_CACHE_DIR="").
  std::string cache_dir;
};

struct LoadedEstate {
  std::unique_ptr<model::Estate> estate;
  base::Diagnostics diags;
};

// Loads and validates the estate.
LoadedEstate load_and_validate(const GlobalOptions& g);

// Keeps `value` until the process exits and returns it: for the large results of a one-shot
// command (the estate, its resources, a plan), which the operating system takes back at once
// when the process ends, where destroying them value by value costs a few percent of a large
// estate's `plan`. Only for values whose destructors do nothing but free memory. The store
// stays reachable (leak checkers do not count it) and is used from the main thread only.
template <class T>
T& keep_until_exit(T value) {
  static auto* kept = new std::deque<T>();
  kept->push_back(std::move(value));
  return kept->back();
}

// Prints diagnostics as text on stderr (with a summary line), or returns them as JSON records.
void print_diagnostics(const LoadedEstate& loaded, const GlobalOptions& g);
nlohmann::json diagnostics_json(const LoadedEstate& loaded);

// Reports an estate with errors: the diagnostics as text on stderr, or as a JSON document with
// "ok": false on stdout. Returns kExitInvalid.
int report_invalid(const GlobalOptions& g, const LoadedEstate& loaded);

// Prints `doc` on stdout as indented JSON (or where a JsonTo of this thread says).
void print_json(const nlohmann::json& doc);

// While it lives, print_json on this thread writes to `out` instead of stdout: sync all runs
// commands side by side, each with --output json, and takes each one's report this way.
class JsonTo {
 public:
  explicit JsonTo(std::ostream& out);
  ~JsonTo();
  JsonTo(const JsonTo&) = delete;
  JsonTo& operator=(const JsonTo&) = delete;

 private:
  std::ostream* previous_;
};

// "phoenix: error: <message>" on stderr, or {"error": ...} on stdout under --output json.
void print_error(const GlobalOptions& g, const std::string& message);

// Where the journal, the lock and Phoenix's own files live: --state-dir, else
// $PHOENIX_STATE_DIR, else /var/lib/phoenix.
std::string state_dir(const GlobalOptions& g);

}  // namespace phoenix::cli
