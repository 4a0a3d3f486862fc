#include "features/recipe.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "config/loader.h"
#include "validate/validate.h"

namespace phoenix::features {
namespace {

std::unique_ptr<model::Estate> example() {
  config::DiskTree tree;
  auto r =
      config::load_estate({std::string(PHOENIX_SOURCE_DIR) + "/examples/estate/etc", {}, {}}, tree);
  validate::validate_estate(*r.estate, r.diags);
  EXPECT_FALSE(r.diags.has_errors());
  return std::move(r.estate);
}

std::string messages(const base::Diagnostics& d, const base::SourceManager& sources) {
  std::string out;
  for (const auto& x : d.all()) out += base::format_diagnostic(x, sources) + "\n";
  return out;
}

// Every feature name the estate may use has its recipe, and every recipe is such a name: an
// unknown feature is a validation error, never a guest left half set up.
TEST(Recipes, OneRecipePerKnownFeatureAndAllParse) {
  base::SourceManager sources;
  base::Diagnostics diags;
  RecipeBook book = builtin_recipes(sources, diags);
  EXPECT_FALSE(diags.has_errors()) << messages(diags, sources);
  EXPECT_EQ(diags.all().size(), 0u) << messages(diags, sources);
  std::vector<std::string> names, known;
  for (const auto& [name, _] : book.recipes) names.push_back(name);
  for (std::string_view f : model::known_features()) known.emplace_back(f);
  std::sort(known.begin(), known.end());
  EXPECT_EQ(names, known);
}

// Every recipe expands without a problem when every variable is there.
TEST(Recipes, EveryRecipeExpandsWithEveryVariable) {
  base::SourceManager sources;
  base::Diagnostics diags;
  RecipeBook book = builtin_recipes(sources, diags);
  Variables vars = {{"guest.id", "101"},
                    {"guest.name", "web"},
                    {"guest.ip", "10.0.0.5"},
                    {"guest.cert", "/etc/phoenix/ssl/web.crt"},
                    {"guest.key", "/etc/phoenix/ssl/web.key"},
                    {"domain", "lab.example"},
                    {"timezone", "Etc/UTC"},
                    {"step_ca.url", "https://10.0.0.10:9000"},
                    {"step_ca.fingerprint", std::string(64, 'a')},
                    {"step_ca.dns_name", "ca.lab.example"},
                    {"step_ca.name", "Lab CA"},
                    {"step_ca.provisioner_name", "admin"},
                    {"bin.step", "/opt/step"},
                    {"bin.step_ca", "/opt/step-ca"},
                    {"bin.traefik", "/opt/traefik"},
                    {"nvidia.version", "580.76.05"},
                    {"nvidia.runfile", "/opt/nvidia.run"},
                    {"vllm.version", "0.11.0"},
                    {"vllm.port", "8000"}};
  for (const auto& [name, recipe] : book.recipes) {
    Plan plan = expand(recipe, vars, diags, "LXC 101 (web)");
    EXPECT_EQ(plan.feature, name);
    EXPECT_EQ(plan.steps.size(), recipe.steps.items().size()) << name;
    EXPECT_EQ(plan.health.size(), recipe.health.items().size()) << name;
  }
  EXPECT_EQ(diags.all().size(), 0u) << messages(diags, sources);

  // What the example's vLLM guest runs: the rendered unit, restarted when it changes.
  Plan vllm = expand(*book.find("vllm"), vars, diags);
  const auto* unit = std::get_if<FileStep>(&vllm.steps.at(3));
  ASSERT_NE(unit, nullptr);
  EXPECT_EQ(unit->path, "/etc/systemd/system/vllm.service");
  EXPECT_EQ(unit->content.kind, FileContent::Kind::kArtifact);
  EXPECT_EQ(vllm.health.at(1).url, "https://10.0.0.5:8000/v1/models");
  const auto* pip = std::get_if<CommandStep>(&vllm.steps.at(2));
  ASSERT_NE(pip, nullptr);
  EXPECT_EQ(pip->run, (std::vector<std::string>{"/opt/vllm/bin/pip", "install", "--no-input",
                                                "vllm==0.11.0"}));
}

// The features of the example estate, in the order they are applied; the example has no
// step_ca.fingerprint (its CA does not exist yet), and no recipe needs one.
TEST(Recipes, ExampleEstateOrderWithoutFingerprint) {
  auto e = example();
  compile::Desired d = compile::compile_estate(*e, {.resources = false});
  base::Diagnostics diags;
  RecipeBook book = builtin_recipes(e->sources, diags);
  const model::Guest& traefik = *e->guest(102);
  std::vector<std::string> names;
  for (auto it = traefik.features.rbegin(); it != traefik.features.rend(); ++it) {
    names.push_back(it->value);  // listed backwards: `after` still puts base_setup first
  }
  std::vector<std::string> order;
  for (const Recipe* r : order_features(book, names)) order.push_back(r->name);
  EXPECT_EQ(order, (std::vector<std::string>{"base_setup", "trusted_ca", "traefik", "step_cli"}));

  Variables vars = guest_variables(*e, d, traefik);
  EXPECT_EQ(vars.at("guest.ip"), "10.0.0.12");
  EXPECT_EQ(vars.at("timezone"), "America/New_York");
  EXPECT_EQ(vars.at("bin.traefik"), "/usr/local/lib/phoenix/traefik");
  EXPECT_FALSE(vars.contains("step_ca.fingerprint"));
  // Nothing needs it: step_cli is set up with the root Phoenix verified.
  for (const Recipe* r : order_features(book, names)) expand(*r, vars, diags, traefik.label());
  EXPECT_TRUE(diags.all().empty()) << messages(diags, e->sources);
}

// A recipe with mistakes: each is reported at its place, with the fix.
TEST(Recipes, MistakesAreReportedAtTheirPlace) {
  base::SourceManager sources;
  base::Diagnostics diags;
  RecipeBook book;
  std::uint32_t file = sources.add("recipes/broken.yml",
                                   "steps:\n"
                                   "  - file: {path: etc/x, content: a}\n"
                                   "  - file: {path: /etc/y, content: a, artifact: b}\n"
                                   "  - file: {path: /etc/z, content: a, mode: \"0999\"}\n"
                                   "  - service: {unit: x}\n"
                                   "  - reboot: now\n"
                                   "  - command: {run: [echo, \"${guest.nmae}\"]}\n"
                                   "health:\n"
                                   "  - {type: ftp}\n");
  add_recipe(book, "broken", file, sources, diags);
  ASSERT_EQ(diags.all().size(), 0u) << messages(diags, sources);
  expand(*book.find("broken"), {{"guest.name", "web"}}, diags);
  std::vector<std::string> got;
  for (const auto& d : diags.all()) {
    std::string text = base::format_diagnostic(d, sources);
    got.push_back(text.substr(0, text.find('\n')));
  }
  EXPECT_EQ(got,
            (std::vector<std::string>{
                "recipes/broken.yml:2:18: error: path \"etc/x\" in step 1 of recipe broken is not "
                "absolute",
                "recipes/broken.yml:3:11: error: a file in step 2 of recipe broken needs exactly "
                "one of content, artifact, from_host",
                "recipes/broken.yml:4:44: error: mode \"0999\" in step 3 of recipe broken is not "
                "an octal mode",
                "recipes/broken.yml:5:14: error: a service in step 4 of recipe broken needs a name",
                "recipes/broken.yml:6:5: error: unknown step \"reboot\" in step 5 of recipe broken",
                "recipes/broken.yml:7:27: error: unknown variable ${guest.nmae} in step 6 of "
                "recipe broken",
                "recipes/broken.yml:9:12: error: unknown health check type \"ftp\""}));
  std::string all = messages(diags, sources);
  EXPECT_NE(all.find("hint: did you mean ${guest.name}?"), std::string::npos) << all;
}

}  // namespace
}  // namespace phoenix::features
