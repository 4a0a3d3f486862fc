# Every third-party dependency of Phoenix, found in one place. All come from Debian packages
# installed by scripts/install-deps.sh.
find_package(nlohmann_json 3.10 REQUIRED)
find_package(PkgConfig REQUIRED)
pkg_check_modules(LIBYAML REQUIRED IMPORTED_TARGET yaml-0.1)
# XXH3-128 content hashes of the estate cache (src/config/load_cache.cc).
pkg_check_modules(LIBXXHASH REQUIRED IMPORTED_TARGET libxxhash)
find_package(CLI11 2.1 REQUIRED)
find_package(fmt 9 REQUIRED)
find_package(OpenSSL 3 REQUIRED COMPONENTS Crypto SSL)
# The Docker Engine API client (src/providers/docker/engine_client.cc): HTTP over a unix socket
# and HTTPS with client certificates.
find_package(CURL REQUIRED)
# gzip for large files sent to a guest in pieces (providers/guest/exec.cc).
find_package(ZLIB REQUIRED)
# pve-sim (tools/pve-sim): its HTTPS front, and its task threads.
pkg_check_modules(CPPHTTPLIB REQUIRED IMPORTED_TARGET cpp-httplib)
find_package(Threads REQUIRED)
# The journal of converge runs (src/apply/journal.cc).
find_package(SQLite3 REQUIRED)
# mimalloc replaces glibc's malloc in the phoenix binary: loading an estate builds many small
# nodes and strings, and the allocator was a third of a 1,000-guest `plan` (see bench/).
# Sanitizer builds keep their own allocator.
if(NOT PHOENIX_SANITIZE)
  find_package(mimalloc 2.0 REQUIRED)
endif()
if(PHOENIX_BUILD_TESTS)
  find_package(GTest 1.12 REQUIRED)
endif()
