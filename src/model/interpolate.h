#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace phoenix::model {

// Compose-file variable interpolation, as `docker stack deploy` does it: $$ is a literal $,
// ${VAR}, $VAR, ${VAR:-default} (unset or empty), ${VAR-default} (unset), ${VAR:?message} and
// ${VAR?message} (required).
struct InterpolationResult {
  std::string text;
  std::vector<std::string> unset;    // variables used without a value or a default
  std::optional<std::string> error;  // malformed reference or a required variable missing
};

InterpolationResult interpolate(std::string_view text,
                                const std::map<std::string, std::string, std::less<>>& vars);

}  // namespace phoenix::model
