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

void WrittenThrough::add(const ReadModelChanges& changes) {
    std::lock_guard lock(mu_);
    for (const auto& c : changes.created) remember(c.event_id);
    for (const auto& a : changes.applied) remember(a.event_id);
}

void WrittenThrough::remember(const std::string& id) {
    if (capacity_ == 0 || !ids_.insert(id).second) return;
    oldest_first_.push_back(id);
    while (oldest_first_.size() > capacity_) {
        ids_.erase(oldest_first_.front());  // nothing when it was taken
        oldest_first_.pop_front();
    }
}

bool WrittenThrough::take(std::string_view event_id) {
    std::lock_guard lock(mu_);
    if (ids_.empty()) return false;
    auto it = ids_.find(std::string(event_id));
    if (it == ids_.end()) return false;
    ids_.erase(it);
    return true;
}

std::size_t WrittenThrough::size() const {
    std::lock_guard lock(mu_);
    return ids_.size();
}

}  // namespace orderpipe::order
