// Crash-safe file writing: write to "<path>.tmp", fsync, rename over <path>, fsync the folder.
// A reader never sees a half-written file, and an earlier version survives a crash mid-write.
#pragma once

#include <string>

namespace profit::io {

void write_file_atomic(const std::string& path, const std::string& bytes);
std::string read_file(const std::string& path);

}  // namespace profit::io
