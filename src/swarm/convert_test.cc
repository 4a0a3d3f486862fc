#include "swarm/convert.h"

#include <gtest/gtest.h>

#include "base/hash.h"
#include "config/yaml_reader.h"
#include "swarm/deploy.h"

namespace phoenix::swarm {
namespace {

using nlohmann::json;

base::Node yaml(std::string_view text) {
  auto n = config::parse_yaml(text, 1);
  EXPECT_TRUE(n.has_value());
  return n ? *n : base::Node();
}

ReadFile files(std::map<std::string, std::string> contents) {
  return [contents = std::move(contents)](const std::string& path) -> base::Result<std::string> {
    auto it = contents.find(path);
    if (it == contents.end()) return base::fail(base::ErrorKind::kNotFound, "no such file");
    return it->second;
  };
}

StackSpec convert(std::string_view compose, std::map<std::string, std::string> contents = {}) {
  auto s = convert_stack("web", yaml(compose), files(std::move(contents)));
  EXPECT_TRUE(s.has_value()) << (s ? "" : s.error().message());
  return s ? *s : StackSpec();
}

std::string error_of(std::string_view compose) {
  auto s = convert_stack("web", yaml(compose), files({}));
  EXPECT_FALSE(s.has_value());
  return s ? "" : s.error().message();
}

TEST(Convert, MinimalServiceGetsStackDeployDefaults) {
  StackSpec s = convert("services:\n  app:\n    image: busybox:1\n");
  ASSERT_EQ(s.services.size(), 1u);
  EXPECT_EQ(s.services[0].name, "web_app");
  EXPECT_EQ(s.services[0].spec, json::parse(R"({
    "Name": "web_app",
    "Labels": {"com.docker.stack.image": "busybox:1", "com.docker.stack.namespace": "web"},
    "TaskTemplate": {
      "ContainerSpec": {"Image": "busybox:1", "Labels": {"com.docker.stack.namespace": "web"},
                        "Privileges": {"CredentialSpec": null, "SELinuxContext": null}},
      "Resources": {},
      "Placement": {},
      "Networks": [{"Target": "web_default", "Aliases": ["app"]}]
    },
    "EndpointSpec": {},
    "Mode": {"Replicated": {}},
    "UpdateConfig": {"Parallelism": 1, "FailureAction": "rollback"}
  })"));
  ASSERT_EQ(s.networks.size(), 1u);
  EXPECT_EQ(s.networks.at("web_default"), json::parse(R"({
    "Name": "web_default", "Driver": "overlay", "CheckDuplicate": true,
    "Labels": {"com.docker.stack.namespace": "web"}})"));
  EXPECT_TRUE(s.external_networks.empty());
}

TEST(Convert, FullService) {
  StackSpec s = convert(R"(
services:
  api:
    image: registry.local/api:2
    entrypoint: /bin/sh -c
    command: ["echo 'hi there'", "x"]
    environment:
      B: "2"
      A: 1
      EMPTY:
    labels: [tier=back]
    hostname: api
    user: "1000:1000"
    working_dir: /srv
    stop_grace_period: 1m30s
    extra_hosts: ["db.local:10.0.0.5"]
    healthcheck:
      test: wget -q -O- http://localhost/health
      interval: 5s
      timeout: 2s
      retries: 3
      start_period: 250ms
    volumes:
      - data:/var/lib/api
      - /etc/ssl/certs:/etc/ssl/certs:ro
      - type: tmpfs
        target: /scratch
        tmpfs: {size: 64m}
    networks:
      backend:
        aliases: [api-internal]
      traefik-public: {}
    configs:
      - source: settings
        target: /etc/api/settings.yml
        mode: 0440
    secrets: [token]
    deploy:
      mode: replicated
      replicas: 2
      labels:
        traefik.enable: "true"
      placement:
        constraints: [node.labels.tier == apps]
      resources:
        limits: {cpus: "0.5", memory: 512M}
        reservations: {memory: 128M}
      restart_policy: {condition: on-failure, delay: 5s, max_attempts: 3}
      update_config: {parallelism: 2, delay: 10s, order: start-first}
networks:
  backend:
    driver_opts: {encrypted: "true"}
  traefik-public:
    external: true
volumes:
  data:
    labels: {backup: daily}
configs:
  settings:
    file: ./settings.yml
secrets:
  token:
    file: ./token.txt
)",
                        {{"./settings.yml", "port: 80\n"}, {"./token.txt", "s3cret"}});
  ASSERT_EQ(s.services.size(), 1u);
  const json& spec = s.services[0].spec;
  const json& c = spec["TaskTemplate"]["ContainerSpec"];
  EXPECT_EQ(c["Command"], json::parse(R"(["/bin/sh", "-c"])"));
  EXPECT_EQ(c["Args"], json::parse(R"(["echo 'hi there'", "x"])"));
  EXPECT_EQ(c["Env"], json::parse(R"(["A=1", "B=2", "EMPTY"])"));
  EXPECT_EQ(c["Labels"], json::parse(R"({"tier": "back", "com.docker.stack.namespace": "web"})"));
  EXPECT_EQ(c["StopGracePeriod"], 90'000'000'000LL);
  EXPECT_EQ(c["Hosts"], json::parse(R"(["10.0.0.5 db.local"])"));
  EXPECT_EQ(c["Healthcheck"],
            json::parse(R"({"Test": ["CMD-SHELL", "wget -q -O- http://localhost/health"],
      "Interval": 5000000000, "Timeout": 2000000000, "Retries": 3, "StartPeriod": 250000000})"));
  EXPECT_TRUE(s.services[0].has_healthcheck);
  EXPECT_EQ(c["Mounts"], json::parse(R"([
    {"Type": "volume", "Target": "/var/lib/api", "Source": "web_data",
     "VolumeOptions": {"Labels": {"backup": "daily", "com.docker.stack.namespace": "web"}}},
    {"Type": "bind", "Target": "/etc/ssl/certs", "Source": "/etc/ssl/certs", "ReadOnly": true},
    {"Type": "tmpfs", "Target": "/scratch", "TmpfsOptions": {"SizeBytes": 67108864}}])"));
  std::string settings_name = "web_settings_" + base::sha256_hex("port: 80\n").substr(0, 12);
  std::string token_name = "web_token_" + base::sha256_hex("s3cret").substr(0, 12);
  EXPECT_EQ(c["Configs"], json::parse(R"([{"File": {"Name": "/etc/api/settings.yml", "UID": "0",
      "GID": "0", "Mode": 288}, "ConfigName": ")" +
                                      settings_name + R"("}])"));
  EXPECT_EQ(c["Secrets"], json::parse(R"([{"File": {"Name": "token", "UID": "0", "GID": "0",
      "Mode": 292}, "SecretName": ")" +
                                      token_name + R"("}])"));
  EXPECT_EQ(spec["TaskTemplate"]["Networks"], json::parse(R"([
    {"Target": "traefik-public", "Aliases": ["api"]},
    {"Target": "web_backend", "Aliases": ["api-internal", "api"]}])"));
  EXPECT_EQ(spec["TaskTemplate"]["Resources"], json::parse(R"({
    "Limits": {"NanoCPUs": 500000000, "MemoryBytes": 536870912},
    "Reservations": {"MemoryBytes": 134217728}})"));
  EXPECT_EQ(spec["TaskTemplate"]["RestartPolicy"], json::parse(R"({
    "Condition": "on-failure", "Delay": 5000000000, "MaxAttempts": 3})"));
  EXPECT_EQ(spec["TaskTemplate"]["Placement"],
            json::parse(R"({"Constraints": ["node.labels.tier == apps"]})"));
  EXPECT_EQ(spec["Mode"], json::parse(R"({"Replicated": {"Replicas": 2}})"));
  EXPECT_EQ(spec["UpdateConfig"], json::parse(R"({"Parallelism": 2, "Delay": 10000000000,
      "Order": "start-first", "FailureAction": "rollback"})"));
  EXPECT_EQ(spec["Labels"], json::parse(R"({"traefik.enable": "true",
      "com.docker.stack.image": "registry.local/api:2", "com.docker.stack.namespace": "web"})"));

  EXPECT_EQ(s.external_networks, std::vector<std::string>{"traefik-public"});
  ASSERT_EQ(s.networks.size(), 1u);
  EXPECT_EQ(s.networks.at("web_backend")["Options"], json::parse(R"({"encrypted": "true"})"));
  ASSERT_EQ(s.configs.size(), 1u);
  EXPECT_EQ(s.configs[0].spec, json::parse(R"({"Name": ")" + settings_name + R"(",
      "Labels": {"com.docker.stack.namespace": "web", "com.phoenix.source": "settings"},
      "Data": "cG9ydDogODAK"})"));
  ASSERT_EQ(s.secrets.size(), 1u);
  EXPECT_EQ(s.secrets[0].spec["Data"], "czNjcmV0");
}

