#pragma once
/// The consumer names the outcomes are stored under (ProcessedEvents' `consumer` column), the
/// same in both adapters, so the SQLite files written before the port keep their meaning.

namespace orderpipe::notification {

inline constexpr const char* kOutcomesConsumer = "notification-service";   ///< outcome records
inline constexpr const char* kSentConsumer = "notification-service/sent";  ///< accepted ids

}  // namespace orderpipe::notification
