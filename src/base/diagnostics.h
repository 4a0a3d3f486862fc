#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "base/source.h"

namespace phoenix::base {

enum class Severity { kError, kWarning };

std::string_view to_string(Severity severity);

// A secondary location that explains a diagnostic ("first defined here").
struct RelatedLoc {
  SourceLoc loc;
  std::string message;
};

struct Diagnostic {
  Severity severity = Severity::kError;
  std::string code;  // stable, kebab-case identifier of the check, e.g. "duplicate-ip"
  SourceLoc loc;
  std::string message;
  std::string hint;  // how to fix it; may be empty
  std::vector<RelatedLoc> related;
  // Shown instead of the source line when that line holds a secret (already masked).
  std::optional<std::string> masked_source = std::nullopt;
};

// Collects every problem found, so that a run reports all of them at once.
class Diagnostics {
 public:
  Diagnostic& error(std::string code, SourceLoc loc, std::string message, std::string hint = {});
  Diagnostic& warning(std::string code, SourceLoc loc, std::string message, std::string hint = {});
  void add(Diagnostic d);
  void append(const Diagnostics& other);

  std::size_t error_count() const { return errors_; }
  std::size_t warning_count() const { return all_.size() - errors_; }
  bool has_errors() const { return errors_ != 0; }
  bool empty() const { return all_.empty(); }

  // In source order: by file (load order), line and column; ties keep insertion order.
  std::vector<Diagnostic> sorted() const;
  const std::vector<Diagnostic>& all() const { return all_; }

 private:
  std::vector<Diagnostic> all_;
  std::size_t errors_ = 0;
};

struct TextStyle {
  bool colour = false;
};

// `path:line:col: error: message`, the source line, a caret under the column, then the hint and
// related locations. Ends with a newline.
std::string format_diagnostic(const Diagnostic& d, const SourceManager& sources,
                              TextStyle style = {});

// "2 errors and 1 warning" style summary; empty when there is nothing to report.
std::string summarize(const Diagnostics& diags);

// The caret line for `col` (1-based byte column) under `line`: tabs are kept so that the caret
// lines up, and UTF-8 continuation bytes take no column.
std::string caret_line(std::string_view line, std::uint32_t col);

}  // namespace phoenix::base
