#include <fstream>

#include "helpers.h"
#include "profit/io/recipe.h"
#include "profit/train/config.h"

namespace profit::io {
namespace {

namespace fs = std::filesystem;
using profit::testing::temp_dir;

void write(const fs::path& path, const std::string& text) {
  fs::create_directories(path.parent_path());
  std::ofstream(path) << text;
}

std::string emit(const YAML::Node& node) {
  YAML::Emitter out;
  out << node;
  return out.c_str();
}

TEST(Recipe, MapsMergeKeyByKeyAndValuesReplace) {
  const auto base = YAML::Load(
      "model: {arch: mobilenet_v2, width: 0.5}\n"
      "profit: {a_bits: [8, 4], ft_epochs: 2}\n"
      "policy: {method: duq}\n");
  const auto over = YAML::Load("profit: {a_bits: [8, 5, 4]}\npolicy: {method: lsq}\nnew: 1\n");
  const auto merged = merge_recipe(base, over);
  // Untouched sections and keys come from the base, in the base's order; the list is replaced
  // whole (not appended to); a key only the variant has is added at the end.
  EXPECT_EQ(emit(merged),
            "model: {arch: mobilenet_v2, width: 0.5}\n"
            "profit: {a_bits: [8, 5, 4], ft_epochs: 2}\n"
            "policy: {method: lsq}\n"
            "new: 1");
  // Neither input changed.
  EXPECT_EQ(base["profit"]["a_bits"].size(), 2u);
  EXPECT_EQ(base["policy"]["method"].as<std::string>(), "duq");
  EXPECT_FALSE(YAML::Node(base)["new"].IsDefined());
}

TEST(Recipe, BaseIsFoundNextToTheRecipeAndChains) {
  const auto dir = temp_dir();
  write(dir / "r" / "a.yaml", "train: {lr: 0.1, seed: 1}\nprofit: {ft_epochs: 2, bn_epochs: 1}\n");
  write(dir / "r" / "b.yaml", "base: a.yaml\ntrain: {lr: 0.2}\n");
  write(dir / "r" / "sub" / "c.yaml", "base: ../b.yaml\nprofit: {ft_epochs: 4}\n");
  const auto c = load_recipe((dir / "r" / "sub" / "c.yaml").string());
  EXPECT_FALSE(c["base"].IsDefined());
  EXPECT_DOUBLE_EQ(c["train"]["lr"].as<double>(), 0.2);
  EXPECT_EQ(c["train"]["seed"].as<int>(), 1);
  EXPECT_EQ(c["profit"]["ft_epochs"].as<int>(), 4);
  EXPECT_EQ(c["profit"]["bn_epochs"].as<int>(), 1);
  // The training config reads the merged recipe.
  train::TrainConfig cfg;
  train::apply_yaml(cfg, (dir / "r" / "sub" / "c.yaml").string(), {"policy", "phases"});
  EXPECT_DOUBLE_EQ(cfg.lr, 0.2);
  EXPECT_EQ(cfg.seed, 1u);
  // A file without a base reads as it is.
  EXPECT_EQ(emit(load_recipe((dir / "r" / "a.yaml").string())),
            emit(YAML::LoadFile((dir / "r" / "a.yaml").string())));
}

TEST(Recipe, UnknownKeysInTheVariantAreStillRejected) {
  const auto dir = temp_dir();
  write(dir / "a.yaml", "train: {lr: 0.1}\n");
  write(dir / "b.yaml", "base: a.yaml\ntrain: {lrr: 0.2}\n");
  train::TrainConfig cfg;
  EXPECT_ERROR_CONTAINS(train::apply_yaml(cfg, (dir / "b.yaml").string(), {}), "lrr");
}

TEST(Recipe, BadBasesNameTheFile) {
  const auto dir = temp_dir();
  write(dir / "missing.yaml", "base: nowhere.yaml\ntrain: {lr: 0.1}\n");
  EXPECT_ERROR_CONTAINS(load_recipe((dir / "missing.yaml").string()),
                        "missing.yaml: base 'nowhere.yaml' not found");
  write(dir / "x.yaml", "base: y.yaml\n");
  write(dir / "y.yaml", "base: x.yaml\n");
  EXPECT_ERROR_CONTAINS(load_recipe((dir / "x.yaml").string()), "y.yaml: base 'x.yaml' loops");
  write(dir / "self.yaml", "base: self.yaml\n");
  EXPECT_ERROR_CONTAINS(load_recipe((dir / "self.yaml").string()), "loops");
  write(dir / "list.yaml", "- 1\n- 2\n");
  write(dir / "on_list.yaml", "base: list.yaml\n");
  EXPECT_ERROR_CONTAINS(load_recipe((dir / "on_list.yaml").string()),
                        "list.yaml: a base recipe must be a map");
  write(dir / "seq_base.yaml", "base: [a.yaml]\n");
  EXPECT_ERROR_CONTAINS(load_recipe((dir / "seq_base.yaml").string()),
                        "seq_base.yaml: 'base' must be the file name");
  write(dir / "broken.yaml", "train: {lr: [\n");
  write(dir / "on_broken.yaml", "base: broken.yaml\n");
  EXPECT_ERROR_CONTAINS(load_recipe((dir / "on_broken.yaml").string()),
                        "broken.yaml: YAML parse error");
}

}  // namespace
}  // namespace profit::io
