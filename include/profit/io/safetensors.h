// Reader/writer for the safetensors format: u64 little-endian header length N, N bytes of JSON
// {"name": {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]}, "__metadata__": {...}},
// then the raw little-endian tensor bytes. Supports F64/F32/F16/BF16/I64/I32/I16/I8/U8/BOOL.
#pragma once

#include <torch/torch.h>

#include <map>
#include <string>

namespace profit::io {

using TensorMap = std::map<std::string, torch::Tensor>;

/// Parses a safetensors file. Throws naming the file and the tensor on any inconsistency
/// (truncated file, header out of bounds, unknown dtype, offsets not matching the shape).
TensorMap load_safetensors(const std::string& path);
TensorMap parse_safetensors(const std::string& bytes, const std::string& name_for_errors);

/// Serialises CPU tensors (contiguous copies are made as needed); written atomically.
void save_safetensors(const std::string& path, const TensorMap& tensors);
std::string serialize_safetensors(const TensorMap& tensors);

}  // namespace profit::io
