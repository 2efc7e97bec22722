// Secrets (passwords, SASL payloads) are wiped from memory as soon as they are no longer needed,
// with OpenSSL's cleanse, which the compiler cannot optimise away.
#pragma once

#include <string>

namespace pigeon {

void wipe(std::string& secret) noexcept;

// A string that wipes itself when destroyed or overwritten. Move-only, so no copy lingers.
class SecretString {
public:
    SecretString() = default;
    explicit SecretString(std::string value) noexcept : m_value(std::move(value)) {}
    SecretString(const SecretString&) = delete;
    SecretString& operator=(const SecretString&) = delete;
    SecretString(SecretString&& other) noexcept : m_value(std::move(other.m_value)) { wipe(other.m_value); }
    SecretString& operator=(SecretString&& other) noexcept
    {
        if (this != &other) {
            wipe(m_value);
            m_value = std::move(other.m_value);
            wipe(other.m_value);
        }
        return *this;
    }
    ~SecretString() { wipe(m_value); }

    [[nodiscard]] const std::string& view() const noexcept { return m_value; }

private:
    std::string m_value;
};

} // namespace pigeon
