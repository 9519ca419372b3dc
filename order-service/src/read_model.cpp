#include "read_model.hpp"

namespace orderpipe::order {

void ReadModelChanges::add(const CloudEvent& e) {
    if (contract::type_of(e) == contract::EventType::kOrderCreated) {
        created.push_back({record_for_created(e), e.id});
        return;
    }
    if (auto t = transition_for(e)) applied.push_back({e.id, std::move(*t)});
}

void ReadModelChanges::clear() {
    created.clear();
    applied.clear();
    releases.clear();
}

void OrderStore::apply(const CloudEvent& event) {
    ReadModelChanges changes;
    changes.add(event);
    write(changes);
}

void OrderStore::mark_release_requested(const std::string& order_id) {
    ReadModelChanges changes;
    changes.releases.push_back(order_id);
    write(changes);
}

}  // namespace orderpipe::order
