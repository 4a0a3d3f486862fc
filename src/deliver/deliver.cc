#include "deliver/deliver.h"

#include <set>
#include <string_view>
#include <utility>

#include "certs/renewal.h"
#include "providers/ca/crypto.h"

namespace phoenix::deliver {
namespace {

using base::ErrorKind;

// The most of a command's output an error quotes.
constexpr std::size_t kOutputLimit = 600;

// What a failed command said: its standard error (else its output), lines joined, the end kept.
std::string output_tail(const base::ProcessResult& r) {
  const std::string& text = r.err.find_first_not_of(" \t\r\n") == std::string::npos ? r.out : r.err;
  std::string out;
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string_view line(text.data() + start, end - start);
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t')) {
      line.remove_suffix(1);
    }
    if (!line.empty()) {
      if (!out.empty()) out += ' ';
      out += line;
    }
    start = end + 1;
  }
  if (out.size() > kOutputLimit) out = "..." + out.substr(out.size() - kOutputLimit);
  return out;
}

std::string bytes_detail(const std::optional<std::string>& previous, const std::string& next) {
  std::string out = std::to_string(next.size()) + " bytes";
  if (!previous) return out + " (new file)";
  return out + " (was " + std::to_string(previous->size()) + ")";
}

std::set<std::string> record_lines(std::string_view text) {
  std::set<std::string> out;
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(start, end - start);
    if (line.starts_with("address=")) out.emplace(line);
    start = end + 1;
  }
  return out;
}

std::string records_detail(const std::optional<std::string>& previous, const std::string& next) {
  std::set<std::string> now = record_lines(next);
  std::string out = std::to_string(now.size()) + (now.size() == 1 ? " record" : " records");
  if (!previous) return out + " (new file)";
  std::set<std::string> before = record_lines(*previous);
  std::size_t added = 0, removed = 0;
  for (const std::string& r : now) added += !before.contains(r);
  for (const std::string& r : before) removed += !now.contains(r);
  return out + " (" + std::to_string(added) + " added, " + std::to_string(removed) + " removed)";
}

// One delivery in progress: its report, and the channel it works through.
class Delivery {
 public:
  Delivery(guest::GuestChannel& channel, const Options& options, std::string name)
      : ch_(channel), options_(options) {
    report_.name = std::move(name);
    report_.where = channel.describe();
  }

  void step(std::string what, std::string detail) {
    if (options_.dry_run) what = "would " + what;
    report_.steps.push_back({std::move(what), std::move(detail)});
  }

  // A step that is a finding, not an action: never prefixed with "would".
  void note(std::string what, std::string detail) {
    report_.steps.push_back({std::move(what), std::move(detail)});
  }

  void mark_changed() { report_.changed = true; }

  Report done() { return std::move(report_); }

  Report fail(ErrorKind kind, std::string message) {
    report_.error = base::Error(kind, std::move(message));
    return std::move(report_);
  }

  Report fail(const base::Error& error, const std::string& doing) {
    return fail(error.kind(), doing + " in " + report_.where + ": " + error.message());
  }

  // The file's content; nullopt when there is none.
  base::Result<std::optional<std::string>> current(const std::string& path) {
    auto r = ch_.read_file(path);
    if (r) return std::optional<std::string>(std::move(*r));
    if (r.error().kind() == ErrorKind::kNotFound) return std::optional<std::string>();
    return std::unexpected(std::move(r).error());
  }

  // Writes `file` unless `previous` already holds its content; true when it was (or, in a dry
  // run, would be) written.
  base::Result<bool> put(const File& file, const std::optional<std::string>& previous,
                         const std::string& detail) {
    if (previous && *previous == file.content) {
      report_.steps.push_back({"unchanged", file.path});
      return false;
    }
    report_.changed = true;
    step("write", file.path + ": " + detail);
    if (!options_.dry_run) PHX_TRY(ch_.write_file(file.path, file.content, file.spec));
    return true;
  }

  // Makes `path` a link to `target` unless it is one; true when it was (or would be) made.
  base::Result<bool> link(const std::string& path, const std::string& target) {
    bool made = PHX_TRY(ch_.link(path, target, options_.dry_run));
    if (made) {
      report_.changed = true;
      step("link", path + " -> " + target);
    }
    return made;
  }

