// Model state dicts by name: export, strict import (torchvision/timm safetensors or .pth).
#pragma once

#include <torch/torch.h>

#include <map>
#include <string>
#include <vector>

#include "profit/io/safetensors.h"

namespace profit::io {

/// Parameters and buffers of `m` by dotted name (torchvision's keys), detached, on CPU.
TensorMap state_dict(const torch::nn::Module& m);

struct LoadReport {
  std::vector<std::string> loaded, missing, unexpected;
};

/// Copies `tensors` into `m` by name. Strict (the default): any missing or unexpected key, or
/// any shape mismatch, is an error naming the key (spec D4: never a silent partial load).
/// Non-strict: missing/unexpected keys are returned in the report, shape mismatches still throw.
/// `ignore_prefixes` lists keys that are allowed to be absent from `tensors` (e.g. quantizer
/// parameters when loading an FP checkpoint into a QAT model).
LoadReport load_state_dict(torch::nn::Module& m, const TensorMap& tensors, bool strict = true,
                           const std::string& source = "state dict",
                           const std::vector<std::string>& ignore_missing_substrings = {});

/// Reads a weights file by extension: .safetensors, or .pth/.pt written by Python's torch.save
/// (a dict of tensors, optionally nested under "state_dict"/"model"). "module." prefixes from
/// DataParallel are stripped.
TensorMap load_weights_file(const std::string& path);

}  // namespace profit::io
