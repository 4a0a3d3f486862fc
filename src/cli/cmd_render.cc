#include <iostream>

#include "base/fs.h"
#include "cli/commands.h"
#include "compile/desired.h"
#include "render/render.h"

namespace phoenix::cli {

int run_render(const GlobalOptions& g, const RenderOptions& o) {
  LoadedEstate loaded = load_and_validate(g);
  if (loaded.diags.has_errors()) {
    int code = report_invalid(g, loaded);
    if (g.output == OutputFormat::kText) {
      std::cerr << "phoenix: nothing was written to " << o.out_dir << ".\n";
    }
    return code;
  }
  if (g.output == OutputFormat::kText) print_diagnostics(loaded, g);  // warnings
  compile::Desired desired = compile::compile_estate(*loaded.estate, {.resources = false});
  std::vector<render::Artifact> artifacts = render::render_all(desired);
  base::FileTree tree;
  for (const render::Artifact& a : artifacts) tree[a.path] = a.content;
  if (!g.dry_run) {
    if (auto w = base::write_tree_atomic(o.out_dir, tree); !w) {
      print_error(g, w.error().describe());
      return kExitInvalid;
    }
  }
  if (g.output == OutputFormat::kJson) {
    nlohmann::json files = nlohmann::json::array();
    for (const render::Artifact& a : artifacts) {
      nlohmann::json f = {{"path", a.path}, {"bytes", a.content.size()}};
      if (!a.target.empty()) {
        f["target"] = a.target;
        f["guest"] = a.guest ? nlohmann::json(*a.guest) : nlohmann::json("host");
      }
      files.push_back(std::move(f));
    }
    print_json({{"ok", true}, {"out", o.out_dir}, {"dry_run", g.dry_run}, {"files", files}});
  } else {
    for (const render::Artifact& a : artifacts) {
      std::cout << (g.dry_run ? "would write " : "wrote ") << o.out_dir << "/" << a.path;
      if (!a.target.empty()) {
        std::cout << "  (for " << (a.guest ? "guest " + std::to_string(*a.guest) : "the host")
                  << ": " << a.target << ")";
      }
      std::cout << '\n';
    }
  }
  return kExitOk;
}

}  // namespace phoenix::cli