  // Runs `argv`; nullopt when it succeeds, else what went wrong ("`x` exited with 1: ...").
  std::optional<std::string> run(const Argv& argv) {
    std::string shown = display(argv);
    if (options_.dry_run) {
      step("run", shown);
      return std::nullopt;
    }
    auto r = ch_.run(argv);
    if (!r) {
      step("run", shown + ": cannot run it");
      return "`" + shown + "` could not be run: " + r.error().message();
    }
    if (!r->ok()) {
      std::string how =
          r->exit_code < 0 ? "was killed" : "exited with " + std::to_string(r->exit_code);
      step("run", shown + ": " + how);
      std::string said = output_tail(*r);
      return "`" + shown + "` " + how + (said.empty() ? "" : ": " + said);
    }
    step("run", shown + ": ok");
    return std::nullopt;
  }

  // A command owed after a change (`what`: "reload after /etc/x.crt"), remembered in the guest
  // from before the change until it has run (guest::kOwedDir).
  base::Result<bool> is_owed(const std::string& what) {
    auto r = current(guest::owed_marker(what));
    if (!r) return std::unexpected(std::move(r).error());
    return r->has_value();
  }
  base::Result<void> owe(const std::string& what) {
    if (options_.dry_run) return {};
    return ch_.write_file(guest::owed_marker(what), what + "\n", {});
  }
  base::Result<void> settle(const std::string& what) {
    if (options_.dry_run) return {};
    return ch_.remove_file(guest::owed_marker(what));
  }

  // Runs `argv`, owed after the change `what`, then forgets the debt; nullopt when both went
  // well, else what went wrong.
  std::optional<std::string> pay(const std::string& what, const Argv& argv) {
    if (auto failed = run(argv)) return failed;
    if (auto s = settle(what); !s) {
      return "`" + display(argv) + "` ran, but removing " + guest::owed_marker(what) +
             " failed: " + s.error().message();
    }
    return std::nullopt;
  }

  struct Restored {
    bool ok = false;
    std::string text;  // how it went, as the middle of an error message
  };

  // Puts back what `file.path` held before this run (removes it when it held nothing).
  Restored restore(const File& file, const std::optional<std::string>& previous,
                   std::string_view what) {
    std::string name = std::string(what) + " " + file.path;
    if (previous) {
      auto w = ch_.write_file(file.path, *previous, file.spec);
      if (!w) {
        step("restore", file.path + ": failed: " + w.error().message());
        return {false, "putting back the previous " + name + " failed too: " + w.error().message()};
      }
      step("restore", file.path + ": the previous content is back");
      return {true, "the previous " + name + " is back in place"};
    }
    auto rm = ch_.remove_file(file.path);
    if (!rm) {
      step("remove", file.path + ": failed: " + rm.error().message());
      return {false, "removing the new " + name + " failed too: " + rm.error().message()};
    }
    step("remove", file.path + ": there was none before");
    return {true, "the new " + name + " is removed (there was none before)"};
  }

  // Restores `file`, then runs `again` so that the service returns to it ("reloading" /
  // "reloaded" describe that run). When the file could not be restored, `again` is not run: it
  // would load the new file once more.
  std::string roll_back(const File& file, const std::optional<std::string>& previous,
                        std::string_view what, const Argv& again, std::string_view service,
                        std::string_view doing, std::string_view done) {
    Restored restored = restore(file, previous, what);
    std::string svc(service);
    if (!restored.ok)
      return restored.text + "; " + svc + " was not " + std::string(done) + " again";
    if (auto failed = run(again)) {
      return restored.text + ", but " + std::string(doing) + " " + svc + " with it failed too (" +
             *failed + "): " + svc + " may not be running";
    }
    return restored.text + " and " + svc + " was " + std::string(done) + " with it";
  }

 private:
  guest::GuestChannel& ch_;
  const Options& options_;
  Report report_;
};

}  // namespace

