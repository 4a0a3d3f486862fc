#include <iostream>
#include <iterator>

#include "base/fs.h"
#include "base/strings.h"
#include "cli/commands.h"
#include "compile/desired.h"
#include "plan/plan.h"
#include "render/render.h"

namespace phoenix::cli {
namespace {

std::vector<compile::Resource> desired_resources(const model::Estate& estate) {
  compile::Desired desired = compile::compile_estate(estate);
  auto files =
      render::file_resources(render::render_all(desired, render::Scope::kDelivered), desired);
  std::vector<compile::Resource> resources = std::move(desired.resources);
  resources.insert(resources.end(), std::make_move_iterator(files.begin()),
                   std::make_move_iterator(files.end()));
  return resources;
}

}  // namespace

int run_plan(const GlobalOptions& g, const PlanOptions& o) {
  plan::PlanOptions popts;
  for (const std::string& id : o.ids) {
    auto n = base::parse_uint(id);
    if (!n || *n > 999999999) {
      print_error(g, "\"" + id + "\" is not a guest id; give LXC or VM ids such as 101 1002");
      return kExitInvalid;
    }
    popts.only.insert(static_cast<compile::GuestId>(*n));
  }
  plan::Observed observed;
  if (o.observed_file) {
    auto text = base::read_file(*o.observed_file);
    if (!text) {
      print_error(g, text.error().describe());
      return kExitInvalid;
    }
    nlohmann::json doc = nlohmann::json::parse(*text, nullptr, false);
    if (doc.is_discarded()) {
      print_error(g, *o.observed_file + ": not valid JSON");
      return kExitInvalid;
    }
    auto parsed = plan::parse_snapshot(doc);
    if (!parsed) {
      print_error(g, *o.observed_file + ": " + parsed.error().message());
      return kExitInvalid;
    }
    observed = std::move(*parsed);
  }

  LoadedEstate loaded = load_and_validate(g);
  if (loaded.diags.has_errors()) return report_invalid(g, loaded);
  auto p = plan::make_plan(desired_resources(*loaded.estate), observed, popts);
  if (!p) {
    print_error(g, p.error().message());
    return kExitInvalid;
  }
  if (g.output == OutputFormat::kJson) {
    nlohmann::json doc = plan::plan_to_json(*p);
    doc["observed"] = o.observed_file ? nlohmann::json(*o.observed_file) : nlohmann::json(nullptr);
    print_json(doc);
  } else {
    print_diagnostics(loaded, g);
    if (!o.observed_file) {
      std::cout << "(No observed state given: planning against an empty platform. Pass "
                   "--observed FILE to compare with a snapshot.)\n\n";
    }
    std::cout << plan::format_plan(*p, {g.colour, g.verbose > 0});
  }
  return p->errors.empty() ? kExitOk : kExitInvalid;
}

int run_snapshot(const GlobalOptions& g) {
  LoadedEstate loaded = load_and_validate(g);
  if (loaded.diags.has_errors()) return report_invalid(g, loaded);
  print_json(plan::make_snapshot(desired_resources(*loaded.estate)));
  return kExitOk;
}

}  // namespace phoenix::cli
