#pragma once

// The loaded estate as bytes and back, for the estate cache (config/load_cache.h). Pure: no I/O.
//
// An image holds everything load_estate returns except the files' text: the model, the load's
// diagnostics, and the table of source files (numbers and paths). The text is the files' own,
// given back at decoding by whoever checked that the files are still those the image was made
// from. Decoding an image made by another build of Phoenix is not supported: the cache keys
// images by the binary's build id.

#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "config/loader.h"

namespace phoenix::config {

std::string encode_estate_image(const LoadResult& loaded);

// The text of a source file, by the path the image recorded for it; nullopt when the load did
// not read that file (an optional file that was absent), whose text is then empty.
using SourceText = std::function<std::optional<std::string>(const std::string& path)>;

// nullopt when `bytes` is not a whole image (truncated, or trailing bytes).
std::optional<LoadResult> decode_estate_image(std::string_view bytes, const SourceText& text);

}  // namespace phoenix::config
