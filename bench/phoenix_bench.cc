// phoenix_bench: end-to-end benchmark of the `phoenix` binary on generated estates.
//
// For each requested size it writes an estate of N guests (about 2/3 LXCs, 1/3 VMs, a swarm,
// one stack per three guests) to a temporary directory, checks that it validates cleanly, and
// then runs `phoenix validate`, `phoenix render --out` and `phoenix plan` as child processes
// (fork/execv, no shell) several times each. It reports the median wall time (monotonic clock)
// and the peak resident set size of the child (wait4 rusage.ru_maxrss).
//
// Usage: phoenix_bench [--phoenix PATH] [--sizes 10,100,1000,10000] [--runs 5] [--keep]

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

namespace fs = std::filesystem;

namespace {

constexpr const char* kDomain = "bench.phoenix.test";
// Guest ids start above the VM template 9000 so that they never collide with it.
constexpr int kFirstId = 10000;

[[noreturn]] void die(const std::string& msg) {
  std::cerr << "phoenix_bench: " << msg << '\n';
  std::exit(2);
}

void write_file(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  if (!out) die("cannot write " + p.string());
  out << text;
  if (!out) die("cannot write " + p.string());
}

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// ---- estate generation ---------------------------------------------------------------------

struct GuestSpec {
  int index = 0;
  int id = 0;
  bool vm = false;
  std::string name;
  std::string ip;  // without prefix
  std::string mac;
};

// The disk's part of a render, without Phoenix: the files of `tree` (relative path, content)
// written below the new directory `dir` with the plainest system calls, one thread: mkdir for
// each directory, then open, write and close for each file, then one syncfs, as render makes
// its tree durable. Returns the milliseconds it took.
double write_plainly(const fs::path& dir,
                     const std::vector<std::pair<std::string, std::string>>& tree) {
  auto t0 = std::chrono::steady_clock::now();
  if (mkdir(dir.c_str(), 0755) != 0) die("mkdir " + dir.string() + ": " + std::strerror(errno));
  for (const auto& [rel, content] : tree) {
    for (std::size_t slash = rel.find('/'); slash != std::string::npos;
         slash = rel.find('/', slash + 1)) {
      fs::path sub = dir / rel.substr(0, slash);
      if (mkdir(sub.c_str(), 0755) != 0 && errno != EEXIST) {
        die("mkdir " + sub.string() + ": " + std::strerror(errno));
      }
    }
    fs::path file = dir / rel;
    int fd = open(file.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0 ||
        write(fd, content.data(), content.size()) != static_cast<ssize_t>(content.size())) {
      die("write " + file.string() + ": " + std::strerror(errno));
    }
    close(fd);
  }
  int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0 || syncfs(fd) != 0) die("syncfs " + dir.string() + ": " + std::strerror(errno));
  close(fd);
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

// Guest i: VM when i % 3 == 2, else LXC. Guest 0 is the CA, guest 1 Traefik, guest 2 the swarm
// manager; every other VM is a swarm worker.
std::vector<GuestSpec> plan_guests(int n) {
  std::vector<GuestSpec> gs;
  gs.reserve(n);
  for (int i = 0; i < n; ++i) {
    GuestSpec g;
    g.index = i;
    g.id = kFirstId + i;
    g.vm = (i % 3 == 2);
    g.name = std::string(g.vm ? "vm-" : "ct-") + std::to_string(i);
    // 10.0.0.0/8; skip 10.0.0.x (host), last octet in 1..250.
    int a = i / 250, b = i % 250 + 1;
    g.ip = "10." + std::to_string(1 + a / 256) + "." + std::to_string(a % 256) + "." +
           std::to_string(b);
    char mac[32];
    std::snprintf(mac, sizeof mac, "52:54:00:%02X:%02X:%02X", (i >> 16) & 0xff, (i >> 8) & 0xff,
                  i & 0xff);
    g.mac = mac;
    gs.push_back(std::move(g));
  }
  return gs;
}

// A deterministic "random" earlier guest, giving dependency trees of logarithmic-ish depth.
int earlier(int i) {
  std::uint64_t x = static_cast<std::uint64_t>(i) * 0x9E3779B97F4A7C15ull;
  x ^= x >> 29;
  return static_cast<int>(x % static_cast<std::uint64_t>(i));
}

std::string q(const std::string& s) { return "\"" + s + "\""; }

std::string hypervisor_json(const std::vector<GuestSpec>& gs) {
  const std::string ca_ip = gs[0].ip;
  const std::string portainer_ip = gs.size() > 2 ? gs[2].ip : "10.0.0.2";
  std::ostringstream o;
  o << R"({
    "version": "1.0.0",
    "domain_name": ")"
    << kDomain << R"(",
    "timezone": "UTC",
    "users": {"username": "phoenix_admin", "sudo_access": true,
              "ssh_public_key_file": "/usr/local/phoenix_hypervisor/etc/keys/phoenix_admin.pub"},
    "core_paths": {
        "lxc_config_file": "/usr/local/phoenix_hypervisor/etc/phoenix_lxc_configs.json",
        "vm_config_file": "/usr/local/phoenix_hypervisor/etc/phoenix_vm_configs.json"
    },
    "network": {
        "interfaces": {"name": "vmbr0", "address": "10.0.0.1/8", "gateway": "10.0.0.254",
                       "dns_nameservers": ["10.0.0.1", "1.1.1.1"]},
        "default_subnet": "10.0.0.0/8",
        "portainer_server_ip": ")"
    << portainer_ip << R"(",
        "portainer_server_port": 9443,
        "portainer_agent_port": 9001,
        "nfs_server": "10.0.0.1"
    },
    "docker": {"portainer_server_image": "portainer/portainer-ce:2.21.4",
               "portainer_agent_image": "portainer/agent:2.21.4"},
    "zfs": {
        "pools": [{"name": "quickOS", "raid_level": "mirror", "disks": []}],
        "datasets": [{"name": "vm-disks", "pool": "quickOS", "properties": "compression=lz4"}]
    },
    "nfs": {"exports": [{"path": "/quickOS/vm-persistent-data", "clients": ["10.0.0.0/8"],
                         "options": ["rw", "sync", "no_subtree_check"]}]},
    "proxmox_storage_ids": {"quickos_vm": "quickOS-vm-disks", "quickos_lxc": "quickOS-lxc-disks"},
    "mount_point_base": "/mnt/pve",
    "nvidia_driver": {"install": false, "version": "580.76.05", "cuda_version": "12.8"},
    "behavior": {"rollback_on_failure": false, "debug_mode": false},
    "firewall": {
        "enabled": true,
        "default_input_policy": "DROP",
        "default_output_policy": "ACCEPT",
        "global_firewall_rules": [
            {"type": "in", "action": "ACCEPT", "source": "10.0.0.0/8", "proto": "tcp", "port": "22", "comment": "SSH from the LAN"},
            {"type": "in", "action": "ACCEPT", "source": "10.0.0.0/8", "proto": "tcp", "port": "8006", "comment": "Proxmox API from the LAN"},
            {"type": "in", "action": "ACCEPT", "source": "10.0.0.0/8", "proto": "udp", "port": "53", "comment": "DNS"}
        ]
    },
    "portainer_api": {"admin_user": "admin",
                      "admin_password_file": "/usr/local/phoenix_hypervisor/etc/secrets/portainer_admin_password",
                      "portainer_hostname": "portainer.)"
    << kDomain << R"("},
    "dns_server": {"enabled": true, "upstream_servers": ["1.1.1.1", "9.9.9.9"],
                   "authoritative_zones": [")"
    << kDomain << R"("],
                   "records_file": "/etc/dnsmasq.d/00-phoenix-internal.conf",
                   "reload": ["systemctl", "reload", "dnsmasq"]},
    "step_ca": {"root_ca_name": "Bench CA", "intermediate_ca_name": "Bench CA Intermediate CA",
                "dns_name": "ca.)"
    << kDomain << R"(", "provisioner_name": "admin@bench.test",
                "url": "https://)"
    << ca_ip << R"(:9000",
                "provisioner_password_file": "/usr/local/phoenix_hypervisor/etc/secrets/step_provisioner_password"},
    "proxmox_api": {"url": "https://127.0.0.1:8006", "node": "phoenix", "token_id": "root@pam!phoenix",
                    "token_secret_file": "/usr/local/phoenix_hypervisor/etc/secrets/proxmox_token"}
}
)";
  return o.str();
}

