#include "orderpipe/kafka/producer.hpp"

#include "holders.hpp"
#include "orderpipe/common/faults.hpp"
#include "orderpipe/common/logging.hpp"
#include "orderpipe/kafka/consumer.hpp"

#include <mutex>
#include <thread>

namespace orderpipe::kafka {
namespace {

using Clock = std::chrono::steady_clock;

int remaining_ms(Clock::time_point deadline) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    return static_cast<int>(std::max<std::int64_t>(left.count(), 1));
}

/// Sleeps `d` in slices, returning early (false) once `stop` is set.
bool sleep_unless(const std::atomic<bool>& stop, std::chrono::milliseconds d) {
    const auto until = Clock::now() + d;
    while (Clock::now() < until) {
        if (stop) return false;
        std::this_thread::sleep_for(
            std::min<Clock::duration>(std::chrono::milliseconds(50), until - Clock::now()));
    }
    return !stop;
}

/// rd_kafka_producev of one record (copied), with `opaque` for its delivery report.
rd_kafka_resp_err_t enqueue(rd_kafka_t* rk, const OutgoingRecord& r, void* opaque) {
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
    const rd_kafka_resp_err_t rc =
        rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(r.topic.c_str()), RD_KAFKA_V_PARTITION(r.partition),
                          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                          RD_KAFKA_V_KEY(key_ptr, key_len), RD_KAFKA_V_VALUE(value_ptr, value_len),
                          RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_OPAQUE(opaque), RD_KAFKA_V_END);
    if (rc != RD_KAFKA_RESP_ERR_NO_ERROR) rd_kafka_headers_destroy(hdrs);  // else the message's
    return rc;
}

}  // namespace

const char* to_string(TxnOutcome outcome) {
    switch (outcome) {
        case TxnOutcome::kCommitted:
            return "committed";
        case TxnOutcome::kAborted:
            return "aborted";
        case TxnOutcome::kUnknown:
            return "unknown";
        case TxnOutcome::kFenced:
            return "fenced";
    }
    return "?";
}

struct TransactionalProducer::Impl {
    ClientConfig config;
    ProducerOptions options;
    impl::HandleHolder rk;
    bool initialised = false;
    bool in_transaction = false;
    bool wrote = false;  ///< the open transaction has records or offsets (fault points only)
    std::optional<KafkaError> fenced;  ///< set once; the handle is never recreated after it
    mutable std::mutex acked_mu;
    PartitionOffsets acked;  ///< guarded by acked_mu (acknowledged())

    /// A delivery report (on the thread serving them: produce, flush, commit).
    static void on_delivery(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) noexcept {
        if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR || m->offset < 0) return;
        auto* self = static_cast<Impl*>(opaque);
        try {
            std::lock_guard lock(self->acked_mu);
            auto& next = self->acked[{rd_kafka_topic_name(m->rkt), m->partition}];
            next = std::max(next, m->offset + 1);
        } catch (...) {  // allocation failure: never through librdkafka's C frames
        }
    }

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
        // The delivery report callback keeps the acknowledged offsets (acknowledged()); having
        // one is also what wakes the flush inside commit_transaction as soon as the last record
        // is acknowledged: without one, librdkafka 2.0.2's flush sleeps in 10 ms polls and
        // every commit waits up to 10 ms more (docs/BENCHMARKS.md). A failed delivery fails the
        // commit, which is where we see it.
        rd_kafka_conf_set_dr_msg_cb(conf.get(), &Impl::on_delivery);
        rd_kafka_conf_set_opaque(conf.get(), this);
        rk = impl::make_handle(RD_KAFKA_PRODUCER, std::move(conf));
        initialised = false;
        in_transaction = false;
    }

    /// The handle is unusable (fatal, or an abort that did not complete): start over with a
    /// fresh one, whose init_transactions bumps the epoch and settles what this one left open.
    /// Never after fencing: a new handle would fence the instance that now owns the id.
    void recreate(const std::string& why) {
        if (fenced) return;
        log::warn("recreating the transactional producer",
                  {{"transactional_id", options.transactional_id}, {"why", why}});
        // Let the old handle's requests come back before it is destroyed: librdkafka 2.0.2
        // asserts (rd_kafka_txn_handle_AddPartitionsToTxn: txn_req_cnt > 0, SIGABRT) when an
        // AddPartitionsToTxn answer meets a handle being torn down (seen once in
        // outcomes_kafkatest). Bounded: a broken handle does not hold us longer than this.
        if (rk) rd_kafka_flush(rk.get(), 1000);
        create();
    }

    void note_fenced(const KafkaError& e) {
        if (fenced) return;
        fenced = e;
        initialised = false;
        in_transaction = false;
        log::error("producer fenced: another instance now uses this transactional.id",
                   {{"transactional_id", options.transactional_id}, {"error", e.describe()}});
    }

    void throw_if_fenced() const {
        if (fenced) throw KafkaException(*fenced);
    }

    /// Classifies `err`; fenced → remembered; other fatal → recreated. Then throws it.
    [[noreturn]] void raise(impl::ErrorHolder err, const char* what) {
        KafkaError e = impl::classify(std::move(err), rk.get(), what);
        if (e.is_fenced()) {
            note_fenced(e);
        } else if (e.is_fatal()) {
            recreate(e.describe());
        }
        throw KafkaException(std::move(e));
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
        // Never leave a transaction open on purpose: its records would block read_committed
        // readers (LSO) until the broker's transaction timeout.
        if (impl_->in_transaction) abort();
        rd_kafka_flush(impl_->rk.get(), 2000);
    }
}

