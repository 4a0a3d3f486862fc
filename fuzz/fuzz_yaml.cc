#include <cstddef>
#include <cstdint>
#include <string_view>

#include "config/yaml_reader.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto r =
      phoenix::config::parse_yaml(std::string_view(reinterpret_cast<const char*>(data), size), 0);
  (void)r;
  return 0;
}
