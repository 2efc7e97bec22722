// What pigeon fetch remembers of one account, so that a message is downloaded once and only
// once: the unique-id (UIDL) of every message it has stored, with the time of the first download
// (for "delete N days after download"), and the deliveries that were under way when a run was
// killed.
//
// Two files in the state directory: NAME.state, a snapshot rewritten atomically at the end of a
// run, and NAME.state.journal, to which every change is appended and fsynced before the next effect
// (the journal is folded into the snapshot and emptied at the next save). A line cut short by a
// crash is ignored; every other line is checked, and a damaged file is an error, never a reason
// to download everything again.
//
// Journal lines: "+ UID TIME" stored; "- UID" forgotten (gone from the server); "? UID TARGET"
// a delivery about to become visible (TARGET says where: see sink.hpp), resolved at the next
// start by the sink before anything else.
#pragma once

#include "core/result.hpp"

#include <cstdint>
#include <ctime>
#include <map>
#include <optional>
#include <string>
#include <tl/expected.hpp>
#include <vector>

namespace pigeon::client {

class FetchState {
public:
    struct Pending {
        std::string uid;
        std::string target;
    };

    // Loads (or starts empty when neither file exists). Holds an exclusive lock on the journal
    // for the life of the object: two runs of the same account never interleave.
    [[nodiscard]] static tl::expected<FetchState, std::string> open(const std::string& state_path);

    FetchState(FetchState&& other) noexcept;
    FetchState& operator=(FetchState&& other) noexcept;
    FetchState(const FetchState&) = delete;
    FetchState& operator=(const FetchState&) = delete;
    ~FetchState();

    [[nodiscard]] bool contains(const std::string& uid) const { return m_seen.contains(uid); }
    [[nodiscard]] std::optional<std::time_t> first_download(const std::string& uid) const;
    [[nodiscard]] std::size_t size() const noexcept { return m_seen.size(); }
    [[nodiscard]] const std::map<std::string, std::time_t>& entries() const noexcept { return m_seen; }
    // Deliveries a killed run left between "about to" and "done", oldest first.
    [[nodiscard]] const std::vector<Pending>& pending() const noexcept { return m_pending; }

    // Each call is durable (journal fsynced) before it returns.
    [[nodiscard]] tl::expected<void, std::string> intend(const std::string& uid, const std::string& target);
    [[nodiscard]] tl::expected<void, std::string> record(const std::string& uid, std::time_t when);
    // A group in one append and one fdatasync.
    [[nodiscard]] tl::expected<void, std::string> intend(const std::vector<Pending>& deliveries);
    [[nodiscard]] tl::expected<void, std::string> record(const std::vector<std::string>& uids,
                                                         std::time_t when);
    [[nodiscard]] tl::expected<void, std::string> forget(const std::vector<std::string>& uids);
    // A pending delivery that the sink found not to have happened.
    [[nodiscard]] tl::expected<void, std::string> abandon(const std::string& uid);
    // Imports unique-ids another client downloaded (mpop, fetchmail), stored as of `when`.
    [[nodiscard]] tl::expected<std::size_t, std::string> import(const std::vector<std::string>& uids,
                                                                std::time_t when);

    // Rewrites the snapshot and empties the journal.
    [[nodiscard]] tl::expected<void, std::string> save();

    // A unique-id as RFC 1939 §7 allows it (1-70 characters 0x21-0x7E); longer ones up to 512 are
    // accepted, as some servers send them.
    [[nodiscard]] static bool valid_uid(std::string_view uid) noexcept;

private:
    FetchState() = default;
    [[nodiscard]] tl::expected<void, std::string> append(const std::string& line);

    std::string m_path;
    std::string m_journal_path;
    int m_journal_fd = -1;
    bool m_broken = false; // a failed append could not be taken back
    std::map<std::string, std::time_t> m_seen;
    std::vector<Pending> m_pending;
};

} // namespace pigeon::client
