#pragma once
/// Every librdkafka error is classified once, here: retriable, abortable (the open transaction
/// must be aborted), fatal (the client instance must be recreated) or fenced (another instance
/// now owns this transactional.id or group.instance.id: stop, never recreate). Callers decide by
/// class, never by code.

#include <stdexcept>
#include <string>

namespace orderpipe::kafka {

class KafkaError {
  public:
    KafkaError() = default;
    KafkaError(int code, std::string name, std::string message, bool fatal, bool retriable,
               bool txn_requires_abort, bool fenced = false, bool member_fenced = false)
        : code_(code),
          name_(std::move(name)),
          message_(std::move(message)),
          fatal_(fatal),
          retriable_(retriable),
          txn_requires_abort_(txn_requires_abort),
          fenced_(fenced),
          member_fenced_(member_fenced) {}

    int code() const { return code_; }                 ///< rd_kafka_resp_err_t value
    const std::string& name() const { return name_; }  ///< e.g. "_TIMED_OUT"
    const std::string& message() const { return message_; }
    bool is_fatal() const { return fatal_; }          ///< recreate the client
    bool is_retriable() const { return retriable_; }  ///< the same call may succeed later
    bool transaction_requires_abort() const { return txn_requires_abort_; }
    /// A newer producer took over this transactional.id (PRODUCER_FENCED,
    /// INVALID_PRODUCER_EPOCH). Recreating the producer would fence the newer instance in turn:
    /// the owner must stop for good (docs/ARCHITECTURE.md "Fencing").
    bool is_fenced() const { return fenced_; }
    /// Another consumer joined with this group.instance.id (FENCED_INSTANCE_ID). Not proof of a
    /// second instance: librdkafka 2.0.2 also reports it after a coordinator restart.
    bool is_member_fenced() const { return member_fenced_; }
    std::string describe() const;

  private:
    int code_ = 0;
    std::string name_;
    std::string message_;
    bool fatal_ = false;
    bool retriable_ = false;
    bool txn_requires_abort_ = false;
    bool fenced_ = false;
    bool member_fenced_ = false;
};

class KafkaException : public std::runtime_error {
  public:
    explicit KafkaException(KafkaError error)
        : std::runtime_error(error.describe()), error_(std::move(error)) {}
    const KafkaError& error() const { return error_; }

  private:
    KafkaError error_;
};

/// A configuration property librdkafka refused; names the property and, when known, the
/// environment variable it came from. Not retryable: fix the setting.
class ConfigurationError : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

}  // namespace orderpipe::kafka
