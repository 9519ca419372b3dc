// The shared read-process-write loop on a real broker: exactly-once echo, poison envelopes,
// and a record that makes the processor throw (isolated, then dead-lettered: no wedge).
#include "support.hpp"

#include "orderpipe/kafka/event_record.hpp"
#include "orderpipe/kafka/processing_loop.hpp"
#include "orderpipe/kafka/producer.hpp"

#include <prometheus/registry.h>
#include <catch2/catch.hpp>

#include <atomic>
#include <set>

using namespace orderpipe;
using namespace orderpipe::testing;

namespace {

/// Echoes every event to `out_topic`; throws on events whose data has "boom": true.
class EchoProcessor final : public kafka::BatchProcessor {
  public:
    explicit EchoProcessor(std::string out_topic) : out_topic_(std::move(out_topic)) {}
    void process(std::vector<kafka::Incoming>& batch, kafka::BatchOutput& out) override {
        for (const auto& in : batch) {
            if (in.event.data.value("boom", false)) {
                ++booms;
                throw std::runtime_error("boom in " + in.event.id);
            }
            out.produce(kafka::to_record(out_topic_, in.event.subject, in.event));
        }
    }
    std::atomic<int> booms{0};

  private:
    std::string out_topic_;
};

void produce_events(const std::string& topic, const std::vector<nlohmann::json>& datas) {
    kafka::ProducerOptions po;
    po.transactional_id = unique_name("test-producer");
    kafka::TransactionalProducer producer(client_config("test-producer"), po);
    producer.init_transactions();
    producer.begin();
    int i = 0;
    for (const auto& d : datas) {
        auto e = CloudEvent::make("TEST_EVENT", "/test", "k" + std::to_string(i++), "c",
                                  std::nullopt, TraceContext::fresh().header(), d);
        producer.produce(kafka::to_record(topic, e.subject, e));
    }
    REQUIRE(producer.commit_or_abort() == kafka::TxnOutcome::kCommitted);
}

}  // namespace

TEST_CASE("a record that makes the processor throw is isolated and dead-lettered; the rest pass",
          "[loop][kafka]") {
    const auto prefix = unique_name("loop");
    auto t = create_test_topics(prefix, {"in", "in.dlq", "out"});
    EchoProcessor processor(t["out"]);
    prometheus::Registry registry;
    kafka::LoopOptions lo;
    lo.name = "echo";
    lo.group_id = prefix + "-echo";
    lo.topics = {t["in"]};
    lo.transactional_id = prefix + "-echo";
    kafka::ProcessingLoop loop(client_config("echo"), lo, processor, registry);
    loop.start();

    std::vector<nlohmann::json> datas;
    for (int i = 0; i < 10; ++i) datas.push_back({{"n", i}, {"boom", i == 6}});
    produce_events(t["in"], datas);
    auto [rc, out] = run_command("printf 'garbage' | kcat -P -b " + bootstrap() + " -t " + t["in"] +
                                 " -k g 2>&1");
    REQUIRE(rc == 0);

    auto echoed = read_committed(t["out"], 9);
    CHECK(echoed.size() == 9);
    auto dlq = read_committed(t["in.dlq"], 2);
    REQUIRE(dlq.size() == 2);
    int thrower = 0;
    int garbage = 0;
    for (const auto& r : dlq) {
        CHECK(r.header("dlq.reason") == "POISON_MESSAGE");
        const auto error = r.header("dlq.last_error").value_or("");
        if (error.find("processing failed 3 times: boom") != std::string::npos) ++thrower;
        if (r.value == "garbage") ++garbage;
    }
    CHECK(thrower == 1);
    CHECK(garbage == 1);
    // Once in its first (multi-record) batch, maybe, then three times alone.
    CHECK(processor.booms >= 3);
    CHECK(processor.booms <= 4);
    // Nothing was echoed twice although batches were aborted and retried.
    std::set<std::string> ids;
    for (const auto& r : echoed) ids.insert(r.header("ce_id").value_or(""));
    CHECK(ids.size() == 9);
    CHECK(loop.not_ready_reason() == std::nullopt);
    loop.stop();
}
