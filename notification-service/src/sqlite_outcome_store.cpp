#include "sqlite_outcome_store.hpp"

#include "outcome_keys.hpp"

#include "orderpipe/common/processed_events.hpp"
#include "orderpipe/common/sqlite.hpp"

namespace orderpipe::notification {
namespace {

class SqliteOutcomeStore final : public OutcomeStore {
  public:
    SqliteOutcomeStore(const std::string& path, std::chrono::hours retention)
        : db_(path, /*durable=*/true), events_(db_, retention) {}

    std::optional<std::string> outcome(const std::string& key) override {
        return events_.find(kOutcomesConsumer, key);
    }
    bool sent(const std::string& notification_id) override {
        return events_.find(kSentConsumer, notification_id).has_value();
    }
    std::map<std::string, std::string> store(
        const std::vector<FinishedRequest>& finished) override {
        std::map<std::string, std::string> found;
        sqlite::Transaction tx(db_);
        for (const auto& f : finished) {
            if (auto stored = events_.find(kOutcomesConsumer, f.key)) {
                found.emplace(f.key, std::move(*stored));
                continue;
            }
            events_.record(kOutcomesConsumer, f.key, f.outcome);
            if (f.sent && !events_.find(kSentConsumer, *f.sent)) {
                events_.record(kSentConsumer, *f.sent, std::to_string(f.attempts));
            }
        }
        tx.commit();
        return found;
    }
    std::int64_t purge_expired() override { return events_.purge_expired(); }

  private:
    sqlite::Database db_;
    ProcessedEvents events_;
};

}  // namespace

std::unique_ptr<OutcomeStore> open_sqlite_outcomes(const std::string& path,
                                                   std::chrono::hours retention) {
    return std::make_unique<SqliteOutcomeStore>(path, retention);
}

}  // namespace orderpipe::notification