TEST(Convert, ChangedFileContentChangesTheObjectName) {
  const char* compose =
      "services:\n  a:\n    image: x\n    configs: [c]\nconfigs:\n  c:\n    file: c.txt\n";
  StackSpec one = convert(compose, {{"c.txt", "one"}});
  StackSpec two = convert(compose, {{"c.txt", "two"}});
  EXPECT_NE(one.configs[0].name, two.configs[0].name);
  EXPECT_EQ(convert(compose, {{"c.txt", "one"}}).configs[0].name, one.configs[0].name);
}

TEST(Convert, GlobalModeRestartAndExplicitFailureAction) {
  StackSpec s = convert(
      "services:\n  a:\n    image: x\n    restart: on-failure:4\n    deploy:\n      mode: global\n"
      "      update_config:\n        failure_action: pause\n");
  const json& spec = s.services[0].spec;
  EXPECT_EQ(spec["Mode"], json::parse(R"({"Global": {}})"));
  EXPECT_EQ(spec["TaskTemplate"]["RestartPolicy"],
            json::parse(R"({"Condition": "on-failure", "MaxAttempts": 4})"));
  EXPECT_EQ(spec["UpdateConfig"], json::parse(R"({"Parallelism": 1, "FailureAction": "pause"})"));
}

TEST(Convert, UnsupportedOptionsAreWarnings) {
  StackSpec s = convert("services:\n  a:\n    image: x\n    container_name: y\n    build: .\n");
  EXPECT_EQ(s.warnings,
            (std::vector<std::string>{
                "services.a.container_name is not supported by swarm stacks and is ignored (as "
                "docker stack deploy ignores it)",
                "services.a.build is not supported by swarm stacks and is ignored (as docker stack "
                "deploy ignores it)"}));
}

