// What the sinks (sink.cpp, imap_sink.cpp) share: unique names, spool files, fsync of a group.
// Internal to src/client.
#pragma once

#include "client/sink.hpp"
#include "storage/fs_util.hpp"
#include "storage/mbox/mbox_io.hpp"

#include <algorithm>
#include <cstdint>
#include <fcntl.h>
#include <memory>
#include <string>
#include <string_view>
#include <tl/expected.hpp>
#include <unistd.h>
#include <utility>
#include <vector>

namespace pigeon::client::detail {

std::string errno_text(const std::string& what);
// "1700000000.M123456P42Q7R3f9a…" : unique on this host (time, microseconds, PID, a counter and
// random bits, as Dovecot's names are).
std::string unique_base();
SinkResult write_fd(int fd, std::string_view bytes, const std::string& path);
// A file name we made (no '/', no leading '.').
bool plain_name(std::string_view name);
// fsync() of each file, or one syncfs() for a larger group (all in one file system).
SinkResult sync_files(const std::vector<std::pair<int, std::string>>& files);
// Creates the directory (and its parents), mode 0700.
SinkResult ensure_directory(const std::string& path);

// A sink's messages are the ones it made in begin(): this is how it finds its own type again.
template <class Message>
Message* own(SinkMessage* message)
{
    return static_cast<Message*>(message); // NOLINT(cppcoreguidelines-pro-type-static-cast-downcast)
}

// A message held in a file of the spool directory (mbox, command and IMAP targets) until it is
// published; the file is removed when the SpoolFile goes.
class SpoolFile {
public:
    static tl::expected<SpoolFile, std::string> create(const std::string& directory)
    {
        if (auto made = ensure_directory(directory); !made) {
            return tl::unexpected(made.error());
        }
        SpoolFile spool;
        spool.m_name = unique_base();
        spool.m_path = directory + "/" + spool.m_name;
        spool.m_fd.reset(
            ::open(spool.m_path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600));
        if (!spool.m_fd.valid()) {
            return tl::unexpected(errno_text(spool.m_path));
        }
        return spool;
    }
    SpoolFile() = default;
    SpoolFile(SpoolFile&&) = default;
    SpoolFile& operator=(SpoolFile&&) = default;
    SpoolFile(const SpoolFile&) = delete;
    SpoolFile& operator=(const SpoolFile&) = delete;
    ~SpoolFile()
    {
        if (!m_path.empty()) {
            ::unlink(m_path.c_str());
        }
    }

    SinkResult write(std::string_view bytes)
    {
        m_octets += bytes.size();
        m_line_feeds += static_cast<std::uint64_t>(std::count(bytes.begin(), bytes.end(), '\n'));
        m_hash.update(bytes);
        return write_fd(m_fd.get(), bytes, m_path);
    }
    // SHA-256 of everything written, as storage::mbox::hash_file_range() gives it.
    [[nodiscard]] std::string hash() { return storage::mbox::to_hex(m_hash.finish(), 16); }
    SinkResult sync()
    {
        if (::fsync(m_fd.get()) != 0) {
            return tl::unexpected(errno_text(m_path));
        }
        return {};
    }
    [[nodiscard]] int fd() const noexcept { return m_fd.get(); }
    [[nodiscard]] const std::string& name() const noexcept { return m_name; }
    [[nodiscard]] const std::string& path() const noexcept { return m_path; }
    [[nodiscard]] std::uint64_t octets() const noexcept { return m_octets; }
    // Line feeds written (a CRLF form of the message is octets() + line_feeds() long).
    [[nodiscard]] std::uint64_t line_feeds() const noexcept { return m_line_feeds; }

private:
    std::string m_name;
    std::string m_path;
    storage::UniqueFd m_fd;
    std::uint64_t m_octets = 0;
    std::uint64_t m_line_feeds = 0;
    storage::mbox::Sha256 m_hash;
};

// begin() and sync() of a sink whose messages are spool files (Message(SpoolFile), spool()).
template <class Message>
tl::expected<std::unique_ptr<SinkMessage>, std::string> begin_spooled(const std::string& directory)
{
    auto spool = SpoolFile::create(directory);
    if (!spool) {
        return tl::unexpected(spool.error());
    }
    return std::make_unique<Message>(std::move(*spool));
}

template <class Message>
SinkResult sync_spooled(const std::vector<SinkMessage*>& group)
{
    std::vector<std::pair<int, std::string>> files;
    for (auto* message : group) {
        auto& spool = own<Message>(message)->spool();
        files.emplace_back(spool.fd(), spool.path());
    }
    return sync_files(files);
}

} // namespace pigeon::client::detail
