#pragma once
/// A SQLite file path in the temporary directory, removed (with its -wal and -shm) at the end.

#include <filesystem>
#include <random>
#include <string>

namespace orderpipe::testing {

struct TempFile {
    explicit TempFile(const std::string& prefix)
        : path((std::filesystem::temp_directory_path() /
                (prefix + "-" + std::to_string(std::random_device{}()) + ".db"))
                   .string()) {}
    ~TempFile() {
        for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path + suffix);
    }
    TempFile(const TempFile&) = delete;
    TempFile& operator=(const TempFile&) = delete;

    std::string path;
};

}  // namespace orderpipe::testing
