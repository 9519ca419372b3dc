#pragma once
/// Who may replay and discard dead letters from the console: the operators file
/// (CONSOLE_OPERATORS_FILE), one `<user>:<SHA-256 of the token, hex>` per line, so the file holds
/// no secret. A request names its operator with `Authorization: Bearer <token>`
/// (docs/CONTRACT.md "orderpipe-console").

#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace orderpipe::console {

/// The lowercase hex SHA-256 of `text`.
std::string sha256_hex(std::string_view text);

class Operators {
  public:
    /// Parses the file's text; blank lines and lines starting with '#' are skipped.
    /// @throws std::invalid_argument naming the line and what is wrong with it
    static Operators parse(std::string_view text);
    /// @throws std::invalid_argument when it cannot be read or parsed
    static Operators load(const std::string& path);

    /// The operator whose token `authorization` carries (`Bearer <token>`), or nullopt.
    /// Every operator's digest is compared, in constant time.
    std::optional<std::string> who(std::string_view authorization) const;
    bool empty() const { return operators_.empty(); }
    std::size_t size() const { return operators_.size(); }

  private:
    struct Operator {
        std::string user;
        std::string digest;  ///< 64 lowercase hex digits
    };
    std::vector<Operator> operators_;
};

}  // namespace orderpipe::console
