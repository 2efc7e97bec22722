#include "client/mail_reader.hpp"

#include "client/account.hpp"
#include "core/strings.hpp"
#include "storage/fs_util.hpp"
#include "storage/maildir/maildir_name.hpp"
#include "storage/mbox/mbox_io.hpp"
#include "storage/mbox/mbox_parser.hpp"

#include <fmt/format.h>
#include <gmime/gmime.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <ctime>
#include <dirent.h>
#include <fcntl.h>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <sys/stat.h>
#include <system_error>
#include <unistd.h>
#include <utility>
#include <vector>

namespace pigeon::client {
namespace {

// Octets read from a file at a time.
constexpr std::size_t read_chunk_octets = std::size_t{64} * 1024;
// Octets of an mbox streamed through the From_ line splitter at a time by open().
constexpr std::size_t mbox_scan_chunk_octets = std::size_t{1024} * 1024;
// A From_ line longer than this is not read for its date.
constexpr std::size_t max_from_line_octets = 512;
// MIME nesting walked by render(); deeper parts are ignored (real mail nests 3 or 4 levels).
constexpr int max_mime_depth = 32;

constexpr std::size_t mebibyte = std::size_t{1024} * 1024;

constexpr std::string_view replacement_character = "\xEF\xBF\xBD"; // U+FFFD

std::string errno_text(const std::string& what, int error)
{
    return fmt::format("{}: {}", what, std::error_code(error, std::system_category()).message());
}

StoreError store_error(int error, std::string text)
{
    return StoreError{error == ENOENT || error == ENOTDIR ? StoreError::Kind::not_found
                                                          : StoreError::Kind::io,
                      std::move(text)};
}

// A header value for the terminal: made safe, and cut at `limit` octets (never inside a character)
// with "…" to say so.
std::string field(std::string_view text, std::size_t limit)
{
    const bool cut = text.size() > limit;
    if (cut) {
        text = text.substr(0, complete_utf8_prefix(text.substr(0, limit)));
    }
    std::string out = terminal_safe(text, false);
    if (cut) {
        out += "\xE2\x80\xA6"; // U+2026 HORIZONTAL ELLIPSIS
    }
    return out;
}

// --- GMime --------------------------------------------------------------------------------------

// The parser options every parse uses, made once (with g_mime_init, which must run first). 8-bit
// header text and text parts without a usable charset are tried as UTF-8, then as Windows-1252
// (a superset of Latin-1 that every byte decodes in, so the second never fails).
GMimeParserOptions* parser_options()
{
    // Not const: GMime's functions take the options by non-const pointer (they are never changed).
    // NOLINTNEXTLINE(cppcoreguidelines-avoid-non-const-global-variables)
    static GMimeParserOptions* const options = [] {
        g_mime_init();
        GMimeParserOptions* made = g_mime_parser_options_new();
        static std::array<const char*, 3> charsets{"UTF-8", "windows-1252", nullptr};
        g_mime_parser_options_set_fallback_charsets(made, charsets.data());
        return made;
    }();
    return options;
}

struct GObjectUnref {
    void operator()(gpointer object) const noexcept
    {
        if (object != nullptr) {
            g_object_unref(object);
        }
    }
};
template <typename T>
using GObjectPtr = std::unique_ptr<T, GObjectUnref>;

struct GFree {
    void operator()(gpointer memory) const noexcept { g_free(memory); }
};
using GCharPtr = std::unique_ptr<char, GFree>;

struct GByteArrayFree {
    void operator()(GByteArray* array) const noexcept
    {
        if (array != nullptr) {
            g_byte_array_free(array, TRUE);
        }
    }
};
using GByteArrayPtr = std::unique_ptr<GByteArray, GByteArrayFree>;

// Parses a message held in `bytes` (taken over). Null if GMime finds no message at all.
GObjectPtr<GMimeMessage> parse_message(GByteArrayPtr bytes)
{
    GMimeParserOptions* options = parser_options();
    GObjectPtr<GMimeStream> stream(g_mime_stream_mem_new_with_byte_array(bytes.release()));
    GObjectPtr<GMimeParser> parser(g_mime_parser_new_with_stream(stream.get()));
    g_mime_parser_set_format(parser.get(), GMIME_FORMAT_MESSAGE);
    return GObjectPtr<GMimeMessage>(g_mime_parser_construct_message(parser.get(), options));
}

GByteArrayPtr to_byte_array(std::string_view text)
{
    GByteArrayPtr array(g_byte_array_sized_new(static_cast<guint>(text.size())));
    g_byte_array_append(array.get(), reinterpret_cast<const guint8*>(text.data()),
                        static_cast<guint>(text.size()));
    return array;
}

std::string_view view(const char* text)
{
    return text == nullptr ? std::string_view() : std::string_view(text);
}

// A display string for an address list: "Name <addr>, …", decoded.
std::string address_list_text(InternetAddressList* list, std::size_t limit)
{
    if (list == nullptr || internet_address_list_length(list) == 0) {
        return {};
    }
    const GCharPtr text(internet_address_list_to_string(list, nullptr, FALSE));
    // Decoded again for writers that wrongly encode a whole address (see summarize()).
    const GCharPtr decoded(g_mime_utils_header_decode_text(parser_options(), text.get()));
    return field(view(decoded.get()), limit);
}

// A header's value, RFC 2047-decoded, for fields GMime does not parse itself.
std::string decoded_header(GMimeObject* object, const char* name, std::size_t limit)
{
    const char* raw = g_mime_object_get_header(object, name);
    if (raw == nullptr) {
        return {};
    }
    const GCharPtr decoded(g_mime_utils_header_decode_text(parser_options(), raw));
    return field(view(decoded.get()), limit);
}

// Octets a part's content decodes to (base64, quoted-printable...), counted, not kept.
std::uint64_t decoded_octets(GMimeObject* object)
{
    GObjectPtr<GMimeStream> counter(g_mime_stream_null_new());
    if (GMIME_IS_PART(object)) {
        GMimeDataWrapper* content = g_mime_part_get_content(GMIME_PART(object));
        if (content == nullptr) {
            return 0;
        }
        static_cast<void>(g_mime_data_wrapper_write_to_stream(content, counter.get()));
    } else {
        static_cast<void>(g_mime_object_write_to_stream(object, nullptr, counter.get()));
    }
    return GMIME_STREAM_NULL(counter.get())->written;
}

// A text part's content, transfer-decoded and converted to UTF-8 from its charset (or, without a
// charset GMime can convert from, taken as UTF-8 if valid, else as Windows-1252).
std::string decoded_text(GMimePart* part)
{
    GMimeDataWrapper* content = g_mime_part_get_content(part);
    if (content == nullptr) {
        return {};
    }
    GObjectPtr<GMimeStream> memory(g_mime_stream_mem_new());
    const char* charset = g_mime_object_get_content_type_parameter(GMIME_OBJECT(part), "charset");
    GObjectPtr<GMimeFilter> filter(
        charset != nullptr && *charset != '\0' ? g_mime_filter_charset_new(charset, "UTF-8") : nullptr);
    if (filter) {
        GObjectPtr<GMimeStream> filtered(g_mime_stream_filter_new(memory.get()));
        g_mime_stream_filter_add(GMIME_STREAM_FILTER(filtered.get()), filter.get());
        static_cast<void>(g_mime_data_wrapper_write_to_stream(content, filtered.get()));
        static_cast<void>(g_mime_stream_flush(filtered.get()));
    } else {
        static_cast<void>(g_mime_data_wrapper_write_to_stream(content, memory.get()));
    }
    GByteArray* bytes = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(memory.get()));
    std::string text(reinterpret_cast<const char*>(bytes->data), bytes->len);
    if (!filter && !is_valid_utf8(text)) {
        const GCharPtr converted(g_mime_utils_decode_8bit(parser_options(), text.data(), text.size()));
        text = std::string(view(converted.get()));
    }
    return text;
}

bool is_text_type(GMimeObject* object, const char* subtype)
{
    return g_mime_content_type_is_type(g_mime_object_get_content_type(object), "text", subtype) != FALSE;
}

// A part that is meant to be read in line: not Content-Disposition: attachment, and no file name.
bool is_inline_text(GMimeObject* object, const char* subtype)
{
    if (!GMIME_IS_TEXT_PART(object) || !is_text_type(object, subtype)) {
        return false;
    }
    GMimePart* part = GMIME_PART(object);
    return g_mime_part_is_attachment(part) == FALSE && g_mime_part_get_filename(part) == nullptr;
}

struct Leaf {
    GMimeObject* object = nullptr;
    GMimeObject* alternative = nullptr; // the nearest multipart/alternative around it, if any
};

// The leaf parts of a message in document order, down to max_mime_depth, walked with a stack of
// our own (never recursion on input).
std::vector<Leaf> collect_leaves(GMimeObject* root)
{
    struct Pending {
        GMimeObject* object;
        GMimeObject* alternative;
        int depth;
    };
    std::vector<Leaf> leaves;
    std::vector<Pending> stack{{root, nullptr, 0}};
    while (!stack.empty()) {
        const Pending next = stack.back();
        stack.pop_back();
        if (next.object == nullptr || next.depth > max_mime_depth) {
            continue;
        }
        if (!GMIME_IS_MULTIPART(next.object)) {
            leaves.push_back(Leaf{next.object, next.alternative});
            continue;
        }
        GMimeMultipart* multipart = GMIME_MULTIPART(next.object);
        GMimeObject* around = g_mime_content_type_is_type(g_mime_object_get_content_type(next.object),
                                                          "multipart", "alternative") != FALSE
                                  ? next.object
                                  : next.alternative;
        // Pushed last to first, so they come off the stack in document order.
        for (int i = g_mime_multipart_get_count(multipart) - 1; i >= 0; --i) {
            stack.push_back(Pending{g_mime_multipart_get_part(multipart, i), around, next.depth + 1});
        }
    }
    return leaves;
}

std::string mime_type_of(GMimeObject* object)
{
    const GCharPtr type(g_mime_content_type_get_mime_type(g_mime_object_get_content_type(object)));
    return field(view(type.get()), max_summary_field_octets);
}

Attachment describe_attachment(GMimeObject* object)
{
    Attachment attachment;
    if (GMIME_IS_PART(object)) {
        attachment.filename =
            field(view(g_mime_part_get_filename(GMIME_PART(object))), max_summary_field_octets);
    } else {
        const char* name = g_mime_object_get_content_disposition_parameter(object, "filename");
        attachment.filename = field(view(name), max_summary_field_octets);
    }
    attachment.mime_type = mime_type_of(object);
    attachment.octets = decoded_octets(object);
    return attachment;
}

// --- reading files ------------------------------------------------------------------------------

// Opens a regular file for reading: no symbolic link, no FIFO left blocking, no device.
storage::UniqueFd open_regular(const std::string& path, int& error)
{
    storage::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY));
    if (!fd.valid()) {
        error = errno;
        return fd;
    }
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) {
        error = EINVAL;
        return {};
    }
    return fd;
}