void TransactionalProducer::init_transactions() {
    impl_->throw_if_fenced();
    if (impl_->initialised) return;
    if (auto* err = rd_kafka_init_transactions(
            impl_->rk.get(), static_cast<int>(impl_->options.operation_timeout.count()))) {
        impl_->raise(impl::ErrorHolder(err), "init_transactions");
    }
    impl_->initialised = true;
}

bool TransactionalProducer::initialised() const { return impl_->initialised; }
bool TransactionalProducer::fenced() const { return impl_->fenced.has_value(); }

void TransactionalProducer::begin() {
    impl_->throw_if_fenced();
    if (auto* err = rd_kafka_begin_transaction(impl_->rk.get())) {
        impl_->raise(impl::ErrorHolder(err), "begin_transaction");
    }
    impl_->in_transaction = true;
    impl_->wrote = false;
}

void TransactionalProducer::produce(const OutgoingRecord& r) {
    for (;;) {
        const rd_kafka_resp_err_t rc = enqueue(impl_->rk.get(), r, nullptr);
        if (rc == RD_KAFKA_RESP_ERR_NO_ERROR) {
            impl_->wrote = true;
            return;
        }
        if (rc == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            rd_kafka_poll(impl_->rk.get(), 10);  // let deliveries drain the local queue
            continue;
        }
        // A produce error inside a transaction poisons it: the caller must abort.
        KafkaError e = impl::classify(rc, "produce to " + r.topic, impl_->rk.get());
        if (e.is_fenced()) impl_->note_fenced(e);
        throw KafkaException(
            KafkaError(e.code(), e.name(), e.message(), e.is_fatal(), false, true, e.is_fenced()));
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
    impl_->wrote = true;
}

TxnOutcome TransactionalProducer::commit_or_abort(std::optional<Clock::time_point> give_up_at) {
    if (impl_->fenced) return TxnOutcome::kFenced;
    // Injected faults strike only transactions that wrote something.
    const std::string scope = impl_->wrote ? impl_->options.fault_scope : std::string();
    if (!scope.empty() && faults::hit(scope, "commit-unknown-aborted")) {
        // As if the EndTxn request was lost: nothing was committed, and the fresh handle's
        // init_transactions aborts the transaction.
        log::warn("FAULT_INJECT: commit outcome unknown (not committed)", {{"scope", scope}});
        impl_->recreate("injected fault");
        return TxnOutcome::kUnknown;
    }
    const bool unknown_after_commit =
        !scope.empty() && faults::hit(scope, "commit-unknown-committed");
    const bool abortable = !scope.empty() && faults::hit(scope, "commit-abortable");

    // Past the broker's transaction timeout the coordinator has either completed our commit or
    // aborted the transaction itself, so retrying longer than that cannot change anything.
    auto deadline =
        Clock::now() + impl_->options.transaction_timeout + impl_->options.operation_timeout;
    if (give_up_at) deadline = std::min(deadline, *give_up_at);
    auto backoff = std::chrono::milliseconds(50);
    for (;;) {
        rd_kafka_error_t* raw = nullptr;
        if (!abortable) {
            const int wait_ms = std::min<int>(
                remaining_ms(deadline), static_cast<int>(impl_->options.operation_timeout.count()));
            raw = rd_kafka_commit_transaction(impl_->rk.get(), wait_ms);
            if (raw == nullptr) {
                impl_->in_transaction = false;
                if (unknown_after_commit) {
                    // As if the EndTxn answer was lost after the coordinator accepted it.
                    log::warn("FAULT_INJECT: commit outcome unknown (committed)",
                              {{"scope", scope}});
                    impl_->recreate("injected fault");
                    return TxnOutcome::kUnknown;
                }
                return TxnOutcome::kCommitted;
            }
        }
        impl::ErrorHolder err(raw);
        KafkaError e =
            raw != nullptr
                ? impl::classify(std::move(err), impl_->rk.get(), "commit_transaction")
                : KafkaError(0, "INJECTED", "commit-abortable (FAULT_INJECT)", false, false, true);
        if (e.is_fenced()) {
            impl_->note_fenced(e);
            return TxnOutcome::kFenced;
        }
        if (e.transaction_requires_abort()) {
            // librdkafka asks for an abort when the transaction can no longer commit (e.g. a
            // record could not be delivered): abort is then the outcome, once the abort is
            // confirmed. An abort that does not complete leaves it to the next
            // init_transactions, and we cannot tell which way the transaction went until then.
            log::warn(
                "transaction must be aborted",
                {{"transactional_id", impl_->options.transactional_id}, {"error", e.describe()}});
            if (!scope.empty() && faults::hit(scope, "abort-fails")) {
                log::warn("FAULT_INJECT: abort does not complete", {{"scope", scope}});
                impl_->recreate("injected fault");
                return TxnOutcome::kUnknown;
            }
            if (abort()) return TxnOutcome::kAborted;
            return impl_->fenced ? TxnOutcome::kFenced : TxnOutcome::kUnknown;
        }
        if (e.is_retriable() && Clock::now() < deadline) {
            // commit_transaction is resumable after a retriable error: call it again.
            log::warn(
                "commit not confirmed yet; retrying",
                {{"transactional_id", impl_->options.transactional_id}, {"error", e.describe()}});
            std::this_thread::sleep_for(backoff);
            backoff = std::min(backoff * 2, std::chrono::milliseconds(1000));
            continue;
        }
        log::error(
            "transaction outcome unknown",
            {{"transactional_id", impl_->options.transactional_id}, {"error", e.describe()}});
        impl_->recreate("commit outcome unknown");
        return TxnOutcome::kUnknown;
    }
}

bool TransactionalProducer::abort() {
    if (!impl_->in_transaction) return true;
    if (impl_->fenced) return false;
    const auto deadline = Clock::now() + impl_->options.operation_timeout;
    auto backoff = std::chrono::milliseconds(50);
    for (;;) {
        rd_kafka_error_t* raw = rd_kafka_abort_transaction(impl_->rk.get(), remaining_ms(deadline));
        if (raw == nullptr) {
            impl_->in_transaction = false;
            return true;
        }
        KafkaError e = impl::classify(impl::ErrorHolder(raw), impl_->rk.get(), "abort_transaction");
        if (e.is_fenced()) {
            impl_->note_fenced(e);
            return false;
        }
        if (e.is_retriable() && Clock::now() < deadline) {
            std::this_thread::sleep_for(backoff);  // e.g. __CONFLICT: do not spin
            backoff = std::min(backoff * 2, std::chrono::milliseconds(1000));
            continue;
        }
        // Still mid-abort, or fatal: a fresh handle's init_transactions bumps the epoch, and
        // the coordinator aborts what the old epoch left open.
        log::warn("abort did not complete",
                  {{"transactional_id", impl_->options.transactional_id}, {"error", e.describe()}});
        impl_->recreate("abort did not complete");
        return false;
    }
}

void TransactionalProducer::flush(std::chrono::milliseconds timeout) {
    if (auto err = rd_kafka_flush(impl_->rk.get(), static_cast<int>(timeout.count()))) {
        throw KafkaException(impl::classify(err, "flush", impl_->rk.get()));
    }
}

struct Producer::Impl {
    impl::HandleHolder rk;
    std::chrono::milliseconds timeout;
    std::atomic<bool> stopping{false};
    std::thread poller;

    static void on_delivery(rd_kafka_t*, const rd_kafka_message_t* m, void*) noexcept {
        std::unique_ptr<Done> done(static_cast<Done*>(m->_private));
        if (!done) return;
        try {
            if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
                (*done)(std::nullopt);
            } else {
                (*done)(
                    impl::classify(m->err, "send to " + std::string(rd_kafka_topic_name(m->rkt))));
            }
        } catch (...) {  // never through librdkafka's C frames
        }
    }
};

