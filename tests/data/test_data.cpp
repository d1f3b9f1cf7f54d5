#include <zlib.h>

#include <fstream>
#ifdef PROFIT_WITH_OPENCV
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#endif

#include "helpers.h"
#include "profit/data/loader.h"
#include "profit/data/readers.h"
#include "profit/data/transforms.h"

namespace profit::data {
namespace {

namespace fs = std::filesystem;
using profit::testing::temp_dir;

std::string be32(uint32_t v) {
  return {char(v >> 24), char((v >> 16) & 255), char((v >> 8) & 255), char(v & 255)};
}

void write_gz(const fs::path& p, const std::string& bytes) {
  gzFile f = gzopen(p.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size()));
  gzclose(f);
}

std::string idx_images(int n, int h, int w, uint32_t magic = 0x803) {
  std::string s = be32(magic) + be32(n) + be32(h) + be32(w);
  for (int i = 0; i < n * h * w; ++i) s.push_back(char(i % 251));
  return s;
}

std::string idx_labels(const std::vector<uint8_t>& labels) {
  std::string s = be32(0x801) + be32(static_cast<uint32_t>(labels.size()));
  for (auto l : labels) s.push_back(char(l));
  return s;
}

// A tiny Fashion-MNIST-layout folder: 3 train and 2 test images of 4x5.
fs::path make_fmnist(const fs::path& dir) {
  write_gz(dir / "train-images-idx3-ubyte.gz", idx_images(3, 4, 5));
  write_gz(dir / "train-labels-idx1-ubyte.gz", idx_labels({0, 9, 3}));
  write_gz(dir / "t10k-images-idx3-ubyte.gz", idx_images(2, 4, 5));
  write_gz(dir / "t10k-labels-idx1-ubyte.gz", idx_labels({1, 2}));
  return dir;
}

TEST(Idx, ReadsImagesAndLabels) {
  auto dir = make_fmnist(temp_dir());
  auto [x, y] = load_fashion_mnist(dir, true);
  EXPECT_EQ(x.sizes(), (std::vector<int64_t>{3, 1, 4, 5}));
  EXPECT_EQ(x[1][0][0][0].item<int>(), 20);  // byte 20 of the stream
  EXPECT_TRUE(torch::equal(y, torch::tensor({0, 9, 3}, torch::kInt64)));
}

TEST(Idx, BadInputNamesTheFile) {
  auto dir = temp_dir();
  EXPECT_ERROR_CONTAINS(load_fashion_mnist((dir / "nope").string(), true), "nope");
  make_fmnist(dir);
  // Wrong magic.
  write_gz(dir / "train-images-idx3-ubyte.gz", idx_images(3, 4, 5, 0x802));
  EXPECT_ERROR_CONTAINS(load_fashion_mnist(dir, true), "train-images-idx3-ubyte.gz: bad IDX magic");
  // Truncated data.
  auto img = idx_images(3, 4, 5);
  write_gz(dir / "train-images-idx3-ubyte.gz", img.substr(0, img.size() - 7));
  EXPECT_ERROR_CONTAINS(load_fashion_mnist(dir, true), "train-images-idx3-ubyte.gz: truncated");
  // Truncated gzip stream (cut the compressed file itself).
  write_gz(dir / "train-images-idx3-ubyte.gz", img);
  {
    auto p = dir / "train-images-idx3-ubyte.gz";
    fs::resize_file(p, fs::file_size(p) / 2);
  }
  EXPECT_ERROR_CONTAINS(load_fashion_mnist(dir, true), "train-images-idx3-ubyte.gz");
  // Label out of range.
  write_gz(dir / "train-images-idx3-ubyte.gz", img);
  write_gz(dir / "train-labels-idx1-ubyte.gz", idx_labels({0, 10, 3}));
  EXPECT_ERROR_CONTAINS(load_fashion_mnist(dir, true), "label 10 out of range");
  // Count mismatch.
  write_gz(dir / "train-labels-idx1-ubyte.gz", idx_labels({0, 1}));
  EXPECT_ERROR_CONTAINS(load_fashion_mnist(dir, true), "3 images but");
}

TEST(Cifar, ReadsAndRejectsBadFiles) {
  auto dir = temp_dir();
  std::string rec;
  for (int i = 0; i < 4; ++i) {
    rec.push_back(char(i));  // label
    rec.append(3072, char(i * 10));
  }
  std::ofstream(dir / "test_batch.bin", std::ios::binary) << rec;
  auto [x, y] = load_cifar(dir, false, false);
  EXPECT_EQ(x.sizes(), (std::vector<int64_t>{4, 3, 32, 32}));
  EXPECT_EQ(x[2][1][5][5].item<int>(), 20);
  EXPECT_EQ(y[3].item<int64_t>(), 3);
  std::ofstream(dir / "test_batch.bin", std::ios::binary) << rec.substr(0, rec.size() - 1);
  EXPECT_ERROR_CONTAINS(load_cifar(dir, false, false), "test_batch.bin: size");
  rec[0] = char(12);
  std::ofstream(dir / "test_batch.bin", std::ios::binary) << rec;
  EXPECT_ERROR_CONTAINS(load_cifar(dir, false, false), "test_batch.bin: label 12 out of range");
  EXPECT_ERROR_CONTAINS(load_cifar(dir, false, true), "data_batch_1.bin: file not found");
}

#ifdef PROFIT_WITH_OPENCV  // the device build (scripts/device_check.sh) has no OpenCV
TEST(ImageFolder, DecodesAndReportsBadFolders) {
  auto root = temp_dir();
  const Normalize norm{{0.5f, 0.5f, 0.5f}, {0.25f, 0.25f, 0.25f}};
  EXPECT_ERROR_CONTAINS(
      ImageFolderDataset((root / "missing").string(), false, 8, Interp::kBilinear, norm),
      "missing: image folder not found");
  fs::create_directories(root / "cat");
  fs::create_directories(root / "dog");
  cv::Mat img(20, 30, CV_8UC3, cv::Scalar(10, 20, 30));  // BGR
  cv::imwrite((root / "cat" / "a.png").string(), img);
  EXPECT_ERROR_CONTAINS(ImageFolderDataset(root.string(), false, 8, Interp::kBilinear, norm),
                        "dog: empty class folder");
  cv::imwrite((root / "dog" / "b.png").string(), img);
  std::ofstream(root / "dog" / "c.jpg") << "not a jpeg";
  ImageFolderDataset ds(root.string(), false, 8, Interp::kBicubic, norm);
  ASSERT_EQ(ds.size(), 3u);
  EXPECT_EQ(ds.num_classes(), 2);
  EXPECT_EQ(ds.label(0), 0);
  EXPECT_EQ(ds.label(2), 1);
  Rng rng(0);
  auto t = ds.image(0, rng);
  EXPECT_EQ(t.sizes(), (std::vector<int64_t>{3, 8, 8}));
  // RGB order after decode: R = 30.
  EXPECT_NEAR(t[0][4][4].item<float>(), (30 / 255.0f - 0.5f) / 0.25f, 1e-5);
  EXPECT_ERROR_CONTAINS(ds.image(2, rng), "c.jpg: image does not decode");
  ImageFolderDataset train(root.string(), true, 16, Interp::kBilinear, norm);
  EXPECT_EQ(train.image(1, rng).sizes(), (std::vector<int64_t>{3, 16, 16}));
}
#endif

TEST(Transforms, NoAugmentationIsToTensorNormalize) {
  std::vector<uint8_t> px = {0, 51, 102, 153, 204, 255};
  auto t = small_image_transform(px.data(), 1, 2, 3, 0, false, {{0.5f}, {0.5f}}, nullptr);
  auto ref =
      (torch::tensor({0, 51, 102, 153, 204, 255}, torch::kFloat32).view({1, 2, 3}) / 255.0 - 0.5) /
      0.5;
  EXPECT_TRUE(torch::allclose(t, ref, 1e-6, 1e-6));
}

TEST(Transforms, FlipAndCropMoveWholePixels) {
  std::vector<uint8_t> px(16);
  for (int i = 0; i < 16; ++i) px[i] = uint8_t(i * 10);
  const Normalize n{{0.0f}, {1.0f}};
  auto plain = small_image_transform(px.data(), 1, 4, 4, 0, false, n, nullptr);
  bool saw_flip = false, saw_shift = false;
  for (uint64_t s = 0; s < 40; ++s) {
    Rng rng(s);
    auto t = small_image_transform(px.data(), 1, 4, 4, 1, true, n, &rng);
    // Every output value is either a source pixel or the zero padding.
    for (int i = 0; i < 16; ++i) {
      const float v = t.view(-1)[i].item<float>() * 255.0f;
      EXPECT_NEAR(v, std::round(v), 1e-3);
    }
    saw_flip |= torch::equal(t, plain.flip(2));
    saw_shift |= !torch::equal(t, plain) && !torch::equal(t, plain.flip(2));
  }
  EXPECT_TRUE(saw_flip);
  EXPECT_TRUE(saw_shift);
}

TEST(Transforms, RandomResizedCropStaysInsideAndRespectsRatio) {
  Rng rng(7);
  for (int i = 0; i < 200; ++i) {
    auto b = random_resized_crop_box(120, 200, rng);
    EXPECT_GE(b.top, 0);
    EXPECT_GE(b.left, 0);
    EXPECT_LE(b.top + b.height, 120);
    EXPECT_LE(b.left + b.width, 200);
    EXPECT_GE(b.height * b.width, 0.08 * 120 * 200 * 0.9);
  }
  // Extreme aspect ratio: the fallback centre crop is clamped to 4:3.
  Rng r2(1);
  auto b = random_resized_crop_box(10, 1000, r2, 0.99, 1.0);
  EXPECT_EQ(b.height, 10);
  EXPECT_EQ(b.width, 13);
  EXPECT_EQ(b.left, (1000 - 13) / 2);
}

// The threaded loader must produce exactly the batches of the plain reference path, in order,
// for any number of workers and any start batch.
// torchvision's RandomErasing: p = 0 draws nothing; p = 1 zeroes one rectangle whose area is
// within scale (0.02, 0.33) of the image and whose aspect ratio is within (0.3, 3.3), the same
// rectangle in every channel; the same seed erases the same rectangle.
TEST(Transforms, RandomErasingMatchesTorchvisionRanges) {
  Rng rng(5), untouched(5);
  auto img = torch::rand({3, 28, 28}) + 1.0f;  // no zeros before erasing
  auto same = img.clone();
  EXPECT_FALSE(random_erase(same, 0.0, rng));
  EXPECT_TRUE(torch::equal(same, img));
  EXPECT_EQ(rng(), untouched());
  for (uint64_t seed = 0; seed < 50; ++seed) {
    Rng r1(seed), r2(seed);
    auto a = img.clone(), b = img.clone();
    const bool erased = random_erase(a, 1.0, r1);
    random_erase(b, 1.0, r2);
    EXPECT_TRUE(torch::equal(a, b)) << "seed " << seed;
    if (!erased) continue;
    auto zero = (a == 0);
    EXPECT_TRUE(torch::equal(zero[0], zero[1]) && torch::equal(zero[0], zero[2]));
    auto rows = zero[0].any(1).nonzero(), cols = zero[0].any(0).nonzero();
    const int64_t eh = rows.size(0), ew = cols.size(0);
    EXPECT_EQ(zero[0].sum().item<int64_t>(), eh * ew) << "one solid rectangle";
    EXPECT_EQ(rows[-1].item<int64_t>() - rows[0].item<int64_t>() + 1, eh);
    const double frac = static_cast<double>(eh * ew) / (28 * 28);
    EXPECT_GT(frac, 0.02 * 0.5);  // rounding of the side lengths
    EXPECT_LT(frac, 0.33 * 1.5);
  }
  EXPECT_THROW(random_erase(img, 1.5, rng), c10::Error);
}

TEST(Datasets, RandomErasingOnlyOnTheAugmentedTrainSplit) {
  DataConfig cfg;
  cfg.name = "synthetic";
  cfg.synthetic_size = 8;
  cfg.image_size = 16;
  cfg.random_erasing = 1.0;
  auto erased = open_dataset(cfg, "train");
  cfg.random_erasing = 0.0;
  auto plain = open_dataset(cfg, "train");
  int differing = 0;
  for (size_t i = 0; i < erased->size(); ++i) {
    Rng r1(i), r2(i);
    auto a = erased->image(i, r1), b = plain->image(i, r2);
    differing += !torch::equal(a, b);
  }
  EXPECT_GT(differing, 0);
  cfg.random_erasing = 1.0;
  auto test_split = open_dataset(cfg, "test");
  EXPECT_EQ(dynamic_cast<const ErasingDataset*>(test_split.get()), nullptr);
  cfg.random_erasing = -0.1;
  EXPECT_THAT(profit::testing::error_of([&] { open_dataset(cfg, "train"); }),
              ::testing::HasSubstr("data.random_erasing"));
}

TEST(Loader, ThreadedEqualsReferenceForAnyWorkerCount) {
  DataConfig cfg;
  cfg.name = "synthetic";
  cfg.synthetic_size = 50;
  cfg.image_size = 12;
  auto ds = open_dataset(cfg, "train", 0);
  DataLoader ref(ds, {8, true, false, 0, 1, 42});
  ASSERT_EQ(ref.batches_per_epoch(), 7);
  for (int64_t workers : {1, 3}) {
    DataLoader l(ds, {8, true, false, workers, 2, 42});
    for (int64_t start : {0, 4}) {
      auto it = l.epoch(2, start);
      Batch b;
      int64_t expected = start;
      while (it->next(b)) {
        auto r = ref.make_batch(2, expected);
        EXPECT_EQ(b.index, expected);
        EXPECT_TRUE(torch::equal(b.images, r.images));
        EXPECT_TRUE(torch::equal(b.labels, r.labels));
        ++expected;
      }
      EXPECT_EQ(expected, 7);
    }
  }
  // Different epochs shuffle differently; the same epoch is reproducible.
  EXPECT_FALSE(torch::equal(ref.make_batch(0, 0).labels, ref.make_batch(1, 0).labels) &&
               torch::equal(ref.make_batch(0, 0).images, ref.make_batch(1, 0).images));
  EXPECT_TRUE(torch::equal(ref.make_batch(3, 1).images, ref.make_batch(3, 1).images));
  DataLoader dropping(ds, {8, true, true, 0, 1, 42});
  EXPECT_EQ(dropping.batches_per_epoch(), 6);
}

TEST(Loader, WorkerErrorsReachTheConsumer) {
  auto root = temp_dir();
  fs::create_directories(root / "train" / "a");
  std::ofstream(root / "train" / "a" / "x.png") << "garbage";
  DataConfig cfg;
  cfg.name = "imagefolder";
  cfg.root = root.string();
  cfg.image_size = 8;
  auto ds = open_dataset(cfg, "train");
  DataLoader l(ds, {1, false, false, 2, 2, 0});
  auto it = l.epoch(0);
  Batch b;
#ifdef PROFIT_WITH_OPENCV
  EXPECT_ERROR_CONTAINS(it->next(b), "x.png: image does not decode");
#else
  EXPECT_ERROR_CONTAINS(it->next(b), "x.png: cannot decode, this build has no OpenCV");
#endif
}

TEST(Datasets, SubsetIsSeededAndSorted) {
  DataConfig cfg;
  cfg.name = "synthetic";
  cfg.synthetic_size = 100;
  auto ds = open_dataset(cfg, "train");
  auto a = random_subset(ds, 0.1, 5), b = random_subset(ds, 0.1, 5), c = random_subset(ds, 0.1, 6);
  ASSERT_EQ(a->size(), 10u);
  bool same_ab = true, same_ac = true;
  for (size_t i = 0; i < 10; ++i) {
    same_ab &= a->label(i) == b->label(i);
    Rng r1(0), r2(0);
    same_ac &= torch::equal(a->image(i, r1), c->image(i, r2));
  }
  EXPECT_TRUE(same_ab);
  EXPECT_FALSE(same_ac);
  EXPECT_ERROR_CONTAINS(random_subset(ds, 0.0, 1), "fraction");
  cfg.name = "mnist_typo";
  EXPECT_ERROR_CONTAINS(open_dataset(cfg, "train"), "unknown dataset 'mnist_typo'");
}

}  // namespace
}  // namespace profit::data
