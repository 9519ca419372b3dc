#include "order_service.hpp"

#include "order_view.hpp"
#include "pg_idempotency_store.hpp"
#include "pg_order_store.hpp"
#include "sqlite_idempotency_store.hpp"
#include "sqlite_order_store.hpp"

#include "orderpipe/common/ids.hpp"
#include "orderpipe/common/json.hpp"
#include "orderpipe/common/logging.hpp"
#include "orderpipe/common/time.hpp"
#include "orderpipe/contract/topics.hpp"
#include "orderpipe/http/problem.hpp"
#include "orderpipe/kafka/event_record.hpp"
#include "orderpipe/kafka/producer.hpp"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include <algorithm>
#include <charconv>

namespace orderpipe::order {
namespace {

using contract::OrderStatus;
using nlohmann::json;
namespace topic = contract::topic;

http::Response created(int status, const std::string& order_id, std::string body) {
    http::Response r;
    r.status = status;
    r.body = std::move(body);
    r.headers.emplace_back("Location", "/orders/" + order_id);
    return r;
}

/// timeout_ms: digits only, 0 to 120000.
std::optional<std::int64_t> parse_timeout_ms(const std::string& text) {
    std::int64_t v = 0;
    const char* end = text.data() + text.size();
    auto [p, ec] = std::from_chars(text.data(), end, v);
    if (text.empty() || ec != std::errc{} || p != end || v < 0 || v > 120000) return std::nullopt;
    return v;
}

}  // namespace

/// Applies orders.events to the read model (its own connection, on the projection's thread),
/// and wakes the long-polls of the orders it changed.
class OrderService::OrdersProjection final : public runtime::ProjectionHandler {
  public:
    OrdersProjection(std::unique_ptr<OrderStore> store, Waiters& waiters, WrittenThrough& written)
        : store_(std::move(store)), waiters_(waiters), written_(written) {}

    runtime::ProjectionStore& store() override { return store_->projection_positions(); }

    void apply(const kafka::ConsumedRecord& record) override {
        // Written through by this process already (and woken its waiters): not decoded again.
        if (const auto id = record.header("ce_id"); id && written_.take(*id)) return;
        auto decoded = kafka::from_record(record);
        auto* e = std::get_if<CloudEvent>(&decoded);
        if (e == nullptr) {
            // The read model only skips it; analytics, a transactional consumer of this
            // topic, dead-letters it to orders.events.dlq.
            throw contract::ContractError(std::get<EnvelopeError>(decoded).message);
        }
        const auto created = changes_.created.size();
        const auto applied = changes_.applied.size();
        changes_.add(*e);  // checked before anything of it is kept
        if (changes_.created.size() > created) {
            changed_.emplace_back(e->subject, OrderStatus::kPending);
        } else if (changes_.applied.size() > applied) {
            const auto& t = changes_.applied.back().t;
            changed_.emplace_back(t.order_id, t.status);
        }
    }

    /// The batch's changes in one write (in a shared database: a few statements, not a few per
    /// event).
    void flush() override {
        store_->write(changes_);
        changes_.clear();
    }

    void committed() override {
        for (const auto& [id, status] : changed_) waiters_.notify(id, status);
        changed_.clear();
    }
    void rolled_back() override {
        changes_.clear();
        changed_.clear();
    }