TEST(Convert, Errors) {
  EXPECT_EQ(error_of("services:\n  a:\n    build: .\n"),
            "services.a has no image; swarm services cannot be built");
  EXPECT_EQ(error_of("services:\n  a:\n    image: x\n    volumes: [data:/d]\n"),
            "volume \"data\" is not defined in the top-level volumes section");
  EXPECT_EQ(error_of("services:\n  a:\n    image: x\n    volumes: [./d:/d]\n"),
            "a bind mount's source must be an absolute path on the swarm node (\"./d\" is "
            "relative)");
  EXPECT_EQ(error_of("services:\n  a:\n    image: x\n    networks: [back]\n"),
            "network \"back\" is not defined in the top-level networks section");
  EXPECT_EQ(error_of("services:\n  a:\n    image: x\n    configs: [c]\n"),
            "service a uses config \"c\", which the top-level configs section does not define");
  EXPECT_EQ(error_of("services:\n  a:\n    image: x\nconfigs:\n  c:\n    file: missing.txt\n"),
            "configs.c: cannot read missing.txt: no such file");
  EXPECT_EQ(error_of("services:\n  a:\n    image: x\n    stop_grace_period: soon\n"),
            "stop_grace_period must be a duration such as \"10s\" or \"1m30s\"");
  EXPECT_EQ(error_of("services:\n  a:\n    image: x\n    deploy:\n      mode: global\n"
                     "      replicas: 2\n"),
            "services.a: replicas cannot be used with mode global");
  EXPECT_EQ(error_of("services:\n  a:\n    image: x\n    command: \"echo 'unterminated\"\n"),
            "unterminated quote in command");
  auto located =
      convert_stack("web", yaml("services:\n  a:\n    image: x\n    tty: maybe\n"), files({}));
  ASSERT_FALSE(located.has_value());
  EXPECT_EQ(located.error().loc().line, 4u);
}

