#include <algorithm>
#include <numeric>

#include "profit/common.h"
#include "profit/data/readers.h"
#include "profit/data/transforms.h"

namespace profit::data {

MemoryImageDataset::MemoryImageDataset(torch::Tensor images, torch::Tensor labels,
                                       int64_t num_classes, Normalize norm, bool augment,
                                       int64_t crop_padding, bool hflip)
    : images_(images.contiguous()),
      num_classes_(num_classes),
      norm_(std::move(norm)),
      augment_(augment),
      crop_padding_(crop_padding),
      hflip_(hflip) {
  TORCH_CHECK(images_.dim() == 4 && images_.scalar_type() == torch::kUInt8,
              "images must be uint8 [N,C,H,W], got ", images_.sizes());
  TORCH_CHECK(labels.numel() == images_.size(0), "labels/images count mismatch");
  auto l = labels.to(torch::kInt64).contiguous();
  labels_.assign(l.data_ptr<int64_t>(), l.data_ptr<int64_t>() + l.numel());
}

torch::Tensor MemoryImageDataset::image(size_t index, Rng& rng) const {
  const int64_t c = images_.size(1), h = images_.size(2), w = images_.size(3);
  const uint8_t* src = images_.data_ptr<uint8_t>() + static_cast<int64_t>(index) * c * h * w;
  return small_image_transform(src, c, h, w, augment_ ? crop_padding_ : 0, augment_ && hflip_,
                               norm_, augment_ ? &rng : nullptr);
}

std::vector<int64_t> MemoryImageDataset::image_shape() const {
  return {images_.size(1), images_.size(2), images_.size(3)};
}

ErasingDataset::ErasingDataset(DatasetPtr base, double probability)
    : base_(std::move(base)), probability_(probability) {
  TORCH_CHECK(probability >= 0.0 && probability <= 1.0,
              "data.random_erasing must be in [0, 1], got ", probability);
}

torch::Tensor ErasingDataset::image(size_t i, Rng& rng) const {
  auto img = base_->image(i, rng);
  random_erase(img, probability_, rng);
  return img;
}

Subset::Subset(DatasetPtr base, std::vector<size_t> indices)
    : base_(std::move(base)), indices_(std::move(indices)) {
  for (size_t i : indices_) TORCH_CHECK(i < base_->size(), "subset index ", i, " out of range");
}

DatasetPtr first_items(DatasetPtr base, int64_t n) {
  if (n <= 0 || static_cast<size_t>(n) >= base->size()) return base;
  std::vector<size_t> first(static_cast<size_t>(n));
  std::iota(first.begin(), first.end(), size_t{0});
  return std::make_shared<Subset>(std::move(base), std::move(first));
}

DatasetPtr random_subset(DatasetPtr base, double fraction, uint64_t seed) {
  TORCH_CHECK(fraction > 0.0 && fraction <= 1.0, "subset fraction must be in (0, 1], got ",
              fraction);
  if (fraction == 1.0) return base;
  std::vector<size_t> idx(base->size());
  std::iota(idx.begin(), idx.end(), size_t{0});
  Rng rng(mix_seed(seed, 0x5u));
  for (size_t i = idx.size(); i > 1; --i) {
    std::swap(idx[i - 1], idx[std::uniform_int_distribution<size_t>(0, i - 1)(rng)]);
  }
  idx.resize(std::max<size_t>(1, static_cast<size_t>(fraction * idx.size())));
  std::sort(idx.begin(), idx.end());
  return std::make_shared<Subset>(std::move(base), std::move(idx));
}

std::string default_root(const std::string& name) {
  if (name == "fashion_mnist") return "/usr/share/datasets/fashion-mnist";
  if (name == "cifar10") return "data/cifar-10-batches-bin";
  if (name == "cifar100") return "data/cifar-100-binary";
  return "";
}

namespace {

// Deterministic class-dependent patterns: learnable, yet cheap; for tests and benchmarks.
std::pair<torch::Tensor, torch::Tensor> make_synthetic(int64_t n, int64_t size, bool train) {
  auto gen = at::detail::createCPUGenerator(train ? 1234 : 4321);
  auto labels = torch::randint(0, 10, {n}, gen, torch::kInt64);
  auto grid = torch::arange(size, torch::kFloat32) / static_cast<double>(size);
  auto yy = grid.view({size, 1}), xx = grid.view({1, size});
  std::vector<torch::Tensor> imgs;
  for (int64_t i = 0; i < n; ++i) {
    const double k = 1.0 + labels[i].item<int64_t>();
    auto base = torch::sin(6.2832 * (k * xx + 0.5 * k * yy)) * 80.0 + 128.0;
    auto noise = torch::randn({size, size}, gen) * 20.0;
    imgs.push_back((base + noise).clamp(0, 255).to(torch::kUInt8).unsqueeze(0));
  }
  return {torch::stack(imgs), labels};
}

}  // namespace

DatasetPtr open_dataset(const DataConfig& cfg, const std::string& split, uint64_t seed) {
  TORCH_CHECK(split == "train" || split == "test", "split must be train or test, got ", split);
  const bool train = split == "train";
  const std::string root = cfg.root.empty() ? default_root(cfg.name) : cfg.root;
  const bool aug = train && cfg.augment;
  DatasetPtr ds;
  if (cfg.name == "fashion_mnist") {
    auto [x, y] = load_fashion_mnist(root, train);
    // Fashion-MNIST train-set statistics.
    ds = std::make_shared<MemoryImageDataset>(x, y, 10, Normalize{{0.2860f}, {0.3530f}}, aug,
                                              cfg.crop_padding, true);
  } else if (cfg.name == "cifar10" || cfg.name == "cifar100") {
    const bool c100 = cfg.name == "cifar100";
    auto [x, y] = load_cifar(root, c100, train);
    ds = std::make_shared<MemoryImageDataset>(
        x, y, c100 ? 100 : 10, Normalize{{0.4914f, 0.4822f, 0.4465f}, {0.2470f, 0.2435f, 0.2616f}},
        aug, cfg.crop_padding == 2 ? 4 : cfg.crop_padding, true);
  } else if (cfg.name == "imagefolder") {
    TORCH_CHECK(!root.empty(), "data.root is required for imagefolder");
    TORCH_CHECK(cfg.interpolation == "bilinear" || cfg.interpolation == "bicubic",
                "data.interpolation must be bilinear or bicubic, got '", cfg.interpolation, "'");
    const int size = cfg.image_size > 0 ? static_cast<int>(cfg.image_size) : 224;
    ds = std::make_shared<ImageFolderDataset>(
        root + "/" + (train ? "train" : "val"), aug, size,
        cfg.interpolation == "bicubic" ? Interp::kBicubic : Interp::kBilinear,
        Normalize{{0.485f, 0.456f, 0.406f}, {0.229f, 0.224f, 0.225f}});
  } else if (cfg.name == "synthetic") {
    auto [x, y] =
        make_synthetic(cfg.synthetic_size, cfg.image_size > 0 ? cfg.image_size : 16, train);
    ds = std::make_shared<MemoryImageDataset>(x, y, 10, Normalize{{0.5f}, {0.25f}}, aug,
                                              cfg.crop_padding, false);
  } else {
    TORCH_CHECK(false, "unknown dataset '", cfg.name,
                "' (expected fashion_mnist, cifar10, cifar100, imagefolder, synthetic)");
  }
  TORCH_CHECK(cfg.random_erasing >= 0.0 && cfg.random_erasing <= 1.0,
              "data.random_erasing must be in [0, 1], got ", cfg.random_erasing);
  if (aug && cfg.random_erasing > 0.0)
    ds = std::make_shared<ErasingDataset>(ds, cfg.random_erasing);
  if (train && cfg.train_fraction < 1.0) ds = random_subset(ds, cfg.train_fraction, seed);
  return ds;
}

}  // namespace profit::data
