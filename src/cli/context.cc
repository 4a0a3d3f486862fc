#include "cli/context.h"

#include <cstdlib>
#include <iostream>

#include "config/load_cache.h"
#include "validate/validate.h"

namespace phoenix::cli {

LoadedEstate load_and_validate(const GlobalOptions& g) {
  config::LoadOptions opts{g.config_dir, g.stacks_dir, g.bin_dir};
  config::CacheReport cache;
  config::LoadResult r = config::load_estate_cached(opts, g.cache_dir, &cache);
  if (g.verbose > 0) {
    std::cerr << "estate cache: " << config::to_string(cache.outcome);
    if (!cache.entry.empty()) std::cerr << " (" << cache.entry << ")";
    if (!cache.note.empty()) std::cerr << ": " << cache.note;
    std::cerr << "\n";
  }
  LoadedEstate out{std::move(r.estate), std::move(r.diags)};
  validate::validate_estate(*out.estate, out.diags);
  return out;
}

void print_diagnostics(const LoadedEstate& loaded, const GlobalOptions& g) {
  base::TextStyle style{g.colour};
  for (const base::Diagnostic& d : loaded.diags.sorted()) {
    std::cerr << base::format_diagnostic(d, loaded.estate->sources, style);
  }
  if (!loaded.diags.empty()) std::cerr << base::summarize(loaded.diags) << ".\n";
}

nlohmann::json diagnostics_json(const LoadedEstate& loaded) {
  nlohmann::json list = nlohmann::json::array();
  const base::SourceManager& src = loaded.estate->sources;
  for (const base::Diagnostic& d : loaded.diags.sorted()) {
    nlohmann::json j = {
        {"severity", base::to_string(d.severity)}, {"code", d.code}, {"message", d.message}};
    if (d.loc.has_file()) {
      j["file"] = src.path(d.loc.file);
      if (d.loc.has_line()) {
        j["line"] = d.loc.line;
        j["column"] = d.loc.col;
        j["source_line"] = d.masked_source ? *d.masked_source : std::string(src.line_text(d.loc));
      }
    }
    if (!d.hint.empty()) j["hint"] = d.hint;
    if (!d.related.empty()) {
      nlohmann::json rel = nlohmann::json::array();
      for (const auto& r : d.related) {
        nlohmann::json jr = {{"message", r.message}};
        if (r.loc.has_file()) {
          jr["file"] = src.path(r.loc.file);
          if (r.loc.has_line()) {
            jr["line"] = r.loc.line;
            jr["column"] = r.loc.col;
          }
        }
        rel.push_back(std::move(jr));
      }
      j["related"] = std::move(rel);
    }
    list.push_back(std::move(j));
  }
  return {{"diagnostics", list},
          {"errors", loaded.diags.error_count()},
          {"warnings", loaded.diags.warning_count()}};
}

int report_invalid(const GlobalOptions& g, const LoadedEstate& loaded) {
  if (g.output == OutputFormat::kJson) {
    nlohmann::json doc = diagnostics_json(loaded);
    doc["ok"] = false;
    print_json(doc);
  } else {
    print_diagnostics(loaded, g);
  }
  return kExitInvalid;
}

namespace {
thread_local std::ostream* t_json_out = nullptr;
}  // namespace

JsonTo::JsonTo(std::ostream& out) : previous_(t_json_out) { t_json_out = &out; }
JsonTo::~JsonTo() { t_json_out = previous_; }

void print_json(const nlohmann::json& doc) {
  (t_json_out ? *t_json_out : std::cout) << doc.dump(2) << '\n';
}

void print_error(const GlobalOptions& g, const std::string& message) {
  if (g.output == OutputFormat::kJson) {
    print_json({{"error", message}});
  } else {
    std::cerr << "phoenix: error: " << message << '\n';
  }
}

std::string state_dir(const GlobalOptions& g) {
  if (g.state_dir) return *g.state_dir;
  if (const char* env = std::getenv("PHOENIX_STATE_DIR"); env && *env) return env;
  return "/var/lib/phoenix";
}

}  // namespace phoenix::cli
