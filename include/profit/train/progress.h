// Progress bar on stderr with throughput and ETA. On a terminal it redraws one line; otherwise
// (CI logs, files) it prints a line every 10 % so logs stay short.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace profit::train {

class ProgressBar {
 public:
  ProgressBar(std::string label, int64_t total, std::string unit = "img", bool enabled = true);
  /// `done` steps of `total`; `items` processed so far (for throughput); `extra` e.g. "loss 0.31".
  void update(int64_t done, int64_t items, const std::string& extra = "");
  void finish(const std::string& extra = "");

 private:
  void draw(int64_t done, int64_t items, const std::string& extra, bool final);
  std::string label_, unit_;
  int64_t total_;
  bool enabled_, tty_;
  int last_decile_ = -1;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

std::string format_duration(double seconds);

}  // namespace profit::train
