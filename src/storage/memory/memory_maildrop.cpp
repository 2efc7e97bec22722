#include "storage/memory/memory_maildrop.hpp"

#include "protocol/dot_stuffer.hpp"

#include <algorithm>
#include <cstring>

namespace pigeon::storage {
namespace {

class MemoryReader final : public MessageReader {
public:
    explicit MemoryReader(std::string content) : m_content(std::move(content)) {}

    [[nodiscard]] Result<std::size_t> read(std::span<char> buffer) override
    {
        const std::size_t count = std::min(buffer.size(), m_content.size() - m_offset);
        std::memcpy(buffer.data(), m_content.data() + m_offset, count);
        m_offset += count;
        return count;
    }

private:
    std::string m_content;
    std::size_t m_offset = 0;
};

class MemoryMaildrop final : public Maildrop {
public:
    MemoryMaildrop(std::shared_ptr<MemoryMaildropStore::State> state, std::string user)
        : m_state(std::move(state)), m_user(std::move(user)), m_snapshot(m_state->maildrops[m_user])
    {
        m_octets.reserve(m_snapshot.size());
        for (const auto& message : m_snapshot) {
            m_octets.push_back(protocol::wire_size(message.content));
        }
    }

    MemoryMaildrop(const MemoryMaildrop&) = delete;
    MemoryMaildrop& operator=(const MemoryMaildrop&) = delete;
    MemoryMaildrop(MemoryMaildrop&&) = delete;
    MemoryMaildrop& operator=(MemoryMaildrop&&) = delete;
    ~MemoryMaildrop() override { m_state->locked.erase(m_user); }

    [[nodiscard]] std::uint32_t message_count() const noexcept override
    {
        return static_cast<std::uint32_t>(m_snapshot.size());
    }
    [[nodiscard]] std::uint64_t message_octets(MessageIndex index) const noexcept override
    {
        return m_octets[index.value];
    }
    [[nodiscard]] std::string_view unique_id(MessageIndex index) const noexcept override
    {
        return m_snapshot[index.value].unique_id;
    }

    [[nodiscard]] Result<std::unique_ptr<MessageReader>> open_message(MessageIndex index) override
    {
        if (index.value >= m_snapshot.size()) {
            return fail(errc::no_such_message);
        }
        return std::make_unique<MemoryReader>(m_snapshot[index.value].content);
    }

    [[nodiscard]] Result<void> commit(std::span<const MessageIndex> deletions) override
    {
        if (auto error = std::exchange(m_state->fail_commit, {})) {
            return fail(error);
        }
        // Remove by unique-id, so messages delivered during the session are kept.
        auto& stored = m_state->maildrops[m_user];
        for (const MessageIndex index : deletions) {
            const std::string& uid = m_snapshot.at(index.value).unique_id;
            std::erase_if(stored, [&](const StoredMessage& m) { return m.unique_id == uid; });
        }
        return {};
    }

private:
    std::shared_ptr<MemoryMaildropStore::State> m_state;
    std::string m_user;
    std::vector<StoredMessage> m_snapshot;
    std::vector<std::uint64_t> m_octets;
};

class MemoryPendingDelivery final : public PendingDelivery {
public:
    MemoryPendingDelivery(std::shared_ptr<MemoryMaildropStore::State> state, std::string user)
        : m_state(std::move(state)), m_user(std::move(user))
    {
    }

    [[nodiscard]] Result<void> write(std::string_view bytes) override
    {
        m_content.append(bytes);
        return {};
    }

    [[nodiscard]] Result<std::string> commit() override
    {
        std::string uid = "mem-" + std::to_string(m_state->next_delivery++);
        m_state->maildrops[m_user].push_back({uid, std::move(m_content)});
        return uid;
    }

private:
    std::shared_ptr<MemoryMaildropStore::State> m_state;
    std::string m_user;
    std::string m_content;
};

} // namespace

MemoryMaildropStore::MemoryMaildropStore() : m_state(std::make_shared<State>()) {}

MemoryMaildropStore::~MemoryMaildropStore() = default;

void MemoryMaildropStore::add_message(const std::string& user, StoredMessage message)
{
    m_state->maildrops[user].push_back(std::move(message));
}

std::vector<StoredMessage> MemoryMaildropStore::messages(const std::string& user) const
{
    const auto found = m_state->maildrops.find(user);
    return found == m_state->maildrops.end() ? std::vector<StoredMessage>{} : found->second;
}

Result<std::unique_ptr<Maildrop>> MemoryMaildropStore::open(std::string_view user)
{
    if (auto error = std::exchange(m_state->fail_open, {})) {
        return fail(error);
    }
    if (m_state->locked.contains(user)) {
        return fail(errc::maildrop_in_use);
    }
    m_state->locked.emplace(user);
    return std::make_unique<MemoryMaildrop>(m_state, std::string(user));
}

} // namespace pigeon::storage

namespace pigeon::storage {

Result<std::unique_ptr<PendingDelivery>> MemoryMaildropStore::begin(std::string_view user)
{
    return std::make_unique<MemoryPendingDelivery>(m_state, std::string(user));
}

} // namespace pigeon::storage