std::string chain_path(const compile::Certificate& cert) {
  std::string p = cert.cert_path;
  auto dot = p.rfind('.');
  auto slash = p.rfind('/');
  if (dot == std::string::npos || (slash != std::string::npos && dot < slash)) return p + ".chain";
  return p.substr(0, dot) + ".chain" + p.substr(dot);
}

Report deliver_certificate(guest::GuestChannel& guest, ca::CertificateAuthority& authority,
                           const CertDelivery& cd, std::int64_t now, const Options& options) {
  const compile::Certificate& c = cd.cert;
  Delivery d(guest, options, "certificate " + c.name);
  auto held_text = d.current(c.cert_path);
  if (!held_text) return d.fail(held_text.error(), "reading " + c.cert_path);
  std::optional<certs::Held> held;
  std::string unreadable;
  if (*held_text) {
    auto info = ca::read_certificate(**held_text);
    if (info) {
      certs::Held h;
      h.names = info->dns_names;
      h.names.insert(h.names.end(), info->ip_addresses.begin(), info->ip_addresses.end());
      if (!info->subject_cn.empty()) h.names.push_back(info->subject_cn);
      h.not_before = info->not_before;
      h.not_after = info->not_after;
      held = std::move(h);
    } else {
      unreadable = " (the file there is not a certificate: " + info.error().message() + ")";
    }
  }
  certs::Decision decision = certs::decide(c, held, now);
  d.note(std::string(certs::to_string(decision.verdict)),
         c.cert_path + ": " + decision.reason + unreadable);
  const std::string owed = "reload after " + c.cert_path;
  auto reload_failed = [&](const std::string& failed) {
    return d.fail(ErrorKind::kInternal,
                  "the new certificate " + c.name +
                      " is installed, but reloading its service failed: " + failed +
                      ". Fix the service; the next `phoenix sync certs` reloads it again");
  };
  if (decision.verdict == certs::Verdict::kKeep) {
    // Installed by a run that failed before its reload: the reload is still owed.
    if (cd.reload.empty()) return d.done();
    auto is_owed = d.is_owed(owed);
    if (!is_owed) return d.fail(is_owed.error(), "reading " + guest::owed_marker(owed));
    if (!*is_owed) return d.done();
    d.mark_changed();
    if (auto failed = d.pay(owed, cd.reload)) return reload_failed(*failed);
    return d.done();
  }

  File chain{chain_path(c), "", {cd.owner, cd.group, 0644}};
  File cert{c.cert_path, "", {cd.owner, cd.group, 0644}};
  File key{c.key_path, "", {cd.owner, cd.group, 0600}};
  if (options.dry_run) {
    for (const File* f : {&chain, &cert, &key}) d.step("write", f->path);
    if (!cd.reload.empty()) d.run(cd.reload);
    d.mark_changed();
    return d.done();
  }
  auto issued = authority.issue({c.common_name, c.sans});
  if (!issued) {
    return d.fail(issued.error().kind(), "issuing " + c.name + " from " + authority.describe() +
                                             ": " + issued.error().message() +
                                             "; nothing was installed in " + guest.describe());
  }
  if (!cd.reload.empty()) {
    if (auto o = d.owe(owed); !o) {
      return d.fail(o.error(), "writing " + guest::owed_marker(owed) + " (nothing was installed)");
    }
  }
  chain.content = issued->chain_pem;
  cert.content = issued->cert_pem + issued->chain_pem;
  key.content = issued->key_pem;
  // What each file held, to put back if a later write fails.
  std::vector<std::pair<const File*, std::optional<std::string>>> written;
  for (const File* f : {&chain, &cert, &key}) {
    auto before =
        f == &cert ? base::Result<std::optional<std::string>>(*held_text) : d.current(f->path);
    base::Result<bool> w = before ? d.put(*f, *before, "serial " + issued->serial)
                                  : base::Result<bool>(std::unexpected(before.error()));
    if (!w) {
      std::string message =
          "writing " + f->path + " in " + guest.describe() + ": " + w.error().message();
      for (auto it = written.rbegin(); it != written.rend(); ++it) {
        message += "; " + d.restore(*it->first, it->second, "file").text;
      }
      return d.fail(w.error().kind(), message);
    }
    written.emplace_back(f, *before);
  }
  if (!cd.reload.empty()) {
    if (auto failed = d.pay(owed, cd.reload)) return reload_failed(*failed);
  }
  return d.done();
}