std::string deps_json(const GuestSpec& g) {
  if (g.index == 0) return "[]";
  std::vector<int> deps = {kFirstId};  // everything trusts the CA
  int e = earlier(g.index);
  if (e != 0) deps.push_back(kFirstId + e);
  if (g.index > 1 && g.index - 1 != e) deps.push_back(kFirstId + g.index - 1);
  std::string s = "[";
  for (std::size_t k = 0; k < deps.size(); ++k) s += (k ? ", " : "") + q(std::to_string(deps[k]));
  return s + "]";
}

std::string firewall_json(const GuestSpec& g, const std::string& traefik_ip) {
  std::ostringstream o;
  o << R"({"enabled": true, "rules": [)"
    << R"({"type": "in", "action": "ACCEPT", "source": "10.0.0.0/8", "proto": "tcp", "port": "22", "comment": "SSH"})";
  if (g.vm) {
    o << R"(, {"type": "in", "action": "ACCEPT", "source": "10.0.0.0/8", "proto": "tcp", "port": "2377,7946", "comment": "Swarm control plane"})"
      << R"(, {"type": "in", "action": "ACCEPT", "source": "10.0.0.0/8", "proto": "udp", "port": "4789,7946", "comment": "Swarm overlay"})";
  } else {
    o << R"(, {"type": "in", "action": "ACCEPT", "source": ")" << traefik_ip
      << R"(", "proto": "tcp", "port": "8000", "comment": "service from Traefik"})";
  }
  o << "]}";
  return o.str();
}

