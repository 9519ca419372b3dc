#include "live.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <tuple>

namespace orderpipe::console {

using nlohmann::json;

namespace {

/// Reads `k="v",...}` from `s` at `i` (just after '{'); false if malformed.
bool read_labels(std::string_view s, std::size_t& i, std::map<std::string, std::string>& out) {
    while (i < s.size()) {
        if (s[i] == '}') {
            ++i;
            return true;
        }
        if (s[i] == ',' || s[i] == ' ') {
            ++i;
            continue;
        }
        const auto eq = s.find('=', i);
        if (eq == std::string_view::npos || eq + 1 >= s.size() || s[eq + 1] != '"') return false;
        std::string key(s.substr(i, eq - i));
        std::string value;
        i = eq + 2;
        for (; i < s.size() && s[i] != '"'; ++i) {
            if (s[i] == '\\' && i + 1 < s.size()) {
                ++i;
                value += s[i] == 'n' ? '\n' : s[i];
            } else {
                value += s[i];
            }
        }
        if (i >= s.size()) return false;
        ++i;  // the closing quote
        out[std::move(key)] = std::move(value);
    }
    return false;
}

}  // namespace

std::vector<Sample> samples(std::string_view text, std::string_view name) {
    std::vector<Sample> out;
    while (!text.empty()) {
        const auto end = text.find('\n');
        const std::string_view line = text.substr(0, end);
        text = end == std::string_view::npos ? std::string_view{} : text.substr(end + 1);
        if (!line.starts_with(name) || line.size() == name.size()) continue;
        std::size_t i = name.size();
        Sample sample;
        if (line[i] == '{') {
            ++i;
            if (!read_labels(line, i, sample.labels)) continue;
        } else if (line[i] != ' ') {
            continue;  // another metric whose name starts with `name`
        }
        while (i < line.size() && line[i] == ' ') ++i;
        const auto value = line.substr(i, line.find(' ', i) - i);
        if (value == "NaN") continue;
        const auto [p, ec] =
            std::from_chars(value.data(), value.data() + value.size(), sample.value);
        if (ec != std::errc{} || !std::isfinite(sample.value)) continue;
        out.push_back(std::move(sample));
    }
    return out;
}

json live_json(const std::vector<ServiceAnswers>& services) {
    json list = json::array();
    json lag = json::array();
    json breaker = nullptr;
    for (const auto& s : services) {
        json one = {{"name", s.name}, {"url", s.url}, {"checks", nullptr}};
        if (!s.readyz_status) {
            one["status"] = "unreachable";
            one["detail"] = s.error;
        } else {
            const auto body = json::parse(s.readyz_body, nullptr, /*allow_exceptions=*/false);
            one["status"] = *s.readyz_status == 200 ? "ready" : "unready";
            one["detail"] = body.is_object() ? body.value("detail", "") : "";
            if (body.is_object() && body.contains("checks")) one["checks"] = body["checks"];
        }
        list.push_back(std::move(one));
        if (!s.metrics) continue;
        for (const auto& sample : samples(*s.metrics, "kafka_consumer_lag")) {
            const auto label = [&](const char* k) {
                const auto it = sample.labels.find(k);
                return it == sample.labels.end() ? std::string() : it->second;
            };
            int partition = -1;
            const auto p = label("partition");
            std::from_chars(p.data(), p.data() + p.size(), partition);
            lag.push_back({{"service", s.name},
                           {"loop", label("loop")},
                           {"topic", label("topic")},
                           {"partition", partition},
                           {"lag", static_cast<std::int64_t>(sample.value)}});
        }
        for (const auto& sample : samples(*s.metrics, "notification_breaker_state")) {
            const auto v = static_cast<int>(sample.value);
            breaker = v == 0 ? "closed" : v == 1 ? "half-open" : "open";
        }
    }
    // In a stable order for the page: by service, loop, topic, partition.
    std::sort(lag.begin(), lag.end(), [](const json& a, const json& b) {
        return std::tie(a["service"].get_ref<const std::string&>(),
                        a["loop"].get_ref<const std::string&>(),
                        a["topic"].get_ref<const std::string&>(),
                        a["partition"].get_ref<const json::number_integer_t&>()) <
               std::tie(b["service"].get_ref<const std::string&>(),
                        b["loop"].get_ref<const std::string&>(),
                        b["topic"].get_ref<const std::string&>(),
                        b["partition"].get_ref<const json::number_integer_t&>());
    });
    return {{"services", std::move(list)}, {"lag", std::move(lag)}, {"breaker", breaker}};
}

}  // namespace orderpipe::console
