#include "orderpipe/kafka/producer.hpp"

#include "holders.hpp"
#include "orderpipe/common/logging.hpp"
#include "orderpipe/kafka/consumer.hpp"

#include <thread>

namespace orderpipe::kafka {
namespace {

using Clock = std::chrono::steady_clock;

int remaining_ms(Clock::time_point deadline) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    return static_cast<int>(std::max<std::int64_t>(left.count(), 1));
}

}  // namespace

struct TransactionalProducer::Impl {
    ClientConfig config;
    ProducerOptions options;
    impl::HandleHolder rk;
    bool initialised = false;
    bool in_transaction = false;

    void create() {
        auto conf = impl::make_conf(
            config,
            {
                {"transactional.id", options.transactional_id},
                {"enable.idempotence", "true"},
                {"acks", "all"},
                {"linger.ms", std::to_string(options.linger.count())},
                {"message.timeout.ms", std::to_string(options.operation_timeout.count())},
                {"transaction.timeout.ms", std::to_string(options.transaction_timeout.count())},
                {"queue.buffering.max.messages", "1000000"},
                {"queue.buffering.max.kbytes", "1048576"},
            });
        rk = impl::make_handle(RD_KAFKA_PRODUCER, std::move(conf));
        initialised = false;
        in_transaction = false;
    }

    /// A KafkaError; on a fatal one, recreate the handle first so the caller can re-init.
    [[noreturn]] void raise(impl::ErrorHolder err, const char* what) {
        KafkaError e = impl::classify(std::move(err));
        KafkaError contextual(e.code(), e.name(), std::string(what) + ": " + e.message(),
                              e.is_fatal(), e.is_retriable(), e.transaction_requires_abort());
        if (e.is_fatal()) {
            log::error("producer fatal error, recreating the producer",
                       {{"transactional_id", options.transactional_id}, {"error", e.describe()}});
            create();
        }
        throw KafkaException(std::move(contextual));
    }
};

TransactionalProducer::TransactionalProducer(ClientConfig config, ProducerOptions options)
    : impl_(std::make_unique<Impl>()) {
    impl_->config = std::move(config);
    impl_->options = std::move(options);
    impl_->create();
}

TransactionalProducer::~TransactionalProducer() {
    if (impl_ && impl_->rk) {
        if (impl_->in_transaction) {
            // Never leave a transaction open on purpose: its records would block read_committed
            // readers (LSO) until the broker's transaction timeout.
            try {
                abort();
            } catch (const std::exception& e) {
                log::warn("abort at shutdown failed", {{"error", e.what()}});
            }
        }
        rd_kafka_flush(impl_->rk.get(), 2000);
    }
}

void TransactionalProducer::init_transactions() {
    if (impl_->initialised) return;
    if (auto* err = rd_kafka_init_transactions(
            impl_->rk.get(), static_cast<int>(impl_->options.operation_timeout.count()))) {
        impl_->raise(impl::ErrorHolder(err), "init_transactions");
    }
    impl_->initialised = true;
}

bool TransactionalProducer::initialised() const { return impl_->initialised; }

void TransactionalProducer::begin() {
    if (auto* err = rd_kafka_begin_transaction(impl_->rk.get())) {
        impl_->raise(impl::ErrorHolder(err), "begin_transaction");
    }
    impl_->in_transaction = true;
}

void TransactionalProducer::produce(const OutgoingRecord& r) {
    rd_kafka_headers_t* hdrs = rd_kafka_headers_new(r.headers.size());
    for (const auto& [name, value] : r.headers) {
        rd_kafka_header_add(hdrs, name.data(), static_cast<ssize_t>(name.size()),
                            value ? value->data() : nullptr,
                            value ? static_cast<ssize_t>(value->size()) : 0);
    }
    // The RD_KAFKA_V_* macros do not parenthesise their arguments: compute them first.
    const void* key_ptr = r.key ? r.key->data() : nullptr;
    const std::size_t key_len = r.key ? r.key->size() : 0;
    void* value_ptr = r.value ? const_cast<char*>(r.value->data()) : nullptr;  // copied (F_COPY)
    const std::size_t value_len = r.value ? r.value->size() : 0;
    for (;;) {
        const rd_kafka_resp_err_t rc = rd_kafka_producev(
            impl_->rk.get(), RD_KAFKA_V_TOPIC(r.topic.c_str()), RD_KAFKA_V_PARTITION(r.partition),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_KEY(key_ptr, key_len),
            RD_KAFKA_V_VALUE(value_ptr, value_len), RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_END);
        if (rc == RD_KAFKA_RESP_ERR_NO_ERROR) return;  // the message now owns the headers
        if (rc == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            rd_kafka_poll(impl_->rk.get(), 10);  // let deliveries drain the local queue
            continue;
        }
        rd_kafka_headers_destroy(hdrs);
        // A produce error inside a transaction poisons it: the caller must abort.
        KafkaError e = impl::classify(rc, "produce to " + r.topic);
        throw KafkaException(KafkaError(e.code(), e.name(), e.message(),
                                        rc == RD_KAFKA_RESP_ERR__FATAL, false, true));
    }
}

