#include "profit/io/recipe.h"

#include <c10/util/Exception.h>

#include <algorithm>
#include <filesystem>
#include <vector>

namespace profit::io {
namespace {

namespace fs = std::filesystem;

// The caller has checked that `path` exists (a base's message names the file that names it).
YAML::Node parse_file(const std::string& path) {
  try {
    return YAML::LoadFile(path);
  } catch (const YAML::Exception& e) {
    TORCH_CHECK(false, path, ": YAML parse error: ", e.what());
  }
  return {};
}

// `chain` holds the files already open below this one, to name a loop instead of recursing
// until the stack runs out.
YAML::Node load_chain(const std::string& path, std::vector<std::string>& chain) {
  YAML::Node root = parse_file(path);
  if (!root.IsMap() || !root["base"]) return root;
  const YAML::Node base_key = root["base"];
  TORCH_CHECK(base_key.IsScalar() && !base_key.as<std::string>().empty(), path,
              ": 'base' must be the file name of another recipe");
  // A relative base is found next to the file that names it, wherever the command runs.
  const fs::path named = base_key.as<std::string>();
  const fs::path base_path = named.is_absolute() ? named : fs::path(path).parent_path() / named;
  TORCH_CHECK(fs::exists(base_path), path, ": base '", named.string(), "' not found (looked for ",
              base_path.string(), ")");
  const std::string canonical = fs::canonical(base_path).string();
  TORCH_CHECK(std::find(chain.begin(), chain.end(), canonical) == chain.end(), path, ": base '",
              named.string(), "' loops back to a recipe already in the chain");
  chain.push_back(canonical);
  const YAML::Node base = load_chain(base_path.string(), chain);
  TORCH_CHECK(base.IsMap(), base_path.string(),
              ": a base recipe must be a map of sections (it is the base of ", path, ")");
  root.remove("base");
  return merge_recipe(base, root);
}

}  // namespace

YAML::Node merge_recipe(const YAML::Node& base, const YAML::Node& over) {
  if (!base.IsMap() || !over.IsMap()) return YAML::Clone(over);
  YAML::Node out = YAML::Clone(base);
  for (const auto& kv : over) {
    const auto key = kv.first.as<std::string>();
    const YAML::Node& view = out;  // const lookup: a missing key must not be inserted here
    const YAML::Node old = view[key];
    out[key] = old ? merge_recipe(old, kv.second) : YAML::Clone(kv.second);
  }
  return out;
}

YAML::Node load_recipe(const std::string& path) {
  TORCH_CHECK(fs::exists(path), path, ": file not found");
  std::vector<std::string> chain = {fs::canonical(path).string()};
  return load_chain(path, chain);
}

std::string resolved_recipe_text(const std::string& path) {
  YAML::Emitter out;
  out << load_recipe(path);
  return std::string(out.c_str()) + "\n";
}

}  // namespace profit::io