struct DirClose {
    void operator()(DIR* dir) const noexcept { ::closedir(dir); }
};
using DirPtr = std::unique_ptr<DIR, DirClose>;

// Where a Maildir message's file is now: where the listing saw it, else under the same base name
// in new/ or cur/ (a reader moved it or changed its flags in between).
storage::UniqueFd open_maildir_message(const StoreLocation& location, const StoredMessage& message,
                                       int& error)
{
    storage::UniqueFd fd = open_regular(message.file, error);
    if (fd.valid() || error != ENOENT) {
        return fd;
    }
    for (const char* sub : {"cur", "new"}) {
        const std::string directory = location.path + "/" + sub;
        const DirPtr dir(::opendir(directory.c_str()));
        if (!dir) {
            continue;
        }
        while (const dirent* entry = ::readdir(dir.get())) {
            const std::string_view name(static_cast<const char*>(entry->d_name));
            if (storage::maildir::base_name(name) == message.base_name) {
                return open_regular(directory + "/" + std::string(name), error);
            }
        }
    }
    error = ENOENT;
    return fd;
}

// Reads a message as stored, without its mbox From_ line and with mboxrd quoting undone, in
// pieces to `append` (which returns false to stop), up to `limit` octets as stored. Gives whether
// the whole message was read.
tl::expected<bool, std::string> read_message(const StoreLocation& location, const StoredMessage& message,
                                             std::uint64_t limit,
                                             const std::function<bool(std::string_view)>& append)
{
    std::string buffer(read_chunk_octets, '\0');
    int error = 0;
    if (location.format == StoreFormat::maildir) {
        const storage::UniqueFd fd = open_maildir_message(location, message, error);
        if (!fd.valid()) {
            return tl::unexpected(errno_text(message.file, error));
        }
        std::uint64_t done = 0;
        for (;;) {
            const auto want = static_cast<std::size_t>(std::min<std::uint64_t>(buffer.size(), limit - done));
            if (want == 0) {
                // At the limit: complete only if the file ends here.
                char probe = 0;
                const auto more = storage::mbox::pread_full(fd.get(), &probe, 1, done);
                return more && *more == 0;
            }
            const auto got = storage::mbox::pread_full(fd.get(), buffer.data(), want, done);
            if (!got) {
                return tl::unexpected(fmt::format("{}: {}", message.file, got.error().message()));
            }
            done += *got;
            if (*got > 0 && !append(std::string_view(buffer.data(), *got))) {
                return false;
            }
            if (*got < want) {
                return true;
            }
        }
    }
    const storage::UniqueFd fd = open_regular(location.path, error);
    if (!fd.valid()) {
        return tl::unexpected(errno_text(location.path, error));
    }
    const std::uint64_t stored = message.content_end - message.content_offset;
    const std::uint64_t end = message.content_offset + std::min(stored, limit);
    storage::mbox::Unquoter unquoter;
    std::string unquoted;
    for (std::uint64_t at = message.content_offset; at < end;) {
        const auto want = static_cast<std::size_t>(std::min<std::uint64_t>(buffer.size(), end - at));
        const auto got = storage::mbox::pread_full(fd.get(), buffer.data(), want, at);
        if (!got) {
            return tl::unexpected(fmt::format("{}: {}", location.path, got.error().message()));
        }
        if (*got == 0) {
            return false; // the mbox shrank since it was listed
        }
        at += *got;
        unquoted.clear();
        unquoter.feed(std::string_view(buffer.data(), *got), unquoted);
        if (!unquoted.empty() && !append(unquoted)) {
            return false;
        }
    }
    unquoted.clear();
    unquoter.finish(unquoted);
    if (!unquoted.empty()) {
        static_cast<void>(append(unquoted));
    }
    return stored <= limit;
}

