#pragma once

// The journal: every converge run and every action it took, with start, end, result and error,
// in SQLite under the state directory (DESIGN.md §4). It is written as the run goes (each row
// committed at once), so a run that was killed leaves what it had started; the next run, once
// it holds the estate's lock, marks those "interrupted".

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/error.h"

namespace phoenix::apply {

struct RunRecord {
  std::int64_t id = 0;
  std::string command;                        // "sync all"
  std::string estate;                         // the configuration directory
  std::int64_t started_at = 0, ended_at = 0;  // Unix seconds; ended 0 while running
  std::string result;                         // running | ok | failed | interrupted
  std::string summary;                        // "12 done, 1 failed, 40 unchanged"
  std::int64_t pid = 0;
  std::string host;
};

struct ActionRecord {
  std::int64_t id = 0;
  std::int64_t run = 0;
  std::string key;    // "stack/qdrant_service", "guest/101"
  std::string stage;  // "guests", "infrastructure", ...
  std::int64_t started_at = 0, ended_at = 0;
  std::string result;  // running | changed | unchanged | failed | skipped | interrupted
  std::string detail;  // what it did, or why it was skipped
  std::string error;
  std::string report;  // the action's own report (JSON): its steps, an application script's
                       // output, ...
};

class Journal {
 public:
  // Opens (creating when missing, mode 0600) the journal at `path`; its schema is created when
  // missing.
  static base::Result<std::unique_ptr<Journal>> open(const std::string& path);
  ~Journal();
  Journal(const Journal&) = delete;
  Journal& operator=(const Journal&) = delete;

  // Runs and actions still "running": their process died (call it holding the estate's lock).
  // Returns how many runs that was.
  base::Result<int> mark_interrupted();

  base::Result<std::int64_t> begin_run(const std::string& command, const std::string& estate);
  base::Result<void> end_run(std::int64_t run, const std::string& result,
                             const std::string& summary);
  base::Result<std::int64_t> begin_action(std::int64_t run, const std::string& key,
                                          const std::string& stage);
  base::Result<void> end_action(std::int64_t action, const std::string& result,
                                const std::string& detail, const std::string& error,
                                const std::string& report = {});

  // The latest runs, newest first.
  base::Result<std::vector<RunRecord>> runs(int limit);
  base::Result<std::vector<ActionRecord>> actions(std::int64_t run);

 private:
  struct Db;
  explicit Journal(std::unique_ptr<Db> db);
  std::unique_ptr<Db> db_;
};

// Unix seconds now.
std::int64_t now_seconds();
// This machine's name, as journal and lock record it.
std::string host_name();

}  // namespace phoenix::apply
