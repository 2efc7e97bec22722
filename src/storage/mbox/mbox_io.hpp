// Small building blocks of the mbox backend: positioned reads and writes that retry on EINTR and
// short transfers, and a streaming SHA-256 (OpenSSL EVP) for unique-ids, index stamps and the
// rewrite journal's checksum. Nothing here knows the mbox format.
#pragma once

#include "core/result.hpp"

#include <openssl/evp.h>

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace pigeon::storage::mbox {

// Reads up to `length` octets at `offset`; fewer only at the end of the file.
[[nodiscard]] Result<std::size_t> pread_full(int fd, char* data, std::size_t length, std::uint64_t offset);

// Writes all of `data` at `offset`.
[[nodiscard]] Result<void> pwrite_all(int fd, std::string_view data, std::uint64_t offset);

// fsync() that retries on EINTR.
[[nodiscard]] Result<void> fsync_file(int fd);

class Sha256 {
public:
    using Digest = std::array<unsigned char, 32>;

    Sha256();
    void reset();
    void update(std::string_view bytes);
    [[nodiscard]] Digest finish();

private:
    struct Free {
        void operator()(EVP_MD_CTX* context) const noexcept { EVP_MD_CTX_free(context); }
    };
    std::unique_ptr<EVP_MD_CTX, Free> m_context;
};

// Lower-case hex of the first `octets` octets of a digest.
[[nodiscard]] std::string to_hex(const Sha256::Digest& digest, std::size_t octets);

// base64url without padding of the digest, cut to 32 characters (192 bits): every character is
// valid in a unique-id (RFC 1939 §7), and no two messages will ever collide by chance.
[[nodiscard]] std::string to_base64url_32(const Sha256::Digest& digest);

// SHA-256 of the octets [begin, end) of a file, as 32 hex characters, read through a fixed buffer.
[[nodiscard]] Result<std::string> hash_file_range(int fd, std::uint64_t begin, std::uint64_t end);

} // namespace pigeon::storage::mbox