// The header section of a message's first octets, ending with its empty line; cut at the last
// whole line when the section is longer than what was read.
std::string header_section(std::string head, bool complete)
{
    std::size_t end = std::string::npos;
    if (head.starts_with("\n") || head.starts_with("\r\n")) {
        end = 0;
    } else if (const auto lf = head.find("\n\n"); lf != std::string::npos) {
        end = lf + 1;
    }
    if (const auto crlf = head.find("\n\r\n");
        crlf != std::string::npos && (end == std::string::npos || crlf < end)) {
        end = crlf + 1;
    }
    if (end == std::string::npos && !complete) {
        const auto last = head.rfind('\n');
        end = last == std::string::npos ? 0 : last + 1;
    }
    if (end != std::string::npos) {
        head.resize(end);
    }
    head += "\n";
    return head;
}

// "TIME." at the start of a Maildir file name (maildir(5)).
std::optional<std::int64_t> maildir_name_time(std::string_view name)
{
    const auto dot = name.find('.');
    if (dot == std::string_view::npos || dot == 0 || dot > 12) {
        return std::nullopt;
    }
    const auto seconds = parse_u64(name.substr(0, dot));
    if (!seconds) {
        return std::nullopt;
    }
    return static_cast<std::int64_t>(*seconds);
}

// Name order with runs of digits compared as numbers, so that "M99999" (microseconds, unpadded)
// and "Q9" (a sequence number) come before "M100000" and "Q10", as they were delivered.
bool natural_less(std::string_view a, std::string_view b) noexcept
{
    const auto is_digit = [](char c) { return c >= '0' && c <= '9'; };
    std::size_t i = 0;
    std::size_t k = 0;
    while (i < a.size() && k < b.size()) {
        if (is_digit(a[i]) && is_digit(b[k])) {
            std::size_t a_end = i;
            std::size_t b_end = k;
            while (a_end < a.size() && is_digit(a[a_end])) {
                ++a_end;
            }
            while (b_end < b.size() && is_digit(b[b_end])) {
                ++b_end;
            }
            // Without leading zeros, the longer run is the larger number.
            std::string_view a_run = a.substr(i, a_end - i);
            std::string_view b_run = b.substr(k, b_end - k);
            a_run.remove_prefix(std::min(a_run.find_first_not_of('0'), a_run.size()));
            b_run.remove_prefix(std::min(b_run.find_first_not_of('0'), b_run.size()));
            if (a_run.size() != b_run.size()) {
                return a_run.size() < b_run.size();
            }
            if (a_run != b_run) {
                return a_run < b_run;
            }
            i = a_end;
            k = b_end;
            continue;
        }
        if (a[i] != b[k]) {
            return a[i] < b[k];
        }
        ++i;
        ++k;
    }
    return a.size() - i < b.size() - k;
}

