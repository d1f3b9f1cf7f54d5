// JSON-lines metrics log: one object per line, appended and flushed as training goes.
#pragma once

#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

namespace profit::train {

class MetricsLog {
 public:
  /// Opens `path` for appending. With keep_until_step >= 0 (resume), first drops the records of
  /// steps after that one, so a resumed run's log equals an uninterrupted run's.
  explicit MetricsLog(const std::string& path, int64_t keep_until_step = -1);
  void write(const nlohmann::json& record);

 private:
  std::ofstream out_;
};

}  // namespace profit::train
