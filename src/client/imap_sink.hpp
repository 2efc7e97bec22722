// The IMAP target of pigeon fetch ("imap:imaps://HOST[:PORT]/MAILBOX"): messages APPENDed
// through libcurl, with TLS (implicit, or STARTTLS required) and password or XOAUTH2/OAUTHBEARER
// login. imap_sink.cpp explains how a killed run's APPENDs are found again.
#pragma once

#include "client/sink.hpp"

#include <memory>
#include <string>
#include <tl/expected.hpp>

namespace pigeon::client {

struct ImapTarget {
    std::string scheme;      // "imaps" or "imap"
    std::string base_url;    // imaps://host:port/
    std::string mailbox;     // decoded: "INBOX", "Archive/POP"
    std::string mailbox_url; // base_url + the escaped mailbox
    std::string display;     // for messages
};

// Checks and splits an imaps:// or imap:// URL; the mailbox defaults to INBOX.
[[nodiscard]] tl::expected<ImapTarget, std::string> parse_imap_target(const std::string& url);

[[nodiscard]] std::unique_ptr<Sink> make_imap_sink(ImapTarget target, SinkOptions options);

} // namespace pigeon::client
