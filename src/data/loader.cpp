#include "profit/data/loader.h"

#include <condition_variable>
#include <exception>
#include <map>
#include <mutex>
#include <numeric>
#include <thread>

#include "profit/common.h"

namespace profit::data {

DataLoader::DataLoader(DatasetPtr dataset, LoaderOptions options)
    : dataset_(std::move(dataset)), options_(options) {
  TORCH_CHECK(dataset_ && dataset_->size() > 0, "data loader: empty dataset");
  TORCH_CHECK(options_.batch_size > 0, "batch size must be positive, got ", options_.batch_size);
  TORCH_CHECK(options_.workers >= 0 && options_.prefetch >= 1, "bad workers/prefetch");
}

int64_t DataLoader::batches_per_epoch() const {
  const auto n = static_cast<int64_t>(dataset_->size());
  const int64_t b = options_.batch_size;
  if (options_.drop_last && n >= b) return n / b;
  return (n + b - 1) / b;
}

std::vector<size_t> DataLoader::order(int64_t epoch) const {
  std::vector<size_t> idx(dataset_->size());
  std::iota(idx.begin(), idx.end(), size_t{0});
  if (options_.shuffle) {
    Rng rng(mix_seed(options_.seed, static_cast<uint64_t>(epoch)));
    for (size_t i = idx.size(); i > 1; --i) {
      std::swap(idx[i - 1], idx[std::uniform_int_distribution<size_t>(0, i - 1)(rng)]);
    }
  }
  return idx;
}

Batch DataLoader::make_batch(const std::vector<size_t>& ord, int64_t epoch, int64_t b) const {
  const auto n = static_cast<int64_t>(ord.size());
  const int64_t begin = b * options_.batch_size;
  const int64_t end = std::min(n, begin + options_.batch_size);
  TORCH_CHECK(begin < end, "batch ", b, " out of range");
  std::vector<torch::Tensor> images;
  auto labels = torch::empty({end - begin}, torch::kInt64);
  const uint64_t epoch_seed = mix_seed(options_.seed ^ 0xA5A5A5A5ULL, static_cast<uint64_t>(epoch));
  for (int64_t i = begin; i < end; ++i) {
    Rng rng(mix_seed(epoch_seed, static_cast<uint64_t>(i)));
    images.push_back(dataset_->image(ord[i], rng));
    labels[i - begin] = dataset_->label(ord[i]);
  }
  return {torch::stack(images), labels, b};
}

Batch DataLoader::make_batch(int64_t epoch, int64_t b) const {
  return make_batch(order(epoch), epoch, b);
}

class InlineEpoch : public EpochIterator {
 public:
  InlineEpoch(const DataLoader& l, int64_t epoch, int64_t start)
      : loader_(l), order_(l.order(epoch)), epoch_(epoch), next_(start) {}
  bool next(Batch& out) override {
    if (next_ >= loader_.batches_per_epoch()) return false;
    out = loader_.make_batch(order_, epoch_, next_++);
    return true;
  }

 private:
  const DataLoader& loader_;
  std::vector<size_t> order_;
  int64_t epoch_, next_;
};

// Workers claim batch indices in order, but never more than `prefetch` ahead of the consumer;
// finished batches wait in a map until the consumer asks for them, so order is preserved.
class ThreadedEpoch : public EpochIterator {
 public:
  ThreadedEpoch(const DataLoader& l, int64_t epoch, int64_t start)
      : loader_(l),
        order_(l.order(epoch)),
        epoch_(epoch),
        claim_(start),
        consume_(start),
        end_(l.batches_per_epoch()) {
    for (int64_t w = 0; w < l.options_.workers; ++w) threads_.emplace_back([this] { work(); });
  }
  ~ThreadedEpoch() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
  }
  bool next(Batch& out) override {
    if (consume_ >= end_) return false;
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return done_.count(consume_) > 0; });
    auto node = done_.extract(consume_);
    ++consume_;
    lock.unlock();
    cv_.notify_all();
    if (node.mapped().error) std::rethrow_exception(node.mapped().error);
    out = std::move(node.mapped().batch);
    return true;
  }

 private:
  struct Slot {
    Batch batch;
    std::exception_ptr error;
  };
  void work() {
    for (;;) {
      int64_t b;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] {
          return stop_ || claim_ >= end_ || claim_ < consume_ + loader_.options_.prefetch;
        });
        if (stop_ || claim_ >= end_) return;
        b = claim_++;
      }
      Slot slot;
      try {
        slot.batch = loader_.make_batch(order_, epoch_, b);
      } catch (...) {
        slot.error = std::current_exception();
      }
      {
        std::lock_guard<std::mutex> lock(mu_);
        done_.emplace(b, std::move(slot));
      }
      cv_.notify_all();
    }
  }
  const DataLoader& loader_;
  std::vector<size_t> order_;
  int64_t epoch_, claim_, consume_, end_;
  bool stop_ = false;
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<int64_t, Slot> done_;
  std::vector<std::thread> threads_;
};

std::unique_ptr<EpochIterator> DataLoader::epoch(int64_t epoch, int64_t start_batch) const {
  if (options_.workers == 0) return std::make_unique<InlineEpoch>(*this, epoch, start_batch);
  return std::make_unique<ThreadedEpoch>(*this, epoch, start_batch);
}

}  // namespace profit::data
