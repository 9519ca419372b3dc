#include "order_service.hpp"

#include "orderpipe/common/json.hpp"
#include "orderpipe/common/logging.hpp"
#include "orderpipe/common/time.hpp"
#include "orderpipe/http/problem.hpp"
#include "orderpipe/kafka/consumer.hpp"
#include "orderpipe/kafka/event_record.hpp"

#include <filesystem>
#include <limits>
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

std::vector<std::string> required_topics(const SagaTopics& t) {
    return {t.orders, t.inventory_requests, t.inventory_responses, t.notifications};
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
    c.topics = {c.common.topic("orders.events"), c.common.topic("inventory.requests"),
                c.common.topic("inventory.responses"), c.common.topic("notifications.requests")};
    c.group_id = c.common.group("order-service");
    c.order_timeout = env.millis("ORDER_TIMEOUT", c.order_timeout, std::chrono::milliseconds(100),
                                 std::chrono::hours(24 * 7));
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

void OrderService::fence(const std::string& transactional_id) {
    // init_transactions with our transactional.id aborts whatever a dead predecessor left open,
    // so the read model's catch-up below is not stuck behind its last stable offset.
    kafka::ProducerOptions po;
    po.transactional_id = transactional_id;
    po.operation_timeout = config_.kafka_timeout;
    kafka::TransactionalProducer fencer(kafka::ClientConfig::from(config_.common, transactional_id),
                                        po);
    const auto until = std::chrono::steady_clock::now() + config_.catch_up_deadline;
    for (;;) {
        try {
            fencer.init_transactions();
            return;
        } catch (const kafka::KafkaException& e) {
            if (std::chrono::steady_clock::now() > until) throw;
            log::warn("waiting for Kafka to fence the previous instance",
                      {{"transactional_id", transactional_id}, {"error", e.what()}});
        }
    }
}

void OrderService::start() {
    std::filesystem::create_directories(config_.common.data_dir);
    const std::string db_path =
        (std::filesystem::path(config_.common.data_dir) / "order-service.db").string();
    idempotency_ = std::make_unique<IdempotencyStore>(db_path, config_.idempotency_retention);
    if (auto purged = idempotency_->purge_expired(); purged > 0) {
        log::info("purged expired idempotency keys", {{"count", purged}});
    }
    read_store_ = std::make_unique<OrderStore>(db_path);
    intake_store_ = std::make_unique<OrderStore>(db_path);
    saga_store_ = std::make_unique<OrderStore>(db_path);

    const std::string intake_id = config_.common.transactional_id();
    const std::string saga_id = intake_id + "-saga";
    auto kc = kafka::ClientConfig::from(config_.common, intake_id);
    auto on_change = [this](const std::string& id, const std::string& status) {
        waiters_.notify(id, status);
    };

    // Nothing may decide before the read model holds everything already committed.
    fence(intake_id);
    fence(saga_id);
    projection_ = std::make_unique<OrderProjection>(kc, config_.topics.orders, db_path, on_change);
    projection_->catch_up(config_.catch_up_deadline);
    resolve_pending_keys(std::numeric_limits<std::int64_t>::max());
    projection_->start();
    maintenance_ = std::thread([this] { maintenance(); });

    kafka::ProducerOptions po;
    po.transactional_id = intake_id;
    po.operation_timeout = config_.kafka_timeout;
    auto producer = std::make_unique<kafka::TransactionalProducer>(kc, po);
    IntakeOptions io = config_.intake;
    io.orders_topic = config_.topics.orders;
    io.inventory_topic = config_.topics.inventory_requests;
    io.after_commit = [this](const std::vector<const AcceptedOrder*>& orders) {
        sqlite::Transaction tx(intake_store_->db());
        for (const auto* o : orders) {
            intake_store_->apply_created(o->created_event_id, o->correlation_id, o->traceparent,
                                         order_document(*o, "PENDING"));
        }
        tx.commit();
    };
    intake_ = std::make_unique<Intake>(std::move(producer), io, *registry_);
    intake_->start();

    saga_ = std::make_unique<SagaProcessor>(*saga_store_, config_.topics, config_.order_timeout,
                                            on_change);
    kafka::LoopOptions lo;
    lo.name = "order-decisions";
    lo.group_id = config_.group_id;
    lo.topics = {config_.topics.inventory_responses};
    lo.transactional_id = saga_id;
    lo.kill_before_commit_at = config_.common.fault_kill_before_commit;
    lo.batch_max = config_.saga_batch_max;
    lo.batch_linger = config_.saga_batch_linger;
    lo.operation_timeout = config_.kafka_timeout;
    saga_loop_ = std::make_unique<kafka::ProcessingLoop>(
        kafka::ClientConfig::from(config_.common, saga_id), lo, *saga_, *registry_);
    saga_loop_->start();

    http::ServerOptions so;
    so.port = config_.common.http_port;
    so.threads = config_.http_threads;
    so.service_name = config_.common.service;
    http_ = std::make_unique<http::Server>(so, registry_);
    http_->route("POST", "/orders",
                 [this](http::Request&& r, http::Responder d) { handle_create(std::move(r), d); });
    http_->route("GET", "/orders/{id}",
                 [this](http::Request&& r, http::Responder d) { handle_get(std::move(r), d); });
    http_->route("POST", "/orders/{id}/cancel",
                 [this](http::Request&& r, http::Responder d) { handle_cancel(std::move(r), d); });
    http_->set_readiness([this] { return readiness(); });
    http_->start();
    log::info("order-service listening", {{"port", http_->port()},
                                          {"bootstrap", config_.common.bootstrap_servers},
                                          {"transactional_id", intake_id}});
}

void OrderService::stop() {
    if (draining_.exchange(true)) return;
    { std::lock_guard lock(maintenance_mu_); }
    maintenance_cv_.notify_all();
    if (maintenance_.joinable()) maintenance_.join();
    // Order matters: readyz says 503 first, queued orders are committed and answered, then the
    // HTTP server drains the answers and closes.
    if (intake_) intake_->stop();
    if (saga_loop_) saga_loop_->stop();
    if (projection_) projection_->stop();
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
        kafka::ConsumerOptions co;
        co.group_id = "order-service-metadata";  // never joins: metadata requests only
        kafka::Consumer meta(kafka::ClientConfig::from(config_.common, "order-service-metadata"),
                             co);
        for (const auto& t : required_topics(config_.topics)) {
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
    if (auto why = saga_loop_->not_ready_reason()) return why;
    return missing_topic();
}

void OrderService::maintenance() {
    // Keys whose commit outcome was unknown are resolved once the coordinator has surely
    // decided (the transaction timeout) and the projection has caught up.
    const auto settle = config_.kafka_timeout * 2 + std::chrono::seconds(70);
    std::unique_lock lock(maintenance_mu_);
    while (!draining_) {
        maintenance_cv_.wait_for(lock, std::chrono::seconds(5));
        if (draining_) break;
        lock.unlock();
        try {
            const auto cutoff = std::chrono::duration_cast<std::chrono::milliseconds>(
                                    std::chrono::system_clock::now().time_since_epoch() - settle)
                                    .count();
            resolve_pending_keys(cutoff);
        } catch (const std::exception& e) {
            log::warn("cannot resolve pending idempotency keys yet", {{"error", e.what()}});
        }
        lock.lock();
    }
}

void OrderService::resolve_pending_keys(std::int64_t older_than_ms) {
    auto pending = idempotency_->pending(older_than_ms);
    if (pending.empty()) return;
    // A crash between the Kafka commit and the key's completion leaves it pending. The read
    // model has just caught up with orders.events (read_committed): the order is there, or it
    // never happened.
    std::vector<std::pair<std::string, IdempotencyStore::Stored>> committed;
    std::vector<std::string> never;
    for (const auto& p : pending) {
        std::optional<OrderRecord> order;
        {
            std::lock_guard lock(read_mu_);
            order = read_store_->get(p.order_id, false);
        }
        if (!order) {
            never.push_back(p.key);
            continue;
        }
        json body = {{"order_id", p.order_id},
                     {"status", "PENDING"},
                     {"total", string_field(order->doc, "total")},
                     {"currency", string_field(order->doc, "currency")},
                     {"created_at", string_field(order->doc, "created_at")}};
        committed.push_back({p.key, {201, p.order_id, body.dump()}});
    }
    idempotency_->complete(committed);
    idempotency_->release(never);
    log::warn("resolved idempotency keys left pending by a crash",
              {{"committed", committed.size()}, {"never_committed", never.size()}});
}

void OrderService::handle_create(http::Request&& req, http::Responder respond) {
    auto count = [this](const char* result) {
        orders_total_->Add({{"result", result}}).Increment();
    };
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
    order.created_event_id = new_uuid_v7();
    order.reserve_event_id = new_uuid_v7();
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
    const bool queued = intake_->submit(
        std::move(order), [this, respond, key, order_id, response = std::move(response),
                           count](const IntakeResult& result) mutable {
            if (result.outcome == IntakeOutcome::kCommitted) {
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
            } else if (result.outcome == IntakeOutcome::kUnknown) {
                // The key stays pending: it is resolved from orders.events once Kafka has
                // decided, so a retry with it can never create a second order.
                count("unknown");
                auto r = http::problem(
                    504, "Commit outcome unknown",
                    "Kafka did not confirm the transaction in time; the order may or may not "
                    "have been created. Check GET /orders/" +
                        order_id + ", or retry later with the same Idempotency-Key.",
                    {{"order_id", order_id}});
                r.headers.emplace_back("Retry-After", "30");
                respond(std::move(r));
            } else {
                try {
                    if (key) idempotency_->release({*key});
                } catch (const std::exception& e) {
                    log::error("cannot release idempotency key", {{"error", e.what()}});
                }
                count("failed");
                auto r = http::problem(503, "Service Unavailable",
                                       "the order could not be committed to Kafka and was not "
                                       "created: " +
                                           result.error);
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

std::optional<OrderRecord> OrderService::read_order(const std::string& id) {
    std::lock_guard lock(read_mu_);
    return read_store_->get(id);
}

void OrderService::handle_get(http::Request&& req, http::Responder respond) {
    const std::string id = req.path_params["id"];
    auto order = read_order(id);
    if (!order) {
        respond(http::problem(404, "Order not found", "no order with id " + id));
        return;
    }
    auto wait = req.query.find("wait");
    if (wait == req.query.end()) {
        respond(http::Response::json(200, order_view(*order)));
        return;
    }
    const std::string wanted = wait->second;
    if (wanted != "CONFIRMED" && wanted != "CANCELLED" && wanted != "terminal") {
        respond(
            http::problem(400, "Invalid wait", "wait must be CONFIRMED, CANCELLED or terminal"));
        return;
    }
    std::int64_t timeout_ms = 30000;
    if (auto t = req.query.find("timeout_ms"); t != req.query.end()) {
        try {
            timeout_ms = std::stoll(t->second);
        } catch (const std::exception&) {
            timeout_ms = -1;
        }
        if (timeout_ms < 0 || timeout_ms > 120000) {
            respond(http::problem(400, "Invalid timeout_ms",
                                  "timeout_ms must be an integer from 0 to 120000"));
            return;
        }
    }
    auto accepts = [wanted](const std::string& status) {
        return wanted == "terminal" ? (status == "CONFIRMED" || status == "CANCELLED")
                                    : status == wanted;
    };
    if (accepts(order->status) || timeout_ms == 0) {
        respond(http::Response::json(200, order_view(*order)));
        return;
    }
    waiters_.add(id, accepts,
                 std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms),
                 [this, id, respond] {
                     auto now = read_order(id);
                     respond(now ? http::Response::json(200, order_view(*now))
                                 : http::problem(404, "Order not found", "no order with id " + id));
                 });
    // The state may have changed between the read and the registration: check once more.
    if (auto again = read_order(id); again && accepts(again->status)) {
        waiters_.notify(id, again->status);
    }
}

void OrderService::handle_cancel(http::Request&& req, http::Responder respond) {
    const std::string id = req.path_params["id"];
    if (draining_) {
        respond(http::problem(503, "Service Unavailable", "the service is shutting down"));
        return;
    }
    saga_->request_cancel(id, [respond, id](const SagaProcessor::CancelResult& r) {
        if (r.status == 202) {
            respond(http::Response::json(
                202, {{"order_id", id}, {"status", "CANCELLING"}, {"detail", r.detail}}));
            return;
        }
        const char* title = r.status == 404   ? "Order not found"
                            : r.status == 409 ? "Order already cancelled"
                                              : "Service Unavailable";
        respond(http::problem(r.status, title, r.detail));
    });
    saga_loop_->wake();
}

}  // namespace orderpipe::order
