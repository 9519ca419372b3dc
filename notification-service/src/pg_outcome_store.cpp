#include "pg_outcome_store.hpp"

#include "orderpipe/common/time.hpp"

#include "outcome_keys.hpp"

#include <algorithm>
#include <array>
#include <set>

namespace orderpipe::notification {
namespace {

constexpr std::array kMigrations = {
    pg::Migration{1, "notification outcomes and accepted notification ids", R"(
        CREATE TABLE notification_outcomes (
            key          TEXT PRIMARY KEY,
            outcome      TEXT NOT NULL,
            processed_ms BIGINT NOT NULL);
        CREATE INDEX notification_outcomes_age ON notification_outcomes (processed_ms);
        CREATE TABLE notifications_sent (
            notification_id TEXT PRIMARY KEY,
            attempts        INTEGER NOT NULL,
            processed_ms    BIGINT NOT NULL);
        CREATE INDEX notifications_sent_age ON notifications_sent (processed_ms);
    )"},
};

class PgOutcomeStore final : public OutcomeStore {
  public:
    PgOutcomeStore(std::shared_ptr<pg::Pool> pool, std::chrono::hours retention)
        : pool_(std::move(pool)), retention_(retention) {}

    std::optional<std::string> outcome(const std::string& key) override {
        auto c = pool_->acquire();
        auto r = c->run("SELECT outcome FROM notification_outcomes WHERE key = $1", {key});
        if (r.rows() == 0) return std::nullopt;
        return std::string(r.text(0, 0));
    }
    bool sent(const std::string& notification_id) override {
        auto c = pool_->acquire();
        return c->run("SELECT 1 FROM notifications_sent WHERE notification_id = $1",
                      {notification_id})
                   .rows() > 0;
    }
    std::map<std::string, std::string> store(
        const std::vector<FinishedRequest>& finished) override {
        std::map<std::string, std::string> found;
        if (finished.empty()) return found;
        // One round trip per table: the whole batch as arrays, in key order (two instances
        // storing overlapping batches then wait for each other, never deadlock). A key another
        // instance stored first is left as it is and its outcome read back.
        std::vector<const FinishedRequest*> sorted;
        for (const auto& f : finished) sorted.push_back(&f);
        std::sort(sorted.begin(), sorted.end(),
                  [](const auto* a, const auto* b) { return a->key < b->key; });
        std::vector<std::string> keys;
        std::vector<std::string> outcomes;
        std::vector<std::string> sent_ids;
        std::vector<std::string> attempts;
        for (const auto* f : sorted) {
            keys.push_back(f->key);
            outcomes.push_back(f->outcome);
        }
        pg::in_transaction(*pool_, [&](pg::Connection& c) {
            found.clear();
            sent_ids.clear();
            attempts.clear();
            const std::int64_t now = unix_now_ms();
            auto inserted = c.run(
                "INSERT INTO notification_outcomes (key, outcome, processed_ms) "
                "SELECT k, o, $3 FROM unnest($1::text[], $2::text[]) AS t(k, o) "
                "ON CONFLICT (key) DO NOTHING RETURNING key",
                {pg::text_array(keys), pg::text_array(outcomes), now});
            std::set<std::string, std::less<>> mine;
            for (int i = 0; i < inserted.rows(); ++i) mine.emplace(inserted.text(i, 0));
            std::vector<std::string> theirs;
            for (const auto* f : sorted) {
                if (!mine.contains(f->key)) theirs.push_back(f->key);
                // Accepted by the provider is a fact whoever's outcome stays: a replay must
                // find it.
                if (f->sent) {
                    sent_ids.push_back(*f->sent);
                    attempts.push_back(std::to_string(f->attempts));
                }
            }
            if (!theirs.empty()) {
                auto r = c.run(
                    "SELECT key, outcome FROM notification_outcomes WHERE key = ANY($1::text[])",
                    {pg::text_array(theirs)});
                for (int i = 0; i < r.rows(); ++i) found.emplace(r.text(i, 0), r.text(i, 1));
            }
            if (!sent_ids.empty()) {
                c.run(
                    "INSERT INTO notifications_sent (notification_id, attempts, processed_ms) "
                    "SELECT i, a::integer, $3 FROM unnest($1::text[], $2::text[]) AS t(i, a) "
                    "ORDER BY i ON CONFLICT (notification_id) DO NOTHING",
                    {pg::text_array(sent_ids), pg::text_array(attempts), now});
            }
        });
        return found;
    }
    std::int64_t purge_expired() override {
        const std::int64_t before =
            unix_now_ms() -
            std::chrono::duration_cast<std::chrono::milliseconds>(retention_).count();
        auto c = pool_->acquire();
        pg::Transaction tx(*c);
        auto a = c->run("DELETE FROM notification_outcomes WHERE processed_ms < $1", {before});
        auto b = c->run("DELETE FROM notifications_sent WHERE processed_ms < $1", {before});
        tx.commit();
        return a.affected() + b.affected();
    }

  private:
    std::shared_ptr<pg::Pool> pool_;
    std::chrono::hours retention_;
};

}  // namespace

std::span<const pg::Migration> notification_migrations() { return kMigrations; }

std::unique_ptr<OutcomeStore> open_pg_outcomes(std::shared_ptr<pg::Pool> pool,
                                               std::chrono::hours retention) {
    return std::make_unique<PgOutcomeStore>(std::move(pool), retention);
}

}  // namespace orderpipe::notification
