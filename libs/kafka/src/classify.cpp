#include "classify.hpp"

namespace orderpipe::kafka {

std::string KafkaError::describe() const {
    std::string s = name_ + ": " + message_;
    if (fenced_) s += " (fenced: another instance took over)";
    if (member_fenced_) s += " (group member fenced)";
    if (fatal_) s += " (fatal)";
    if (retriable_) s += " (retriable)";
    if (txn_requires_abort_) s += " (transaction must be aborted)";
    return s;
}

namespace impl {
namespace {

/// The underlying error of a client in the fatal state; NO_ERROR if it is not.
rd_kafka_resp_err_t underlying_fatal(rd_kafka_t* rk, std::string& reason) {
    if (rk == nullptr) return RD_KAFKA_RESP_ERR_NO_ERROR;
    char buf[512];
    const rd_kafka_resp_err_t code = rd_kafka_fatal_error(rk, buf, sizeof buf);
    if (code != RD_KAFKA_RESP_ERR_NO_ERROR) reason = buf;
    return code;
}

}  // namespace

bool is_fencing_code(rd_kafka_resp_err_t code) {
    switch (code) {
        case RD_KAFKA_RESP_ERR__FENCED:
        case RD_KAFKA_RESP_ERR_PRODUCER_FENCED:
        case RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH:
            return true;
        default:
            return false;
    }
}

KafkaError classify(ErrorHolder error, rd_kafka_t* rk, const std::string& context) {
    rd_kafka_error_t* e = error.get();
    const auto code = rd_kafka_error_code(e);
    const bool fatal = rd_kafka_error_is_fatal(e) != 0;
    std::string message = rd_kafka_error_string(e);
    bool fenced = is_fencing_code(code);
    bool member_fenced = code == RD_KAFKA_RESP_ERR_FENCED_INSTANCE_ID;
    if (fatal) {
        std::string reason;
        const auto underlying = underlying_fatal(rk, reason);
        if (is_fencing_code(underlying)) {
            fenced = true;
            if (underlying != code) message += " (" + reason + ")";
        }
        member_fenced = member_fenced || underlying == RD_KAFKA_RESP_ERR_FENCED_INSTANCE_ID;
    }
    if (!context.empty()) message = context + ": " + message;
    return KafkaError(code, rd_kafka_error_name(e), message, fatal,
                      rd_kafka_error_is_retriable(e) != 0,
                      rd_kafka_error_txn_requires_abort(e) != 0, fenced, member_fenced);
}

KafkaError classify(rd_kafka_resp_err_t code, std::string context, rd_kafka_t* rk) {
    // Exhaustive where it matters: the transport-level conditions that go away by themselves.
    bool retriable = false;
    switch (code) {
        case RD_KAFKA_RESP_ERR__TRANSPORT:
        case RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN:
        case RD_KAFKA_RESP_ERR__TIMED_OUT:
        case RD_KAFKA_RESP_ERR__QUEUE_FULL:
        case RD_KAFKA_RESP_ERR__RESOLVE:
        case RD_KAFKA_RESP_ERR__WAIT_COORD:
        case RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT:
        case RD_KAFKA_RESP_ERR_NOT_COORDINATOR:
        case RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE:
        case RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS:
        case RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE:
        case RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION:
        case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
        case RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS:
        case RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND:
        case RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS:
        case RD_KAFKA_RESP_ERR_UNSTABLE_OFFSET_COMMIT:
            retriable = true;
            break;
        default:
            break;
    }
    std::string message = rd_kafka_err2str(code);
    bool fenced = is_fencing_code(code);
    bool member_fenced = code == RD_KAFKA_RESP_ERR_FENCED_INSTANCE_ID;
    const bool fatal = code == RD_KAFKA_RESP_ERR__FATAL;
    if (fatal) {
        std::string reason;
        const auto underlying = underlying_fatal(rk, reason);
        if (underlying != RD_KAFKA_RESP_ERR_NO_ERROR) message += ": " + reason;
        fenced = fenced || is_fencing_code(underlying);
        member_fenced = member_fenced || underlying == RD_KAFKA_RESP_ERR_FENCED_INSTANCE_ID;
    }
    if (!context.empty()) message = context + ": " + message;
    return KafkaError(code, rd_kafka_err2name(code), message, fatal, retriable, false, fenced,
                      member_fenced);
}

}  // namespace impl
}  // namespace orderpipe::kafka
