#include "invariants.hpp"

#include "ground_truth.hpp"

#include <curl/curl.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <stdexcept>
#include <unordered_map>
#include <unordered_set>

namespace orderpipe::check {

using nlohmann::json;

namespace {

// --- HTTP (libcurl, one keep-alive handle per check) -----------------------------------------

class Http {
  public:
    Http() : curl_(curl_easy_init(), curl_easy_cleanup) {
        if (!curl_) throw std::runtime_error("libcurl: cannot create a handle");
    }
    /// GET `url` → (status, body). Throws std::runtime_error on a transport error.
    std::pair<long, std::string> get(const std::string& url) {
        std::string body;
        CURL* c = curl_.get();
        curl_easy_setopt(c, CURLOPT_URL, url.c_str());
        curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 30000L);
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(
            c, CURLOPT_WRITEFUNCTION, +[](char* p, size_t s, size_t n, void* out) {
                static_cast<std::string*>(out)->append(p, s * n);
                return s * n;
            });
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
        const CURLcode rc = curl_easy_perform(c);
        if (rc != CURLE_OK) {
            throw std::runtime_error("GET " + url + ": " + curl_easy_strerror(rc));
        }
        long status = 0;
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        return {status, std::move(body)};
    }
    json get_json(const std::string& url) {
        auto [status, body] = get(url);
        if (status != 200) {
            throw std::runtime_error("GET " + url + ": " + std::to_string(status) + " " + body);
        }
        return json::parse(body);
    }

  private:
    std::unique_ptr<CURL, void (*)(CURL*)> curl_;
};

// --- Events as read from the records ----------------------------------------------------------

struct Event {
    const Record* record = nullptr;
    std::string topic;  ///< contract name
    std::string id, type, subject, correlation, causation;
    json data;
    bool replay = false;  ///< written back by dlqctl (dlq.replay_count)
    std::string order() const {
        if (data.is_object() && data.contains("order_id") && data["order_id"].is_string()) {
            return data["order_id"].get<std::string>();
        }
        return subject;
    }
    std::string reason() const {
        return data.is_object() ? data.value("reason", std::string()) : std::string();
    }
    std::string label() const {
        std::string s = type;
        if (type == "ORDER_CANCELLED") s += "(" + reason() + ")";
        return s + " " + topic + "[" + std::to_string(record->partition) + "]@" +
               std::to_string(record->offset);
    }
};

const std::vector<std::string>& event_topics() {
    static const std::vector<std::string> names{"orders.events",          "inventory.requests",
                                                "inventory.responses",    "inventory.events",
                                                "notifications.requests", "notifications.events"};
    return names;
}

const std::vector<std::string>& all_topics() {
    static const std::vector<std::string> names{"orders.events",
                                                "inventory.requests",
                                                "inventory.responses",
                                                "inventory.events",
                                                "notifications.requests",
                                                "notifications.events",
                                                "notifications.dlq",
                                                "dlq.resolutions",
                                                "orders.events.dlq",
                                                "inventory.requests.dlq",
                                                "inventory.responses.dlq",
                                                "inventory.events.dlq",
                                                "notifications.events.dlq",
                                                "dlq.resolutions.dlq",
                                                "orders.commands",
                                                "orders.commands.dlq"};
    return names;
}

struct Trail {
    std::map<std::string, std::vector<const Event*>> by_topic;  ///< offset order
    std::size_t count(const std::string& topic, const std::string& type) const {
        auto it = by_topic.find(topic);
        if (it == by_topic.end()) return 0;
        return static_cast<std::size_t>(std::count_if(
            it->second.begin(), it->second.end(), [&](const Event* e) { return e->type == type; }));
    }
    const std::vector<const Event*>& of(const std::string& topic) const {
        static const std::vector<const Event*> none;
        auto it = by_topic.find(topic);
        return it == by_topic.end() ? none : it->second;
    }
};

bool is_stock_reason(const std::string& r) {
    return r == "INSUFFICIENT_STOCK" || r == "UNKNOWN_SKU" || r == "PRICE_MISMATCH" ||
           r == "TIMEOUT";
}

/// The order's status as its orders.events say: PENDING, CONFIRMED or CANCELLED.
std::string final_status(const Trail& t) {
    std::string status = "PENDING";
    for (const Event* e : t.of("orders.events")) {
        if (e->type == "ORDER_CONFIRMED" && status == "PENDING") status = "CONFIRMED";
        if (e->type == "ORDER_CANCELLED") status = "CANCELLED";
    }
    return status;
}

std::string join(const std::vector<std::string>& parts, const std::string& sep = ", ") {
    std::string out;
    for (const auto& p : parts) out += (out.empty() ? "" : sep) + p;
    return out;
}

std::string fact(const std::string& what, long long n) { return what + " " + std::to_string(n); }

}  // namespace