bool routed(const GuestSpec& g) { return g.index < 3 || g.index % 5 == 0; }

std::string traefik_service_name(const GuestSpec& g) {
  if (g.index == 0) return "ca";
  if (g.index == 1) return "traefik";
  if (g.index == 2) return "portainer";
  return "svc-" + std::to_string(g.index);
}

std::string lxc_json(const std::vector<GuestSpec>& gs) {
  const std::string& traefik_ip = gs.size() > 1 ? gs[1].ip : gs[0].ip;
  std::ostringstream o;
  o << "{\n    \"nvidia_driver_version\": \"580.76.05\",\n    \"lxc_configs\": {";
  bool first = true;
  for (const GuestSpec& g : gs) {
    if (g.vm) continue;
    o << (first ? "\n" : ",\n");
    first = false;
    std::string features = R"(["base_setup", "trusted_ca", "step_cli"])";
    if (g.index == 0) features = R"(["base_setup", "step_ca"])";
    if (g.index == 1) features = R"(["base_setup", "trusted_ca", "step_cli", "traefik"])";
    o << "        " << q(std::to_string(g.id)) << ": {\n"
      << "            \"name\": " << q(g.name) << ",\n"
      << R"(            "template": "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst",)"
      << "\n"
      << "            \"start_at_boot\": true,\n"
      << "            \"boot_order\": " << g.index << ",\n"
      << "            \"boot_delay\": 5,\n"
      << "            \"memory_mb\": " << (1024 << (g.index % 3)) << ",\n"
      << "            \"swap_mb\": 512,\n"
      << "            \"cores\": " << 1 + g.index % 4 << ",\n"
      << "            \"storage_pool\": \"quickOS-lxc-disks\",\n"
      << "            \"storage_size_gb\": " << 8 + 8 * (g.index % 4) << ",\n"
      << "            \"network_config\": {\"name\": \"eth0\", \"bridge\": \"vmbr0\", \"ip\": "
      << q(g.ip + "/8") << ", \"gw\": \"10.0.0.254\", \"nameservers\": \"10.0.0.1\"},\n"
      << "            \"mac_address\": " << q(g.mac) << ",\n"
      << "            \"gpu_assignment\": \"none\",\n"
      << "            \"unprivileged\": true,\n"
      << "            \"portainer_role\": \"none\",\n"
      << "            \"features\": " << features << ",\n"
      << "            \"dependencies\": " << deps_json(g) << ",\n";
    if (g.index % 4 == 1) {
      o << R"(            "id_maps": [{"type": "gid", "host_id": 33, "container_id": 33, "size": 1}],)"
        << "\n            \"mount_points\": [{\"host_path\": "
           "\"/mnt/pve/quickOS/lxc-persistent-data/"
        << g.id << "/logs\", \"container_path\": \"/var/log/app\", \"owner_uid\": 33, "
        << "\"owner_gid\": 33}],\n";
    }
    if (routed(g)) {
      int port = g.index == 0 ? 9000 : (g.index == 1 ? 8080 : 8000);
      std::string scheme = g.index == 0 ? "https" : "http";
      o << "            \"traefik_service\": {\"name\": " << q(traefik_service_name(g))
        << ", \"port\": " << port << ", \"scheme\": " << q(scheme) << "},\n";
    }
    if (g.index == 0) {
      o << R"(            "health_checks": [{"name": "step-ca answers", "type": "https", "url": "https://127.0.0.1:9000/health"}],)"
        << "\n";
    }
    o << "            \"enable_lifecycle_snapshots\": true,\n"
      << "            \"firewall\": " << firewall_json(g, traefik_ip) << "\n"
      << "        }";
  }
  o << "\n    }\n}\n";
  return o.str();
}