Report deliver_trust(guest::GuestChannel& guest, std::string_view root_pem, const Argv& update,
                     const Options& options) {
  Delivery d(guest, options, "trust");
  File root{kTrustedRootPath, std::string(root_pem), {"root", "root", 0644}};
  auto previous = d.current(root.path);
  if (!previous) return d.fail(previous.error(), "reading " + root.path);
  auto wrote = d.put(root, *previous, "the internal root CA");
  if (!wrote) return d.fail(wrote.error(), "writing " + root.path);
  if (!*wrote || update.empty()) return d.done();
  if (auto failed = d.run(update)) {
    std::string message = "updating the trust store failed: " + *failed + "; ";
    message +=
        d.roll_back(root, *previous, "root CA", update, "the trust store", "updating", "updated");
    return d.fail(ErrorKind::kInternal, std::move(message));
  }
  return d.done();
}

Report deliver_root_file(guest::GuestChannel& guest, const std::string& path,
                         std::string_view root_pem, const Argv& restart, const Options& options) {
  Delivery d(guest, options, "root");
  File root{path, std::string(root_pem), {"root", "root", 0644}};
  auto previous = d.current(root.path);
  if (!previous) return d.fail(previous.error(), "reading " + root.path);
  const std::string owed = "restart after " + root.path;
  bool changes = !*previous || **previous != root.content;
  if (changes && !restart.empty()) {
    if (auto o = d.owe(owed); !o) return d.fail(o.error(), "writing " + guest::owed_marker(owed));
  }
  auto wrote = d.put(root, *previous, "the internal root CA");
  if (!wrote) return d.fail(wrote.error(), "writing " + root.path);
  if (restart.empty()) return d.done();
  if (!*wrote) {
    // Written by a run that failed before its restart: the restart is still owed.
    auto is_owed = d.is_owed(owed);
    if (!is_owed) return d.fail(is_owed.error(), "reading " + guest::owed_marker(owed));
    if (!*is_owed) return d.done();
    d.mark_changed();
  }
  if (auto failed = d.pay(owed, restart)) {
    return d.fail(ErrorKind::kInternal, "the internal root is in " + root.path +
                                            ", but restarting its reader failed: " + *failed +
                                            ". Fix that; the next `phoenix sync certs` restarts "
                                            "it again");
  }
  return d.done();
}

std::string display(const Argv& argv) {
  std::string out;
  for (const std::string& a : argv) {
    if (!out.empty()) out += ' ';
    bool plain = !a.empty() && a.find_first_of(" \t\n'\"\\$`;&|<>(){}*?#~") == std::string::npos;
    if (plain) {
      out += a;
      continue;
    }
    out += '\'';
    for (char c : a) {
      if (c == '\'') {
        out += "'\\''";
      } else {
        out += c;
      }
    }
    out += '\'';
  }
  return out;
}

Report deliver_dns(guest::GuestChannel& host, const DnsDelivery& dns, const Options& options) {
  Delivery d(host, options, "dns");
  const File& records = dns.records;
  auto previous = d.current(records.path);
  if (!previous) return d.fail(previous.error(), "reading " + records.path);
  auto wrote = d.put(records, *previous, records_detail(*previous, records.content));
  if (!wrote) return d.fail(wrote.error(), "writing " + records.path);
  if (!*wrote) return d.done();
  if (auto failed = d.run(dns.reload)) {
    std::string message = "reloading the DNS server failed: " + *failed + "; ";
    message += d.roll_back(records, *previous, "records file", dns.reload, "the DNS server",
                           "reloading", "reloaded");
    message += ". Fix dns_server.reload or the DNS server, then run `phoenix sync dns` again";
    return d.fail(ErrorKind::kInternal, std::move(message));
  }
  return d.done();
}