// --- Journal ----------------------------------------------------------------------------------

Journal Journal::read(const std::string& path) {
    std::ifstream in(path);
    if (!in) throw std::runtime_error("cannot read the journal " + path);
    Journal j;
    std::string line;
    for (std::size_t n = 1; std::getline(in, line); ++n) {
        if (line.empty()) continue;
        const json v = json::parse(line, nullptr, false);
        const auto bad = [&] {
            return std::runtime_error(path + ":" + std::to_string(n) +
                                      ": not a journal line (see orderpipe-check --help): " + line);
        };
        if (!v.is_object() || !v.contains("op")) throw bad();
        if (v["op"] == "lost") {
            const auto time = [&](const char* k) {
                const json t = v.value(k, json());
                // 2026-12-05T09:28:12.465Z: one format, so that text order is time order
                if (!t.is_string() || t.get<std::string>().size() != 24 ||
                    t.get<std::string>().back() != 'Z') {
                    throw bad();
                }
                return t.get<std::string>();
            };
            if (!v.value("service", json()).is_string() ||
                !v.value("max_in_flight", json()).is_number_integer()) {
                throw bad();
            }
            j.losses.push_back({v["service"], time("from"), time("until"), v["max_in_flight"]});
            continue;
        }
        if (!v.contains("status") || !v["status"].is_number_integer()) throw bad();
        if (v["op"] == "place" && v.value("customer_id", json()).is_string()) {
            j.placements.push_back({v["customer_id"], v["status"], v.value("order_id", "")});
        } else if (v["op"] == "cancel" && v.value("order_id", json()).is_string()) {
            j.cancels.push_back({v["order_id"], v["status"]});
        } else {
            throw bad();
        }
    }
    return j;
}

// --- Report -----------------------------------------------------------------------------------

bool Report::holds() const {
    return std::all_of(invariants.begin(), invariants.end(),
                       [](const Invariant& i) { return i.violations.empty(); });
}

std::string Report::text(std::size_t max_violations_each) const {
    std::ostringstream out;
    for (const auto& i : invariants) {
        const char* verdict = !i.checked             ? "NOT CHECKED"
                              : i.violations.empty() ? "holds"
                                                     : "VIOLATED";
        out << i.id << "  " << verdict << "  " << i.title << "\n";
        if (!i.checked) out << "      (" << i.not_checked_because << ")\n";
        if (!i.facts.empty()) out << "      " << join(i.facts) << "\n";
        for (std::size_t k = 0; k < i.violations.size() && k < max_violations_each; ++k) {
            out << "      ✗ " << i.violations[k] << "\n";
        }
        if (i.violations.size() > max_violations_each) {
            out << "      … and " << (i.violations.size() - max_violations_each) << " more\n";
        }
    }
    long long aborted = 0;
    std::vector<std::string> where;
    for (const auto& [topic, t] : topics.items()) {
        const long long a = t.value("aborted", 0LL);
        aborted += a;
        if (a > 0) where.push_back(topic + " " + std::to_string(a));
    }
    out << "aborted records (read_uncommitted − read_committed): " << aborted;
    if (!where.empty()) out << " (" << join(where) << ")";
    out << "\n";
    return out.str();
}

json Report::to_json() const {
    json list = json::array();
    for (const auto& i : invariants) {
        list.push_back({{"id", i.id},
                        {"title", i.title},
                        {"checked", i.checked},
                        {"not_checked_because", i.not_checked_because},
                        {"holds", i.violations.empty()},
                        {"facts", i.facts},
                        {"violations", i.violations}});
    }
    return {{"holds", holds()}, {"invariants", list}, {"topics", topics}};
}

// --- The checks -------------------------------------------------------------------------------

