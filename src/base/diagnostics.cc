#include "base/diagnostics.h"

#include <algorithm>
#include <cstdint>
#include <tuple>

namespace phoenix::base {
namespace {

constexpr const char* kRed = "\x1b[1;31m";
constexpr const char* kYellow = "\x1b[1;33m";
constexpr const char* kBold = "\x1b[1m";
constexpr const char* kGreen = "\x1b[1;32m";
constexpr const char* kReset = "\x1b[0m";

std::string plural(std::size_t n, const char* word) {
  std::string out = std::to_string(n) + ' ' + word;
  if (n != 1) out += 's';
  return out;
}

}  // namespace

std::string_view to_string(Severity severity) {
  return severity == Severity::kError ? "error" : "warning";
}

Diagnostic& Diagnostics::error(std::string code, SourceLoc loc, std::string message,
                               std::string hint) {
  add(Diagnostic{
      Severity::kError, std::move(code), loc, std::move(message), std::move(hint), {}, {}});
  return all_.back();
}

Diagnostic& Diagnostics::warning(std::string code, SourceLoc loc, std::string message,
                                 std::string hint) {
  add(Diagnostic{
      Severity::kWarning, std::move(code), loc, std::move(message), std::move(hint), {}, {}});
  return all_.back();
}

void Diagnostics::add(Diagnostic d) {
  if (d.severity == Severity::kError) ++errors_;
  all_.push_back(std::move(d));
}

void Diagnostics::append(const Diagnostics& other) {
  for (const Diagnostic& d : other.all_) add(d);
}

std::vector<Diagnostic> Diagnostics::sorted() const {
  std::vector<Diagnostic> out = all_;
  std::stable_sort(out.begin(), out.end(), [](const Diagnostic& a, const Diagnostic& b) {
    auto key = [](const Diagnostic& d) {
      // Diagnostics without a file come last.
      return std::tuple<std::uint32_t, std::uint32_t, std::uint32_t>(
          d.loc.file == 0 ? UINT32_MAX : d.loc.file, d.loc.line, d.loc.col);
    };
    return key(a) < key(b);
  });
  return out;
}

std::string caret_line(std::string_view line, std::uint32_t col) {
  std::string out;
  std::uint32_t limit = col == 0 ? 0 : col - 1;
  for (std::uint32_t i = 0; i < limit && i < line.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(line[i]);
    if (c == '\t') {
      out += '\t';
    } else if ((c & 0xC0) != 0x80) {
      out += ' ';
    }
  }
  out += '^';
  return out;
}

std::string format_diagnostic(const Diagnostic& d, const SourceManager& sources, TextStyle style) {
  std::string out;
  auto paint = [&](const char* colour, std::string_view text) {
    if (style.colour) out += colour;
    out += text;
    if (style.colour) out += kReset;
  };
  std::string where = sources.describe(d.loc);
  if (!where.empty()) {
    paint(kBold, where + ":");
    out += ' ';
  }
  paint(d.severity == Severity::kError ? kRed : kYellow, std::string(to_string(d.severity)) + ":");
  out += ' ';
  paint(kBold, d.message);
  out += '\n';
  std::string_view line =
      d.masked_source ? std::string_view(*d.masked_source) : sources.line_text(d.loc);
  if (!line.empty()) {
    out += "    ";
    out += line;
    out += "\n    ";
    std::string caret = caret_line(line, d.loc.col);
    if (style.colour) {
      out += caret.substr(0, caret.size() - 1);
      paint(kGreen, "^");
    } else {
      out += caret;
    }
    out += '\n';
  }
  for (const RelatedLoc& r : d.related) {
    std::string rwhere = sources.describe(r.loc);
    out += "  note: ";
    if (!rwhere.empty()) out += rwhere + ": ";
    out += r.message;
    out += '\n';
  }
  if (!d.hint.empty()) {
    out += "  hint: ";
    out += d.hint;
    out += '\n';
  }
  return out;
}

std::string summarize(const Diagnostics& diags) {
  if (diags.empty()) return {};
  std::string out;
  if (diags.error_count() > 0) out += plural(diags.error_count(), "error");
  if (diags.warning_count() > 0) {
    if (!out.empty()) out += " and ";
    out += plural(diags.warning_count(), "warning");
  }
  return out;
}

}  // namespace phoenix::base
