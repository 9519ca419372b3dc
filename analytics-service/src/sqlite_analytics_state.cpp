#include "sqlite_analytics_state.hpp"

#include "analytics_store.hpp"

namespace orderpipe::analytics {
namespace {

class SqliteAnalyticsWork final : public AnalyticsWork {
  public:
    explicit SqliteAnalyticsWork(AnalyticsStore& store) : store_(store), tx_(store.db()) {}

    Offsets hold_positions(const std::vector<kafka::TopicPartition>& partitions) override {
        // The write transaction excludes every other writer already.
        Offsets all = store_.positions();
        Offsets out;
        for (const auto& tp : partitions) {
            if (auto it = all.find(tp); it != all.end()) out.insert(*it);
        }
        return out;
    }
    void order_created(BatchChanges& changes, const std::string& order_id,
                       std::int64_t time_us) override {
        store_.order_created(changes, order_id, time_us);
    }
    void order_decided(BatchChanges& changes, const std::string& order_id,
                       std::int64_t time_us) override {
        store_.order_decided(changes, order_id, time_us);
    }
    void dead_letter_seen(BatchChanges& changes, const std::string& key,
                          const std::string& topic) override {
        store_.dead_letter_seen(changes, key, topic);
    }
    void resolution(BatchChanges& changes, const std::string& key, const std::string& topic,
                    bool resolved) override {
        store_.resolution(changes, key, topic, resolved);
    }
    void order_record(const std::string& order_id, const OrderRecord& record) override {
        store_.order_record(order_id, record);
    }
    void order_customer(const OrderCustomer& customer) override { store_.order_customer(customer); }
    void finish(BatchChanges& changes, const Offsets& positions) override {
        store_.finish_batch(changes, positions);
    }
    std::map<std::string, std::int64_t> dead_letters_pending() override {
        return store_.dead_letters_pending();
    }
    void prune_series(std::int64_t before_minute) override { store_.prune_series(before_minute); }
    void commit() override { tx_.commit(); }

  private:
    AnalyticsStore& store_;
    sqlite::Transaction tx_;
};

class SqliteAnalyticsState final : public AnalyticsState {
  public:
    explicit SqliteAnalyticsState(const std::string& path) : store_(path) {}

    std::unique_ptr<AnalyticsWork> begin() override {
        return std::make_unique<SqliteAnalyticsWork>(store_);
    }
    Offsets positions() override { return store_.positions(); }
    Offsets rebuild_marks() override { return store_.rebuild_marks(); }
    Figures figures() override {
        Figures f;
        sqlite::ReadTransaction tx(store_.db());
        f.counters = store_.counters();
        f.dead_letters_pending = store_.dead_letters_pending();
        f.latency = store_.latency_percentiles();
        return f;
    }
    std::map<std::string, std::int64_t> counters() override { return store_.counters(); }
    std::map<std::string, std::int64_t> dead_letters_pending() override {
        return store_.dead_letters_pending();
    }
    LatencyPercentiles latency_percentiles() override { return store_.latency_percentiles(); }
    std::pair<std::vector<std::int64_t>, std::int64_t> latency_histogram(
        const std::vector<std::int64_t>& bounds_us) override {
        return store_.latency_histogram(bounds_us);
    }
    std::map<std::int64_t, std::map<std::string, std::int64_t>> series(
        std::int64_t from_minute, std::int64_t to_minute) override {
        return store_.series(from_minute, to_minute);
    }
    std::vector<OrderRecord> order_records(const std::string& order_id,
                                           std::size_t limit) override {
        return store_.order_records(order_id, limit);
    }
    std::vector<OrderCustomer> find_orders(const std::string& q, std::size_t limit) override {
        return store_.find_orders(q, limit);
    }
    RebuildState rebuild_state() override { return store_.rebuild_state(); }
    void begin_rebuild(const std::vector<kafka::TopicPartitionOffset>& marks) override {
        store_.begin_rebuild(marks);
    }
    void set_rebuild_done() override { store_.set_rebuild_done(); }

  private:
    AnalyticsStore store_;
};

}  // namespace

std::unique_ptr<AnalyticsState> open_sqlite_analytics(const std::string& path) {
    return std::make_unique<SqliteAnalyticsState>(path);
}

}  // namespace orderpipe::analytics
