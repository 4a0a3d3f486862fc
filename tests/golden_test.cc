// Golden files: the example estate renders byte for byte to tests/golden/example/. Regenerate on
// purpose with PHOENIX_UPDATE_GOLDEN=1 and review the diff.

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <set>

#include "base/fs.h"
#include "compile/desired.h"
#include "config/loader.h"
#include "plan/plan.h"
#include "render/render.h"
#include "validate/validate.h"

namespace phoenix {
namespace {

namespace fs = std::filesystem;

const fs::path kSource = PHOENIX_SOURCE_DIR;

std::unique_ptr<model::Estate> load_example(base::Diagnostics& diags) {
  config::DiskTree tree;
  auto r = config::load_estate({(kSource / "examples/estate/etc").string(), {}, {}}, tree);
  diags = std::move(r.diags);
  validate::validate_estate(*r.estate, diags);
  return std::move(r.estate);
}

TEST(Golden, ExampleEstateIsValidWithoutWarnings) {
  base::Diagnostics diags;
  auto estate = load_example(diags);
  for (const auto& d : diags.all()) ADD_FAILURE() << d.code << ": " << d.message;
  EXPECT_EQ(estate->guests.size(), 7u);
  EXPECT_EQ(estate->stacks.size(), 2u);
}

TEST(Golden, ExampleRendersToGoldenFiles) {
  base::Diagnostics diags;
  auto estate = load_example(diags);
  ASSERT_FALSE(diags.has_errors());
  auto artifacts = render::render_all(compile::compile_estate(*estate));
  fs::path golden = kSource / "tests/golden/example";
  bool update = std::getenv("PHOENIX_UPDATE_GOLDEN") != nullptr;
  std::set<std::string> rendered;
  for (const render::Artifact& a : artifacts) {
    rendered.insert(a.path);
    fs::path file = golden / a.path;
    if (update) {
      fs::create_directories(file.parent_path());
      ASSERT_TRUE(base::write_file_atomic(file, a.content));
      continue;
    }
    auto want = base::read_file(file);
    ASSERT_TRUE(want) << "missing golden file " << file << "; run with PHOENIX_UPDATE_GOLDEN=1";
    EXPECT_EQ(*want, a.content) << "rendered " << a.path << " differs from " << file;
  }
  for (const auto& entry : fs::recursive_directory_iterator(golden)) {
    if (!entry.is_regular_file()) continue;
    std::string rel = fs::relative(entry.path(), golden).string();
    EXPECT_TRUE(rendered.count(rel)) << "golden file " << rel << " is no longer rendered";
  }
}

TEST(Golden, RenderingIsDeterministic) {
  base::Diagnostics d1, d2;
  auto a = render::render_all(compile::compile_estate(*load_example(d1)));
  auto b = render::render_all(compile::compile_estate(*load_example(d2)));
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].path, b[i].path);
    EXPECT_EQ(a[i].content, b[i].content);
  }
}

TEST(Golden, ConvergedSnapshotPlansNoChanges) {
  base::Diagnostics diags;
  auto estate = load_example(diags);
  compile::Desired desired = compile::compile_estate(*estate);
  auto resources = desired.resources;
  auto files = render::file_resources(render::render_all(desired), desired);
  resources.insert(resources.end(), files.begin(), files.end());
  auto observed = plan::parse_snapshot(plan::make_snapshot(resources));
  ASSERT_TRUE(observed);
  auto p = plan::make_plan(resources, *observed, {});
  ASSERT_TRUE(p);
  EXPECT_FALSE(p->has_changes());
  EXPECT_EQ(p->count(plan::ActionKind::kNoop), resources.size());
}

}  // namespace
}  // namespace phoenix
