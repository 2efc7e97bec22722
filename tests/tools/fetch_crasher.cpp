// fetch_crasher: runs one pigeon fetch (the src/client engine) and kills itself with SIGKILL at
// the CRASH_AT-th point between its effects, for tests/net/fetch_test.cpp's crash tests. It is a
// program of its own, started with posix_spawn(), because forking the test process (whose
// in-process pigeond has threads) is unsafe under the sanitizers' allocators.
//
//   fetch_crasher PORT STATE_FILE DELIVER_TO BATCH CRASH_AT
//   fetch_crasher --config FETCH_TOML ACCOUNT BATCH CRASH_AT   (tests/interop: any account)
//
// Exits 0 when it passed every point (CRASH_AT was beyond the last), 2 on a usage error.
#include "client/account.hpp"
#include "client/fetcher.hpp"

#include <atomic>
#include <csignal>
#include <cstdlib>
#include <string>
#include <unistd.h>

namespace {

int crash(const pigeon::client::Account& account, int batch, int crash_at)
{
    std::atomic<int> passed{0};
    pigeon::client::FetchOptions options;
    options.batch_messages = static_cast<std::size_t>(batch);
    options.fault_point = [&passed, crash_at](std::string_view) {
        if (++passed == crash_at) {
            ::kill(::getpid(), SIGKILL);
        }
    };
    (void)pigeon::client::fetch(account, options);
    return 0;
}

} // namespace

int main(int argc, char** argv)
{
    if (argc == 6 && std::string(argv[1]) == "--config") {
        auto accounts = pigeon::client::load_accounts(argv[2]);
        if (!accounts) {
            return 2;
        }
        for (auto& account : *accounts) {
            if (account.name == argv[3]) {
                return crash(account, std::atoi(argv[4]), std::atoi(argv[5]));
            }
        }
        return 2;
    }
    if (argc != 6) {
        return 2;
    }
    pigeon::client::Account account;
    account.name = "test";
    account.host = "127.0.0.1";
    account.port = static_cast<std::uint16_t>(std::atoi(argv[1]));
    account.tls = pigeon::client::TlsMode::none;
    account.allow_plaintext = true;
    account.user = "alice";
    account.password_command = "echo secret";
    account.state_file = argv[2];
    account.deliver_to = argv[3];
    account.keep = false;
    account.received_header = false;
    account.timeout = std::chrono::seconds(10);
    account.connect_timeout = std::chrono::seconds(10);
    return crash(account, std::atoi(argv[4]), std::atoi(argv[5]));
}
