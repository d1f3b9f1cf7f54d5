#include "profit/train/metrics.h"

#include <filesystem>
#include <sstream>

#include "profit/io/atomic_file.h"

namespace profit::train {

MetricsLog::MetricsLog(const std::string& path, int64_t keep_until_step) {
  if (keep_until_step >= 0 && std::filesystem::exists(path)) {
    std::ifstream in(path);
    std::ostringstream kept;
    std::string line;
    while (std::getline(in, line)) {
      auto j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
      if (j.is_discarded()) continue;  // a torn last line from a kill
      if (j.contains("step") && j["step"].get<int64_t>() > keep_until_step) continue;
      kept << line << '\n';
    }
    io::write_file_atomic(path, kept.str());
  } else if (keep_until_step < 0) {
    std::ofstream(path, std::ios::trunc);
  }
  out_.open(path, std::ios::app);
  TORCH_CHECK(out_.good(), path, ": cannot open metrics log");
}

void MetricsLog::write(const nlohmann::json& record) {
  out_ << record.dump() << '\n';
  out_.flush();
}

}  // namespace profit::train