std::string vm_json(const std::vector<GuestSpec>& gs,
                    const std::vector<std::vector<std::string>>& stacks_of) {
  const std::string& traefik_ip = gs.size() > 1 ? gs[1].ip : gs[0].ip;
  std::ostringstream o;
  o << R"({
    "vm_defaults": {"template": "ubuntu-24.04-cloud", "cores": 2, "memory_mb": 4096,
                    "disk_size_gb": 50, "storage_pool": "quickOS-vm-disks", "network_bridge": "vmbr0"},
    "vms": [
        {
            "vmid": 9000,
            "name": "ubuntu-2404-cloud-template",
            "is_template": true,
            "template_image": "noble-server-cloudimg-amd64.img",
            "cores": 2, "memory_mb": 2048, "disk_size_gb": 20, "start_at_boot": false,
            "network_config": {"ip": "dhcp", "nameserver": "10.0.0.1"},
            "user_config": {"username": "phoenix_user"}
        })";
  for (const GuestSpec& g : gs) {
    if (!g.vm) continue;
    const bool manager = g.index == 2;
    o << ",\n        {\n"
      << "            \"vmid\": " << g.id << ",\n"
      << "            \"name\": " << q(g.name) << ",\n"
      << "            \"clone_from_vmid\": 9000,\n"
      << "            \"cores\": " << 2 + 2 * (g.index % 3) << ",\n"
      << "            \"memory_mb\": 8192,\n"
      << "            \"disk_size_gb\": 64,\n"
      << "            \"start_at_boot\": true,\n"
      << "            \"boot_order\": " << g.index << ",\n"
      << "            \"boot_delay\": 10,\n";
    if (manager) {
      o << R"(            "features": ["base_setup", "trusted_ca", "step_cli", "docker", "docker_proxy"],)"
        << "\n"
        << "            \"portainer_role\": \"primary\",\n"
        << "            \"swarm_role\": \"manager\",\n"
        << "            \"node_labels\": [\"role=manager\"],\n"
        << "            \"portainer_environment_name\": \"phoenix\",\n";
    } else {
      o << R"(            "features": ["base_setup", "trusted_ca", "docker", "portainer_agent"],)"
        << "\n"
        << "            \"portainer_role\": \"agent\",\n"
        << "            \"swarm_role\": \"worker\",\n"
        << "            \"node_labels\": [\"gpu=false\", \"tier=apps\", \"rack=r" << g.index % 16
        << "\"],\n"
        << "            \"portainer_environment_name\": " << q(g.name) << ",\n"
        << "            \"portainer_agent_hostname\": " << q(g.name + "-agent." + kDomain) << ",\n";
    }
    o << "            \"dependencies\": " << deps_json(g) << ",\n";
    if (routed(g)) {
      int port = manager ? 9443 : 8000;
      o << "            \"traefik_service\": {\"name\": " << q(traefik_service_name(g))
        << ", \"port\": " << port << "},\n";
    }
    o << "            \"network_config\": {\"ip\": " << q(g.ip + "/8")
      << ", \"gw\": \"10.0.0.254\", \"nameserver\": \"10.0.0.1\", \"hwaddr\": " << q(g.mac)
      << "},\n"
      << "            \"user_config\": {\"username\": \"phoenix_user\"},\n"
      << "            \"volumes\": [{\"type\": \"nfs\", \"server\": \"10.0.0.1\", \"path\": "
         "\"/quickOS/vm-persistent-data/"
      << g.id << "\", \"mount_point\": \"/mnt/persistent\"}],\n";
    const auto& stacks = stacks_of[g.index];
    if (!stacks.empty()) {
      o << "            \"docker_stacks\": [";
      for (std::size_t k = 0; k < stacks.size(); ++k) {
        o << (k ? ", " : "");
        if (k % 2 == 0) {
          o << q(stacks[k]);
        } else {
          o << "{\"name\": " << q(stacks[k]) << ", \"environment\": \"production\"}";
        }
      }
      o << "],\n";
    }
    o << "            \"firewall\": " << firewall_json(g, traefik_ip) << "\n"
      << "        }";
  }
  o << "\n    ]\n}\n";
  return o.str();
}

