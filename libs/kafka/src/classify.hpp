#pragma once
// Classification of librdkafka errors (private to libs/kafka): the one place that maps codes to
// the classes of KafkaError.

#include "orderpipe/kafka/error.hpp"

#include <librdkafka/rdkafka.h>

#include <memory>
#include <string>

namespace orderpipe::kafka::impl {

struct ErrorDeleter {
    void operator()(rd_kafka_error_t* e) const { rd_kafka_error_destroy(e); }
};
using ErrorHolder = std::unique_ptr<rd_kafka_error_t, ErrorDeleter>;

/// True for the codes that mean another producer took over our transactional.id.
bool is_fencing_code(rd_kafka_resp_err_t code);

/// Classifies an rd_kafka_error_t (transactional API); takes ownership. For a fatal error the
/// client's underlying fatal error (rd_kafka_fatal_error) decides whether it was fencing.
KafkaError classify(ErrorHolder error, rd_kafka_t* rk, const std::string& context);
/// Classifies a plain response code (no transactional flags available). For __FATAL, `rk` (if
/// given) tells the underlying error.
KafkaError classify(rd_kafka_resp_err_t code, std::string context = {}, rd_kafka_t* rk = nullptr);

}  // namespace orderpipe::kafka::impl
