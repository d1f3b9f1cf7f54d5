#include "profit/data/transforms.h"

#include <cmath>
#ifdef PROFIT_WITH_OPENCV
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>
#endif

namespace profit::data {

torch::Tensor small_image_transform(const uint8_t* src, int64_t c, int64_t h, int64_t w,
                                    int64_t padding, bool flip, const Normalize& norm, Rng* rng) {
  TORCH_CHECK(norm.mean.size() == static_cast<size_t>(c) && norm.std.size() == norm.mean.size(),
              "normalize has ", norm.mean.size(), " channels, image has ", c);
  int64_t dy = 0, dx = 0;
  bool mirror = false;
  if (rng != nullptr && padding > 0) {
    std::uniform_int_distribution<int64_t> off(-padding, padding);
    dy = off(*rng);
    dx = off(*rng);
  }
  if (rng != nullptr && flip) mirror = std::uniform_int_distribution<int>(0, 1)(*rng) == 1;
  auto out = torch::empty({c, h, w}, torch::kFloat32);
  float* dst = out.data_ptr<float>();
  for (int64_t ch = 0; ch < c; ++ch) {
    const float scale = 1.0f / (255.0f * norm.std[ch]);
    const float zero = -norm.mean[ch] / norm.std[ch];  // value of a zero-padded pixel
    for (int64_t y = 0; y < h; ++y) {
      const int64_t sy = y + dy;
      for (int64_t x = 0; x < w; ++x) {
        const int64_t sx = (mirror ? w - 1 - x : x) + dx;
        float v = zero;
        if (sy >= 0 && sy < h && sx >= 0 && sx < w) v = src[(ch * h + sy) * w + sx] * scale + zero;
        dst[(ch * h + y) * w + x] = v;
      }
    }
  }
  return out;
}

bool random_erase(torch::Tensor& image, double p, Rng& rng) {
  TORCH_CHECK(p >= 0.0 && p <= 1.0, "random erasing probability must be in [0, 1], got ", p);
  TORCH_CHECK(image.dim() == 3, "random erasing expects [C, H, W], got ", image.sizes());
  if (p == 0.0) return false;
  std::uniform_real_distribution<double> u01(0.0, 1.0);
  if (u01(rng) >= p) return false;
  const int64_t h = image.size(1), w = image.size(2);
  const double area = static_cast<double>(h * w);
  const double log_lo = std::log(0.3), log_hi = std::log(3.3);
  for (int attempt = 0; attempt < 10; ++attempt) {
    const double target = area * (0.02 + (0.33 - 0.02) * u01(rng));
    const double ratio = std::exp(log_lo + (log_hi - log_lo) * u01(rng));
    const int64_t eh = std::lround(std::sqrt(target * ratio));
    const int64_t ew = std::lround(std::sqrt(target / ratio));
    if (eh < 1 || ew < 1 || eh >= h || ew >= w) continue;
    const int64_t top = std::uniform_int_distribution<int64_t>(0, h - eh)(rng);
    const int64_t left = std::uniform_int_distribution<int64_t>(0, w - ew)(rng);
    image.narrow(1, top, eh).narrow(2, left, ew).zero_();
    return true;
  }
  return false;
}

CropBox random_resized_crop_box(int height, int width, Rng& rng, double scale_min,
                                double scale_max) {
  // torchvision's algorithm: 10 attempts at a random area/aspect ratio, then a central crop
  // clamped to the ratio range.
  const double area = static_cast<double>(height) * width;
  const double log_lo = std::log(3.0 / 4.0), log_hi = std::log(4.0 / 3.0);
  std::uniform_real_distribution<double> u01(0.0, 1.0);
  for (int attempt = 0; attempt < 10; ++attempt) {
    const double target = area * (scale_min + (scale_max - scale_min) * u01(rng));
    const double ratio = std::exp(log_lo + (log_hi - log_lo) * u01(rng));
    const int w = static_cast<int>(std::lround(std::sqrt(target * ratio)));
    const int h = static_cast<int>(std::lround(std::sqrt(target / ratio)));
    if (w > 0 && h > 0 && w <= width && h <= height) {
      const int top = std::uniform_int_distribution<int>(0, height - h)(rng);
      const int left = std::uniform_int_distribution<int>(0, width - w)(rng);
      return {top, left, h, w};
    }
  }
  const double in_ratio = static_cast<double>(width) / height;
  int w = width, h = height;
  if (in_ratio < 3.0 / 4.0) {
    h = static_cast<int>(std::lround(w / (3.0 / 4.0)));
  } else if (in_ratio > 4.0 / 3.0) {
    w = static_cast<int>(std::lround(h * (4.0 / 3.0)));
  }
  return {(height - h) / 2, (width - w) / 2, h, w};
}

#ifdef PROFIT_WITH_OPENCV
static int cv_interp(Interp i) {
  return i == Interp::kBicubic ? cv::INTER_CUBIC : cv::INTER_LINEAR;
}

torch::Tensor mat_to_tensor(const cv::Mat& rgb, const Normalize& norm) {
  TORCH_CHECK(rgb.type() == CV_8UC3 && norm.mean.size() == 3, "expected an RGB uint8 image");
  const int h = rgb.rows, w = rgb.cols;
  auto out = torch::empty({3, h, w}, torch::kFloat32);
  float* dst = out.data_ptr<float>();
  for (int y = 0; y < h; ++y) {
    const uint8_t* row = rgb.ptr<uint8_t>(y);
    for (int x = 0; x < w; ++x) {
      for (int c = 0; c < 3; ++c) {
        dst[(c * h + y) * w + x] = (row[3 * x + c] / 255.0f - norm.mean[c]) / norm.std[c];
      }
    }
  }
  return out;
}

torch::Tensor imagenet_train_transform(const cv::Mat& rgb, int size, Interp interp,
                                       const Normalize& norm, Rng& rng) {
  const CropBox box = random_resized_crop_box(rgb.rows, rgb.cols, rng);
  cv::Mat crop = rgb(cv::Rect(box.left, box.top, box.width, box.height)), resized;
  cv::resize(crop, resized, cv::Size(size, size), 0, 0, cv_interp(interp));
  if (std::uniform_int_distribution<int>(0, 1)(rng) == 1) cv::flip(resized, resized, 1);
  return mat_to_tensor(resized, norm);
}

torch::Tensor imagenet_eval_transform(const cv::Mat& rgb, int size, Interp interp,
                                      const Normalize& norm) {
  // Resize the short side to size/0.875 (256 for 224), keeping the aspect ratio, then crop.
  const int short_side = static_cast<int>(size / 0.875);
  int h = rgb.rows, w = rgb.cols;
  int nh, nw;
  if (h <= w) {
    nh = short_side;
    nw = static_cast<int>(static_cast<double>(short_side) * w / h);
  } else {
    nw = short_side;
    nh = static_cast<int>(static_cast<double>(short_side) * h / w);
  }
  cv::Mat resized;
  cv::resize(rgb, resized, cv::Size(nw, nh), 0, 0, cv_interp(interp));
  const int top = static_cast<int>(std::lround((nh - size) / 2.0));
  const int left = static_cast<int>(std::lround((nw - size) / 2.0));
  return mat_to_tensor(resized(cv::Rect(left, top, size, size)).clone(), norm);
}
#endif  // PROFIT_WITH_OPENCV

}  // namespace profit::data