TEST(Convert, PublishedPorts) {
  StackSpec s = convert(
      "services:\n  a:\n    image: x\n    ports:\n      - \"8080:80\"\n      - 53/udp\n"
      "      - {target: 9443, published: 9443, mode: host}\n");
  EXPECT_EQ(s.services[0].spec["EndpointSpec"], json::parse(R"({"Ports": [
      {"Protocol": "udp", "TargetPort": 53, "PublishMode": "ingress"},
      {"Protocol": "tcp", "TargetPort": 80, "PublishedPort": 8080, "PublishMode": "ingress"},
      {"Protocol": "tcp", "TargetPort": 9443, "PublishedPort": 9443, "PublishMode": "host"}]})"));
  EXPECT_EQ(error_of("services:\n  a:\n    image: x\n    ports: [\"a:b\"]\n"),
            "a port is \"[published:]target[/protocol]\"");
}

TEST(Convert, DurationsAndSizes) {
  EXPECT_EQ(parse_duration("1m30s"), 90'000'000'000LL);
  EXPECT_EQ(parse_duration("250ms"), 250'000'000LL);
  EXPECT_EQ(parse_duration("1.5h"), 5'400'000'000'000LL);
  EXPECT_EQ(parse_duration("0"), 0);
  EXPECT_EQ(parse_duration("10"), std::nullopt);
  EXPECT_EQ(parse_duration("5 s"), std::nullopt);
  EXPECT_EQ(parse_bytes("512M"), 536870912);
  EXPECT_EQ(parse_bytes("1g"), 1073741824);
  EXPECT_EQ(parse_bytes("64mb"), 67108864);
  EXPECT_EQ(parse_bytes("2KiB"), 2048);
  EXPECT_EQ(parse_bytes("1024"), 1024);
  EXPECT_EQ(parse_bytes("lots"), std::nullopt);
}

TEST(SpecDifferences, IgnoresEngineDefaultsButNotChanges) {
  json desired = json::parse(R"({"Name": "web_a", "Labels": {"x": "1"},
      "TaskTemplate": {"ContainerSpec": {"Image": "x", "Env": ["A=1"]}, "Resources": {},
                       "Placement": {}},
      "EndpointSpec": {}, "Mode": {"Replicated": {}}})");
  json actual = json::parse(R"({"Name": "web_a", "Labels": {"x": "1"},
      "TaskTemplate": {"ContainerSpec": {"Image": "x", "Env": ["A=1"], "Isolation": "default"},
                       "Resources": {"Limits": {}}, "ForceUpdate": 0, "Runtime": "container"},
      "EndpointSpec": {"Mode": "vip"}, "Mode": {"Replicated": {"Replicas": 1}}})");
  EXPECT_TRUE(spec_differences(desired, actual).empty());

  auto paths = [](const std::vector<FieldChange>& changes) {
    std::vector<std::string> out;
    for (const auto& c : changes) out.push_back(c.path);
    return out;
  };
  json changed = actual;
  changed["Labels"]["added-by-hand"] = "1";
  changed["TaskTemplate"]["ContainerSpec"]["Env"] = json::parse(R"(["A=2"])");
  auto d = spec_differences(desired, changed);
  EXPECT_EQ(paths(d),
            (std::vector<std::string>{"Labels.added-by-hand", "TaskTemplate.ContainerSpec.Env"}));
  ASSERT_EQ(d.size(), 2u);
  EXPECT_EQ(d[0].before, "1");
  EXPECT_EQ(d[0].after, nullptr);
  EXPECT_EQ(d[1].before, json::parse(R"(["A=2"])"));
  EXPECT_EQ(d[1].after, json::parse(R"(["A=1"])"));
  json removed = actual;
  removed["Labels"].erase("x");
  EXPECT_EQ(paths(spec_differences(desired, removed)), std::vector<std::string>{"Labels.x"});
  // Privileges as docker stack deploy sends it, against an engine that leaves it out.
  json privileges = desired;
  privileges["TaskTemplate"]["ContainerSpec"]["Privileges"] =
      json::parse(R"({"CredentialSpec": null, "SELinuxContext": null})");
  EXPECT_TRUE(spec_differences(privileges, actual).empty());
}

}  // namespace
}  // namespace phoenix::swarm