void TransactionalProducer::send_offsets(const std::vector<TopicPartitionOffset>& offsets,
                                         const Consumer& consumer) {
    if (offsets.empty()) return;
    auto list = impl::to_list(offsets);
    impl::GroupMetadataHolder meta(
        rd_kafka_consumer_group_metadata(static_cast<rd_kafka_t*>(consumer.native_handle())));
    if (auto* err = rd_kafka_send_offsets_to_transaction(
            impl_->rk.get(), list.get(), meta.get(),
            static_cast<int>(impl_->options.operation_timeout.count()))) {
        impl_->raise(impl::ErrorHolder(err), "send_offsets_to_transaction");
    }
}

TxnOutcome TransactionalProducer::commit_or_abort() {
    // Past the broker's transaction timeout the coordinator has either completed our commit or
    // aborted the transaction itself, so retrying longer than that cannot change anything.
    const auto deadline =
        Clock::now() + impl_->options.transaction_timeout + impl_->options.operation_timeout;
    auto backoff = std::chrono::milliseconds(50);
    for (;;) {
        const int wait_ms = std::min<int>(
            remaining_ms(deadline), static_cast<int>(impl_->options.operation_timeout.count()));
        rd_kafka_error_t* raw = rd_kafka_commit_transaction(impl_->rk.get(), wait_ms);
        if (raw == nullptr) {
            impl_->in_transaction = false;
            return TxnOutcome::kCommitted;
        }
        impl::ErrorHolder err(raw);
        if (rd_kafka_error_txn_requires_abort(raw) != 0) {
            // librdkafka raises this before sending EndTxn(commit) (e.g. a record could not be
            // delivered), so the transaction cannot have committed: abort is the outcome.
            log::warn("transaction must be aborted",
                      {{"transactional_id", impl_->options.transactional_id},
                       {"error", rd_kafka_error_string(raw)}});
            try {
                abort();
            } catch (const KafkaException& e) {
                log::warn("abort did not complete; the producer was recreated",
                          {{"error", e.what()}});
            }
            return TxnOutcome::kAborted;
        }
        if (rd_kafka_error_is_retriable(raw) != 0 && Clock::now() < deadline) {
            // commit_transaction is resumable after a retriable error: call it again.
            log::warn("commit not confirmed yet; retrying",
                      {{"transactional_id", impl_->options.transactional_id},
                       {"error", rd_kafka_error_string(raw)}});
            std::this_thread::sleep_for(backoff);
            backoff = std::min(backoff * 2, std::chrono::milliseconds(1000));
            continue;
        }
        log::error("transaction outcome unknown; recreating the producer",
                   {{"transactional_id", impl_->options.transactional_id},
                    {"error", rd_kafka_error_string(raw)},
                    {"fatal", rd_kafka_error_is_fatal(raw) != 0}});
        impl_->create();
        return TxnOutcome::kUnknown;
    }
}

void TransactionalProducer::abort() {
    if (!impl_->in_transaction) return;
    const auto deadline = Clock::now() + impl_->options.operation_timeout;
    auto backoff = std::chrono::milliseconds(50);
    for (;;) {
        rd_kafka_error_t* raw = rd_kafka_abort_transaction(impl_->rk.get(), remaining_ms(deadline));
        if (raw == nullptr) {
            impl_->in_transaction = false;
            return;
        }
        impl::ErrorHolder err(raw);
        if (rd_kafka_error_is_retriable(raw) != 0 && Clock::now() < deadline) {
            std::this_thread::sleep_for(backoff);  // e.g. __CONFLICT: do not spin
            backoff = std::min(backoff * 2, std::chrono::milliseconds(1000));
            continue;
        }
        // Still mid-abort, or fatal: a fresh handle's init_transactions bumps the epoch, and
        // the coordinator aborts what the old epoch left open (it never sent a commit).
        impl_->in_transaction = false;
        KafkaError e = impl::classify(std::move(err));
        impl_->create();
        throw KafkaException(e);
    }
}

void TransactionalProducer::flush(std::chrono::milliseconds timeout) {
    if (auto err = rd_kafka_flush(impl_->rk.get(), static_cast<int>(timeout.count()))) {
        throw KafkaException(impl::classify(err, "flush"));
    }
}

const ProducerOptions& TransactionalProducer::options() const { return impl_->options; }

}  // namespace orderpipe::kafka