std::string compose_yml(int k) {
  std::string svc = "app_" + std::to_string(k);
  std::ostringstream o;
  o << "version: \"3.8\"\n\nservices:\n  " << svc << ":\n"
    << "    image: registry.bench.test/app:${APP_VERSION:-latest}\n"
    << "    environment:\n"
    << "      - API_PORT=${API_PORT}\n"
    << "      - STACK_ID=" << k << "\n"
    << "    volumes:\n"
    << "      - data_" << k << ":/app/data\n"
    << "    deploy:\n"
    << "      replicas: " << 1 + k % 3 << "\n"
    << "      placement:\n"
    << "        constraints:\n"
    << "          - node.labels.tier == apps\n"
    << "\nvolumes:\n  data_" << k << ": {}\n";
  return o.str();
}

std::string stack_manifest(int k, const std::string& traefik_ip) {
  std::string svc = "app_" + std::to_string(k);
  std::string r = "app-" + std::to_string(k);
  std::ostringstream o;
  o << "{\n    \"description\": \"Generated benchmark stack " << k << ".\",\n"
    << "    \"environments\": {\n        \"production\": {\n"
    << "            \"variables\": [\n"
    << "                {\"name\": \"API_PORT\", \"value\": \"" << 8000 + k % 1000 << "\"},\n"
    << "                {\"name\": \"APP_VERSION\", \"value\": \"1." << k % 10 << ".0\"}\n"
    << "            ],\n"
    << "            \"services\": {\n"
    << "                " << q(svc) << ": {\n"
    << "                    \"traefik_labels\": [\n"
    << "                        \"traefik.enable=true\",\n"
    << "                        \"traefik.http.routers." << r << ".rule=Host(`" << r << "."
    << kDomain << "`)\",\n"
    << "                        \"traefik.http.routers." << r << ".entrypoints=web\",\n"
    << "                        \"traefik.http.services." << r
    << ".loadbalancer.server.port=${API_PORT}\"\n"
    << "                    ]\n                }\n            },\n"
    << "            \"firewall_rules\": [\n"
    << "                {\"type\": \"in\", \"action\": \"ACCEPT\", \"source\": \"" << traefik_ip
    << "\", \"proto\": \"tcp\", \"port\": \"" << 8000 + k % 1000
    << "\", \"comment\": \"app from Traefik\"}\n"
    << "            ]\n        }\n    }\n}\n";
  return o.str();
}

struct Estate {
  fs::path root;  // holds etc/, stacks/, bin/
  int guests = 0;
  int stacks = 0;
};

Estate generate(const fs::path& root, int n) {
  if (n < 3) die("sizes must be at least 3 (CA, Traefik, swarm manager)");
  fs::remove_all(root);
  std::vector<GuestSpec> gs = plan_guests(n);
  std::vector<int> workers;
  for (const GuestSpec& g : gs) {
    if (g.vm && g.index != 2) workers.push_back(g.index);
  }
  if (workers.empty()) workers.push_back(2);  // tiny estates: the manager runs the stacks
  int nstacks = std::max(1, n / 3);
  std::vector<std::vector<std::string>> stacks_of(n);
  const std::string traefik_ip = gs[1].ip;
  for (int k = 0; k < nstacks; ++k) {
    std::string name = "stack_" + std::to_string(k);
    fs::path dir = root / "stacks" / name;
    write_file(dir / "docker-compose.yml", compose_yml(k));
    write_file(dir / "phoenix.json", stack_manifest(k, traefik_ip));
    stacks_of[workers[k % workers.size()]].push_back(name);
  }
  write_file(root / "etc" / "phoenix_hypervisor_config.json", hypervisor_json(gs));
  write_file(root / "etc" / "phoenix_lxc_configs.json", lxc_json(gs));
  write_file(root / "etc" / "phoenix_vm_configs.json", vm_json(gs, stacks_of));
  fs::create_directories(root / "bin");
  int lxcs = 0;
  for (const GuestSpec& g : gs) lxcs += !g.vm;
  // +1: the VM template (vmid 9000) is a guest too.
  return Estate{root, n + 1, nstacks};
}

// ---- child processes -----------------------------------------------------------------------

struct RunResult {
  int status = 0;  // raw wait status
  double wall_ms = 0;
  double maxrss_mib = 0;
};

