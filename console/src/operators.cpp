#include "operators.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <cctype>
#include <fstream>
#include <sstream>

namespace orderpipe::console {

std::string sha256_hex(std::string_view text) {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int size = 0;
    if (EVP_Digest(text.data(), text.size(), digest, &size, EVP_sha256(), nullptr) != 1) {
        throw std::runtime_error("SHA-256 failed");
    }
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out;
    for (unsigned int i = 0; i < size; ++i) {
        out += kHex[digest[i] >> 4];
        out += kHex[digest[i] & 0xf];
    }
    return out;
}

namespace {

bool user_name(std::string_view u) {
    if (u.empty() || u.size() > 64) return false;
    for (const char c : u) {
        const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                        (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' || c == '@';
        if (!ok) return false;
    }
    return true;
}

bool hex_digest(std::string_view d) {
    if (d.size() != 64) return false;
    for (const char c : d) {
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    }
    return true;
}

}  // namespace

Operators Operators::parse(std::string_view text) {
    Operators out;
    std::size_t line_no = 0;
    while (!text.empty()) {
        ++line_no;
        const auto end = text.find('\n');
        std::string_view line = text.substr(0, end);
        text = end == std::string_view::npos ? std::string_view{} : text.substr(end + 1);
        while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.remove_suffix(1);
        while (!line.empty() && line.front() == ' ') line.remove_prefix(1);
        if (line.empty() || line.front() == '#') continue;
        const auto colon = line.find(':');
        const auto where = "line " + std::to_string(line_no) + ": ";
        if (colon == std::string_view::npos) {
            throw std::invalid_argument(where + "expected <user>:<SHA-256 of the token, hex>");
        }
        const auto user = line.substr(0, colon);
        auto digest = std::string(line.substr(colon + 1));
        for (auto& c : digest) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        if (!user_name(user)) {
            throw std::invalid_argument(where +
                                        "a user is 1 to 64 letters, digits, '-', '_', '.' or '@'");
        }
        if (!hex_digest(digest)) {
            throw std::invalid_argument(
                where +
                "expected the token's SHA-256 as 64 hex digits (printf %s TOKEN | sha256sum)");
        }
        out.operators_.push_back({std::string(user), std::move(digest)});
    }
    return out;
}

Operators Operators::load(const std::string& path) {
    std::ifstream in(path);
    if (!in) throw std::invalid_argument("cannot read " + path);
    std::stringstream text;
    text << in.rdbuf();
    try {
        return parse(text.str());
    } catch (const std::invalid_argument& e) {
        throw std::invalid_argument(path + ", " + e.what());
    }
}

std::optional<std::string> Operators::who(std::string_view authorization) const {
    constexpr std::string_view kScheme = "Bearer ";
    if (authorization.size() <= kScheme.size()) return std::nullopt;
    for (std::size_t i = 0; i < kScheme.size(); ++i) {  // the scheme is case-insensitive
        if (std::tolower(static_cast<unsigned char>(authorization[i])) !=
            std::tolower(static_cast<unsigned char>(kScheme[i]))) {
            return std::nullopt;
        }
    }
    const auto digest = sha256_hex(authorization.substr(kScheme.size()));
    std::optional<std::string> found;
    for (const auto& op : operators_) {  // no early exit: the time says nothing of who matched
        if (CRYPTO_memcmp(op.digest.data(), digest.data(), digest.size()) == 0 && !found) {
            found = op.user;
        }
    }
    return found;
}

}  // namespace orderpipe::console
