// Replays every input in tests/fuzz_regressions/ through the entry point of the libFuzzer target
// named by its file name prefix (fuzz_json-, fuzz_yaml-, fuzz_estate-; see fuzz/ and
// scripts/fuzz.sh). Each one once crashed, hung or ran out of memory, or is a hand-made nasty
// input; now each must come back with an error or a clean result.

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "../fuzz/estate_input.h"
#include "config/json_parser.h"
#include "config/yaml_reader.h"

namespace phoenix {
namespace {

namespace fs = std::filesystem;

const fs::path kRegressions = fs::path(PHOENIX_SOURCE_DIR) / "tests/fuzz_regressions";

std::vector<std::string> regression_files() {
  std::vector<std::string> names;
  if (fs::is_directory(kRegressions)) {
    for (const auto& e : fs::directory_iterator(kRegressions)) {
      if (e.is_regular_file()) names.push_back(e.path().filename().string());
    }
  }
  std::sort(names.begin(), names.end());
  return names;
}

std::string read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

bool starts_with(const std::string& s, std::string_view prefix) {
  return s.compare(0, prefix.size(), prefix) == 0;
}

class FuzzRegression : public ::testing::TestWithParam<std::string> {};

TEST_P(FuzzRegression, ReplaysWithoutCrash) {
  const std::string& name = GetParam();
  const std::string data = read_bytes(kRegressions / name);
  if (starts_with(name, "fuzz_json-")) {
    base::Diagnostics diags;
    auto r = config::parse_json(data, 0, diags);
    if (!r) {
      EXPECT_FALSE(r.error().describe().empty());
    }
  } else if (starts_with(name, "fuzz_yaml-")) {
    auto r = config::parse_yaml(data, 0);
    if (!r) {
      EXPECT_FALSE(r.error().describe().empty());
    }
  } else if (starts_with(name, "fuzz_estate-")) {
    fuzz::EstateRun run = fuzz::run_estate(data);
    if (run.loaded_cleanly) {
      EXPECT_GT(run.artifacts, 0u);
    }
  } else {
    FAIL() << name << ": name must start with fuzz_json-, fuzz_yaml- or fuzz_estate-";
  }
}

INSTANTIATE_TEST_SUITE_P(Inputs, FuzzRegression, ::testing::ValuesIn(regression_files()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           std::string id = info.param;
                           for (char& c : id) {
                             if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
                           }
                           return id;
                         });

TEST(FuzzRegressionFiles, DirectoryHasInputsForEveryTarget) {
  const auto names = regression_files();
  for (std::string_view prefix : {"fuzz_json-", "fuzz_yaml-", "fuzz_estate-"}) {
    EXPECT_TRUE(std::any_of(names.begin(), names.end(),
                            [&](const std::string& n) { return starts_with(n, prefix); }))
        << "no regression input for " << prefix;
  }
}

}  // namespace
}  // namespace phoenix