bool maildir_seen(std::string_view name)
{
    const auto info = name.find(":2,");
    return info != std::string_view::npos && name.substr(info + 3).find('S') != std::string_view::npos;
}

tl::expected<std::vector<StoredMessage>, StoreError> list_maildir(const std::string& root)
{
    struct stat st {};
    if (::stat(root.c_str(), &st) != 0) {
        return tl::unexpected(store_error(errno, errno_text("maildir:" + root, errno)));
    }
    if (!S_ISDIR(st.st_mode)) {
        return tl::unexpected(
            StoreError{StoreError::Kind::not_a_store, fmt::format("maildir:{}: not a directory", root)});
    }
    std::vector<StoredMessage> messages;
    bool found = false;
    for (const char* sub : {"new", "cur"}) {
        const std::string directory = root + "/" + sub;
        const DirPtr dir(::opendir(directory.c_str()));
        if (!dir) {
            if (errno == ENOENT) {
                continue;
            }
            return tl::unexpected(store_error(errno, errno_text(directory, errno)));
        }
        found = true;
        while (const dirent* entry = ::readdir(dir.get())) {
            const std::string_view name(static_cast<const char*>(entry->d_name));
            if (!storage::maildir::is_message_file_name(name)) {
                continue;
            }
            struct stat file {};
            if (::fstatat(::dirfd(dir.get()), entry->d_name, &file, AT_SYMLINK_NOFOLLOW) != 0 ||
                !S_ISREG(file.st_mode)) {
                continue;
            }
            StoredMessage message;
            message.file = directory + "/" + std::string(name);
            message.base_name = std::string(storage::maildir::base_name(name));
            message.octets = static_cast<std::uint64_t>(file.st_size);
            message.arrival = maildir_name_time(name).value_or(static_cast<std::int64_t>(file.st_mtime));
            message.seen = maildir_seen(name);
            messages.push_back(std::move(message));
        }
    }
    if (!found) {
        return tl::unexpected(StoreError{StoreError::Kind::not_a_store,
                                         fmt::format("maildir:{}: not a Maildir (no cur/ or new/)", root)});
    }
    std::sort(messages.begin(), messages.end(), [](const StoredMessage& a, const StoredMessage& b) {
        if (a.arrival != b.arrival) {
            return a.arrival < b.arrival;
        }
        if (a.base_name != b.base_name) {
            return natural_less(a.base_name, b.base_name) ||
                   (!natural_less(b.base_name, a.base_name) && a.base_name < b.base_name);
        }
        return a.file < b.file;
    });
    return messages;
}

tl::expected<std::vector<StoredMessage>, StoreError> list_mbox(const std::string& path)
{
    int error = 0;
    const storage::UniqueFd fd = open_regular(path, error);
    if (!fd.valid()) {
        return tl::unexpected(error == EINVAL ? StoreError{StoreError::Kind::not_a_store,
                                                           fmt::format("mbox:{}: not a regular file", path)}
                                              : store_error(error, errno_text("mbox:" + path, error)));
    }
    std::vector<StoredMessage> messages;
    std::vector<storage::mbox::ParsedMessage> parsed;
    const auto take = [&messages, &parsed] {
        for (const auto& found : parsed) {
            StoredMessage message;
            message.from_offset = found.from_offset;
            message.content_offset = found.content_offset;
            message.content_end = found.content_end;
            message.octets = found.content_end - found.content_offset;
            messages.push_back(std::move(message));
        }
        parsed.clear();
    };
    storage::mbox::Parser parser;
    std::string buffer(mbox_scan_chunk_octets, '\0');
    for (std::uint64_t at = 0;;) {
        const auto got = storage::mbox::pread_full(fd.get(), buffer.data(), buffer.size(), at);
        if (!got) {
            return tl::unexpected(
                StoreError{StoreError::Kind::io, fmt::format("mbox:{}: {}", path, got.error().message())});
        }
        if (*got == 0) {
            break;
        }
        at += *got;
        parser.feed(std::string_view(buffer.data(), *got), parsed);
        take();
    }
    parser.finish(parsed);
    take();
    return messages;
}

// The date of an mbox From_ line, "From SENDER Www Mmm dd hh:mm:ss yyyy", read as UTC (as Pigeon
// and most delivery agents write it).
std::optional<std::int64_t> from_line_date(std::string_view line)
{
    if (!line.starts_with(storage::mbox::from_prefix)) {
        return std::nullopt;
    }
    line.remove_prefix(storage::mbox::from_prefix.size());
    const auto space = line.find(' ');
    if (space == std::string_view::npos) {
        return std::nullopt;
    }
    const std::string rest(line.substr(space + 1));
    std::tm parts{};
    if (::strptime(rest.c_str(), "%a %b %e %H:%M:%S %Y", &parts) == nullptr) {
        return std::nullopt;
    }
    const std::time_t seconds = ::timegm(&parts);
    if (seconds == static_cast<std::time_t>(-1)) {
        return std::nullopt;
    }
    return static_cast<std::int64_t>(seconds);
}

std::optional<std::int64_t> mbox_arrival(const StoreLocation& location, const StoredMessage& message)
{
    int error = 0;
    const storage::UniqueFd fd = open_regular(location.path, error);
    if (!fd.valid()) {
        return std::nullopt;
    }
    std::string line(static_cast<std::size_t>(std::min<std::uint64_t>(
                         message.content_offset - message.from_offset, max_from_line_octets)),
                     '\0');
    const auto got = storage::mbox::pread_full(fd.get(), line.data(), line.size(), message.from_offset);
    if (!got) {
        return std::nullopt;
    }
    line.resize(*got);
    return from_line_date(line);
}

