#include <cstddef>
#include <cstdint>
#include <string_view>

#include "config/json_parser.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  phoenix::base::Diagnostics diags;
  auto r = phoenix::config::parse_json(std::string_view(reinterpret_cast<const char*>(data), size),
                                       0, diags);
  (void)r;
  return 0;
}