namespace {

/// What every invariant is checked against: the topics' events, each order's trail through
/// them, the clients' answers, and where to ask the services.
struct Facts {
    Facts(TopicSet& t, const Inputs& i, Http& h) : topics(t), in(i), http(h) {}
    TopicSet& topics;
    const Inputs& in;
    Http& http;
    std::vector<Event> events;
    std::size_t unreadable = 0;
    std::map<std::string, Trail> orders;
    std::unordered_map<std::string, const Event*> by_id;
    std::vector<std::string> duplicate_ids;
    std::map<std::string, const Journal::Placement*> placement_of;  // customer_id →
    std::map<std::string, const Journal::Placement*> accepted;      // order_id → (201)
    std::map<std::string, std::string> status_of;  // order → PENDING/CONFIRMED/CANCELLED
};

/// Reads every topic once into Facts (and the topics' record counts into the report).
void gather(Facts& f, Report& report) {
    auto& topics = f.topics;
    const auto& in = f.in;
    // Every event of the event topics, and each order's trail through them.
    for (const auto& name : event_topics()) {
        const auto& records = topics.committed(name);
        const auto uncommitted = topics.uncommitted(name).size();
        report.topics[topics.full(name)] = {
            {"committed", records.size()},
            {"aborted",
             static_cast<long long>(uncommitted) - static_cast<long long>(records.size())}};
        for (const auto& r : records) {
            Event e;
            e.record = &r;
            e.topic = name;
            e.id = r.header("ce_id").value_or("");
            e.type = r.header("ce_type").value_or("");
            e.subject = r.header("ce_subject").value_or("");
            e.correlation = r.header("ce_correlationid").value_or("");
            e.causation = r.header("ce_causationid").value_or("");
            e.replay = r.header("dlq.replay_count").has_value();
            e.data = r.value ? json::parse(*r.value, nullptr, false) : json();
            if (e.id.empty() || e.type.empty() || !e.data.is_object()) {
                ++f.unreadable;
                continue;
            }
            f.events.push_back(std::move(e));
        }
    }
    for (const auto& name : all_topics()) {
        if (report.topics.contains(topics.full(name))) continue;
        const auto committed = topics.committed(name).size();
        const auto uncommitted = topics.uncommitted(name).size();
        report.topics[topics.full(name)] = {
            {"committed", committed},
            {"aborted", static_cast<long long>(uncommitted) - static_cast<long long>(committed)}};
    }
    for (const auto& e : f.events) {
        if (e.type == "STOCK_ADJUSTED") continue;  // a snapshot of a SKU, not of an order
        f.orders[e.order()].by_topic[e.topic].push_back(&e);
        auto [it, fresh] = f.by_id.emplace(e.id, &e);
        if (!fresh && !e.replay && !it->second->replay) {
            f.duplicate_ids.push_back("order " + e.order() + ": ce_id " + e.id +
                                      " twice: " + it->second->label() + " and " + e.label());
        }
    }

    // The client's answers.
    if (in.journal) {
        for (const auto& p : in.journal->placements) {
            f.placement_of[p.customer_id] = &p;
            if (p.status == 201) f.accepted[p.order_id] = &p;
        }
    }
    for (const auto& [order, t] : f.orders) {
        if (t.count("orders.events", "ORDER_CREATED") > 0) f.status_of[order] = final_status(t);
    }
}

/// I1 (docs/CONTRACT.md "Guarantees").
Invariant check_i1(Facts& f) {
    const auto& in = f.in;
    auto& http = f.http;
    const auto unreadable = f.unreadable;
    const auto& orders = f.orders;
    const auto& duplicate_ids = f.duplicate_ids;
    const auto& accepted = f.accepted;
    const auto& status_of = f.status_of;
    Invariant i1{"I1",
                 "an order answered 201 has exactly one ORDER_CREATED and exactly one decision"};
    long long created_total = 0, confirmed = 0, cancelled_decision = 0, customer_cancels = 0;
    for (const auto& [order, t] : orders) {
        const auto created = t.count("orders.events", "ORDER_CREATED");
        const auto reserve = t.count("inventory.requests", "INVENTORY_RESERVE_REQUESTED");
        if (created == 0) {
            i1.violations.push_back("order " + order +
                                    ": events without an ORDER_CREATED (first: " +
                                    t.by_topic.begin()->second.front()->label() + ")");
            continue;
        }
        ++created_total;
        if (created > 1) {
            i1.violations.push_back("order " + order + ": " + std::to_string(created) +
                                    " ORDER_CREATED");
        }
        if (reserve != 1) {
            i1.violations.push_back(
                "order " + order + ": " + std::to_string(reserve) +
                " INVENTORY_RESERVE_REQUESTED (one is written with ORDER_CREATED)");
        }
        const auto results = t.count("inventory.responses", "INVENTORY_RESERVE_RESULT");
        if (results != 1) {
            i1.violations.push_back("order " + order + ": " + std::to_string(results) +
                                    " INVENTORY_RESERVE_RESULT");
        }
        std::vector<std::string> decisions;
        for (const Event* e : t.of("orders.events")) {
            if (e->type == "ORDER_CONFIRMED") decisions.push_back("CONFIRMED");
            if (e->type == "ORDER_CANCELLED") decisions.push_back(e->reason());
        }
        const bool ok = (decisions.size() == 1 &&
                         (decisions[0] == "CONFIRMED" || is_stock_reason(decisions[0]) ||
                          decisions[0] == "CUSTOMER_REQUEST")) ||
                        (decisions.size() == 2 && decisions[0] == "CONFIRMED" &&
                         decisions[1] == "CUSTOMER_REQUEST");
        if (decisions.empty()) {
            i1.violations.push_back("order " + order + ": no decision (still PENDING)");
        } else if (!ok) {
            i1.violations.push_back("order " + order + ": decisions " + join(decisions));
        }
        if (!decisions.empty()) {
            (decisions[0] == "CONFIRMED" ? confirmed : cancelled_decision) += 1;
            customer_cancels += std::count(decisions.begin(), decisions.end(), "CUSTOMER_REQUEST");
        }
    }
    for (const auto& [order, p] : accepted) {
        if (!orders.contains(order) ||
            orders.at(order).count("orders.events", "ORDER_CREATED") == 0) {
            i1.violations.push_back("order " + order + ": answered 201 (customer " +
                                    p->customer_id + ") but no ORDER_CREATED is committed");
        }
    }
    i1.violations.insert(i1.violations.end(), duplicate_ids.begin(), duplicate_ids.end());
    if (in.journal) {
        for (const auto& c : in.journal->cancels) {
            if (c.status != 202) continue;
            const auto it = orders.find(c.order_id);
            const bool cancelled =
                it != orders.end() &&
                std::any_of(it->second.of("orders.events").begin(),
                            it->second.of("orders.events").end(), [](const Event* e) {
                                return e->type == "ORDER_CANCELLED" &&
                                       e->reason() == "CUSTOMER_REQUEST";
                            });
            if (!cancelled) {
                i1.violations.push_back(
                    "order " + c.order_id +
                    ": cancel answered 202 but no ORDER_CANCELLED(CUSTOMER_REQUEST)");
            }
        }
    }
    long long read_model_checked = 0;
    if (!in.order_url.empty()) {
        for (const auto& [order, status] : status_of) {
            auto [code, body] = http.get(in.order_url + "/orders/" + order);
            ++read_model_checked;
            const json v = json::parse(body, nullptr, false);
            const std::string seen = code == 200 && v.is_object() ? v.value("status", "") : "";
            if (seen != status) {
                i1.violations.push_back("order " + order + ": GET /orders/{id} says " +
                                        (code == 200 ? seen : std::to_string(code)) +
                                        ", its events say " + status);
            }
        }
    }
    i1.facts = {fact("orders created", created_total),
                fact("answered 201", static_cast<long long>(accepted.size())),
                fact("confirmed", confirmed),
                fact("cancelled (stock/timeout/customer)", cancelled_decision),
                fact("customer cancels", customer_cancels),
                fact("read model checked", read_model_checked)};
    if (unreadable > 0)
        i1.facts.push_back(fact("unreadable records", static_cast<long long>(unreadable)));
    return i1;
}

/// I2 (docs/CONTRACT.md "Guarantees").
Invariant check_i2(Facts& f) {
    const auto& in = f.in;
    const auto& orders = f.orders;
    const auto& placement_of = f.placement_of;
    Invariant i2{"I2", "a POST answered 4xx/5xx left nothing committed"};
    if (!in.journal) {
        i2.checked = false;
        i2.not_checked_because = "no --journal of the clients' answers";
    } else {
        std::map<int, long long> by_status;
        long long unknown_committed = 0, unknown_not = 0;
        std::map<std::string, std::vector<std::string>> orders_of_customer;
        for (const auto& [order, t] : orders) {
            for (const Event* e : t.of("orders.events")) {
                if (e->type != "ORDER_CREATED") continue;
                orders_of_customer[e->data.value("customer_id", "")].push_back(order);
            }
        }
        for (const auto& p : in.journal->placements) {
            ++by_status[p.status];
            const auto it = orders_of_customer.find(p.customer_id);
            const bool committed = it != orders_of_customer.end();
            if (p.status == 201) {
                if (committed && (it->second.size() != 1 || it->second[0] != p.order_id)) {
                    i2.violations.push_back("customer " + p.customer_id + ": answered 201 with " +
                                            p.order_id + ", committed " + join(it->second));
                }
            } else if (p.status == 504 || p.status == 0) {
                (committed ? unknown_committed : unknown_not) += 1;
                if (committed && it->second.size() > 1) {
                    i2.violations.push_back("customer " + p.customer_id + ": one request, orders " +
                                            join(it->second));
                }
            } else if (committed) {
                i2.violations.push_back("customer " + p.customer_id + ": answered " +
                                        std::to_string(p.status) + ", yet committed as order " +
                                        join(it->second));
            }
        }
        for (const auto& [customer, list] : orders_of_customer) {
            if (!placement_of.contains(customer)) {
                i2.violations.push_back("order " + join(list) + ": customer " + customer +
                                        " made no request in the journal");
            }
        }
        for (const auto& [status, n] : by_status) {
            i2.facts.push_back(
                fact(status == 0 ? "no answer" : "answered " + std::to_string(status), n));
        }
        i2.facts.push_back(fact("unknown outcome, committed", unknown_committed));
        i2.facts.push_back(fact("unknown outcome, not committed", unknown_not));
    }
    return i2;
}

/// I3 (docs/CONTRACT.md "Guarantees").
Invariant check_i3(Facts& f) {
    const auto& in = f.in;
    auto& http = f.http;
    const auto& events = f.events;
    const auto& orders = f.orders;
    const auto& status_of = f.status_of;
    Invariant i3{"I3",
                 "per SKU: initial = available + reserved, reserved = confirmed orders' units, "
                 "available ≥ 0"};
    {
        long long reservations = 0, releases = 0, rejections = 0;
        std::map<std::string, long long> expected_reserved;
        for (const auto& [order, t] : orders) {
            const auto reserved = t.count("inventory.events", "INVENTORY_RESERVED");
            const auto rejected = t.count("inventory.events", "INVENTORY_REJECTED");
            const auto released = t.count("inventory.events", "INVENTORY_RELEASED");
            reservations += static_cast<long long>(reserved);
            releases += static_cast<long long>(released);
            rejections += static_cast<long long>(rejected);
            const auto st = status_of.find(order);
            if (st == status_of.end()) continue;
            if (reserved + rejected != 1 || released > reserved) {
                i3.violations.push_back("order " + order + ": " + std::to_string(reserved) +
                                        " RESERVED, " + std::to_string(rejected) + " REJECTED, " +
                                        std::to_string(released) + " RELEASED");
            } else if (st->second == "CONFIRMED" && (reserved != 1 || released != 0)) {
                i3.violations.push_back("order " + order + ": CONFIRMED without its stock held");
            } else if (st->second == "CANCELLED" && released != reserved) {
                i3.violations.push_back("order " + order +
                                        ": CANCELLED but its stock is still reserved");
            }
            if (st->second != "CONFIRMED") continue;
            for (const Event* e : t.of("orders.events")) {
                if (e->type != "ORDER_CREATED" || !e->data.contains("items")) continue;
                for (const auto& item : e->data["items"]) {
                    expected_reserved[item.value("sku", "")] += item.value("quantity", 0LL);
                }
            }
        }
        std::set<std::string> restocked;  // a PUT moved `available`: its seed no longer adds up
        for (const auto& e : events) {
            if (e.type != "STOCK_ADJUSTED") continue;
            restocked.insert(e.data.value("sku", ""));
            if (e.data.value("available", 0LL) < 0 || e.data.value("reserved", 0LL) < 0) {
                i3.violations.push_back("SKU " + e.data.value("sku", "") + ": " + e.label() +
                                        " shows " + e.data.dump());
            }
        }
        i3.facts = {fact("INVENTORY_RESERVED", reservations),
                    fact("INVENTORY_REJECTED", rejections), fact("INVENTORY_RELEASED", releases)};
        if (in.inventory_url.empty() || !in.catalog) {
            i3.facts.push_back("stock levels not compared (no --inventory-url and --catalog)");
        } else {
            std::map<std::string, json> stock;
            for (const auto& item : http.get_json(in.inventory_url + "/inventory")) {
                stock[item.value("sku", "")] = item;
            }
            for (const auto& item : *in.catalog) {
                const std::string sku = item.value("sku", "");
                const long long initial = item.value("stock", 0LL);
                const auto it = stock.find(sku);
                if (it == stock.end()) {
                    i3.violations.push_back("SKU " + sku + ": not in GET /inventory");
                    continue;
                }
                const long long available = it->second.value("available", -1LL);
                const long long reserved = it->second.value("reserved", -1LL);
                const long long want = expected_reserved[sku];
                const bool adds_up = restocked.contains(sku) || available + reserved == initial;
                if (available < 0 || !adds_up || reserved != want) {
                    i3.violations.push_back(
                        "SKU " + sku + ": available " + std::to_string(available) + " + reserved " +
                        std::to_string(reserved) + " (initial " + std::to_string(initial) +
                        ", confirmed orders hold " + std::to_string(want) + ")");
                }
                i3.facts.push_back(
                    sku + " " + std::to_string(available) + "/" + std::to_string(reserved) +
                    (restocked.contains(sku) ? " (restocked: seed not compared)" : ""));
            }
        }
    }
    return i3;
}

/// I4 (docs/CONTRACT.md "Guarantees").
Invariant check_i4(Facts& f) {
    auto& topics = f.topics;
    const auto& in = f.in;
    auto& http = f.http;
    const auto& events = f.events;
    const auto& orders = f.orders;
    Invariant i4{"I4",
                 "every NOTIFICATION_REQUESTED gets one SENT, or one FAILED with one DLQ record; "
                 "at most one send accepted per notification"};
    {
        struct N {
            std::string order;
            long long requested = 0, replays = 0, sent = 0, failed = 0, dead = 0;
        };
        std::map<std::string, N> notes;
        std::map<std::string, long long> requests_of_order;
        for (const auto& e : events) {
            const std::string nid = e.data.value("notification_id", "");
            if (e.type == "NOTIFICATION_REQUESTED") {
                auto& n = notes[nid];
                n.order = e.order();
                ++n.requested;
                if (e.replay) {
                    ++n.replays;
                } else {
                    ++requests_of_order[e.order()];
                }
            } else if (e.type == "NOTIFICATION_SENT") {
                ++notes[nid].sent;
            } else if (e.type == "NOTIFICATION_FAILED") {
                ++notes[nid].failed;
            }
        }
        for (const auto& r : topics.committed("notifications.dlq")) {
            const json v = r.value ? json::parse(*r.value, nullptr, false) : json();
            if (v.is_object()) ++notes[v.value("notification_id", "")].dead;
        }
        std::map<std::string, long long> accepted_sends;
        long long provider_duplicates = 0;
        bool provider_dedupes = true;
        // A notification the provider had accepted must reach it again only after the
        // notification-service instance that sent it was lost with the send out (its answer
        // not yet stored): never after an abort, a rebalance or a broker restart, and at most
        // what one instance had out per loss. Or after an attempt that went unanswered (a
        // timeout: the provider took it too late for the sender to hear), which the sender
        // declares with the retry (Orderpipe-Unanswered-Attempts).
        // Losses that explain the same send again are pooled: back-to-back losses (a kill, then
        // the restarted process dying at its first commits) each may have had a window out, and
        // a send lost in both is counted once. A pool may explain the sum of its losses' windows.
        const std::size_t n_losses = in.journal ? in.journal->losses.size() : 0;
        std::vector<std::size_t> pool_of(n_losses);
        for (std::size_t k = 0; k < n_losses; ++k) pool_of[k] = k;
        const auto root = [&](std::size_t k) {
            while (pool_of[k] != k) k = pool_of[k] = pool_of[pool_of[k]];
            return k;
        };
        std::vector<std::size_t> explained_by;  // per send again: one of the losses covering it
        std::map<std::size_t, long long> again_in_pool;  // pool (its root loss) → sends again
        long long unexplained = 0;
        long long after_timeout = 0;  // sends again explained by an unanswered attempt
        if (!in.provider_url.empty()) {
            const json sent = http.get_json(in.provider_url + "/sent");
            provider_duplicates = sent.value("duplicates", 0LL);
            provider_dedupes = sent.value("deduplicates", true);
            for (const auto& s : sent["accepted"]) {
                const std::string nid = s.value("notification_id", "");
                ++accepted_sends[nid];
                if (!in.journal) continue;
                const std::string first = s.value("accepted_at", "");
                const json sent_again = s.value("sent_again_at", json::array());
                const json declared = s.value("sent_again_unanswered_before", json::array());
                long long timeouts_used = 0;
                for (std::size_t j = 0; j < sent_again.size(); ++j) {
                    const std::string t = sent_again[j].get<std::string>();
                    // The sender never heard back from an earlier attempt (a timeout): the
                    // provider may have taken it late, and a retry with the same key is the
                    // contract's at-least-once. Each unanswered attempt explains one send again.
                    const long long unanswered =
                        j < declared.size() && declared[j].is_number_integer()
                            ? declared[j].get<long long>()
                            : 0;
                    if (unanswered > timeouts_used) {
                        ++timeouts_used;
                        ++after_timeout;
                        continue;
                    }
                    std::optional<std::size_t> by;
                    for (std::size_t k = 0; k < n_losses; ++k) {
                        const auto& l = in.journal->losses[k];
                        if (l.from <= t && first <= l.until) {
                            if (by) pool_of[root(k)] = root(*by);
                            by = k;
                        }
                    }
                    if (by) {
                        explained_by.push_back(*by);
                    } else {
                        ++unexplained;
                        i4.violations.push_back(
                            "notification " + nid + ": the provider accepted it at " + first +
                            " and it was sent again at " + t +
                            " with no notification-service instance lost in between and no "
                            "attempt of it left unanswered (an abort, a rebalance or a broker "
                            "restart must never send it again)");
                    }
                }
            }
            if (in.journal) {
                for (const auto k : explained_by) ++again_in_pool[root(k)];
                for (const auto& [pool, n] : again_in_pool) {
                    long long allowed = 0;
                    std::string from, until;
                    std::vector<std::string> services;
                    for (std::size_t k = 0; k < n_losses; ++k) {
                        if (root(k) != pool) continue;
                        const auto& l = in.journal->losses[k];
                        allowed += l.max_in_flight;
                        if (from.empty() || l.from < from) from = l.from;
                        if (until.empty() || l.until > until) until = l.until;
                        if (std::find(services.begin(), services.end(), l.service) ==
                            services.end()) {
                            services.push_back(l.service);
                        }
                    }
                    if (n > allowed) {
                        std::string who;
                        for (const auto& sv : services) who += (who.empty() ? "" : ", ") + sv;
                        i4.violations.push_back(
                            who + " lost between " + from + " and " + until + ": " +
                            std::to_string(n) + " notifications sent again, more than the " +
                            std::to_string(allowed) + " those losses may have had out at once");
                    }
                }
            }
        }
        long long total = 0, sent = 0, failed = 0, dead = 0, replays = 0;
        for (const auto& [nid, n] : notes) {
            total += n.requested - n.replays;
            sent += n.sent;
            failed += n.failed;
            dead += n.dead;
            replays += n.replays;
            const std::string who = "notification " + nid + " (order " + n.order + ")";
            if (n.requested == 0) {
                i4.violations.push_back(who + ": an outcome or dead letter without a request");
            } else if (n.sent + n.failed != n.requested) {
                i4.violations.push_back(who + ": " + std::to_string(n.requested) + " requests, " +
                                        std::to_string(n.sent) + " SENT, " +
                                        std::to_string(n.failed) + " FAILED");
            }
            if (n.dead != n.failed) {
                i4.violations.push_back(who + ": " + std::to_string(n.failed) + " FAILED but " +
                                        std::to_string(n.dead) + " records in notifications.dlq");
            }
            if (!in.provider_url.empty()) {
                const long long accepted_here = accepted_sends[nid];
                if (accepted_here > 1) {
                    i4.violations.push_back(who + ": the provider accepted it " +
                                            std::to_string(accepted_here) +
                                            " times under different Idempotency-Keys");
                }
                if (n.sent > 0 && accepted_here == 0) {
                    i4.violations.push_back(who + ": SENT, but the provider never accepted it");
                }
            }
        }
        for (const auto& [order, t] : orders) {
            long long decisions = 0;
            for (const Event* e : t.of("orders.events")) {
                decisions += (e->type == "ORDER_CONFIRMED" || e->type == "ORDER_CANCELLED") ? 1 : 0;
            }
            const long long requested = requests_of_order[order];
            if (requested != decisions) {
                i4.violations.push_back("order " + order + ": " + std::to_string(decisions) +
                                        " decisions and cancels, " + std::to_string(requested) +
                                        " NOTIFICATION_REQUESTED");
            }
        }
        i4.facts = {fact("requested", total), fact("replayed", replays), fact("sent", sent),
                    fact("failed", failed), fact("dead letters", dead)};
        if (!in.provider_url.empty()) {
            i4.facts.push_back(fact(provider_dedupes
                                        ? "provider: same key sent again (deduplicated)"
                                        : "provider: same key sent again (sent twice: it does "
                                          "not deduplicate)",
                                    provider_duplicates));
            if (in.journal) {
                long long most = 0;
                for (const auto& [k, n] : again_in_pool) most = std::max(most, n);
                i4.facts.push_back(fact("sent again after an instance was lost",
                                        provider_duplicates - unexplained - after_timeout));
                i4.facts.push_back(
                    fact("sent again after an attempt the provider answered too "
                         "late (the sender had timed out)",
                         after_timeout));
                i4.facts.push_back(
                    fact("instance losses", static_cast<long long>(in.journal->losses.size())));
                i4.facts.push_back(
                    fact("most sent again after one loss (or losses back to back)", most));
            }
        }
    }
    return i4;
}

/// I5 (docs/CONTRACT.md "Guarantees").
Invariant check_i5(Facts& f) {
    auto& topics = f.topics;
    const auto& in = f.in;
    auto& http = f.http;
    Invariant i5{"I5", "analytics equals the figures recomputed from the topics"};
    if (in.analytics_url.empty()) {
        i5.checked = false;
        i5.not_checked_because = "no --analytics-url";
    } else {
        const json truth = recompute_figures(topics);
        const json seen = http.get_json(in.analytics_url + "/api/metrics");
        const std::string diff = figures_diff(truth, seen);
        std::istringstream lines(diff);
        for (std::string line; std::getline(lines, line);) i5.violations.push_back(line);
        i5.facts = {"orders.created " + truth["orders.created"].dump(),
                    "notifications.sent " + truth["notifications.sent"].dump(),
                    "dlq.pending " + truth["dlq.pending"].dump(),
                    "saga_latency_ms p50 " + truth["saga_latency_ms"]["p50"].dump()};
    }
    return i5;
}

/// I7 (docs/CONTRACT.md "Guarantees").
Invariant check_i7(Facts& f) {
    const auto& events = f.events;
    const auto& orders = f.orders;
    const auto& by_id = f.by_id;
    Invariant i7{"I7", "per order, events keep their causal order in every topic"};
    {
        long long causes_checked = 0;
        // Which type must come before which, per topic (a pair seen the other way round breaks it).
        const std::map<std::string, std::vector<std::pair<std::string, std::string>>> before{
            {"orders.events",
             {{"ORDER_CREATED", "ORDER_CONFIRMED"},
              {"ORDER_CREATED", "ORDER_CANCELLED"},
              {"ORDER_CONFIRMED", "ORDER_CANCELLED"}}},
            {"inventory.requests",
             {{"INVENTORY_RESERVE_REQUESTED", "INVENTORY_RELEASE_REQUESTED"}}},
            {"inventory.events", {{"INVENTORY_RESERVED", "INVENTORY_RELEASED"}}},
        };
        for (const auto& [order, t] : orders) {
            for (const auto& [topic, pairs] : before) {
                const auto& list = t.of(topic);
                for (std::size_t a = 0; a < list.size(); ++a) {
                    for (std::size_t b = a + 1; b < list.size(); ++b) {
                        for (const auto& [first, second] : pairs) {
                            if (list[a]->type == second && list[b]->type == first) {
                                i7.violations.push_back("order " + order + ": " + list[a]->label() +
                                                        " before " + list[b]->label());
                            }
                        }
                    }
                }
            }
            // Notification outcomes follow the order of their requests.
            std::vector<std::string> requested, finished;
            for (const Event* e : t.of("notifications.requests")) {
                const std::string nid = e->data.value("notification_id", "");
                if (std::find(requested.begin(), requested.end(), nid) == requested.end()) {
                    requested.push_back(nid);
                }
            }
            std::vector<const Event*> outcome_event;
            for (const Event* e : t.of("notifications.events")) {
                const std::string nid = e->data.value("notification_id", "");
                if (std::find(finished.begin(), finished.end(), nid) == finished.end()) {
                    finished.push_back(nid);
                    outcome_event.push_back(e);
                }
            }
            for (std::size_t a = 0; a + 1 < finished.size(); ++a) {
                const auto pa = std::find(requested.begin(), requested.end(), finished[a]);
                const auto pb = std::find(requested.begin(), requested.end(), finished[a + 1]);
                if (pa != requested.end() && pb != requested.end() && pb < pa) {
                    i7.violations.push_back("order " + order + ": " + outcome_event[a]->label() +
                                            " before " + outcome_event[a + 1]->label() +
                                            ", requested the other way round");
                }
            }
            // One saga: one correlation id.
            std::set<std::string> correlations;
            for (const auto& [topic, list] : t.by_topic) {
                for (const Event* e : list) correlations.insert(e->correlation);
            }
            if (correlations.size() > 1) {
                i7.violations.push_back("order " + order + ": " +
                                        std::to_string(correlations.size()) + " correlation ids");
            }
        }
        // Every cause is committed, and comes first where both share a partition.
        for (const auto& e : events) {
            if (e.causation.empty() || e.type == "STOCK_ADJUSTED") continue;
            ++causes_checked;
            const auto c = by_id.find(e.causation);
            if (c == by_id.end()) {
                i7.violations.push_back("order " + e.order() + ": " + e.label() + " caused by " +
                                        e.causation + ", which is not committed anywhere");
            } else if (c->second->record->topic == e.record->topic &&
                       c->second->record->partition == e.record->partition &&
                       c->second->record->offset > e.record->offset) {
                i7.violations.push_back("order " + e.order() + ": " + e.label() +
                                        " before its cause " + c->second->label());
            }
        }
        i7.facts = {fact("orders", static_cast<long long>(orders.size())),
                    fact("causes checked", causes_checked)};
    }
    return i7;
}

}  // namespace

Report check(TopicSet& topics, const Inputs& in) {
    Report report;
    Http http;
    Facts f{topics, in, http};
    gather(f, report);
    report.invariants.push_back(check_i1(f));
    report.invariants.push_back(check_i2(f));
    report.invariants.push_back(check_i3(f));
    report.invariants.push_back(check_i4(f));
    report.invariants.push_back(check_i5(f));
    report.invariants.push_back(check_i7(f));
    return report;
}

}  // namespace orderpipe::check
