#pragma once
/// ProjectionStore's SQLite adapter: the positions in table projection_positions of the read
/// model's own file, written in the same transaction as the handler's changes (the handler
/// writes through the same connection).

#include "orderpipe/common/sqlite.hpp"
#include "orderpipe/runtime/projection.hpp"

namespace orderpipe::runtime {

class SqliteProjectionStore final : public ProjectionStore {
  public:
    /// Creates the positions table in `db` if needed.
    explicit SqliteProjectionStore(sqlite::Database& db);

    Positions positions(const std::string& name) override;
    void begin() override;
    void advance(const std::string& name, const Positions& next) override;
    void commit() override;
    void rollback() noexcept override;

  private:
    sqlite::Database& db_;
};

}  // namespace orderpipe::runtime
