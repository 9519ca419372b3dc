#pragma once
/// A failure of the store a service keeps its state in, as the code above a storage port sees
/// it: no database type, only whether it may pass (docs/ARCHITECTURE.md "Storage").
///
/// Transient — the database unreachable, restarting, stuck past a timeout, or a conflict with
/// another writer — means the same request may well succeed in a moment: the HTTP server answers
/// a handler that lets one escape with 503 and Retry-After, and a processing loop aborts the
/// batch and takes it again after a backoff. Anything else is a defect or a broken database.

#include <stdexcept>
#include <string>

namespace orderpipe {

class StorageError : public std::runtime_error {
  public:
    StorageError(const std::string& what, bool transient)
        : std::runtime_error(what), transient_(transient) {}
    bool transient() const { return transient_; }

  private:
    bool transient_;
};

}  // namespace orderpipe
