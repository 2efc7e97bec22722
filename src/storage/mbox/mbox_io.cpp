#include "storage/mbox/mbox_io.hpp"

#include "storage/fs_util.hpp"

#include <cerrno>
#include <unistd.h>
#include <vector>

namespace pigeon::storage::mbox {

Result<std::size_t> pread_full(int fd, char* data, std::size_t length, std::uint64_t offset)
{
    std::size_t filled = 0;
    while (filled < length) {
        const ssize_t count =
            ::pread(fd, data + filled, length - filled, static_cast<off_t>(offset + filled));
        if (count < 0) {
            if (errno == EINTR) {
                continue;
            }
            return fail(last_errno());
        }
        if (count == 0) {
            break;
        }
        filled += static_cast<std::size_t>(count);
    }
    return filled;
}

Result<void> pwrite_all(int fd, std::string_view data, std::uint64_t offset)
{
    while (!data.empty()) {
        const ssize_t count = ::pwrite(fd, data.data(), data.size(), static_cast<off_t>(offset));
        if (count < 0) {
            if (errno == EINTR) {
                continue;
            }
            return fail(last_errno());
        }
        data.remove_prefix(static_cast<std::size_t>(count));
        offset += static_cast<std::uint64_t>(count);
    }
    return {};
}

Result<void> fsync_file(int fd)
{
    while (::fsync(fd) != 0) {
        if (errno != EINTR) {
            return fail(last_errno());
        }
    }
    return {};
}

Sha256::Sha256() : m_context(EVP_MD_CTX_new())
{
    reset();
}

void Sha256::reset()
{
    EVP_DigestInit_ex(m_context.get(), EVP_sha256(), nullptr);
}

void Sha256::update(std::string_view bytes)
{
    EVP_DigestUpdate(m_context.get(), bytes.data(), bytes.size());
}

Sha256::Digest Sha256::finish()
{
    Digest digest{};
    unsigned int length = 0;
    EVP_DigestFinal_ex(m_context.get(), digest.data(), &length);
    reset();
    return digest;
}

std::string to_hex(const Sha256::Digest& digest, std::size_t octets)
{
    static constexpr std::string_view digits = "0123456789abcdef";
    std::string out;
    for (std::size_t i = 0; i < octets && i < digest.size(); ++i) {
        out.push_back(digits[digest[i] >> 4U]);
        out.push_back(digits[digest[i] & 0x0FU]);
    }
    return out;
}

std::string to_base64url_32(const Sha256::Digest& digest)
{
    static constexpr std::string_view alphabet =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    std::string out;
    std::uint32_t bits = 0;
    int count = 0;
    for (std::size_t i = 0; i < digest.size() && out.size() < 32; ++i) {
        bits = (bits << 8U) | digest[i];
        count += 8;
        while (count >= 6 && out.size() < 32) {
            count -= 6;
            out.push_back(alphabet[(bits >> static_cast<unsigned>(count)) & 0x3FU]);
        }
    }
    return out;
}

Result<std::string> hash_file_range(int fd, std::uint64_t begin, std::uint64_t end)
{
    Sha256 hash;
    std::vector<char> buffer(std::size_t{64} * 1024);
    while (begin < end) {
        const std::size_t want =
            static_cast<std::size_t>(std::min<std::uint64_t>(buffer.size(), end - begin));
        auto count = pread_full(fd, buffer.data(), want, begin);
        if (!count) {
            return fail(count.error());
        }
        if (*count < want) {
            return fail(errc::maildrop_damaged); // the file is shorter than the range
        }
        hash.update(std::string_view(buffer.data(), want));
        begin += want;
    }
    return to_hex(hash.finish(), 16);
}

} // namespace pigeon::storage::mbox