Producer::Producer(ClientConfig config, std::chrono::milliseconds timeout)
    : impl_(std::make_unique<Impl>()) {
    impl_->timeout = timeout;
    auto conf = impl::make_conf(config, {{"enable.idempotence", "true"},
                                         {"acks", "all"},
                                         {"linger.ms", "1"},
                                         {"message.timeout.ms", std::to_string(timeout.count())}});
    rd_kafka_conf_set_dr_msg_cb(conf.get(), &Impl::on_delivery);
    impl_->rk = impl::make_handle(RD_KAFKA_PRODUCER, std::move(conf));
    impl_->poller = std::thread([impl = impl_.get()] {
        while (!impl->stopping) rd_kafka_poll(impl->rk.get(), 100);
    });
}

Producer::~Producer() {
    impl_->stopping = true;
    impl_->poller.join();
    rd_kafka_flush(impl_->rk.get(), static_cast<int>(impl_->timeout.count()));
    // What is still queued fails (purged), so every done is called.
    rd_kafka_purge(impl_->rk.get(), RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    rd_kafka_poll(impl_->rk.get(), 0);
}

void Producer::send(const OutgoingRecord& record, Done done) {
    auto boxed = std::make_unique<Done>(std::move(done));
    const rd_kafka_resp_err_t rc = enqueue(impl_->rk.get(), record, boxed.get());
    if (rc == RD_KAFKA_RESP_ERR_NO_ERROR) {
        boxed.release();  // the delivery report owns it now
        return;
    }
    (*boxed)(impl::classify(rc, "send to " + record.topic, impl_->rk.get()));
}

int partition_for_key(std::string_view key, int partition_count) {
    if (partition_count <= 0) return 0;
    // The partitioner ignores the topic handle for a keyed record.
    return rd_kafka_msg_partitioner_consistent_random(nullptr, key.data(), key.size(),
                                                      partition_count, nullptr, nullptr);
}

PartitionOffsets TransactionalProducer::acknowledged() const {
    std::lock_guard lock(impl_->acked_mu);
    return impl_->acked;
}

const ProducerOptions& TransactionalProducer::options() const { return impl_->options; }

bool init_transactions_retrying(TransactionalProducer& producer, const std::atomic<bool>& stop,
                                const std::function<void(const std::string&)>& report) {
    auto backoff = std::chrono::milliseconds(250);
    while (!stop) {
        try {
            producer.init_transactions();
            return true;
        } catch (const KafkaException& e) {
            if (e.error().is_fenced()) throw;
            // Unreachable broker, missing authorisation, a coordinator that is loading: all
            // of these clear up on their own or once an operator acts. Say why, and retry.
            report(std::string("cannot initialise Kafka transactions for ") +
                   producer.options().transactional_id + ": " + e.what());
            if (!sleep_unless(stop, backoff)) return false;
            backoff = std::min(backoff * 2, std::chrono::milliseconds(5000));
        }
    }
    return false;
}

}  // namespace orderpipe::kafka
