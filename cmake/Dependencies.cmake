# Every third-party dependency of Phoenix, found in one place. All come from Debian packages
# installed by scripts/install-deps.sh.
find_package(nlohmann_json 3.10 REQUIRED)
find_package(PkgConfig REQUIRED)
pkg_check_modules(LIBYAML REQUIRED IMPORTED_TARGET yaml-0.1)
find_package(CLI11 2.1 REQUIRED)
find_package(fmt 9 REQUIRED)
find_package(OpenSSL 3 REQUIRED COMPONENTS Crypto)
if(PHOENIX_BUILD_TESTS)
  find_package(GTest 1.12 REQUIRED)
endif()
