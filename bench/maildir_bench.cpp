// Maildir snapshot benchmark (storage issue): opens a maildir of N messages (default 100,000)
// cold (no index, no ",W=" in names: every file is read once) and warm (index valid), and reports
// the time of each open and the heap held per message by the snapshot.
// Goals: warm <= 50 ms for 100,000 messages; cold bounded by reading the files once; <= 100 bytes
// per message. Usage: maildir_bench [MESSAGES] [DIRECTORY]
#include "protocol/dot_stuffer.hpp"
#include "storage/delivery.hpp"
#include "storage/maildir/maildir_store.hpp"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fcntl.h>
#include <filesystem>
#include <malloc.h>
#include <string>
#include <sys/stat.h>
#include <unistd.h>

namespace {

namespace fs = std::filesystem;

double seconds_since(std::chrono::steady_clock::time_point start)
{
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

void make_maildir(const fs::path& root, std::uint32_t messages)
{
    fs::remove_all(root);
    for (const char* sub : {"cur", "new", "tmp"}) {
        fs::create_directories(root / sub);
    }
    std::string body = "Received: from mx.example.org by mail.example.org\nFrom: someone@example.org\n"
                       "To: user@example.org\nSubject: benchmark message\n\n";
    while (body.size() < 2000) {
        body += "A line of text of a typical length for mail that people write to each other.\n";
    }
    for (std::uint32_t i = 0; i < messages; ++i) {
        // Dovecot-like names without ",W=": the cold open must read every file.
        const std::string name = std::to_string(1'700'000'000 + i) + ".M" + std::to_string(i % 1000000) +
                                 "P" + std::to_string(4000 + i % 100) +
                                 ".mail.example.org,S=" + std::to_string(body.size()) + ":2,S";
        const int fd = ::open((root / "cur" / name).c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd < 0 || ::write(fd, body.data(), body.size()) != static_cast<ssize_t>(body.size())) {
            std::perror("write");
            std::exit(1);
        }
        ::close(fd);
    }
    // Settled directories, as on a server where the last delivery was more than 2 s ago.
    const timespec past[2] = {{1'600'000'000, 0}, {1'600'000'000, 0}};
    ::utimensat(AT_FDCWD, (root / "cur").c_str(), past, 0);
    ::utimensat(AT_FDCWD, (root / "new").c_str(), past, 0);
}

void drop_page_cache_hint(const fs::path& root)
{
    // Without root we cannot drop the kernel's page cache; posix_fadvise asks for it per file.
    for (const auto& item : fs::directory_iterator(root / "cur")) {
        const int fd = ::open(item.path().c_str(), O_RDONLY);
        if (fd >= 0) {
            ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
            ::close(fd);
        }
    }
}

} // namespace

int main(int argc, char** argv)
{
    const std::uint32_t messages =
        argc > 1 ? static_cast<std::uint32_t>(std::strtoul(argv[1], nullptr, 10)) : 100000;
    const fs::path root = argc > 2 ? fs::path(argv[2]) : fs::temp_directory_path() / "pigeon-maildir-bench";
    std::printf("maildir_bench: %u messages in %s\n", messages, root.c_str());
    make_maildir(root, messages);
    drop_page_cache_hint(root);

    pigeon::storage::MaildirStore store(pigeon::storage::MaildirOptions{});
    {
        const auto start = std::chrono::steady_clock::now();
        auto maildrop = store.open_path(root.string());
        const double cold = seconds_since(start);
        if (!maildrop || (*maildrop)->message_count() != messages) {
            std::fprintf(stderr, "cold open failed\n");
            return 1;
        }
        std::printf("cold open (read every file once, write the index): %.1f ms\n", cold * 1000);
    }
    double best_warm = 1e9;
    std::size_t heap_per_message = 0;
    for (int round = 0; round < 5; ++round) {
        const std::size_t heap_before = mallinfo2().uordblks;
        const auto start = std::chrono::steady_clock::now();
        auto maildrop = store.open_path(root.string());
        const double warm = seconds_since(start);
        const std::size_t heap_after = mallinfo2().uordblks;
        if (!maildrop || (*maildrop)->message_count() != messages) {
            std::fprintf(stderr, "warm open failed\n");
            return 1;
        }
        best_warm = std::min(best_warm, warm);
        heap_per_message = (heap_after - heap_before) / messages;
    }
    std::printf("warm open (index valid), best of 5: %.1f ms (goal <= 50 ms for 100,000)\n",
                best_warm * 1000);
    std::printf("heap held by the snapshot: %zu bytes per message (goal <= 100)\n", heap_per_message);

    // RETR of a 50 MB message: file -> 64 KiB reads -> dot-stuffer -> one reused output buffer,
    // as the server streams it. The buffer's capacity shows nothing held the message whole.
    fs::remove_all(root);
    {
        auto pending = store.begin_path(root.string());
        std::string chunk;
        while (chunk.size() < 64 * 1024) {
            chunk += "A line of a large attachment, base64 perhaps, 76 octets or so in length..\n";
        }
        std::size_t written = 0;
        while (pending && written < 50U * 1024 * 1024) {
            (void)(*pending)->write(chunk);
            written += chunk.size();
        }
        if (!pending || !(*pending)->commit()) {
            std::fprintf(stderr, "delivery failed\n");
            return 1;
        }
    }
    auto maildrop = store.open_path(root.string());
    if (!maildrop || (*maildrop)->message_count() != 1) {
        return 1;
    }
    const auto start = std::chrono::steady_clock::now();
    auto reader = (*maildrop)->open_message(pigeon::MessageIndex{0});
    if (!reader) {
        return 1;
    }
    pigeon::protocol::DotStuffer stuffer;
    std::string input(64 * 1024, '\0');
    std::string output;
    std::size_t sent = 0;
    std::size_t largest_buffer = 0;
    for (;;) {
        auto count = (*reader)->read(std::span<char>(input.data(), input.size()));
        if (!count || *count == 0) {
            break;
        }
        stuffer.feed(std::string_view(input.data(), *count), output);
        sent += output.size();
        largest_buffer = std::max(largest_buffer, output.capacity());
        output.clear(); // written to the socket here
    }
    stuffer.finish(output);
    sent += output.size();
    const double retr = seconds_since(start);
    std::printf("RETR of a %.0f MB message from Maildir through the dot-stuffer: %.0f MB/s, "
                "largest buffer %zu KiB\n",
                static_cast<double>((*maildrop)->message_octets(pigeon::MessageIndex{0})) / 1e6,
                static_cast<double>(sent) / 1e6 / retr, largest_buffer / 1024);
    maildrop->reset();
    fs::remove_all(root);
    return 0;
}
