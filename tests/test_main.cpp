#include <gtest/gtest.h>

#include "profit/common.h"

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  // One intra-op thread: tiny test tensors gain nothing from more, and OpenMP spin-waiting
  // next to another busy process made a 5 s test take 75 s.
  profit::configure_runtime(1);
  return RUN_ALL_TESTS();
}
