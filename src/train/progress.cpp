#include "profit/train/progress.h"

#include <unistd.h>

#include <cstdio>

namespace profit::train {

std::string format_duration(double s) {
  char buf[32];
  const auto t = static_cast<int64_t>(s + 0.5);
  if (t >= 3600)
    std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
  else
    std::snprintf(buf, sizeof buf, "%02ld:%02ld", t / 60, t % 60);
  return buf;
}

ProgressBar::ProgressBar(std::string label, int64_t total, std::string unit, bool enabled)
    : label_(std::move(label)),
      unit_(std::move(unit)),
      total_(std::max<int64_t>(1, total)),
      enabled_(enabled),
      tty_(::isatty(STDERR_FILENO) != 0),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_) {}

void ProgressBar::update(int64_t done, int64_t items, const std::string& extra) {
  if (!enabled_) return;
  const auto now = std::chrono::steady_clock::now();
  if (tty_) {
    if (std::chrono::duration<double>(now - last_draw_).count() < 0.25 && done < total_) return;
  } else {
    const int decile = static_cast<int>(10 * done / total_);
    if (decile == last_decile_ || done == 0) return;
    last_decile_ = decile;
  }
  last_draw_ = now;
  draw(done, items, extra, false);
}

void ProgressBar::finish(const std::string& extra) {
  if (!enabled_) return;
  if (!tty_ && last_decile_ == 10 && extra.empty()) return;
  draw(total_, -1, extra, true);
}

void ProgressBar::draw(int64_t done, int64_t items, const std::string& extra, bool final) {
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double frac = static_cast<double>(done) / total_;
  const int width = 24, filled = static_cast<int>(frac * width);
  std::string bar(filled, '#');
  bar.append(width - filled, '.');
  const double eta = done > 0 ? elapsed * (total_ - done) / done : 0.0;
  char rate[48] = "";
  if (items > 0 && elapsed > 0)
    std::snprintf(rate, sizeof rate, " %.0f %s/s", items / elapsed, unit_.c_str());
  std::fprintf(stderr, "%s%s [%s] %ld/%ld%s %s<%s %s%s", tty_ ? "\r\033[K" : "", label_.c_str(),
               bar.c_str(), static_cast<long>(done), static_cast<long>(total_), rate,
               format_duration(elapsed).c_str(), format_duration(eta).c_str(), extra.c_str(),
               (final || !tty_) ? "\n" : "");
  std::fflush(stderr);
}

}  // namespace profit::train
