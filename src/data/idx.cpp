#include <zlib.h>

#include <filesystem>

#include "profit/data/readers.h"

namespace profit::data {

namespace {

struct GzFile {
  gzFile f = nullptr;
  ~GzFile() {
    if (f) gzclose(f);
  }
};

// Reads exactly n bytes or fails naming the file (truncated or corrupt stream).
void read_exact(GzFile& gz, void* dst, size_t n, const std::string& path, const char* what) {
  auto* p = static_cast<uint8_t*>(dst);
  size_t done = 0;
  while (done < n) {
    const unsigned chunk = static_cast<unsigned>(std::min<size_t>(n - done, 1u << 30));
    const int got = gzread(gz.f, p + done, chunk);
    if (got <= 0) {
      int err = 0;
      const char* msg = gzerror(gz.f, &err);
      TORCH_CHECK(false, path, ": truncated or corrupt file while reading ", what, " (got ", done,
                  " of ", n, " bytes",
                  err != Z_OK && err != Z_STREAM_END ? std::string(", ") + msg : "", ")");
    }
    done += static_cast<size_t>(got);
  }
}

uint32_t be32(const uint8_t* b) {
  return (uint32_t(b[0]) << 24) | (uint32_t(b[1]) << 16) | (uint32_t(b[2]) << 8) | b[3];
}

}  // namespace

torch::Tensor read_idx(const std::string& path, int32_t expected_magic) {
  TORCH_CHECK(std::filesystem::exists(path), path, ": file not found");
  GzFile gz;
  gz.f = gzopen(path.c_str(), "rb");
  TORCH_CHECK(gz.f != nullptr, path, ": cannot open");
  uint8_t head[4];
  read_exact(gz, head, 4, path, "the magic number");
  const uint32_t magic = be32(head);
  TORCH_CHECK(static_cast<int32_t>(magic) == expected_magic, path, ": bad IDX magic 0x", std::hex,
              magic, " (expected 0x", expected_magic, ")");
  const int ndim = head[3];
  std::vector<int64_t> dims(ndim);
  size_t total = 1;
  for (int d = 0; d < ndim; ++d) {
    uint8_t b[4];
    read_exact(gz, b, 4, path, "the header");
    dims[d] = be32(b);
    TORCH_CHECK(dims[d] > 0 && dims[d] < (1 << 28), path, ": bad dimension ", dims[d]);
    total *= static_cast<size_t>(dims[d]);
  }
  auto t = torch::empty(dims, torch::kUInt8);
  read_exact(gz, t.data_ptr<uint8_t>(), total, path, "the data");
  uint8_t extra;
  TORCH_CHECK(gzread(gz.f, &extra, 1) == 0, path, ": unexpected trailing data after ", total,
              " bytes");
  return t;
}

std::pair<torch::Tensor, torch::Tensor> load_fashion_mnist(const std::string& root, bool train) {
  TORCH_CHECK(std::filesystem::is_directory(root), root, ": Fashion-MNIST directory not found");
  const std::string prefix = root + "/" + (train ? "train" : "t10k");
  auto pick = [](const std::string& base) {
    return std::filesystem::exists(base + ".gz") || !std::filesystem::exists(base) ? base + ".gz"
                                                                                   : base;
  };
  const std::string img_path = pick(prefix + "-images-idx3-ubyte");
  const std::string lbl_path = pick(prefix + "-labels-idx1-ubyte");
  auto images = read_idx(img_path, 0x803);
  auto labels = read_idx(lbl_path, 0x801);
  TORCH_CHECK(images.size(0) == labels.size(0), img_path, ": ", images.size(0), " images but ",
              lbl_path, " has ", labels.size(0), " labels");
  const auto max_label = labels.max().item<int64_t>();
  TORCH_CHECK(max_label < 10, lbl_path, ": label ", max_label, " out of range [0, 10)");
  return {images.unsqueeze(1).contiguous(), labels.to(torch::kInt64)};
}

}  // namespace profit::data
