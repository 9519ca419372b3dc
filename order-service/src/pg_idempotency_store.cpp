#include "pg_idempotency_store.hpp"

#include "orderpipe/common/time.hpp"

#include <array>

namespace orderpipe::order {
namespace {

constexpr std::array kMigrations = {
    pg::Migration{1, "Idempotency-Keys with their owner", R"(
        CREATE TABLE idempotency_keys (
            key        TEXT PRIMARY KEY,
            body       TEXT NOT NULL,
            order_id   TEXT NOT NULL,
            state      TEXT NOT NULL CHECK (state IN ('pending', 'unknown', 'committed')),
            status     INTEGER,
            response   TEXT,
            owner      TEXT NOT NULL,
            created_ms BIGINT NOT NULL);
        CREATE INDEX idempotency_keys_created ON idempotency_keys (created_ms);
        CREATE INDEX idempotency_keys_open ON idempotency_keys (state, owner)
            WHERE state <> 'committed';
    )"},
};

class PgIdempotencyStore final : public IdempotencyStore {
  public:
    PgIdempotencyStore(std::shared_ptr<pg::Pool> pool, std::chrono::hours retention,
                       std::string owner)
        : db_(std::move(pool)), retention_(retention), owner_(std::move(owner)) {}

    void together(const std::function<void()>& work) override { db_.together(work); }

    Claim claim(const std::string& key, const std::string& body, const std::string& order_id,
                const std::string& legacy_body) override {
        return db_.with([&](pg::Connection& c) {
            auto inserted = c.run(
                "INSERT INTO idempotency_keys (key, body, order_id, state, owner, created_ms) "
                "VALUES ($1, $2, $3, 'pending', $4, $5) ON CONFLICT (key) DO NOTHING",
                {key, body, order_id, owner_, unix_now_ms()});
            if (inserted.affected() == 1) return Claim{ClaimResult::kClaimed, std::nullopt};
            auto r = c.run(
                "SELECT body, order_id, state, COALESCE(status, 0), COALESCE(response, '') "
                "FROM idempotency_keys WHERE key = $1",
                {key});
            if (r.rows() == 0) {
                // Released between the two statements: claimed by nobody now. Tell the client
                // to retry rather than claim in a second round trip.
                return Claim{ClaimResult::kInProgress, Stored{0, order_id, ""}};
            }
            const std::string stored(r.text(0, 0));
            Claim out{ClaimResult::kReplay,
                      Stored{static_cast<int>(r.int64(0, 3)), std::string(r.text(0, 1)),
                             std::string(r.text(0, 4))}};
            const bool legacy_row = !legacy_body.empty() && stored.rfind("v2:", 0) != 0;
            if (stored != (legacy_row ? legacy_body : body)) {
                out = {ClaimResult::kMismatch, std::nullopt};
            } else if (r.text(0, 2) != "committed") {
                out.result = ClaimResult::kInProgress;
            }
            return out;
        });
    }

    void complete(const std::string& key, const Stored& s) override {
        db_.with([&](pg::Connection& c) {
            c.run(
                "UPDATE idempotency_keys SET state = 'committed', status = $2, response = $3 "
                "WHERE key = $1 AND order_id = $4",
                {key, s.status, s.response, s.order_id});
            return 0;
        });
    }

    void release(const std::string& key, const std::string& order_id) override {
        db_.with([&](pg::Connection& c) {
            c.run(
                "DELETE FROM idempotency_keys WHERE key = $1 AND order_id = $2 AND "
                "state <> 'committed'",
                {key, order_id});
            return 0;
        });
    }

    void mark_unknown(const std::string& key, const std::string& order_id) override {
        db_.with([&](pg::Connection& c) {
            c.run(
                "UPDATE idempotency_keys SET state = 'unknown' WHERE key = $1 AND "
                "order_id = $2 AND state = 'pending'",
                {key, order_id});
            return 0;
        });
    }

    std::int64_t pending_to_unknown() override {
        return db_.with([&](pg::Connection& c) {
            return c
                .run(
                    "UPDATE idempotency_keys SET state = 'unknown' WHERE state = 'pending' AND "
                    "owner = $1",
                    {owner_})
                .affected();
        });
    }

    std::int64_t abandoned_to_unknown(std::chrono::milliseconds older_than) override {
        return db_.with([&](pg::Connection& c) {
            return c
                .run(
                    "UPDATE idempotency_keys SET state = 'unknown' WHERE state = 'pending' AND "
                    "owner <> $1 AND created_ms < $2",
                    {owner_, unix_now_ms() - older_than.count()})
                .affected();
        });
    }

    std::vector<UnknownKey> unknown(std::size_t limit) override {
        return db_.with([&](pg::Connection& c) {
            auto r = c.run(
                "SELECT key, order_id FROM idempotency_keys WHERE state = 'unknown' "
                "ORDER BY created_ms LIMIT $1",
                {static_cast<std::int64_t>(limit)});
            std::vector<UnknownKey> out;
            for (int i = 0; i < r.rows(); ++i) {
                out.push_back({std::string(r.text(i, 0)), std::string(r.text(i, 1))});
            }
            return out;
        });
    }

    std::int64_t purge_expired() override {
        const auto cutoff =
            unix_now_ms() -
            std::chrono::duration_cast<std::chrono::milliseconds>(retention_).count();
        return db_.with([&](pg::Connection& c) {
            return c
                .run("DELETE FROM idempotency_keys WHERE created_ms < $1 AND state <> 'unknown'",
                     {cutoff})
                .affected();
        });
    }

  private:
    pg::Scope db_;
    std::chrono::hours retention_;
    std::string owner_;
};

}  // namespace

std::span<const pg::Migration> idempotency_migrations() { return kMigrations; }

std::unique_ptr<IdempotencyStore> open_pg_keys(std::shared_ptr<pg::Pool> pool,
                                               std::chrono::hours retention, std::string owner) {
    return std::make_unique<PgIdempotencyStore>(std::move(pool), retention, std::move(owner));
}

}  // namespace orderpipe::order
