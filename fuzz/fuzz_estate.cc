#include <cstddef>
#include <cstdint>
#include <string_view>

#include "estate_input.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  phoenix::fuzz::run_estate(std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