void append_utf8(std::string& out, char32_t code_point)
{
    if (code_point < 0x80) {
        out += static_cast<char>(code_point);
    } else if (code_point < 0x800) {
        out += static_cast<char>(0xC0 | (code_point >> 6));
        out += static_cast<char>(0x80 | (code_point & 0x3F));
    } else if (code_point < 0x10000) {
        out += static_cast<char>(0xE0 | (code_point >> 12));
        out += static_cast<char>(0x80 | ((code_point >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (code_point & 0x3F));
    } else {
        out += static_cast<char>(0xF0 | (code_point >> 18));
        out += static_cast<char>(0x80 | ((code_point >> 12) & 0x3F));
        out += static_cast<char>(0x80 | ((code_point >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (code_point & 0x3F));
    }
}

// One UTF-8 sequence at the start of `text`: its code point and length, or length 0 if it is not
// well-formed (RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF).
struct Decoded {
    char32_t code_point = 0;
    std::size_t length = 0;
};

Decoded decode_utf8(std::string_view text) noexcept
{
    const auto byte = [&text](std::size_t i) { return static_cast<unsigned char>(text[i]); };
    const unsigned char lead = byte(0);
    if (lead < 0x80) {
        return {lead, 1};
    }
    std::size_t length = 0;
    char32_t code_point = 0;
    char32_t minimum = 0;
    if (lead >= 0xC2 && lead <= 0xDF) {
        length = 2;
        code_point = lead & 0x1FU;
        minimum = 0x80;
    } else if (lead >= 0xE0 && lead <= 0xEF) {
        length = 3;
        code_point = lead & 0x0FU;
        minimum = 0x800;
    } else if (lead >= 0xF0 && lead <= 0xF4) {
        length = 4;
        code_point = lead & 0x07U;
        minimum = 0x10000;
    } else {
        return {};
    }
    if (text.size() < length) {
        return {};
    }
    for (std::size_t i = 1; i < length; ++i) {
        if ((byte(i) & 0xC0U) != 0x80U) {
            return {};
        }
        code_point = (code_point << 6U) | (byte(i) & 0x3FU);
    }
    if (code_point < minimum || code_point > 0x10FFFF || (code_point >= 0xD800 && code_point <= 0xDFFF)) {
        return {};
    }
    return {code_point, length};
}

// Position of `needle` (ASCII, lower case) in `text` ignoring ASCII case, from `from`.
std::size_t find_ignoring_case(std::string_view text, std::string_view needle, std::size_t from) noexcept
{
    for (std::size_t at = from; at + needle.size() <= text.size(); ++at) {
        if (iequals(text.substr(at, needle.size()), needle)) {
            return at;
        }
    }
    return std::string_view::npos;
}

std::string format_utc(std::int64_t seconds)
{
    const auto time = static_cast<std::time_t>(seconds);
    std::tm parts{};
    if (::gmtime_r(&time, &parts) == nullptr) {
        return {};
    }
    std::array<char, 64> text{};
    const std::size_t length = std::strftime(text.data(), text.size(), "%a, %d %b %Y %H:%M:%S +0000", &parts);
    return {text.data(), length};
}

// Longest entity decoded by html_to_text(): "&#x10FFFF;" is the longest numeric one.
constexpr std::size_t max_entity_octets = 10;

// An HTML character reference without its '&' and ';': the common named ones and numeric ones.
std::optional<char32_t> decode_entity(std::string_view entity)
{
    static constexpr std::array<std::pair<std::string_view, char32_t>, 6> named{
        {{"amp", '&'}, {"lt", '<'}, {"gt", '>'}, {"quot", '"'}, {"apos", '\''}, {"nbsp", ' '}}};
    for (const auto& [name, code_point] : named) {
        if (entity == name) {
            return code_point;
        }
    }
    if (!entity.starts_with('#')) {
        return std::nullopt;
    }
    const bool hex = entity.size() > 1 && (entity[1] == 'x' || entity[1] == 'X');
    const std::string_view digits = entity.substr(hex ? 2 : 1);
    if (digits.empty() || digits.size() > 7) {
        return std::nullopt;
    }
    std::uint32_t value = 0;
    for (const char d : digits) {
        int digit = -1;
        if (d >= '0' && d <= '9') {
            digit = d - '0';
        } else if (hex && d >= 'a' && d <= 'f') {
            digit = d - 'a' + 10;
        } else if (hex && d >= 'A' && d <= 'F') {
            digit = d - 'A' + 10;
        }
        if (digit < 0) {
            return std::nullopt;
        }
        value = value * (hex ? 16U : 10U) + static_cast<std::uint32_t>(digit);
    }
    const bool valid = value != 0 && value <= 0x10FFFF && (value < 0xD800 || value > 0xDFFF);
    return valid ? static_cast<char32_t>(value) : char32_t{0xFFFD};
}

// The text html_to_text() builds: white space collapsed, line breaks where blocks end.
class HtmlText {
public:
    void space() { m_space = true; }

    void put(std::string_view text)
    {
        if (m_space && !m_out.empty() && m_out.back() != '\n') {
            m_out += ' ';
        }
        m_space = false;
        m_out.append(text);
    }

    // Handles the tag (or comment) starting at `at`; gives the position after it.
    std::size_t tag(std::string_view html, std::size_t at)
    {
        if (html.substr(at).starts_with("<!--")) {
            const auto end = html.find("-->", at + 4);
            return end == std::string_view::npos ? html.size() : end + 3;
        }
        const auto end = html.find('>', at);
        if (end == std::string_view::npos) {
            return html.size();
        }
        std::string_view inside = html.substr(at + 1, end - at - 1);
        const bool closing = inside.starts_with('/');
        if (closing) {
            inside.remove_prefix(1);
        }
        std::size_t length = 0;
        while (length < inside.size() && std::isalnum(static_cast<unsigned char>(inside[length])) != 0) {
            ++length;
        }
        const std::string_view name = inside.substr(0, length);
        const auto is = [&name](std::string_view word) { return iequals(name, word); };
        if (!closing && std::any_of(skipped.begin(), skipped.end(), is)) {
            // Everything up to the end tag is not text.
            const auto close = find_ignoring_case(html, fmt::format("</{}", name), end + 1);
            const auto close_end = close == std::string_view::npos ? close : html.find('>', close);
            return close_end == std::string_view::npos ? html.size() : close_end + 1;
        }
        if (is("br")) {
            m_space = false;
            m_out += '\n';
        } else if (is("p") || is("blockquote")) {
            line_break(2);
        } else if (std::any_of(blocks.begin(), blocks.end(), is)) {
            line_break(1);
            if (is("li") && !closing) {
                m_out += "* ";
            }
        }
        return end + 1;
    }

    std::string finish()
    {
        while (!m_out.empty() && (m_out.back() == '\n' || m_out.back() == ' ')) {
            m_out.pop_back();
        }
        if (!m_out.empty()) {
            m_out += '\n';
        }
        return std::move(m_out);
    }

private:
    static constexpr std::array<std::string_view, 3> skipped{"script", "style", "head"};
    static constexpr std::array<std::string_view, 17> blocks{
        "div", "tr", "li", "ul",    "ol",  "table", "h1",      "h2",     "h3",
        "h4",  "h5", "h6", "title", "pre", "hr",    "section", "article"};

    // Ends the line, and leaves `wanted` - 1 empty lines after it (at most).
    void line_break(std::size_t wanted)
    {
        m_space = false;
        while (!m_out.empty() && m_out.back() == ' ') {
            m_out.pop_back();
        }
        if (m_out.empty()) {
            return;
        }
        std::size_t have = 0;
        for (auto it = m_out.rbegin(); it != m_out.rend() && *it == '\n'; ++it) {
            ++have;
        }
        while (have < wanted) {
            m_out += '\n';
            ++have;
        }
    }

    std::string m_out;
    bool m_space = false; // white space seen since the last character written
};

} // namespace

// --- locations ----------------------------------------------------------------------------------

tl::expected<StoreLocation, std::string> parse_store_location(std::string_view text)
{
    const auto colon = text.find(':');
    const std::string_view scheme = text.substr(0, colon == std::string_view::npos ? 0 : colon);
    const std::string path =
        colon == std::string_view::npos ? std::string() : std::string(text.substr(colon + 1));
    if (scheme == "maildir" || scheme == "mbox") {
        if (path.empty()) {
            return tl::unexpected(fmt::format(R"("{}": no path after "{}:")", text, scheme));
        }
        return StoreLocation{scheme == "maildir" ? StoreFormat::maildir : StoreFormat::mbox,
                             expand_home(path)};
    }
    if (scheme == "command") {
        return tl::unexpected(std::string("delivers to a command; nothing to list"));
    }
    if (scheme == "imap") {
        return tl::unexpected(
            std::string("delivers to an IMAP server; nothing to list here, read the mail there"));
    }
    return tl::unexpected(fmt::format("\"{}\" is not maildir:PATH or mbox:PATH", text));
}

std::string describe(const StoreLocation& location)
{
    return fmt::format("{}:{}", location.format == StoreFormat::maildir ? "maildir" : "mbox", location.path);
}

// --- the store ----------------------------------------------------------------------------------

tl::expected<MailStore, StoreError> MailStore::open(const StoreLocation& location)
{
    auto messages =
        location.format == StoreFormat::maildir ? list_maildir(location.path) : list_mbox(location.path);
    if (!messages) {
        return tl::unexpected(messages.error());
    }
    MailStore store;
    store.m_location = location;
    store.m_messages = std::move(*messages);
    return store;
}

MessageSummary MailStore::summarize(MessageIndex index) const
{
    const StoredMessage& stored = message(index);
    MessageSummary summary;
    summary.octets = stored.octets;
    summary.seen = stored.seen;
    summary.date = stored.arrival;
    std::string head;
    const auto complete =
        read_message(m_location, stored, max_header_octets, [&head](std::string_view piece) {
            head.append(piece);
            return true;
        });
    if (!complete) {
        summary.error = terminal_safe(complete.error(), false);
        return summary;
    }
    const std::string section = header_section(std::move(head), *complete);
    const GObjectPtr<GMimeMessage> parsed = parse_message(to_byte_array(section));
    if (m_location.format == StoreFormat::mbox) {
        summary.seen = false;
    }
    if (!parsed) {
        if (m_location.format == StoreFormat::mbox) {
            summary.date = mbox_arrival(m_location, stored);
        }
        return summary;
    }
    if (GDateTime* date = g_mime_message_get_date(parsed.get()); date != nullptr) {
        summary.date = g_date_time_to_unix(date);
    } else if (m_location.format == StoreFormat::mbox) {
        summary.date = mbox_arrival(m_location, stored);
    }
    summary.subject = field(view(g_mime_message_get_subject(parsed.get())), max_summary_field_octets);
    InternetAddressList* from = g_mime_message_get_from(parsed.get());
    if (from != nullptr && internet_address_list_length(from) > 0) {
        InternetAddress* first = internet_address_list_get_address(from, 0);
        const std::string_view name = view(internet_address_get_name(first));
        if (!name.empty() || !INTERNET_ADDRESS_IS_MAILBOX(first)) {
            summary.sender = field(name, max_summary_field_octets);
        } else {
            // An address alone; decoded too, for writers that wrongly encode the whole field
            // ("=?utf-8?q?Ann_=3Cann=40example=2Eorg=3E?=" parses as one odd address).
            const GCharPtr address(g_mime_utils_header_decode_text(
                parser_options(), internet_address_mailbox_get_addr(INTERNET_ADDRESS_MAILBOX(first))));
            summary.sender = field(view(address.get()), max_summary_field_octets);
        }
    } else {
        summary.sender = decoded_header(GMIME_OBJECT(parsed.get()), "From", max_summary_field_octets);
    }
    if (m_location.format == StoreFormat::mbox) {
        const std::string_view status = view(g_mime_object_get_header(GMIME_OBJECT(parsed.get()), "Status"));
        summary.seen = status.find('R') != std::string_view::npos;
    }
    return summary;
}

tl::expected<RenderedMessage, std::string> MailStore::render(MessageIndex index) const
{
    const StoredMessage& stored = message(index);
    GByteArrayPtr bytes(g_byte_array_new());
    const auto complete =
        read_message(m_location, stored, max_render_input_octets, [&bytes](std::string_view piece) {
            g_byte_array_append(bytes.get(), reinterpret_cast<const guint8*>(piece.data()),
                                static_cast<guint>(piece.size()));
            return true;
        });
    if (!complete) {
        return tl::unexpected(complete.error());
    }
    RenderedMessage rendered;
    rendered.input_truncated = !*complete;
    const std::string raw_start(reinterpret_cast<const char*>(bytes->data),
                                std::min<std::size_t>(bytes->len, max_body_text_octets));
    const bool raw_cut = bytes->len > max_body_text_octets;
    const GObjectPtr<GMimeMessage> parsed = parse_message(std::move(bytes));
    if (!parsed) {
        rendered.unparsable = true;
        rendered.body = terminal_safe(raw_start.substr(0, complete_utf8_prefix(raw_start)), true);
        rendered.body_truncated = raw_cut;
        return rendered;
    }
    GMimeObject* object = GMIME_OBJECT(parsed.get());

    if (const char* date = g_mime_object_get_header(object, "Date"); date != nullptr) {
        rendered.headers.emplace_back("Date", field(view(date), max_rendered_field_octets));
    } else if (stored.arrival) {
        rendered.headers.emplace_back("Date", format_utc(*stored.arrival) + " (arrival; no Date field)");
    }
    const std::array<std::pair<const char*, GMimeAddressType>, 3> address_fields{{
        {"From", GMIME_ADDRESS_TYPE_FROM},
        {"To", GMIME_ADDRESS_TYPE_TO},
        {"Cc", GMIME_ADDRESS_TYPE_CC},
    }};
    for (const auto& [name, type] : address_fields) {
        std::string value =
            address_list_text(g_mime_message_get_addresses(parsed.get(), type), max_rendered_field_octets);
        if (value.empty()) {
            value = decoded_header(object, name, max_rendered_field_octets); // not a valid address list
        }
        if (!value.empty()) {
            rendered.headers.emplace_back(name, std::move(value));
        }
    }
    if (const char* subject = g_mime_message_get_subject(parsed.get()); subject != nullptr) {
        rendered.headers.emplace_back("Subject", field(view(subject), max_rendered_field_octets));
    }

    const std::vector<Leaf> leaves = collect_leaves(g_mime_message_get_mime_part(parsed.get()));
    const auto find_body = [&leaves](const char* subtype) {
        return std::find_if(leaves.begin(), leaves.end(),
                            [subtype](const Leaf& leaf) { return is_inline_text(leaf.object, subtype); });
    };
    auto body = find_body("plain");
    if (body == leaves.end()) {
        body = find_body("html");
        rendered.body_from_html = body != leaves.end();
    }
    if (body != leaves.end()) {
        std::string text = decoded_text(GMIME_PART(body->object));
        if (rendered.body_from_html) {
            text = html_to_text(text);
        }
        if (text.size() > max_body_text_octets) {
            text.resize(complete_utf8_prefix(std::string_view(text).substr(0, max_body_text_octets)));
            rendered.body_truncated = true;
        }
        rendered.body = terminal_safe(text, true);
    }
    for (auto leaf = leaves.begin(); leaf != leaves.end(); ++leaf) {
        if (leaf == body) {
            continue;
        }
        // The body's other versions (the HTML beside the text) are not attachments.
        if (body != leaves.end() && leaf->alternative != nullptr && leaf->alternative == body->alternative &&
            (is_inline_text(leaf->object, "plain") || is_inline_text(leaf->object, "html"))) {
            continue;
        }
        if (rendered.attachments.size() == max_listed_attachments) {
            ++rendered.attachments_not_listed;
            continue;
        }
        rendered.attachments.push_back(describe_attachment(leaf->object));
    }
    return rendered;
}

tl::expected<void, std::string> MailStore::write_raw(MessageIndex index,
                                                     const std::function<bool(std::string_view)>& sink) const
{
    const auto done = read_message(m_location, message(index), UINT64_MAX, sink);
    if (!done) {
        return tl::unexpected(done.error());
    }
    return {};
}

std::string format_rendered(const RenderedMessage& message)
{
    std::string out;
    for (const auto& [name, value] : message.headers) {
        out += fmt::format("{}: {}\n", name, value);
    }
    out += "\n";
    if (message.unparsable) {
        out += "[not a MIME message; its text as stored:]\n";
    } else if (message.body_from_html) {
        out += "[text/html, shown as text]\n\n";
    }
    out += message.body;
    if (!out.ends_with('\n')) {
        out += '\n';
    }
    if (message.body_truncated) {
        out += fmt::format("\n[text cut at {} MiB]\n", max_body_text_octets / mebibyte);
    }
    if (message.input_truncated) {
        out += fmt::format("\n[message longer than {} MiB: only its start was read]\n",
                           max_render_input_octets / mebibyte);
    }
    if (!message.attachments.empty()) {
        out += "\nAttachments:\n";
        std::size_t name_width = 0;
        for (const auto& attachment : message.attachments) {
            name_width = std::max(name_width, display_width(truncate_to_width(attachment.filename, 40)));
        }
        name_width = std::max<std::size_t>(name_width, 9);
        for (const auto& attachment : message.attachments) {
            const std::string name =
                attachment.filename.empty() ? "(no name)" : truncate_to_width(attachment.filename, 40);
            out += fmt::format("  {}{}  {}  {}\n", name, std::string(name_width - display_width(name), ' '),
                               attachment.mime_type, human_size(attachment.octets));
        }
    }
    if (message.attachments_not_listed > 0) {
        out += fmt::format("  … and {} more\n", message.attachments_not_listed);
    }
    return out;
}

// --- text for the terminal ----------------------------------------------------------------------

std::string terminal_safe(std::string_view text, bool multiline)
{
    std::string out;
    out.reserve(text.size());
    for (std::size_t at = 0; at < text.size();) {
        const Decoded decoded = decode_utf8(text.substr(at));
        if (decoded.length == 0) {
            out += replacement_character;
            ++at;
            continue;
        }
        const char32_t c = decoded.code_point;
        if (c == '\n' || c == '\t') {
            out += multiline ? static_cast<char>(c) : ' ';
        } else if (c == '\r') {
            if (!multiline) {
                out += ' ';
            } else if (at + 1 >= text.size() || text[at + 1] != '\n') {
                out += '?';
            } // CR before LF: dropped
        } else if (c < 0x20 || c == 0x7F || (c >= 0x80 && c <= 0x9F)) {
            out += '?';
        } else {
            out.append(text.substr(at, decoded.length));
        }
        at += decoded.length;
    }
    return out;
}

std::size_t complete_utf8_prefix(std::string_view text) noexcept
{
    // Step back over at most three continuation octets to the last lead octet.
    std::size_t start = text.size();
    for (int back = 0;
         back < 3 && start > 0 && (static_cast<unsigned char>(text[start - 1]) & 0xC0U) == 0x80U; ++back) {
        --start;
    }
    if (start == 0) {
        return text.size();
    }
    const auto lead = static_cast<unsigned char>(text[start - 1]);
    const std::size_t need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
    const std::size_t have = text.size() - (start - 1);
    return need > have ? start - 1 : text.size();
}

std::size_t display_width(std::string_view text) noexcept
{
    struct Range {
        char32_t first;
        char32_t last;
    };
    // Combining marks and zero-width characters.
    static constexpr std::array<Range, 12> zero{{{0x0300, 0x036F},
                                                 {0x0483, 0x0489},
                                                 {0x0591, 0x05BD},
                                                 {0x0610, 0x061A},
                                                 {0x064B, 0x065F},
                                                 {0x1AB0, 0x1AFF},
                                                 {0x1DC0, 0x1DFF},
                                                 {0x200B, 0x200F},
                                                 {0x20D0, 0x20FF},
                                                 {0xFE00, 0xFE0F},
                                                 {0xFE20, 0xFE2F},
                                                 {0xE0100, 0xE01EF}}};
    // East Asian Wide and Fullwidth, and the emoji blocks.
    static constexpr std::array<Range, 15> wide{{{0x1100, 0x115F},
                                                 {0x2E80, 0x303E},
                                                 {0x3041, 0x33FF},
                                                 {0x3400, 0x4DBF},
                                                 {0x4E00, 0x9FFF},
                                                 {0xA000, 0xA4CF},
                                                 {0xAC00, 0xD7A3},
                                                 {0xF900, 0xFAFF},
                                                 {0xFE30, 0xFE4F},
                                                 {0xFF00, 0xFF60},
                                                 {0xFFE0, 0xFFE6},
                                                 {0x1F300, 0x1F64F},
                                                 {0x1F900, 0x1F9FF},
                                                 {0x20000, 0x2FFFD},
                                                 {0x30000, 0x3FFFD}}};
    const auto in = [](const auto& ranges, char32_t c) {
        return std::any_of(ranges.begin(), ranges.end(),
                           [c](const Range& range) { return c >= range.first && c <= range.last; });
    };
    std::size_t columns = 0;
    for (std::size_t at = 0; at < text.size();) {
        const Decoded decoded = decode_utf8(text.substr(at));
        if (decoded.length == 0) {
            ++columns;
            ++at;
            continue;
        }
        columns += in(zero, decoded.code_point) ? 0 : in(wide, decoded.code_point) ? 2 : 1;
        at += decoded.length;
    }
    return columns;
}

std::string truncate_to_width(std::string_view text, std::size_t columns)
{
    if (display_width(text) <= columns) {
        return std::string(text);
    }
    if (columns == 0) {
        return {};
    }
    std::string out;
    std::size_t used = 0;
    for (std::size_t at = 0; at < text.size();) {
        const Decoded decoded = decode_utf8(text.substr(at));
        const std::size_t length = decoded.length == 0 ? 1 : decoded.length;
        const std::string_view character = text.substr(at, length);
        const std::size_t width = display_width(character);
        if (used + width > columns - 1) { // one column for the ellipsis
            break;
        }
        out.append(character);
        used += width;
        at += length;
    }
    out += "\xE2\x80\xA6"; // U+2026 HORIZONTAL ELLIPSIS
    return out;
}

std::string human_size(std::uint64_t octets)
{
    if (octets < 1024) {
        return std::to_string(octets);
    }
    static constexpr std::string_view units = "KMGTPE";
    auto value = static_cast<double>(octets) / 1024.0;
    std::size_t unit = 0;
    while (value >= 1023.95 && unit + 1 < units.size()) {
        value /= 1024.0;
        ++unit;
    }
    return value < 9.95 ? fmt::format("{:.1f}{}", value, units[unit])
                        : fmt::format("{:.0f}{}", value, units[unit]);
}

std::string html_to_text(std::string_view html)
{
    HtmlText text;
    for (std::size_t at = 0; at < html.size();) {
        const char c = html[at];
        if (c == '<') {
            at = text.tag(html, at);
            continue;
        }
        if (c == '&') {
            const auto semicolon = html.find(';', at);
            if (semicolon != std::string_view::npos && semicolon - at <= max_entity_octets) {
                if (const auto code_point = decode_entity(html.substr(at + 1, semicolon - at - 1))) {
                    std::string character;
                    append_utf8(character, *code_point);
                    text.put(character);
                    at = semicolon + 1;
                    continue;
                }
            }
        }
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f') {
            text.space();
        } else {
            text.put(html.substr(at, 1));
        }
        ++at;
    }
    return text.finish();
}

} // namespace pigeon::client
