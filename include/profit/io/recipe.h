// Recipe files (YAML) that vary another: a recipe may name the base recipe it changes.
//
//   base: profit_mobilenet_v2_fmnist_w4a4.yaml   # relative to this file's folder
//   profit:
//     ft_epochs: 4                                # everything else as in the base
//
// load_recipe reads the base first (which may itself have a base), then merges this file into
// it: a map merges key by key, recursively; a scalar or a list replaces the base's whole value
// (a list is never appended to). The key `base` is removed, so readers never see it. Errors name
// the file: unreadable or unparsable YAML, a base that is not a file name or not found, a chain
// of bases that loops, a base or a file with a base whose top level is not a map.
#pragma once

#include <c10/util/Exception.h>
#include <yaml-cpp/yaml.h>

#include <string>

namespace profit::io {

/// The recipe at `path` with its bases merged in (a null node for an empty file).
YAML::Node load_recipe(const std::string& path);

/// `over` merged into `base` as load_recipe does it; neither input is modified.
YAML::Node merge_recipe(const YAML::Node& base, const YAML::Node& over);

/// The recipe at `path` with its bases merged, as YAML text (for --show-recipe).
std::string resolved_recipe_text(const std::string& path);

/// `node` read as T; a value of another type is an error "WHERE: key 'KEY' has a bad value".
template <typename T>
T yaml_as(const YAML::Node& node, const std::string& where, const std::string& key) {
  try {
    return node.as<T>();
  } catch (const YAML::Exception&) {
    TORCH_CHECK(false, where, ": key '", key, "' has a bad value");
  }
  return T();
}

}  // namespace profit::io