RunResult run_child(const std::vector<std::string>& argv, const std::string& stdout_path,
                    const std::string& stderr_path) {
  std::vector<char*> cargv;
  for (const auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);
  auto t0 = std::chrono::steady_clock::now();
  pid_t pid = fork();
  if (pid < 0) die(std::string("fork: ") + std::strerror(errno));
  if (pid == 0) {
    int out = open(stdout_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int err = open(stderr_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (out < 0 || err < 0) _exit(126);
    dup2(out, STDOUT_FILENO);
    dup2(err, STDERR_FILENO);
    close(out);
    close(err);
    execv(cargv[0], cargv.data());
    _exit(127);
  }
  int status = 0;
  struct rusage ru {};
  pid_t r;
  do {
    r = wait4(pid, &status, 0, &ru);
  } while (r < 0 && errno == EINTR);
  auto t1 = std::chrono::steady_clock::now();
  if (r < 0) die(std::string("wait4: ") + std::strerror(errno));
  RunResult res;
  res.status = status;
  res.wall_ms = std::chrono::duration<double, std::milli>(t1 - t0).count();
  res.maxrss_mib = static_cast<double>(ru.ru_maxrss) / 1024.0;  // ru_maxrss is in KiB on Linux
  return res;
}

bool ok(const RunResult& r) { return WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0; }

std::string describe_status(int status) {
  if (WIFEXITED(status)) return "exit code " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return std::string("signal ") + strsignal(WTERMSIG(status));
  return "status " + std::to_string(status);
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  std::size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2.0;
}

struct Stat {
  double median_ms = 0;
  double max_rss = 0;
};

std::vector<int> parse_sizes(const std::string& s) {
  std::vector<int> out;
  std::stringstream in(s);
  std::string item;
  while (std::getline(in, item, ',')) {
    item.erase(std::remove(item.begin(), item.end(), '_'), item.end());
    char* end = nullptr;
    long v = std::strtol(item.c_str(), &end, 10);
    if (item.empty() || *end != '\0' || v < 3 || v > 1'000'000) die("bad size \"" + item + "\"");
    out.push_back(static_cast<int>(v));
  }
  if (out.empty()) die("--sizes is empty");
  return out;
}

void usage() {
  std::cout << "usage: phoenix_bench [--phoenix PATH] [--sizes N,N,...] [--runs N] [--big-runs N]"
               " [--keep]\n"
               "  --phoenix PATH  the phoenix binary (default: build/release/src/phoenix)\n"
               "  --sizes LIST    guest counts (default: 10,100,1000,10000)\n"
               "  --runs N        runs per command (default: 5)\n"
               "  --big-runs N    runs per command for sizes >= 10000 (default: min(runs, 3))\n"
               "  --keep          keep the temporary directory\n";
}

}  // namespace

int main(int argc, char** argv) {
  std::string phoenix = "build/release/src/phoenix";
  std::vector<int> sizes = {10, 100, 1000, 10000};
  int runs = 5, big_runs = -1;
  bool keep = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) die(a + " needs a value");
      return argv[++i];
    };
    if (a == "--phoenix") {
      phoenix = value();
    } else if (a == "--sizes") {
      sizes = parse_sizes(value());
    } else if (a == "--runs") {
      runs = std::atoi(value().c_str());
    } else if (a == "--big-runs") {
      big_runs = std::atoi(value().c_str());
    } else if (a == "--keep") {
      keep = true;
    } else if (a == "-h" || a == "--help") {
      usage();
      return 0;
    } else {
      usage();
      die("unknown argument " + a);
    }
  }
  if (runs < 1) die("--runs must be at least 1");
  if (big_runs < 1) big_runs = std::min(runs, 3);
  std::error_code ec;
  fs::path bin = fs::absolute(phoenix, ec);
  if (ec || access(bin.c_str(), X_OK) != 0) die("phoenix binary not executable: " + bin.string());

  char tmpl[] = "/tmp/phoenix_bench.XXXXXX";
  if (!mkdtemp(tmpl)) die(std::string("mkdtemp: ") + std::strerror(errno));
  fs::path tmp = tmpl;
  // A second work directory in memory, where there is one, for the render to tmpfs.
  fs::path shm;
  char shm_tmpl[] = "/dev/shm/phoenix_bench.XXXXXX";
  if (fs::is_directory("/dev/shm", ec) && mkdtemp(shm_tmpl)) shm = shm_tmpl;
  // The estate cache (src/config/load_cache.h) of every phoenix run here: in the work directory,
  // not the user's. The correctness gate's validate, the first run on each estate, fills it.
  const fs::path cache_dir = tmp / "estate-cache";
  setenv("PHOENIX_CACHE_DIR", cache_dir.c_str(), 1);
  const std::string devnull = "/dev/null";
  const std::string log_out = (tmp / "child.out").string();
  const std::string log_err = (tmp / "child.err").string();

  struct Row {
    int size, guests, stacks, runs;
    Stat validate, render, plan, dry, again, shm;
    Stat cold_validate, cold_render, cold_plan;  // --no-cache: every run parses the estate
    double plain_ms;  // the same files written without Phoenix (write_plainly)
  };
  std::vector<Row> rows;

  std::cout << "phoenix: " << bin.string() << "\nworkdir: " << tmp.string() << "\n" << std::flush;
  for (int n : sizes) {
    fs::path root = tmp / ("estate-" + std::to_string(n));
    auto g0 = std::chrono::steady_clock::now();
    Estate est = generate(root, n);
    auto g1 = std::chrono::steady_clock::now();
    const std::string etc = (root / "etc").string();

    // Correctness gate: the generated estate must validate with zero errors (and no warnings).
    RunResult check = run_child({bin.string(), "-C", etc, "validate"}, log_out, log_err);
    std::string diag = read_file(log_out) + read_file(log_err);
    if (!ok(check)) {
      std::cerr << diag;
      die("generated estate of " + std::to_string(n) + " guests does not validate (" +
          describe_status(check.status) + "); kept in " + root.string());
    }
    if (diag.find("warning") != std::string::npos) {
      std::cerr << "phoenix_bench: note: estate of " << n << " guests validates with warnings:\n"
                << diag;
    }
    std::fprintf(stderr, "size %d: generated in %.0f ms; %s", n,
                 std::chrono::duration<double, std::milli>(g1 - g0).count(),
                 diag.substr(0, diag.find('\n') + 1).c_str());

    const int r = n >= 10000 ? big_runs : runs;
    // `args(k)` gives run k's command line.
    auto measure = [&](const char* what,
                       const std::function<std::vector<std::string>(int)>& args) -> Stat {
      std::vector<double> times;
      Stat st;
      for (int k = 0; k < r; ++k) {
        RunResult res = run_child(args(k), devnull, log_err);
        if (!ok(res)) {
          std::cerr << read_file(log_err);
          die(std::string(what) + " failed on " + std::to_string(n) + " guests (" +
              describe_status(res.status) + ")");
        }
        times.push_back(res.wall_ms);
        st.max_rss = std::max(st.max_rss, res.maxrss_mib);
      }
      st.median_ms = median(times);
      return st;
    };
    auto fixed = [](std::vector<std::string> a) { return [a](int) { return a; }; };
    // Each fresh render writes a new directory, and none is removed until the size is done: on
    // a file system without a journal (ext4 without one, as on this project's machines) the
    // kernel skips the inodes freed in the last 30 s one by one when it allocates new ones, so
    // deleting the previous tree just before would time that deletion, not Phoenix.
    auto render_into = [&](const fs::path& base) {
      return [&, base](int k) {
        return std::vector<std::string>{
            bin.string(), "-C",
            etc,          "render",
            "--out",      (base / ("out-" + std::to_string(n) + "-" + std::to_string(k))).string()};
      };
    };
    Row row{n, est.guests, est.stacks, r, {}, {}, {}, {}, {}, {}, {}, {}, {}, 0};
    row.validate = measure("validate", fixed({bin.string(), "-C", etc, "validate"}));
    row.render = measure("render", render_into(tmp));
    // Render again over the tree the first run left: it holds the same files, so render finds
    // that and writes nothing.
    const std::string again_dir = (tmp / ("out-" + std::to_string(n) + "-0")).string();
    row.again =
        measure("render again", fixed({bin.string(), "-C", etc, "render", "--out", again_dir}));
    // The same render into memory (tmpfs), where the disk costs nothing.
    if (!shm.empty()) row.shm = measure("render to tmpfs", render_into(shm));
    row.plan = measure("plan", fixed({bin.string(), "-C", etc, "plan"}));
    // The same render without writing: what rendering costs apart from the file system.
    row.dry = measure("render --dry-run",
                      fixed({bin.string(), "-C", etc, "--dry-run", "render", "--out", again_dir}));
    // The three again without the cache: each parses the estate itself.
    row.cold_validate =
        measure("validate --no-cache", fixed({bin.string(), "--no-cache", "-C", etc, "validate"}));
    row.cold_render = measure("render --no-cache", [&](int k) {
      return std::vector<std::string>{
          bin.string(),
          "--no-cache",
          "-C",
          etc,
          "render",
          "--out",
          (tmp / ("cold-" + std::to_string(n) + "-" + std::to_string(k))).string()};
    });
    row.cold_plan =
        measure("plan --no-cache", fixed({bin.string(), "--no-cache", "-C", etc, "plan"}));
    // What the disk alone costs for this tree: the first render's files, written again without
    // Phoenix into new directories beside the renders.
    {
      std::vector<std::pair<std::string, std::string>> tree;
      const fs::path first = tmp / ("out-" + std::to_string(n) + "-0");
      for (const auto& e : fs::recursive_directory_iterator(first)) {
        if (e.is_regular_file()) {
          tree.emplace_back(fs::relative(e.path(), first).string(), read_file(e.path()));
        }
      }
      std::sort(tree.begin(), tree.end());
      std::vector<double> times;
      for (int k = 0; k < r; ++k) {
        times.push_back(
            write_plainly(tmp / ("plain-" + std::to_string(n) + "-" + std::to_string(k)), tree));
      }
      row.plain_ms = median(times);
    }
    rows.push_back(row);
    if (!keep) fs::remove_all(root);
    for (int k = 0; k < r; ++k) {
      const std::string name = "out-" + std::to_string(n) + "-" + std::to_string(k);
      if (!keep) fs::remove_all(tmp / name);
      if (!keep) fs::remove_all(tmp / ("cold-" + std::to_string(n) + "-" + std::to_string(k)));
      if (!keep) fs::remove_all(tmp / ("plain-" + std::to_string(n) + "-" + std::to_string(k)));
      if (!shm.empty()) fs::remove_all(shm / name);
    }
  }
  if (!shm.empty()) fs::remove_all(shm);

  std::printf(
      "\n%7s %7s %6s %4s | %10s %8s | %10s %8s | %10s %8s | %10s %10s | %10s %10s %10s %10s\n",
      "size", "guests", "stacks", "runs", "validate", "RSS", "render", "RSS", "plan", "RSS", "sum",
      "sum/guest", "render -n", "re-render", "tmpfs", "disk only");
  std::printf(
      "%7s %7s %6s %4s | %10s %8s | %10s %8s | %10s %8s | %10s %10s | %10s %10s %10s %10s\n", "",
      "", "", "", "med ms", "MiB", "med ms", "MiB", "med ms", "MiB", "med ms", "ms", "med ms",
      "med ms", "med ms", "med ms");
  std::printf("%s\n", std::string(171, '-').c_str());
  for (const Row& row : rows) {
    double sum = row.validate.median_ms + row.render.median_ms + row.plan.median_ms;
    std::printf(
        "%7d %7d %6d %4d | %10.1f %8.1f | %10.1f %8.1f | %10.1f %8.1f | %10.1f %10.4f | %10.1f "
        "%10.1f %10.1f %10.1f\n",
        row.size, row.guests, row.stacks, row.runs, row.validate.median_ms, row.validate.max_rss,
        row.render.median_ms, row.render.max_rss, row.plan.median_ms, row.plan.max_rss, sum,
        sum / row.guests, row.dry.median_ms, row.again.median_ms, row.shm.median_ms, row.plain_ms);
  }
  std::printf("\nWithout the estate cache (--no-cache: each command parses the estate):\n");
  std::printf("%7s %7s | %10s %8s | %10s %8s | %10s %8s | %10s\n", "size", "guests", "validate",
              "RSS", "render", "RSS", "plan", "RSS", "sum");
  std::printf("%7s %7s | %10s %8s | %10s %8s | %10s %8s | %10s\n", "", "", "med ms", "MiB",
              "med ms", "MiB", "med ms", "MiB", "med ms");
  std::printf("%s\n", std::string(85, '-').c_str());
  for (const Row& row : rows) {
    std::printf("%7d %7d | %10.1f %8.1f | %10.1f %8.1f | %10.1f %8.1f | %10.1f\n", row.size,
                row.guests, row.cold_validate.median_ms, row.cold_validate.max_rss,
                row.cold_render.median_ms, row.cold_render.max_rss, row.cold_plan.median_ms,
                row.cold_plan.max_rss,
                row.cold_validate.median_ms + row.cold_render.median_ms + row.cold_plan.median_ms);
  }
  std::printf(
      "\n(the first table's commands use the estate cache, as a second run on the same files\n"
      " does: it was filled by the first validate of each estate;\n"
      " guests includes the VM template 9000; RSS is the largest ru_maxrss over the runs;\n"
      " render -n is `render --dry-run`: everything render does except writing the files;\n"
      " re-render is render over its own previous output: already the same, so nothing is "
      "written;\n"
      " tmpfs is render into /dev/shm, where writing the files costs no disk;\n"
      " disk only is the same files written by this program with plain system calls and one\n"
      " syncfs, no phoenix: what the file system alone costs for the tree render writes)\n");
  if (!keep) {
    fs::remove_all(tmp);
  } else {
    std::printf("kept %s\n", tmp.c_str());
  }
  return 0;
}