  private:
    std::unique_ptr<OrderStore> store_;
    Waiters& waiters_;
    WrittenThrough& written_;
    ReadModelChanges changes_;
    std::vector<std::pair<std::string, OrderStatus>> changed_;
};

OrderServiceConfig OrderServiceConfig::from_env(EnvReader& env) {
    OrderServiceConfig c;
    c.settings = runtime::ServiceSettings::read(env, "order-service", 8080);
    c.intake_batch_max = static_cast<std::size_t>(env.integer("INTAKE_BATCH_MAX", 500, 1, 10000));
    c.intake_linger = env.millis("INTAKE_LINGER", c.intake_linger, std::chrono::milliseconds(0),
                                 std::chrono::milliseconds(1000));
    c.intake_queue_max =
        static_cast<std::size_t>(env.integer("INTAKE_QUEUE_MAX", 20000, 1, 1000000));
    c.idempotency_retention =
        std::chrono::hours(env.integer("IDEMPOTENCY_RETENTION_HOURS", 48, 24, 24 * 365));
    c.order_timeout = env.millis("ORDER_TIMEOUT", c.order_timeout, std::chrono::milliseconds(100),
                                 std::chrono::hours(24 * 7));
    env.renamed("INTAKE_COMMIT_TIMEOUT", "COMMIT_TIMEOUT");
    return c;
}

OrderService::OrderService(Config config)
    : config_(std::move(config)), runtime_(std::make_unique<runtime::Runtime>(config_.settings)) {
    const auto& s = runtime_->settings();
    topics_ = {s.topic(topic::kOrdersEvents), s.topic(topic::kInventoryRequests),
               s.topic(topic::kInventoryResponses), s.topic(topic::kNotificationsRequests)};
    requests_ = &prometheus::BuildCounter()
                     .Name("order_intake_requests_total")
                     .Help("POST /orders, by outcome")
                     .Register(runtime_->registry());
    waiters_.set_gauge(&prometheus::BuildGauge()
                            .Name("order_long_polls")
                            .Help("GET /orders/{id}?wait= requests waiting for their answer")
                            .Register(runtime_->registry())
                            .Add({}));
}

OrderService::~OrderService() { stop(); }

void OrderService::start() {
    auto& rt = *runtime_;
    const auto& s = rt.settings();
    const bool shared = s.shared_database();
    std::function<std::unique_ptr<OrderStore>()> open_orders;
    std::function<std::unique_ptr<IdempotencyStore>()> open_keys;
    const auto retention = config_.idempotency_retention;
    if (shared) {
        // N instances on one database (docs/ARCHITECTURE.md "Scaling out"): the keys and the
        // read model are shared; each instance's projection applies every event (written once
        // by event id) and keeps its own positions.
        auto pool = rt.database("order-keys", idempotency_migrations());
        rt.database("order-read-model", order_store_migrations());
        open_orders = [pool] { return open_pg_orders(pool); };
        open_keys = [pool, retention, owner = s.transactional_id()] {
            return open_pg_keys(pool, retention, owner);
        };
    } else {
        const std::string orders_db = rt.open_state("orders.db");
        const std::string keys_db = rt.open_state("idempotency.db");
        open_orders = [orders_db] {
            try {
                return open_sqlite_orders(orders_db);
            } catch (const std::exception& e) {
                throw runtime::StartupError("cannot open " + orders_db + ": " + e.what());
            }
        };
        open_keys = [keys_db, retention] {
            try {
                return open_sqlite_keys(keys_db, retention);
            } catch (const std::exception& e) {
                throw runtime::StartupError("cannot open " + keys_db + ": " + e.what());
            }
        };
    }
    read_store_ = open_orders();
    saga_store_ = open_orders();
    projection_handler_ =
        std::make_unique<OrdersProjection>(open_orders(), waiters_, written_through_);

    runtime::ProjectionOptions projected{"orders", {topics_.orders}, rt.kafka_client("projection")};
    if (shared) projected.positions_name = "orders@" + s.transactional_id();
    projection_ = std::make_unique<runtime::Projection>(std::move(projected), *projection_handler_,
                                                        rt.registry());
    auto caught_up = [this](std::chrono::milliseconds d, const kafka::PartitionOffsets& passed) {
        return projection_->wait_caught_up(d, passed);
    };

    std::vector<std::string> decided_from = {topics_.inventory_responses};
    if (shared) {
        topics_.commands = s.topic(topic::kOrdersCommands);
        decided_from.push_back(topics_.commands);
        commands_ =
            std::make_unique<kafka::Producer>(rt.kafka_client("commands"), s.commit_timeout);
    }
    saga_ = std::make_unique<SagaProcessor>(
        *saga_store_, topics_, config_.order_timeout,
        [this](const std::string& id, OrderStatus st) { waiters_.notify(id, st); }, caught_up);
    saga_->remember_written(&written_through_);
    if (shared) {
        saga_->scale_out([this] { return runtime_->partition_count(topics_.inventory_responses); });
    }
    saga_loop_ = &rt.add_loop({.name = "order-decisions",
                               .topics = decided_from,
                               .processor = saga_.get(),
                               .transactional_suffix = "saga",
                               // Scaled out, a dead instance's partitions move at once, and a
                               // dropped one cannot commit a timeout of an order it lost.
                               .static_membership = !shared,
                               .fence_idle_work = shared});

    IntakeOptions io;
    io.max_batch = config_.intake_batch_max;
    io.linger = config_.intake_linger;
    io.queue_capacity = config_.intake_queue_max;
    io.orders_topic = topics_.orders;
    io.inventory_topic = topics_.inventory_requests;
    io.transactional_id = s.transactional_id();
    io.commit_timeout = s.commit_timeout;
    io.open_keys = open_keys;
    io.open_orders = open_orders;
    io.written_through = &written_through_;
    io.caught_up = caught_up;
    io.on_fatal = [this](const std::string& why) {
        runtime_->request_exit(runtime::kExitFailure, why);
    };
    io.before_commit = config_.intake_before_commit;
    intake_ = std::make_unique<Intake>(rt.kafka_client("intake"), io, rt.registry());

    rt.reads({topics_.orders});
    rt.writes({topics_.orders, topics_.inventory_requests, topics_.notifications});
    if (!shared) {
        rt.single_instance();
        // Its Idempotency-Keys exist only in DATA_DIR (the read model is rebuilt from
        // orders.events).
        rt.state_is_not_rebuildable(
            "forget every Idempotency-Key (a client retrying its key would get a second order)");
    }

    // Nothing may decide before the read model holds everything already committed, and a
    // dead predecessor's open transactions would hold the read model back (last stable
    // offset) until the broker's transaction timeout: settle them first.
    rt.add_startup_step(
        "settling the previous instance's transactions", [this](const std::atomic<bool>& stop) {
            const auto& st = runtime_->settings();
            kafka::ProducerOptions po;
            po.transactional_id = st.transactional_id("saga");
            po.operation_timeout = st.commit_timeout;
            kafka::TransactionalProducer fencer(runtime_->kafka_client("fence"), po);
            return kafka::init_transactions_retrying(fencer, stop, [](const std::string& why) {
                log::warn("cannot settle the previous transactions yet", {{"error", why}});
            });
        });
    rt.add_startup_step("starting the intake", [this](const std::atomic<bool>&) {
        intake_->start();  // its first init_transactions settles the intake's id
        return true;
    });
    rt.add_startup_step("catching up the read model with orders.events",
                        [this](const std::atomic<bool>& stop) {
                            return !stop && projection_->catch_up(std::chrono::seconds(10));
                        });
    rt.add_startup_step("starting the projection", [this](const std::atomic<bool>&) {
        projection_->start();
        return true;
    });
    rt.add_check("intake", [this] { return intake_->not_ready_reason(); });
    if (shared) {
        // One instance owns all of an order's decisions only if its results and its commands
        // share a partition number (docs/ARCHITECTURE.md "Scaling out").
        rt.add_check("co-partitioning", [this]() -> std::optional<std::string> {
            const auto responses = runtime_->partition_count(topics_.inventory_responses);
            const auto commands = runtime_->partition_count(topics_.commands);
            if (!responses || !commands || *responses == *commands) return std::nullopt;
            return topics_.commands + " has " + std::to_string(*commands) + " partitions and " +
                   topics_.inventory_responses + " " + std::to_string(*responses) +
                   ": give them as many (kafka-topics --alter --partitions)";
        });
    }
    rt.add_check("read model", [this] { return projection_->problem(); });
    rt.on_stop("intake", [this] { intake_->stop(); });
    // Open long-polls are answered (the order's current state) before the HTTP server drains.
    rt.on_stop("long-polls", [this] { waiters_.close(); });
    rt.on_stop(
        "projection", [this] { projection_->stop(); }, runtime::Runtime::StopPhase::kAfterLoops);

    rt.route("POST", "/orders", [this](http::Request&& r, const http::Responder& d) {
        handle_create(std::move(r), d);
    });
    rt.route("GET", "/orders/{id}",
             [this](http::Request&& r, const http::Responder& d) { handle_get(std::move(r), d); });
    rt.route("POST", "/orders/{id}/cancel", [this](http::Request&& r, const http::Responder& d) {
        handle_cancel(std::move(r), d);
    });
    rt.start();
}

void OrderService::stop() { runtime_->stop(); }

void OrderService::handle_create(http::Request&& req, const http::Responder& respond) {
    auto answer = [this, respond](const char* result, http::Response r) {
        requests_->Add({{"result", result}}).Increment();
        respond(std::move(r));
    };
    if (runtime_->draining()) {
        runtime_->refused_while_draining();
        answer("unavailable",
               with_retry_after(
                   http::problem(503, "Service Unavailable", "the service is shutting down"), 1));
        return;
    }
    if (!req.has_json_body()) {
        answer("rejected", http::problem(415, "Unsupported Media Type",
                                         "the body must be JSON: send Content-Type: "
                                         "application/json"));
        return;
    }
    auto parsed = parse_untrusted_json(req.body);
    if (auto* err = std::get_if<JsonParseError>(&parsed)) {
        answer("rejected", http::problem(400, "Malformed JSON", err->message));
        return;
    }
    const json& body = std::get<json>(parsed);
    auto validated = validate_order(body);
    if (auto* errors = std::get_if<std::vector<FieldError>>(&validated)) {
        json list = json::array();
        for (const auto& e : *errors) list.push_back({{"field", e.field}, {"message", e.message}});
        std::string detail = errors->front().field.empty()
                                 ? errors->front().message
                                 : errors->front().field + " " + errors->front().message;
        if (errors->size() > 1) detail += " (and " + std::to_string(errors->size() - 1) + " more)";
        answer("rejected",
               http::problem(422, "Invalid order", detail, {{"errors", std::move(list)}}));
        return;
    }
    const auto keys = req.header_values("idempotency-key");
    if (keys.size() > 1) {
        answer("rejected",
               http::problem(400, "Bad Request", "send at most one Idempotency-Key header"));
        return;
    }
    // Visible ASCII only: bytes are characters, and a value folded over two lines (obs-fold,
    // which the parser joins with a space) is refused rather than taken as another key.
    const auto visible = [](const std::string& k) {
        return std::all_of(k.begin(), k.end(), [](char c) { return c > 0x20 && c < 0x7f; });
    };
    if (!keys.empty() &&
        (keys.front().empty() || keys.front().size() > 255 || !visible(keys.front()))) {
        answer("rejected",
               http::problem(422, "Invalid Idempotency-Key",
                             "Idempotency-Key must be 1 to 255 visible ASCII characters (no "
                             "spaces or control characters)"));
        return;
    }
    if (auto why = intake_->not_ready_reason()) {
        answer("unavailable", with_retry_after(http::problem(503, "Service Unavailable", *why), 1));
        return;
    }
    PlaceRequest request;
    request.order = accept(std::move(std::get<OrderRequest>(validated)), req.header("traceparent"));
    if (!keys.empty()) request.key = keys.front();
    // The same JSON value, whatever the key order and spacing; 29.99 and "29.99" differ.
    request.canonical_body = "v2:" + canonical_json(req.body).value_or(req.body);
    request.legacy_body = body.dump();  // how keys stored by earlier versions hold it
    request.deadline = Clock::now() + runtime_->settings().commit_timeout;
    request.done = [answer](const PlaceResult& r) {
        switch (r.outcome) {
            case PlaceOutcome::kCreated:
                answer("accepted", created(201, r.order_id, r.body));
                return;
            case PlaceOutcome::kReplayed: {
                auto response = created(r.status, r.order_id, r.body);
                response.headers.emplace_back("Idempotency-Replayed", "true");
                answer("replayed", std::move(response));
                return;
            }
            case PlaceOutcome::kKeyReused:
                answer("rejected", http::problem(422, "Idempotency-Key reused", r.detail));
                return;
            case PlaceOutcome::kKeyInProgress:
                answer("rejected",
                       with_retry_after(http::problem(409, "Request in progress", r.detail,
                                                      {{"order_id", r.order_id}}),
                                        1));
                return;
            case PlaceOutcome::kNotCommitted:
                answer("failed",
                       with_retry_after(http::problem(503, "Service Unavailable", r.detail), 1));
                return;
            case PlaceOutcome::kOutcomeUnknown:
                answer("unknown",
                       with_retry_after(http::problem(504, "Commit outcome unknown", r.detail,
                                                      {{"order_id", r.order_id}}),
                                        10));
                return;
        }
    };
    switch (intake_->submit(std::move(request))) {
        case Intake::Submit::kQueued:
            return;
        case Intake::Submit::kFull:
            answer("throttled",
                   with_retry_after(http::problem(429, "Too Many Requests",
                                                  "the intake queue is full; retry after the "
                                                  "given delay"),
                                    1));
            return;
        case Intake::Submit::kStopping:
            answer("unavailable", with_retry_after(http::problem(503, "Service Unavailable",
                                                                 "the service is shutting down"),
                                                   1));
            return;
    }
}

std::optional<OrderRecord> OrderService::read_order(const std::string& id) {
    {
        std::lock_guard lock(read_mu_);
        if (auto found = read_store_->get(id)) return found;
    }
    return intake_->unwritten(id);  // answered 201 while the read model could not be written
}

void OrderService::handle_get(http::Request&& req, const http::Responder& respond) {
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
    // A wait is settled by the state it waits for, or by a state from which that one can no
    // longer be reached (CONFIRMED after CANCELLED). CANCELLED can follow CONFIRMED.
    Waiters::Settles settles;
    const auto wanted = contract::parse_order_status(wait->second);
    if (wanted == OrderStatus::kConfirmed || wait->second == "terminal") {
        settles = [](OrderStatus s) { return s != OrderStatus::kPending; };
    } else if (wanted == OrderStatus::kCancelled) {
        settles = [](OrderStatus s) { return s == OrderStatus::kCancelled; };
    } else {
        respond(
            http::problem(400, "Invalid wait", "wait must be CONFIRMED, CANCELLED or terminal"));
        return;
    }
    std::int64_t timeout_ms = 30000;
    if (auto t = req.query.find("timeout_ms"); t != req.query.end()) {
        auto parsed = parse_timeout_ms(t->second);
        if (!parsed) {
            respond(http::problem(
                400, "Invalid timeout_ms",
                "timeout_ms must be an integer from 0 to 120000, not \"" + t->second + "\""));
            return;
        }
        timeout_ms = *parsed;
    }
    if (settles(order->status) || timeout_ms == 0) {
        respond(http::Response::json(200, order_view(*order)));
        return;
    }
    const auto ticket = waiters_.add(
        id, settles, Clock::now() + std::chrono::milliseconds(timeout_ms), [this, id, respond] {
            // On the thread that settled the wait or the waiters' timer: the read model may be
            // unreachable there too, and answer() keeps that from escaping into it.
            respond.answer(
                [&] {
                    auto now = read_order(id);
                    return now ? http::Response::json(200, order_view(*now))
                               : http::problem(404, "Order not found", "no order with id " + id);
                },
                "GET /orders/{id}?wait=");
        });
    // The client may hang up before the wait is over: stop waiting for it.
    if (ticket == 0) return;  // stopping: answered at once
    respond.on_cancel([this, id, ticket] { waiters_.cancel(id, ticket); });
    // The state may have changed between the read and the registration: check once more.
    if (auto again = read_order(id); again && settles(again->status)) {
        waiters_.notify(id, again->status);
    }
}

void OrderService::handle_cancel(http::Request&& req, const http::Responder& respond) {
    const std::string id = req.path_params["id"];
    if (runtime_->draining()) {
        runtime_->refused_while_draining();
        respond(with_retry_after(
            http::problem(503, "Service Unavailable", "the service is shutting down"), 1));
        return;
    }
    if (!runtime_->started()) {
        respond(with_retry_after(
            http::problem(503, "Service Unavailable", "the service is starting"), 1));
        return;
    }
    if (commands_) {
        route_cancel(id, respond);
        return;
    }
    const bool queued = saga_->request_cancel(
        id,
        [respond, id](SagaProcessor::CancelOutcome outcome, const std::string& detail) {
            switch (outcome) {
                case SagaProcessor::CancelOutcome::kAccepted:
                    respond(http::Response::json(
                        202, {{"order_id", id},
                              {"status", contract::to_string(OrderStatus::kCancelled)},
                              {"detail", detail}}));
                    return;
                case SagaProcessor::CancelOutcome::kNotFound:
                    respond(http::problem(404, "Order not found", detail));
                    return;
                case SagaProcessor::CancelOutcome::kAlreadyCancelled:
                    respond(http::problem(409, "Order already cancelled", detail));
                    return;
                case SagaProcessor::CancelOutcome::kNotCommitted:
                    respond(with_retry_after(http::problem(503, "Service Unavailable", detail), 1));
                    return;
            }
        },
        Clock::now() + runtime_->settings().commit_timeout);
    if (!queued) {
        respond(with_retry_after(
            http::problem(429, "Too Many Requests", "too many cancellations are waiting"), 1));
        return;
    }
    saga_loop_->wake();
}

void OrderService::route_cancel(const std::string& id, const http::Responder& respond) {
    auto order = read_order(id);
    if (!order && projection_->wait_caught_up(std::chrono::seconds(1))) {
        // Created on another instance a moment ago and not written through there (its write
        // failed: it answered from memory)? This instance's projection has it once caught up.
        order = read_order(id);
    }
    if (!order) {
        respond(http::problem(404, "Order not found", "no order with id " + id));
        return;
    }
    if (order->status == OrderStatus::kCancelled) {
        respond(routed_cancel_answer(id, ""));
        return;
    }
    const auto commit_timeout = runtime_->settings().commit_timeout;
    CancelCommand command{id, new_uuid_v7(), unix_now_ms() + commit_timeout.count()};
    // The owner decides before expires_at or drops it; a decision commits within a commit
    // timeout; this instance's projection then shows it. Past that the read model knows.
    const auto answer_by = Clock::now() + 2 * commit_timeout + std::chrono::seconds(2);
    const std::string cancelled_id = command.cancelled_id;
    commands_->send(
        kafka::to_record(topics_.commands, id, command.to_event(*order)),
        [this, id, cancelled_id, answer_by,
         respond](const std::optional<kafka::KafkaError>& error) {
            if (error) {
                log::warn("a customer cancel could not be sent to the instance owning the order",
                          {{"order_id", id}, {"error", error->describe()}});
                respond(with_retry_after(
                    http::problem(503, "Service Unavailable",
                                  "the cancellation could not be sent in time; nothing was "
                                  "changed, retry"),
                    1));
                return;
            }
            waiters_.add(
                id, [](OrderStatus s) { return s == OrderStatus::kCancelled; }, answer_by,
                [this, id, cancelled_id, respond] {
                    respond.answer([&] { return routed_cancel_answer(id, cancelled_id); },
                                   "POST /orders/{id}/cancel");
                });
            // It may have been decided between the send and the registration. (On the
            // producer's delivery thread: if the read model cannot be read now, the wait's
            // deadline answers.)
            try {
                if (auto again = read_order(id);
                    again && again->status == OrderStatus::kCancelled) {
                    waiters_.notify(id, OrderStatus::kCancelled);
                }
            } catch (const std::exception& e) {
                log::warn("cannot read the order after sending its cancel; its wait answers",
                          {{"order_id", id}, {"error", e.what()}});
            }
        });
}

http::Response OrderService::routed_cancel_answer(const std::string& id,
                                                  const std::string& cancelled_id) {
    auto order = read_order(id);
    if (order && order->status != OrderStatus::kCancelled && !cancelled_id.empty()) {
        // Not decided by its deadline, as far as this instance has read: make sure it has read
        // everything committed before saying nothing was (a wait on the waiters' timer thread,
        // on a path taken only when the owner did not answer in time).
        if (projection_->wait_caught_up(std::chrono::seconds(5))) order = read_order(id);
    }
    bool ours = false;
    if (!cancelled_id.empty()) {
        std::lock_guard lock(read_mu_);
        ours = read_store_->has_event(cancelled_id);
    }
    if (ours) {
        return http::Response::json(202, {{"order_id", id},
                                          {"status", contract::to_string(OrderStatus::kCancelled)},
                                          {"detail", "cancellation accepted"}});
    }
    if (order && order->status == OrderStatus::kCancelled) {
        return http::problem(409, "Order already cancelled",
                             "order " + id + " is already cancelled (" +
                                 std::string(order->reason ? to_string(*order->reason) : "") + ")");
    }
    return with_retry_after(
        http::problem(503, "Service Unavailable",
                      "the cancellation was not decided in time; nothing was changed, retry"),
        1);
}

}  // namespace orderpipe::order
