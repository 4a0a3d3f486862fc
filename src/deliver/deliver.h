#pragma once

// Delivery: rendered files put in place inside a guest (or on the host), and the program that
// reads them told, through a GuestChannel (DESIGN.md §2, §6 stages 1 and 4).
//
// Each function converges one service and is idempotent: a file whose content is already the
// desired one is not written again, and when nothing was written nothing is reloaded. Files are
// replaced atomically (GuestChannel::write_file writes beside the file, then renames it over).
// When the step that activates a new file fails (nginx -t, a reload, a restart), the previous
// file is put back, or the new one removed when there was none, so that the service keeps (or
// returns to) its previous configuration and the next run sees the difference and tries again.
// Commands are argument vectors, never shell text.

#include <optional>
#include <string>
#include <vector>

#include "base/error.h"
#include "compile/desired.h"
#include "providers/ca/ca.h"
#include "providers/guest/channel.h"

namespace phoenix::deliver {

using Argv = std::vector<std::string>;

// What one delivery did (or, in a dry run, would do), in order.
struct Step {
  // write | unchanged | run | restore | remove | skip; "would write", "would run" in a dry run.
  std::string what;
  std::string detail;  // "/etc/traefik/traefik.yml: 1034 bytes (was 998)", "nginx -t: ok"
};

struct Report {
  std::string name;   // dns | traefik | gateway
  std::string where;  // the channel: "local /srv/lab/102"
  std::vector<Step> steps;
  bool changed = false;  // a file was (or would be) written
  // What failed, what state it was left in, and how to fix it.
  std::optional<base::Error> error;
  bool ok() const { return !error.has_value(); }
};

struct Options {
  bool dry_run = false;  // read and compare only: write nothing, run nothing
};

// A file to deliver: its path in the guest, content, owner and mode.
struct File {
  std::string path;
  std::string content;
  guest::FileSpec spec;
};

// The dnsmasq records file (address= lines, read when dnsmasq starts) and the command that makes
// dnsmasq read it.
struct DnsDelivery {
  File records;
  Argv reload;
};

// Traefik's static configuration (read when Traefik starts) and its dynamic configuration (in
// the directory the file provider watches: Traefik loads it as soon as it changes).
struct TraefikDelivery {
  File static_config;
  File dynamic_config;
  Argv restart;
};

// The gateway's Nginx site, the test run before every reload, and the reload.
struct GatewayDelivery {
  File site;
  // The symbolic link to the site that enables it (empty: none), made when it is missing.
  std::string enabled;
  Argv test;
  Argv reload;
  // Files in the guest the site reads (its certificate and key): named in the error when the
  // test fails because one is missing.
  std::vector<std::string> needs;
};

// Writes the records file when it differs, then runs `reload`. When the reload fails, the
// previous records file is restored (or the new one removed) and `reload` runs once more so
// that the server answers with the previous records.
Report deliver_dns(guest::GuestChannel& host, const DnsDelivery& dns, const Options& options = {});

// Writes the dynamic configuration when it differs (Traefik picks it up by itself; the
// temporary file is named `<file>.tmp-XXXXXX`, an extension Traefik's file provider does not
// load, so the watched directory never offers a partial file), then the static configuration
// when it differs, followed by exactly one `restart`. When the restart fails, the previous
// static file is restored and `restart` runs once more.
Report deliver_traefik(guest::GuestChannel& guest, const TraefikDelivery& traefik,
                       const Options& options = {});

// Writes the site when it differs and enables it when its link is missing, runs `test`, then
// `reload`. When the test fails, the previous site is restored (a link made now removed) and
// nothing is reloaded: nginx keeps serving the configuration it has. When
// the reload fails, the previous site is restored and `reload` runs once more.
Report deliver_gateway(guest::GuestChannel& guest, const GatewayDelivery& gateway,
                       const Options& options = {});

// ---- certificates ---------------------------------------------------------------------------

// A certificate of the estate (compile/) in its guest: the leaf with its intermediates at
// cert_path, the intermediates alone at chain_path(), the key at key_path (0600), owned by
// `owner`; `reload` (may be empty) makes the service read them.
struct CertDelivery {
  compile::Certificate cert;
  std::string owner = "root";
  std::string group = "root";
  Argv reload;
};

// "/etc/nginx/ssl/gw.crt" -> "/etc/nginx/ssl/gw.chain.crt".
std::string chain_path(const compile::Certificate& cert);

// Reads the certificate the guest holds and decides (certs::decide at `now`): kept, or issued
// by `ca` and installed. The key and certificate are made in memory first, so a CA that fails
// leaves the guest as it was; a write that fails puts back the files already written. Then
// `reload` runs. The first step says the verdict ("keep", "issue", "renew") and why. A reload
// owed by a run that installed the certificate and failed before reloading (a marker in
// guest::kOwedDir) is run by the next, which keeps the certificate.
Report deliver_certificate(guest::GuestChannel& guest, ca::CertificateAuthority& ca,
                           const CertDelivery& delivery, std::int64_t now,
                           const Options& options = {});

// The internal root in the guest's trust store (/usr/local/share/ca-certificates/
// phoenix-root.crt), then `update` (default update-ca-certificates), only when it changed.
Report deliver_trust(guest::GuestChannel& guest, std::string_view root_pem, const Argv& update,
                     const Options& options = {});
// The internal root where a service reads it by path (Traefik's serversTransport rootCAs and
// Swarm provider), when it differs, then `restart` (Traefik reads those files only when it loads
// its configuration; nothing when empty). A restart owed by a run that failed before it (see
// deliver_certificate) is run by the next.
Report deliver_root_file(guest::GuestChannel& guest, const std::string& path,
                         std::string_view root_pem, const Argv& restart = {},
                         const Options& options = {});
inline constexpr const char* kTrustedRootPath = "/usr/local/share/ca-certificates/phoenix-root.crt";

// An argument vector for people: words joined by spaces, a word with spaces or quotes in
// single quotes. Display only: Phoenix never hands it to a shell.
std::string display(const Argv& argv);

}  // namespace phoenix::deliver
