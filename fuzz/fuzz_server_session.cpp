// A whole ServerSession dialogue over the in-memory backends: the input is what a client sends,
// cut into packets at random points. The session must never crash, never hold more than its
// bounds, and never commit deletions without a QUIT.
#include "session_driver.hpp"

#include <cstdint>
#include <cstdlib>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    using namespace pigeon;
    storage::MemoryMaildropStore store;
    auth::MemoryPassDb passdb;
    passdb.add_user("alice", "secret");
    store.add_message("alice", {"uid-1", "Subject: one\n\nbody\n.dot line\n"});
    store.add_message("alice", {"uid-2", "Subject: two\r\n\r\nno newline at end"});
    store.add_message("alice", {"uid-3", ""});

    protocol::ServerPolicy policy;
    policy.apop_timestamp = "<1.2@fuzz.example>";
    policy.tls_available = true;
    policy.plaintext_auth_without_tls = true;
    policy.last_command = true;
    policy.login_delay_seconds = 60;
    test::SessionDriver driver(policy, store, passdb);
    (void)driver.run();

    const std::string_view input(reinterpret_cast<const char*>(data), size);
    std::size_t pos = 0;
    std::size_t seed = size > 0 ? data[0] : 0;
    while (pos < input.size() && !driver.closed()) {
        seed = seed * 1103515245 + 12345;
        const std::size_t chunk = 1 + (seed >> 8) % 64;
        (void)driver.feed(input.substr(pos, chunk));
        (void)driver.complete_tls();
        pos += chunk;
    }
    const bool quit_seen = driver.session().state() == protocol::SessionState::closed ||
                           driver.session().state() == protocol::SessionState::update;
    if (!quit_seen && driver.commits() != 0) {
        std::abort();
    }
    return 0;
}
