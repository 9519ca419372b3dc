#include "order_service.hpp"

#include "orderpipe/common/json.hpp"
#include "orderpipe/common/logging.hpp"
#include "orderpipe/common/time.hpp"
#include "orderpipe/http/problem.hpp"
#include "orderpipe/kafka/consumer.hpp"
#include "orderpipe/kafka/event_record.hpp"

#include <filesystem>
#include <set>

namespace orderpipe::order {
namespace {

using nlohmann::json;

bool is_json_content_type(const std::optional<std::string>& ct) {
    if (!ct) return false;
    std::string media = ct->substr(0, ct->find(';'));
    while (!media.empty() && media.back() == ' ') media.pop_back();
    for (auto& c : media) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return media == "application/json" ||
           (media.rfind("application/", 0) == 0 && media.size() > 5 &&
            media.compare(media.size() - 5, 5, "+json") == 0);
}

http::Response created(const json& body) {
    auto r = http::Response::json(201, body);
    r.headers.emplace_back("Location", "/orders/" + body.value("order_id", std::string()));
    return r;
}

json order_view(const AcceptedOrder& o) {
    json items = json::array();
    for (const auto& l : o.request.items) {
        items.push_back(
            {{"sku", l.sku}, {"quantity", l.quantity}, {"unit_price", l.unit_price.to_string()}});
    }
    return {{"order_id", o.order_id},
            {"customer_id", o.request.customer_id},
            {"status", "PENDING"},
            {"items", std::move(items)},
            {"total", o.request.total.to_string()},
            {"currency", o.request.currency},
            {"created_at", o.created_at},
            {"history", json::array({{{"status", "PENDING"}, {"at", o.created_at}}})}};
}

std::vector<std::string> produced_topics(const IntakeOptions& o) {
    return {o.orders_topic, o.inventory_topic};
}

}  // namespace

OrderServiceConfig OrderServiceConfig::from_env(EnvReader& env) {
    OrderServiceConfig c;
    c.common = CommonConfig::read(env, "order-service", 8080);
    c.intake.max_batch = static_cast<std::size_t>(env.integer("INTAKE_BATCH_MAX", 500, 1, 10000));
    c.intake.linger = env.millis("INTAKE_LINGER", c.intake.linger, std::chrono::milliseconds(0),
                                 std::chrono::milliseconds(1000));
    c.intake.queue_capacity =
        static_cast<std::size_t>(env.integer("INTAKE_QUEUE_MAX", 20000, 1, 1000000));
    c.kafka_timeout = env.millis("INTAKE_COMMIT_TIMEOUT", c.kafka_timeout,
                                 std::chrono::milliseconds(1000), std::chrono::minutes(5));
    c.http_threads = static_cast<unsigned>(env.integer("HTTP_THREADS", 2, 1, 64));
    c.idempotency_retention =
        std::chrono::hours(env.integer("IDEMPOTENCY_RETENTION_HOURS", 48, 24, 24 * 365));
    return c;
}

OrderService::OrderService(OrderServiceConfig config)
    : config_(std::move(config)), registry_(std::make_shared<prometheus::Registry>()) {
    orders_total_ = &prometheus::BuildCounter()
                         .Name("order_intake_requests_total")
                         .Help("POST /orders outcomes")
                         .Register(*registry_);
}

OrderService::~OrderService() { stop(); }

void OrderService::start() {
    std::filesystem::create_directories(config_.common.data_dir);
    idempotency_ = std::make_unique<IdempotencyStore>(
        (std::filesystem::path(config_.common.data_dir) / "order-service.db").string(),
        config_.idempotency_retention);
    if (auto purged = idempotency_->purge_expired(); purged > 0) {
        log::info("purged expired idempotency keys", {{"count", purged}});
    }
    resolve_pending_keys();

    kafka::ClientConfig kc{config_.common.bootstrap_servers, config_.common.transactional_id(),
                           config_.common.kafka_overrides};
    kafka::ProducerOptions po;
    po.transactional_id = config_.common.transactional_id();
    po.operation_timeout = config_.kafka_timeout;
    auto producer = std::make_unique<kafka::TransactionalProducer>(kc, po);
    intake_ = std::make_unique<Intake>(std::move(producer), config_.intake, *registry_);
    intake_->start();

    http::ServerOptions so;
    so.port = config_.common.http_port;
    so.threads = config_.http_threads;
    so.service_name = config_.common.service;
    http_ = std::make_unique<http::Server>(so, registry_);
    http_->route("POST", "/orders",
                 [this](http::Request&& r, http::Responder d) { handle_create(std::move(r), d); });
    http_->route("GET", "/orders/{id}",
                 [this](http::Request&& r, http::Responder d) { handle_get(std::move(r), d); });
    http_->set_readiness([this] { return readiness(); });
    http_->start();
    log::info("order-service listening", {{"port", http_->port()},
                                           {"bootstrap", config_.common.bootstrap_servers},
                                           {"transactional_id", po.transactional_id}});
}

void OrderService::stop() {
    if (draining_.exchange(true)) return;
    // Order matters: readyz says 503 first, queued orders are committed and answered, then the
    // HTTP server drains the answers and closes.
    if (intake_) intake_->stop();
    if (http_) http_->stop();
    log::info("order-service stopped");
}

std::uint16_t OrderService::http_port() const { return http_ ? http_->port() : 0; }

std::optional<std::string> OrderService::missing_topic() {
    std::lock_guard lock(topics_mu_);
    const auto now = std::chrono::steady_clock::now();
    if (!topics_problem_ || now - topics_checked_ < std::chrono::seconds(2)) return topics_problem_;
    topics_checked_ = now;
    try {
        kafka::Consumer meta({config_.common.bootstrap_servers, "order-service-metadata",
                              config_.common.kafka_overrides},
                             {.group_id = "order-service-metadata"});
        for (const auto& t : produced_topics(config_.intake)) {
            if (meta.partition_count(t, std::chrono::milliseconds(2000)) == 0) {
                topics_problem_ = "topic " + t + " is missing (run scripts/create-topics.sh)";
                return topics_problem_;
            }
        }
        topics_problem_.reset();
    } catch (const std::exception& e) {
        topics_problem_ = std::string("cannot read topic metadata: ") + e.what();
    }
    return topics_problem_;
}

std::optional<std::string> OrderService::readiness() {
    if (draining_) return "draining";
    if (auto why = intake_->not_ready_reason()) return why;
    return missing_topic();
}

void OrderService::resolve_pending_keys() {
    auto pending = idempotency_->pending();
    if (pending.empty()) return;
    // A crash between the Kafka commit and the key's completion leaves it pending. orders.events
    // (read_committed) is the truth: the order is there, or it never happened.
    std::map<std::string, std::string> key_by_order;
    for (const auto& p : pending) key_by_order[p.order_id] = p.key;
    log::warn("resolving idempotency keys left pending by a crash", {{"count", pending.size()}});
    kafka::Consumer reader({config_.common.bootstrap_servers, "order-service-resolver",
                            config_.common.kafka_overrides},
                           {.group_id = "order-service-resolver", .partition_eof = true});
    const std::string& topic = config_.intake.orders_topic;
    int partitions = 0;
    for (int attempt = 0; attempt < 30 && partitions == 0; ++attempt) {
        try {
            partitions = reader.partition_count(topic, std::chrono::milliseconds(2000));
        } catch (const kafka::KafkaException& e) {
            log::warn("waiting for Kafka to resolve pending keys", {{"error", e.what()}});
        }
    }
    if (partitions == 0) {
        throw std::runtime_error("cannot resolve pending Idempotency-Keys: topic " + topic +
                                 " is not reachable");
    }
    std::vector<kafka::TopicPartitionOffset> assignment;
    for (int p = 0; p < partitions; ++p) assignment.push_back({topic, p, kafka::Consumer::kBeginning});
    reader.assign(assignment);
    std::set<int> open;
    for (int p = 0; p < partitions; ++p) open.insert(p);
    std::vector<std::pair<std::string, IdempotencyStore::Stored>> found;
    while (!open.empty()) {
        auto batch = reader.poll_batch(1000, std::chrono::milliseconds(500));
        for (const auto& tp : batch.reached_end) open.erase(tp.partition);
        for (const auto& rec : batch.records) {
            if (!rec.key || key_by_order.count(*rec.key) == 0) continue;
            auto ev = kafka::from_record(rec);
            auto* e = std::get_if<CloudEvent>(&ev);
            if (e == nullptr || e->type != "ORDER_CREATED") continue;
            json body = {{"order_id", *rec.key},
                         {"status", "PENDING"},
                         {"total", e->data.value("total", "")},
                         {"currency", e->data.value("currency", "")},
                         {"created_at", e->data.value("created_at", "")}};
            found.push_back({key_by_order[*rec.key], {201, *rec.key, body.dump()}});
            key_by_order.erase(*rec.key);
        }
    }
    idempotency_->complete(found);
    std::vector<std::string> aborted;
    for (const auto& [order, key] : key_by_order) aborted.push_back(key);
    idempotency_->release(aborted);
    log::info("idempotency keys resolved",
              {{"committed", found.size()}, {"never_committed", aborted.size()}});
}

void OrderService::handle_create(http::Request&& req, http::Responder respond) {
    auto count = [this](const char* result) { orders_total_->Add({{"result", result}}).Increment(); };
    if (!is_json_content_type(req.header("content-type"))) {
        count("rejected");
        respond(http::problem(415, "Unsupported Media Type",
                              "the body must be JSON: send Content-Type: application/json"));
        return;
    }
    auto parsed = parse_untrusted_json(req.body);
    if (auto* err = std::get_if<JsonParseError>(&parsed)) {
        count("rejected");
        respond(http::problem(400, "Malformed JSON", err->message));
        return;
    }
    const json& body = std::get<json>(parsed);
    auto validated = validate_order(body);
    if (auto* errors = std::get_if<std::vector<FieldError>>(&validated)) {
        count("rejected");
        json list = json::array();
        for (const auto& e : *errors) list.push_back({{"field", e.field}, {"message", e.message}});
        std::string detail = errors->front().field.empty()
                                 ? errors->front().message
                                 : errors->front().field + " " + errors->front().message;
        if (errors->size() > 1) detail += " (and " + std::to_string(errors->size() - 1) + " more)";
        respond(http::problem(422, "Invalid order", detail, {{"errors", std::move(list)}}));
        return;
    }

    AcceptedOrder order;
    order.order_id = new_uuid_v7();
    order.correlation_id = new_uuid_v7();
    order.created_at = now_rfc3339();
    auto incoming = req.header("traceparent");
    auto trace = incoming ? TraceContext::parse(*incoming) : std::nullopt;
    order.traceparent = (trace ? trace->child() : TraceContext::fresh()).header();
    order.request = std::move(std::get<OrderRequest>(validated));

    std::optional<std::string> key = req.header("idempotency-key");
    if (key) {
        if (key->empty() || key->size() > 255) {
            count("rejected");
            respond(http::problem(422, "Invalid Idempotency-Key",
                                  "Idempotency-Key must be 1 to 255 characters"));
            return;
        }
        auto claim = idempotency_->claim(*key, canonical_body(body), order.order_id);
        switch (claim.result) {
            case IdempotencyStore::ClaimResult::kClaimed:
                break;
            case IdempotencyStore::ClaimResult::kReplay: {
                count("replayed");
                auto r = created(json::parse(claim.stored->response));
                r.status = claim.stored->status;
                r.headers.emplace_back("Idempotency-Replayed", "true");
                respond(std::move(r));
                return;
            }
            case IdempotencyStore::ClaimResult::kMismatch:
                count("rejected");
                respond(http::problem(422, "Idempotency-Key reused",
                                      "this Idempotency-Key was used with a different body"));
                return;
            case IdempotencyStore::ClaimResult::kInProgress: {
                count("rejected");
                auto r = http::problem(409, "Request in progress",
                                       "a request with this Idempotency-Key is still being "
                                       "processed; retry shortly",
                                       {{"order_id", claim.stored->order_id}});
                r.headers.emplace_back("Retry-After", "1");
                respond(std::move(r));
                return;
            }
        }
    }
    auto release_key = [this, key] {
        if (key) idempotency_->release({*key});
    };
    if (auto why = intake_->not_ready_reason(); why || draining_) {
        release_key();
        count("unavailable");
        auto r = http::problem(503, "Service Unavailable",
                               why ? *why : std::string("the service is shutting down"));
        r.headers.emplace_back("Retry-After", "1");
        respond(std::move(r));
        return;
    }
    const std::string order_id = order.order_id;
    json response = created_response(order);
    json view = order_view(order);
    const bool queued = intake_->submit(
        std::move(order), [this, respond, key, order_id, response = std::move(response),
                           view = std::move(view), count](const IntakeResult& result) mutable {
            if (result.outcome == IntakeOutcome::kCommitted) {
                recent_.put(order_id, std::move(view));
                if (key) {
                    try {
                        idempotency_->complete({{*key, {201, order_id, response.dump()}}});
                    } catch (const std::exception& e) {
                        // The order is committed; the key stays pending and is resolved from
                        // orders.events at the next start.
                        log::error("cannot store idempotency key",
                                   {{"order_id", order_id}, {"error", e.what()}});
                    }
                }
                count("accepted");
                log::debug("order accepted", {{"order_id", order_id}});
                respond(created(response));
            } else {
                if (key) idempotency_->release({*key});
                count("failed");
                auto r = http::problem(503, "Service Unavailable",
                                       "the order could not be committed to Kafka and was not "
                                       "created: " + result.error);
                r.headers.emplace_back("Retry-After", "1");
                respond(std::move(r));
            }
        });
    if (!queued) {
        release_key();
        count("throttled");
        auto r = http::problem(429, "Too Many Requests",
                               "the intake queue is full; retry after the given delay");
        r.headers.emplace_back("Retry-After", "1");
        respond(std::move(r));
    }
}

void OrderService::handle_get(http::Request&& req, http::Responder respond) {
    const std::string& id = req.path_params["id"];
    if (auto view = recent_.get(id)) {
        respond(http::Response::json(200, *view));
        return;
    }
    respond(http::problem(404, "Order not found", "no order with id " + id));
}

}  // namespace orderpipe::order
