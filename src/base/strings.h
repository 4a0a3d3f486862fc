#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace phoenix::base {

// Levenshtein distance, for "did you mean" suggestions.
std::size_t edit_distance(std::string_view a, std::string_view b);

// The candidate closest to `word` when it is close enough to be a plausible typo.
std::optional<std::string> closest_match(std::string_view word,
                                         std::span<const std::string_view> candidates);

std::vector<std::string> split(std::string_view text, char sep);
std::string_view trim(std::string_view text);
// ASCII lower case (host names compare case-insensitively).
std::string to_lower(std::string_view text);
std::string join(std::span<const std::string> parts, std::string_view sep);

// Quotes `text` as a JSON string literal.
std::string json_quote(std::string_view text);

// The lines that differ between `before` and `after`, as a unified diff's body: "-old", "+new"
// and up to `context` unchanged lines around each change (" same"), with "@@" between distant
// changes. Empty when they are equal. Texts too long to compare line by line (over 4 million
// line pairs) give one summary line.
std::vector<std::string> line_diff(std::string_view before, std::string_view after,
                                   std::size_t context = 2);

// Parses a whole decimal integer; no sign, no spaces, no overflow.
std::optional<std::uint64_t> parse_uint(std::string_view text);

}  // namespace phoenix::base
