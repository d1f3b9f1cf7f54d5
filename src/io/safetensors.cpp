#include "profit/io/safetensors.h"

#include <cstring>
#include <nlohmann/json.hpp>

#include "profit/io/atomic_file.h"

namespace profit::io {

namespace {

struct DtypeEntry {
  const char* name;
  torch::ScalarType type;
};
const DtypeEntry kDtypes[] = {{"F64", torch::kFloat64}, {"F32", torch::kFloat32},
                              {"F16", torch::kFloat16}, {"BF16", torch::kBFloat16},
                              {"I64", torch::kInt64},   {"I32", torch::kInt32},
                              {"I16", torch::kInt16},   {"I8", torch::kInt8},
                              {"U8", torch::kUInt8},    {"BOOL", torch::kBool}};

torch::ScalarType dtype_from_name(const std::string& s, const std::string& file,
                                  const std::string& key) {
  for (const auto& d : kDtypes)
    if (s == d.name) return d.type;
  TORCH_CHECK(false, file, ": tensor '", key, "' has unsupported dtype '", s, "'");
  return torch::kFloat32;
}

const char* dtype_name(torch::ScalarType t) {
  for (const auto& d : kDtypes)
    if (t == d.type) return d.name;
  TORCH_CHECK(false, "safetensors: cannot store dtype ", t);
  return "";
}

}  // namespace

TensorMap parse_safetensors(const std::string& bytes, const std::string& file) {
  TORCH_CHECK(bytes.size() >= 8, file, ": truncated safetensors file (", bytes.size(), " bytes)");
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | static_cast<uint8_t>(bytes[i]);
  TORCH_CHECK(header_len <= bytes.size() - 8, file, ": header length ", header_len,
              " exceeds file size ", bytes.size());
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(bytes.begin() + 8, bytes.begin() + 8 + header_len);
  } catch (const std::exception& e) {
    TORCH_CHECK(false, file, ": corrupt safetensors header (", e.what(), ")");
  }
  TORCH_CHECK(header.is_object(), file, ": safetensors header is not a JSON object");
  const size_t data_begin = 8 + header_len;
  const size_t data_size = bytes.size() - data_begin;
  TensorMap out;
  for (const auto& [key, entry] : header.items()) {
    if (key == "__metadata__") continue;
    TORCH_CHECK(entry.is_object() && entry.contains("dtype") && entry.contains("shape") &&
                    entry.contains("data_offsets"),
                file, ": tensor '", key, "' lacks dtype/shape/data_offsets");
    const auto type = dtype_from_name(entry["dtype"].get<std::string>(), file, key);
    std::vector<int64_t> shape = entry["shape"].get<std::vector<int64_t>>();
    const auto offsets = entry["data_offsets"].get<std::vector<uint64_t>>();
    TORCH_CHECK(offsets.size() == 2 && offsets[0] <= offsets[1] && offsets[1] <= data_size, file,
                ": tensor '", key, "' data offsets out of bounds (file truncated?)");
    auto t = torch::empty(shape, torch::TensorOptions().dtype(type));
    const size_t nbytes = static_cast<size_t>(t.numel()) * t.element_size();
    TORCH_CHECK(offsets[1] - offsets[0] == nbytes, file, ": tensor '", key, "' has ",
                offsets[1] - offsets[0], " bytes, shape needs ", nbytes);
    if (nbytes) std::memcpy(t.data_ptr(), bytes.data() + data_begin + offsets[0], nbytes);
    out.emplace(key, t);
  }
  return out;
}

TensorMap load_safetensors(const std::string& path) {
  return parse_safetensors(read_file(path), path);
}

std::string serialize_safetensors(const TensorMap& tensors) {
  nlohmann::json header = nlohmann::json::object();
  std::string data;
  for (const auto& [key, t0] : tensors) {
    auto t = t0.detach().to(torch::kCPU).contiguous();
    const size_t nbytes = static_cast<size_t>(t.numel()) * t.element_size();
    header[key] = {{"dtype", dtype_name(t.scalar_type())},
                   {"shape", t.sizes().vec()},
                   {"data_offsets", {data.size(), data.size() + nbytes}}};
    data.append(static_cast<const char*>(t.data_ptr()), nbytes);
  }
  std::string h = header.dump();
  h.append((8 - h.size() % 8) % 8, ' ');  // align the data section to 8 bytes
  std::string out(8, '\0');
  uint64_t n = h.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xFF);
  return out + h + data;
}

void save_safetensors(const std::string& path, const TensorMap& tensors) {
  write_file_atomic(path, serialize_safetensors(tensors));
}

}  // namespace profit::io
