#pragma once
/// Every librdkafka error is classified once, here: retriable, abortable (the open transaction
/// must be aborted) or fatal (the client instance must be recreated). Callers decide by class,
/// never by code.

#include <stdexcept>
#include <string>

namespace orderpipe::kafka {

class KafkaError {
  public:
    KafkaError() = default;
    KafkaError(int code, std::string name, std::string message, bool fatal, bool retriable,
               bool txn_requires_abort)
        : code_(code),
          name_(std::move(name)),
          message_(std::move(message)),
          fatal_(fatal),
          retriable_(retriable),
          txn_requires_abort_(txn_requires_abort) {}

    int code() const { return code_; }                 ///< rd_kafka_resp_err_t value
    const std::string& name() const { return name_; }  ///< e.g. "_TIMED_OUT"
    const std::string& message() const { return message_; }
    bool is_fatal() const { return fatal_; }          ///< recreate the client
    bool is_retriable() const { return retriable_; }  ///< the same call may succeed later
    bool transaction_requires_abort() const { return txn_requires_abort_; }
    std::string describe() const;

  private:
    int code_ = 0;
    std::string name_;
    std::string message_;
    bool fatal_ = false;
    bool retriable_ = false;
    bool txn_requires_abort_ = false;
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
/// environment variable it came from.
class ConfigurationError : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

}  // namespace orderpipe::kafka
