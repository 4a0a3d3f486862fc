#include "base/diagnostics.h"

#include <gtest/gtest.h>

namespace phoenix::base {
namespace {

TEST(Diagnostics, FormatsLocationSourceLineAndCaret) {
  SourceManager sources;
  std::uint32_t f = sources.add("etc/a.json", "{\n  \"vmid\": 12\n}\n");
  Diagnostic d{Severity::kError, "bad", SourceLoc{f, 2, 11}, "vmid is too small", {}, {}};
  EXPECT_EQ(format_diagnostic(d, sources),
            "etc/a.json:2:11: error: vmid is too small\n"
            "      \"vmid\": 12\n"
            "              ^\n");
}

TEST(Diagnostics, CaretKeepsTabsAndSkipsUtf8ContinuationBytes) {
  SourceManager sources;
  // "\t\"é\": x" - the é is two bytes but one column on screen.
  std::uint32_t f = sources.add("t.yaml", "\tn\xC3\xA9: x\n");
  Diagnostic d{Severity::kWarning, "w", SourceLoc{f, 1, 7}, "odd value", {}, {}};
  EXPECT_EQ(format_diagnostic(d, sources),
            "t.yaml:1:7: warning: odd value\n"
            "    \tn\xC3\xA9: x\n"
            "    \t    ^\n");
  EXPECT_EQ(caret_line("\tab", 3), "\t ^");
  EXPECT_EQ(caret_line("abc", 0), "^");
  EXPECT_EQ(caret_line("\xC3\xA9x", 3), " ^");
}

TEST(Diagnostics, FormatsNotesAndHint) {
  SourceManager sources;
  std::uint32_t f = sources.add("a.json", "{\"a\": 1, \"a\": 2}");
  Diagnostic d{Severity::kWarning,    "duplicate-key", SourceLoc{f, 1, 10},
               "duplicate key \"a\"", "remove one",    {}};
  d.related.push_back({SourceLoc{f, 1, 2}, "first defined here"});
  d.related.push_back({SourceLoc{}, "no location"});
  EXPECT_EQ(format_diagnostic(d, sources),
            "a.json:1:10: warning: duplicate key \"a\"\n"
            "    {\"a\": 1, \"a\": 2}\n"
            "             ^\n"
            "  note: a.json:1:2: first defined here\n"
            "  note: no location\n"
            "  hint: remove one\n");
}

TEST(Diagnostics, FormatsWithoutLocation) {
  SourceManager sources;
  std::uint32_t f = sources.add("whole.json", "x\n");
  Diagnostic none{Severity::kError, "c", SourceLoc{}, "no file", {}, {}};
  EXPECT_EQ(format_diagnostic(none, sources), "error: no file\n");
  Diagnostic file_only{Severity::kError, "c", SourceLoc{f, 0, 0}, "whole file", {}, {}};
  EXPECT_EQ(format_diagnostic(file_only, sources), "whole.json: error: whole file\n");
}

TEST(Diagnostics, Summarize) {
  Diagnostics diags;
  EXPECT_EQ(summarize(diags), "");
  diags.warning("w", {}, "w1");
  EXPECT_EQ(summarize(diags), "1 warning");
  diags.error("e", {}, "e1");
  EXPECT_EQ(summarize(diags), "1 error and 1 warning");
  diags.error("e", {}, "e2");
  diags.warning("w", {}, "w2");
  EXPECT_EQ(summarize(diags), "2 errors and 2 warnings");
  Diagnostics only_errors;
  only_errors.error("e", {}, "e");
  only_errors.error("e", {}, "e");
  EXPECT_EQ(summarize(only_errors), "2 errors");
  EXPECT_EQ(diags.error_count(), 2u);
  EXPECT_EQ(diags.warning_count(), 2u);
  EXPECT_TRUE(diags.has_errors());
}

TEST(Diagnostics, SortedByFileLineColumnWithStableTiesAndNoFileLast) {
  Diagnostics diags;
  diags.error("x", SourceLoc{}, "nofile");
  diags.error("x", SourceLoc{2, 1, 1}, "f2");
  diags.error("x", SourceLoc{1, 3, 4}, "f1l3c4");
  diags.warning("x", SourceLoc{1, 3, 2}, "f1l3c2");
  diags.error("x", SourceLoc{1, 1, 9}, "f1l1-first");
  diags.error("x", SourceLoc{1, 1, 9}, "f1l1-second");
  std::vector<std::string> order;
  for (const Diagnostic& d : diags.sorted()) order.push_back(d.message);
  EXPECT_EQ(order, (std::vector<std::string>{"f1l1-first", "f1l1-second", "f1l3c2", "f1l3c4", "f2",
                                             "nofile"}));
  // all() keeps insertion order.
  EXPECT_EQ(diags.all().front().message, "nofile");
}

}  // namespace
}  // namespace phoenix::base
