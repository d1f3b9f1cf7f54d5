#include <fstream>

#include "helpers.h"
#include "profit/io/atomic_file.h"
#include "profit/io/checkpoint.h"
#include "profit/io/safetensors.h"
#include "profit/io/state_dict.h"
#include "profit/nn/models.h"

namespace profit::io {
namespace {

namespace fs = std::filesystem;
using profit::testing::temp_dir;

TEST(Safetensors, RoundTripsEveryDtype) {
  auto dir = temp_dir();
  TensorMap in = {{"a", torch::randn({3, 5})},
                  {"b.c", torch::arange(7, torch::kInt64)},
                  {"h", torch::randn({4}).to(torch::kFloat16)},
                  {"u", torch::randint(0, 255, {2, 2}).to(torch::kUInt8)},
                  {"s", torch::tensor(3.5)}};
  save_safetensors((dir / "x.safetensors").string(), in);
  auto out = load_safetensors((dir / "x.safetensors").string());
  ASSERT_EQ(out.size(), in.size());
  for (auto& [k, t] : in) EXPECT_TRUE(profit::testing::bit_equal(out.at(k), t)) << k;
  // Byte layout: little-endian u64 header length, header starts with '{'.
  auto bytes = read_file((dir / "x.safetensors").string());
  EXPECT_EQ(bytes[8], '{');
  EXPECT_EQ((static_cast<uint8_t>(bytes[0]) + 8) % 8, 0);  // header padded to 8 bytes
}

TEST(Safetensors, CorruptFilesNameTheProblem) {
  auto good = serialize_safetensors({{"w", torch::ones({4, 4})}});
  EXPECT_ERROR_CONTAINS(parse_safetensors(good.substr(0, 5), "f.st"), "f.st: truncated");
  EXPECT_ERROR_CONTAINS(parse_safetensors(good.substr(0, good.size() - 4), "f.st"),
                        "tensor 'w' data offsets out of bounds");
  std::string huge = good;
  huge[6] = 1;  // header length ~2^48
  EXPECT_ERROR_CONTAINS(parse_safetensors(huge, "f.st"), "exceeds file size");
  std::string bad_json = good;
  bad_json[8] = 'x';
  EXPECT_ERROR_CONTAINS(parse_safetensors(bad_json, "f.st"), "corrupt safetensors header");
}

TEST(StateDict, StrictLoadNamesMissingUnexpectedAndShape) {
  nn::ModelConfig c;
  c.arch = "mobilenet_v2";
  c.width = 0.25;
  c.num_classes = 10;
  auto a = nn::create_model(c);
  auto b = nn::create_model(c);
  auto sd = state_dict(*a);
  load_state_dict(*b, sd);
  for (auto& [k, t] : state_dict(*b)) EXPECT_TRUE(torch::equal(t, sd.at(k))) << k;
  auto missing = sd;
  missing.erase("features.0.1.running_var");
  EXPECT_ERROR_CONTAINS(load_state_dict(*b, missing, true, "w.st"),
                        "w.st: missing key 'features.0.1.running_var'");
  auto extra = sd;
  extra["features.0.0.weight_quant.scale"] = torch::ones({1});
  EXPECT_ERROR_CONTAINS(load_state_dict(*b, extra, true, "w.st"),
                        "unexpected key 'features.0.0.weight_quant.scale'");
  auto rep = load_state_dict(*b, extra, false, "w.st");
  EXPECT_EQ(rep.unexpected.size(), 1u);
  auto shape = sd;
  shape["classifier.1.weight"] = torch::zeros({11, 1280});
  EXPECT_ERROR_CONTAINS(load_state_dict(*b, shape, true, "w.st"),
                        "shape mismatch for 'classifier.1.weight'");
}

TEST(Checkpoint, RoundTripAndCorruptFileKeepsTheOldOne) {
  auto dir = temp_dir();
  nn::ModelConfig c;
  c.arch = "mobilenet_v3_small";
  c.width = 0.25;
  c.num_classes = 3;
  auto m = nn::create_model(c);
  torch::optim::SGD opt(m->parameters(), torch::optim::SGDOptions(0.1).momentum(0.9));
  auto loss = m->forward(torch::randn({2, 3, 32, 32})).sum();
  loss.backward();
  opt.step();
  TrainPosition pos;
  pos.epoch = 2;
  pos.batch = 5;
  pos.step = 17;
  pos.best_top1 = 55.5;
  pos.best_loss = 0.25;
  pos.elapsed_seconds = 123.5;
  pos.rng_state = torch::randint(0, 255, {5056}).to(torch::kUInt8);
  pos.cuda_rng_state = torch::randint(0, 255, {16}).to(torch::kUInt8);  // a CUDA run's
  const std::string path = (dir / "last.ckpt").string();
  save_checkpoint(path, {m.get(), nullptr, &opt}, pos, "{\"x\":1}");
  EXPECT_FALSE(fs::exists(path + ".tmp"));

  auto m2 = nn::create_model(c);
  torch::optim::SGD opt2(m2->parameters(), torch::optim::SGDOptions(0.1).momentum(0.9));
  TrainPosition p2;
  EXPECT_EQ(load_checkpoint(path, {m2.get(), nullptr, &opt2}, p2), "{\"x\":1}");
  EXPECT_EQ(p2.epoch, 2);
  EXPECT_EQ(p2.batch, 5);
  EXPECT_EQ(p2.step, 17);
  EXPECT_DOUBLE_EQ(p2.best_top1, 55.5);
  EXPECT_DOUBLE_EQ(p2.best_loss, 0.25);
  EXPECT_DOUBLE_EQ(p2.elapsed_seconds, 123.5);
  EXPECT_TRUE(torch::equal(p2.rng_state, pos.rng_state));
  EXPECT_TRUE(torch::equal(p2.cuda_rng_state, pos.cuda_rng_state));
  for (size_t i = 0; i < m->parameters().size(); ++i)
    EXPECT_TRUE(torch::equal(m->parameters()[i], m2->parameters()[i]));
  // Momentum buffers restored: one more identical step gives identical weights.
  auto x = torch::randn({2, 3, 32, 32});
  m->eval();  // no dropout: both models must see the same function
  m2->eval();
  for (auto [mm, oo] : {std::pair{m.get(), &opt}, std::pair{m2.get(), &opt2}}) {
    oo->zero_grad();
    mm->forward(x).sum().backward();
    oo->step();
  }
  for (size_t i = 0; i < m->parameters().size(); ++i)
    EXPECT_TRUE(torch::equal(m->parameters()[i], m2->parameters()[i])) << i;
  // Truncated checkpoint: clear error naming the file.
  const std::string bytes = read_file(path);
  const std::string cut = (dir / "cut.ckpt").string();
  std::ofstream(cut, std::ios::binary) << bytes.substr(0, bytes.size() / 2);
  EXPECT_ERROR_CONTAINS(load_checkpoint(cut, {m2.get(), nullptr, &opt2}, p2), "cut.ckpt");
  // A failed write (folder does not exist) leaves the existing checkpoint intact.
  EXPECT_ANY_THROW(
      save_checkpoint((dir / "no" / "x.ckpt").string(), {m.get(), nullptr, &opt}, pos, "{}"));
  EXPECT_EQ(read_file(path), bytes);
}

TEST(AtomicFile, ReplacesWholeFile) {
  auto dir = temp_dir();
  const std::string p = (dir / "f.txt").string();
  write_file_atomic(p, "first version");
  write_file_atomic(p, "v2");
  EXPECT_EQ(read_file(p), "v2");
  EXPECT_FALSE(fs::exists(p + ".tmp"));
  EXPECT_ERROR_CONTAINS(read_file((dir / "none").string()), "none: cannot open");
}

}  // namespace
}  // namespace profit::io