Report deliver_traefik(guest::GuestChannel& guest, const TraefikDelivery& traefik,
                       const Options& options) {
  Delivery d(guest, options, "traefik");
  const File& dynamic = traefik.dynamic_config;
  const File& stat = traefik.static_config;
  auto previous_dynamic = d.current(dynamic.path);
  if (!previous_dynamic) return d.fail(previous_dynamic.error(), "reading " + dynamic.path);
  auto previous_static = d.current(stat.path);
  if (!previous_static) return d.fail(previous_static.error(), "reading " + stat.path);

  // The file provider watches the dynamic file's directory: writing it is enough.
  auto wrote = d.put(dynamic, *previous_dynamic,
                     bytes_detail(*previous_dynamic, dynamic.content) +
                         ", loaded by Traefik's file provider without a restart");
  if (!wrote) return d.fail(wrote.error(), "writing " + dynamic.path);
  auto wrote_static = d.put(stat, *previous_static, bytes_detail(*previous_static, stat.content));
  if (!wrote_static) return d.fail(wrote_static.error(), "writing " + stat.path);
  if (!*wrote_static) return d.done();
  if (auto failed = d.run(traefik.restart)) {
    std::string message = "restarting Traefik failed: " + *failed + "; ";
    message += d.roll_back(stat, *previous_static, "static configuration", traefik.restart,
                           "Traefik", "restarting", "restarted");
    message +=
        ". Fix traefik.restart or Traefik in its guest, then run `phoenix sync gateways` "
        "again";
    return d.fail(ErrorKind::kInternal, std::move(message));
  }
  return d.done();
}

Report deliver_gateway(guest::GuestChannel& guest, const GatewayDelivery& gateway,
                       const Options& options) {
  Delivery d(guest, options, "gateway");
  const File& site = gateway.site;
  auto previous = d.current(site.path);
  if (!previous) return d.fail(previous.error(), "reading " + site.path);
  auto wrote = d.put(site, *previous, bytes_detail(*previous, site.content));
  if (!wrote) return d.fail(wrote.error(), "writing " + site.path);
  bool link = false;  // the site's link is (or, in a dry run, would be) made in this run
  if (!gateway.enabled.empty()) {
    auto made = d.link(gateway.enabled, site.path);
    if (!made) {
      std::string message = "enabling the gateway site failed: " + made.error().message() + "; ";
      message += d.restore(site, *previous, "site").text;
      message += ". Check " + gateway.enabled + "'s directory in the gateway guest";
      return d.fail(ErrorKind::kInternal, std::move(message));
    }
    link = *made;
  }
  if (!*wrote && !link) return d.done();
  const File link_file{gateway.enabled, {}, {}};

  if (auto failed = d.run(gateway.test)) {
    // Name the files the site needs that are not there: the usual cause.
    std::vector<std::string> missing;
    for (const std::string& path : gateway.needs) {
      auto there = d.current(path);
      if (there && !*there) missing.push_back(path);
    }
    std::string message = "the new gateway site failed its test: " + *failed + "; ";
    for (const std::string& path : missing) message += path + " is not in the guest; ";
    message += d.restore(site, *previous, "site").text;
    if (link) message += "; " + d.restore(link_file, std::nullopt, "link").text;
    message += ", and nginx, not reloaded, keeps serving the configuration it has. ";
    message += missing.empty()
                   ? "Fix what the test reports (or nginx_gateway.test), then run `phoenix sync "
                     "gateways` again"
                   : "Deliver the gateway's certificate and key first, then run `phoenix sync "
                     "gateways` again";
    return d.fail(ErrorKind::kInvalidInput, std::move(message));
  }
  if (auto failed = d.run(gateway.reload)) {
    std::string message = "reloading nginx failed: " + *failed + "; ";
    if (link) message += d.restore(link_file, std::nullopt, "link").text + "; ";
    message +=
        d.roll_back(site, *previous, "site", gateway.reload, "nginx", "reloading", "reloaded");
    message +=
        ". Fix nginx_gateway.reload or nginx in the gateway guest, then run `phoenix sync "
        "gateways` again";
    return d.fail(ErrorKind::kInternal, std::move(message));
  }
  return d.done();
}

}  // namespace phoenix::deliver
