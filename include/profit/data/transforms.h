// Image transforms with torchvision semantics.
//
// Small images (Fashion-MNIST, CIFAR) live in memory as uint8 [C, H, W]; ImageFolder images are
// decoded with OpenCV into HWC uint8 cv::Mat. Both end in Normalize -> float [C, H, W].
#pragma once

#include <torch/torch.h>

#include <random>
#include <vector>

namespace cv {
class Mat;
}

namespace profit::data {

using Rng = std::mt19937_64;

/// Per-channel mean/std normalisation constants (on the [0, 1] scale).
struct Normalize {
  std::vector<float> mean, std;
};

/// Random crop of size HxW from the image zero-padded by `padding` on each side, then an optional
/// horizontal flip with probability 0.5, then normalize. src: uint8 [C, H, W] contiguous.
/// With padding = 0 and flip = false this is exactly ToTensor + Normalize.
torch::Tensor small_image_transform(const uint8_t* src, int64_t c, int64_t h, int64_t w,
                                    int64_t padding, bool flip, const Normalize& norm, Rng* rng);

/// torchvision RandomErasing(p, scale=(0.02, 0.33), ratio=(0.3, 3.3), value=0) on a normalized
/// image [C, H, W], in place: with probability p, up to 10 draws of a rectangle with a random
/// area fraction and log-uniform aspect ratio; the first that fits is set to 0 in every channel.
/// Returns whether a rectangle was erased. With p = 0 no random number is drawn.
bool random_erase(torch::Tensor& image, double p, Rng& rng);

enum class Interp { kBilinear, kBicubic };

/// torchvision RandomResizedCrop(size, scale=(0.08, 1), ratio=(3/4, 4/3)) on an HWC image:
/// the crop box (top, left, height, width) it would choose, including the centre-crop fallback.
struct CropBox {
  int top, left, height, width;
};
CropBox random_resized_crop_box(int height, int width, Rng& rng, double scale_min = 0.08,
                                double scale_max = 1.0);

#ifdef PROFIT_WITH_OPENCV  // a build configured with -DPROFIT_WITH_OPENCV=OFF has no decoder
/// Train transform: RandomResizedCrop(size) + RandomHorizontalFlip + Normalize.
torch::Tensor imagenet_train_transform(const cv::Mat& rgb, int size, Interp interp,
                                       const Normalize& norm, Rng& rng);
/// Eval transform: Resize(size / 0.875 on the short side) + CenterCrop(size) + Normalize.
torch::Tensor imagenet_eval_transform(const cv::Mat& rgb, int size, Interp interp,
                                      const Normalize& norm);
/// HWC uint8 RGB -> normalized float [C, H, W].
torch::Tensor mat_to_tensor(const cv::Mat& rgb, const Normalize& norm);
#endif

}  // namespace profit::data
