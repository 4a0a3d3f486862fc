#pragma once

// The fuzz_estate entry point, shared by the libFuzzer target and the regression test: one input
// holds the five files of a one-stack estate, separated by kSeparator lines, and goes through
// the loader, the estate cache's image (encoded, decoded, encoded again: the two must be the
// same bytes), the validator and, when the estate is clean, the compiler and every renderer.

#include <array>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>

#include "compile/desired.h"
#include "config/estate_image.h"
#include "config/loader.h"
#include "config/source_tree.h"
#include "render/render.h"
#include "validate/validate.h"

namespace phoenix::fuzz {

inline constexpr std::string_view kSeparator = "\n%%%%\n";

// Paths of the parts, in input order.
inline constexpr std::array<const char*, 5> kEstateParts = {
    "etc/phoenix_hypervisor_config.json", "etc/phoenix_lxc_configs.json",
    "etc/phoenix_vm_configs.json", "stacks/s/docker-compose.yml", "stacks/s/phoenix.json"};

struct EstateRun {
  bool loaded_cleanly = false;  // no errors from load + validate
  std::size_t artifacts = 0;
};

inline EstateRun run_estate(std::string_view data) {
  config::MemoryTree tree;
  for (std::size_t i = 0; i < kEstateParts.size(); ++i) {
    std::size_t end = data.find(kSeparator);
    std::string_view part = end == std::string_view::npos ? data : data.substr(0, end);
    tree.add(kEstateParts[i], std::string(part));
    if (end == std::string_view::npos) {
      data = {};
    } else {
      data.remove_prefix(end + kSeparator.size());
    }
  }
  config::LoadOptions options{"etc", std::nullopt, std::nullopt};
  config::LoadResult r = config::load_estate(options, tree);
  // What the estate cache would keep of this load must come back whole.
  std::string image = config::encode_estate_image(r);
  auto text = [&](const std::string& path) -> std::optional<std::string> {
    auto t = tree.read(path);
    return t ? std::optional<std::string>(std::move(*t)) : std::nullopt;
  };
  std::optional<config::LoadResult> back = config::decode_estate_image(image, text);
  if (!back || config::encode_estate_image(*back) != image) std::abort();
  validate::validate_estate(*r.estate, r.diags);
  EstateRun out;
  if (r.diags.has_errors()) return out;  // as `phoenix render`: nothing is compiled
  out.loaded_cleanly = true;
  compile::Desired desired = compile::compile_estate(*r.estate);
  out.artifacts = render::render_all(desired).size();
  return out;
}

}  // namespace phoenix::fuzz
