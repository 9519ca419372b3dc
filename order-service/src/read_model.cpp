#include "read_model.hpp"

namespace orderpipe::order {

void OrderStore::apply(const CloudEvent& e) {
    if (contract::type_of(e) == contract::EventType::kOrderCreated) {
        insert(record_for_created(e), e.id);
        return;
    }
    if (auto t = transition_for(e)) apply_transition(t->order_id, e.id, *t);
}

}  // namespace orderpipe::order
