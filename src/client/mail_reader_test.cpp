#include "client/mail_reader.hpp"

#include <gtest/gtest.h>

#include <array>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <string>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

namespace pigeon::client {
namespace {

namespace fs = std::filesystem;

// No C0 control but LF and TAB (when `multiline`), no DEL, no C1 control, valid UTF-8.
::testing::AssertionResult terminal_clean(std::string_view text, bool multiline)
{
    for (std::size_t i = 0; i < text.size(); ++i) {
        const auto c = static_cast<unsigned char>(text[i]);
        const bool allowed = multiline && (c == '\n' || c == '\t');
        if ((c < 0x20 && !allowed) || c == 0x7F) {
            return ::testing::AssertionFailure() << "control octet " << int{c} << " at " << i;
        }
        if (c == 0xC2 && i + 1 < text.size() && static_cast<unsigned char>(text[i + 1]) >= 0x80 &&
            static_cast<unsigned char>(text[i + 1]) <= 0x9F) {
            return ::testing::AssertionFailure() << "C1 control at " << i;
        }
    }
    if (terminal_safe(text, multiline) != text) {
        return ::testing::AssertionFailure() << "not already terminal-safe (invalid UTF-8?)";
    }
    return ::testing::AssertionSuccess();
}

class MailReaderTest : public ::testing::Test {
protected:
    void SetUp() override
    {
        m_root =
            fs::temp_directory_path() / ("pigeon-mail-reader-" + std::to_string(::getpid()) + "-" +
                                         ::testing::UnitTest::GetInstance()->current_test_info()->name());
        fs::remove_all(m_root);
        for (const char* sub : {"cur", "new", "tmp"}) {
            fs::create_directories(m_root / "Maildir" / sub);
        }
    }
    void TearDown() override { fs::remove_all(m_root); }

    void put(const std::string& relative, std::string_view content) const
    {
        std::ofstream(m_root / relative, std::ios::binary) << content;
    }
    [[nodiscard]] const fs::path& root() const { return m_root; }
    [[nodiscard]] StoreLocation maildir() const
    {
        return {StoreFormat::maildir, (m_root / "Maildir").string()};
    }
    [[nodiscard]] StoreLocation mbox() const { return {StoreFormat::mbox, (m_root / "mbox").string()}; }

    static MailStore open(const StoreLocation& location)
    {
        auto store = MailStore::open(location);
        EXPECT_TRUE(store) << (store ? "" : store.error().text);
        return std::move(*store);
    }

private:
    fs::path m_root;
};

constexpr std::string_view encoded_subjects = "Date: Tue, 14 Nov 2023 22:13:20 +0000\n"
                                              "From: =?ISO-8859-1?Q?J=F6rg_M=FCller?= <joerg@example.org>\n"
                                              "To: Ann <ann@example.org>, bob@example.org\n"
                                              "Subject: =?UTF-8?B?R3LDvMOfZSBhdXMgS8O2bG4=?=\n"
                                              "\n"
                                              "Hallo.\n";

constexpr std::string_view multipart_alternative =
    "Date: Wed, 15 Nov 2023 10:00:00 +0100\n"
    "From: carol@example.org\n"
    "Subject: =?ISO-8859-1?Q?Caf=E9_report?=\n"
    "MIME-Version: 1.0\n"
    "Content-Type: multipart/mixed; boundary=\"outer\"\n"
    "\n"
    "--outer\n"
    "Content-Type: multipart/alternative; boundary=\"inner\"\n"
    "\n"
    "--inner\n"
    "Content-Type: text/plain; charset=utf-8\n"
    "Content-Transfer-Encoding: base64\n"
    "\n"
    "SGVsbG8gZnJvbSB0aGUgYmFzZTY0IHBhcnQ6IMO8bsOvY8O2ZMOpClNlY29uZCBsaW5lLgo=\n"
    "--inner\n"
    "Content-Type: text/html; charset=utf-8\n"
    "\n"
    "<p>HTML version, not shown</p>\n"
    "--inner--\n"
    "--outer\n"
    "Content-Type: application/pdf; name=\"ignored.pdf\"\n"
    "Content-Disposition: attachment; filename*=UTF-8''r%C3%A9sum%C3%A9.pdf\n"
    "Content-Transfer-Encoding: base64\n"
    "\n"
    "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4\n"
    "OTo7PD0+P0BBQkNERUZHSElKS0xNTk9QUVJTVFVWV1hZWltcXV5fYGFiY2RlZmdoaWprbG1ub3Bx\n"
    "cnN0dXZ3eHl6e3x9fn+AgYKDhIWGh4iJiouMjY6PkJGSk5SVlpeYmZqbnJ2en6ChoqOkpaanqKmq\n"
    "q6ytrq+wsbKztLW2t7i5uru8vb6/wMHCw8TFxsfIycrLzM3Oz9DR0tPU1dbX2Nna29zd3t/g4eLj\n"
    "5OXm5+jp6uvs7e7v8PHy8/T19vf4+fr7/P3+/w==\n"
    "--outer\n"
    "Content-Type: image/png\n"
    "Content-Disposition: inline\n"
    "Content-Transfer-Encoding: base64\n"
    "\n"
    "iVBORw0KGgo=\n"
    "--outer--\n";

constexpr std::string_view quoted_printable_latin1 = "Date: Thu, 16 Nov 2023 08:00:00 +0000\n"
                                                     "From: \"Dupont, Jean\" <jean@example.fr>\n"
                                                     "Subject: plain latin-1\n"
                                                     "Content-Type: text/plain; charset=ISO-8859-1\n"
                                                     "Content-Transfer-Encoding: quoted-printable\n"
                                                     "\n"
                                                     "Caf=E9 cr=E8me br=FBl=E9e, a soft=\n"
                                                     " break.\n"
                                                     "=C0 bient=F4t.\n";

TEST_F(MailReaderTest, ListsAMaildirByArrivalTimeThenName)
{
    // Directory order and name order differ from arrival order on purpose.
    put("Maildir/cur/1700000300.M1P1Q1.host,S=10:2,S", encoded_subjects);
    put("Maildir/new/1700000100.M9P1Q1.host", multipart_alternative);
    put("Maildir/cur/1700000200.M1P1Q1.host:2,RS", quoted_printable_latin1);
    put("Maildir/new/1700000100.M2P1Q1.host", "Subject: same second, smaller name\n\nx\n");
    put("Maildir/new/1700000100.M10P1Q1.host", "Subject: numbers compare as numbers\n\nx\n");
    put("Maildir/new/nameless", "Subject: no time in the name: its mtime\n\nx\n");
    const std::array<timespec, 2> times{{{1700000250, 0}, {1700000250, 0}}};
    ASSERT_EQ(::utimensat(AT_FDCWD, (root() / "Maildir/new/nameless").c_str(), times.data(), 0), 0);
    const auto store = open(maildir());
    ASSERT_EQ(store.message_count(), 6U);
    EXPECT_EQ(store.message(MessageIndex{0}).base_name, "1700000100.M2P1Q1.host");
    EXPECT_EQ(store.message(MessageIndex{1}).base_name, "1700000100.M9P1Q1.host");
    EXPECT_EQ(store.message(MessageIndex{2}).base_name, "1700000100.M10P1Q1.host");
    EXPECT_EQ(store.message(MessageIndex{3}).base_name, "1700000200.M1P1Q1.host");
    EXPECT_EQ(store.message(MessageIndex{4}).base_name, "nameless");
    EXPECT_EQ(store.message(MessageIndex{5}).base_name, "1700000300.M1P1Q1.host,S=10");
    EXPECT_EQ(store.message(MessageIndex{0}).seen, false);
    EXPECT_EQ(store.message(MessageIndex{3}).seen, true); // :2,RS
    EXPECT_EQ(store.message(MessageIndex{5}).seen, true); // :2,S
    EXPECT_EQ(store.message(MessageIndex{0}).arrival, 1700000100);
    EXPECT_EQ(store.message(MessageIndex{4}).arrival, 1700000250);
}

TEST_F(MailReaderTest, SummarizesRfc2047HeadersInUtf8)
{
    put("Maildir/cur/1700000000.M1P1Q1.host:2,S", encoded_subjects);
    put("Maildir/new/1700000001.M1P1Q1.host", multipart_alternative);
    const auto store = open(maildir());
    ASSERT_EQ(store.message_count(), 2U);

    const auto first = store.summarize(MessageIndex{0});
    EXPECT_EQ(first.subject, "Grüße aus Köln");
    EXPECT_EQ(first.sender, "Jörg Müller");
    EXPECT_EQ(first.date, 1700000000);
    EXPECT_EQ(first.octets, encoded_subjects.size());
    EXPECT_EQ(first.seen, true);
    EXPECT_TRUE(first.error.empty());

    const auto second = store.summarize(MessageIndex{1});
    EXPECT_EQ(second.subject, "Café report");
    EXPECT_EQ(second.sender, "carol@example.org"); // no display name: the address
    EXPECT_EQ(second.date, 1700038800);            // 10:00 +0100
    EXPECT_EQ(second.seen, false);
}

TEST_F(MailReaderTest, DateFallsBackToTheArrivalTime)
{
    put("Maildir/new/1650000000.M1P1Q1.host", "Subject: no date\n\nbody\n");
    put("Maildir/new/1650000001.M1P1Q1.host", "Date: not a date at all\nSubject: bad date\n\nbody\n");
    const auto store = open(maildir());
    ASSERT_EQ(store.message_count(), 2U);
    EXPECT_EQ(store.summarize(MessageIndex{0}).date, 1650000000);
    EXPECT_EQ(store.summarize(MessageIndex{1}).date, 1650000001);
}

TEST_F(MailReaderTest, RendersMultipartAlternativeWithBase64TextAndAttachments)
{
    put("Maildir/new/1700000001.M1P1Q1.host", multipart_alternative);
    const auto store = open(maildir());
    const auto rendered = store.render(MessageIndex{0});
    ASSERT_TRUE(rendered) << rendered.error();
    EXPECT_EQ(rendered->body, "Hello from the base64 part: ünïcödé\nSecond line.\n");
    EXPECT_FALSE(rendered->body_from_html);
    ASSERT_EQ(rendered->attachments.size(), 2U); // the HTML alternative is not one
    EXPECT_EQ(rendered->attachments[0].filename, "résumé.pdf");
    EXPECT_EQ(rendered->attachments[0].mime_type, "application/pdf");
    EXPECT_EQ(rendered->attachments[0].octets, 256U);
    EXPECT_EQ(rendered->attachments[1].filename, "");
    EXPECT_EQ(rendered->attachments[1].mime_type, "image/png");
    EXPECT_EQ(rendered->attachments[1].octets, 8U);

    const std::string text = format_rendered(*rendered);
    EXPECT_NE(text.find("From: carol@example.org\n"), std::string::npos) << text;
    EXPECT_NE(text.find("Subject: Café report\n\nHello from the base64 part"), std::string::npos) << text;
    EXPECT_EQ(text.find("HTML version"), std::string::npos) << text;
    EXPECT_NE(text.find("Attachments:\n  résumé.pdf  application/pdf  256\n  (no name)   image/png  8\n"),
              std::string::npos)
        << text;
}

TEST_F(MailReaderTest, RendersQuotedPrintableLatin1AsUtf8)
{
    put("Maildir/cur/1700000000.M1P1Q1.host:2,", quoted_printable_latin1);
    const auto store = open(maildir());
    const auto rendered = store.render(MessageIndex{0});
    ASSERT_TRUE(rendered) << rendered.error();
    EXPECT_EQ(rendered->body, "Café crème brûlée, a soft break.\nÀ bientôt.\n");
    EXPECT_TRUE(rendered->attachments.empty());
    ASSERT_GE(rendered->headers.size(), 3U);
    EXPECT_EQ(rendered->headers[0],
              (std::pair<std::string, std::string>{"Date", "Thu, 16 Nov 2023 08:00:00 +0000"}));
    EXPECT_EQ(rendered->headers[1],
              (std::pair<std::string, std::string>{"From", "\"Dupont, Jean\" <jean@example.fr>"}));
    EXPECT_EQ(store.summarize(MessageIndex{0}).seen, false); // ":2," without S
}

TEST_F(MailReaderTest, RendersHtmlOnlyMessagesAsText)
{
    put("Maildir/new/1700000000.M1P1Q1.host",
        "Subject: html\nContent-Type: text/html; charset=utf-8\n\n"
        "<html><head><title>T</title><style>p{color:red}</style></head><body>"
        "<p>Hello&nbsp;&amp; welcome,<br>line   two</p><script>alert(1)</script>"
        "<ul><li>one</li><li>two &#8364;</li></ul><!-- a comment --></body></html>\n");
    const auto store = open(maildir());
    const auto rendered = store.render(MessageIndex{0});
    ASSERT_TRUE(rendered);
    EXPECT_TRUE(rendered->body_from_html);
    EXPECT_EQ(rendered->body, "Hello & welcome,\nline two\n\n* one\n* two €\n");
}

TEST_F(MailReaderTest, MboxIsSplitOnFromLinesAndUnquoted)
{
    put("mbox", "From MAILER-DAEMON Tue Nov 14 22:13:20 2023\n"
                "Subject: first\n"
                "Status: RO\n"
                "\n"
                ">From the start of a line\n"
                ">>From quoted twice\n"
                "From inside a paragraph is no separator\n"
                "\n"
                "From MAILER-DAEMON Wed Nov 15 00:00:00 2023\n"
                "Subject: second, no date field\n"
                "\n"
                "body two\n"
                "\n"
                "From MAILER-DAEMON Thu Nov 16 00:00:00 2023\n"
                "Date: Fri, 17 Nov 2023 00:00:00 +0000\n"
                "Subject: =?ISO-8859-1?Q?th=EErd?=\n"
                "\n"
                "body three\n");
    const auto store = open(mbox());
    ASSERT_EQ(store.message_count(), 3U);

    const auto first = store.summarize(MessageIndex{0});
    EXPECT_EQ(first.subject, "first");
    EXPECT_EQ(first.seen, true);
    EXPECT_EQ(first.date, 1700000000); // the From_ line's date: no Date field
    const auto second = store.summarize(MessageIndex{1});
    EXPECT_EQ(second.subject, "second, no date field");
    EXPECT_EQ(second.seen, false);
    EXPECT_EQ(second.date, 1700006400);
    const auto third = store.summarize(MessageIndex{2});
    EXPECT_EQ(third.subject, "thîrd");
    EXPECT_EQ(third.date, 1700179200); // the Date field wins over the From_ line

    const auto rendered = store.render(MessageIndex{0});
    ASSERT_TRUE(rendered);
    EXPECT_EQ(rendered->body,
              "From the start of a line\n>From quoted twice\nFrom inside a paragraph is no separator\n");

    std::string raw;
    ASSERT_TRUE(store.write_raw(MessageIndex{1}, [&raw](std::string_view piece) {
        raw.append(piece);
        return true;
    }));
    EXPECT_EQ(raw, "Subject: second, no date field\n\nbody two\n");
}

TEST_F(MailReaderTest, MboxIsReadInPiecesNotWhole)
{
    // More than one scan chunk (1 MiB), with a message straddling the boundary.
    std::string text;
    std::string big_line(1000, 'x');
    big_line += '\n';
    for (int i = 0; i < 3; ++i) {
        text += "From MAILER-DAEMON Tue Nov 14 22:13:20 2023\nSubject: m" + std::to_string(i) + "\n\n";
        for (int line = 0; line < 600; ++line) {
            text += big_line;
        }
        text += "\n";
    }
    put("mbox", text);
    const auto store = open(mbox());
    ASSERT_EQ(store.message_count(), 3U);
    EXPECT_EQ(store.summarize(MessageIndex{1}).subject, "m1");
    EXPECT_EQ(store.summarize(MessageIndex{2}).subject, "m2");
    EXPECT_EQ(store.message(MessageIndex{2}).octets,
              std::size_t{600} * 1001 + std::string("Subject: m2\n\n").size());
}

TEST_F(MailReaderTest, GarbageFilesAreListedAndRenderedSafely)
{
    std::string garbage;
    for (int i = 0; i < 5000; ++i) {
        garbage += static_cast<char>((i * 7919) % 256);
    }
    put("Maildir/new/1700000000.M1P1Q1.host", garbage);
    put("Maildir/new/1700000001.M1P1Q1.host", ""); // empty
    put("Maildir/new/1700000002.M1P1Q1.host", "Subject: cut\nContent-Type: multipart/mixed; "
                                              "boundary=b\n\n--b\nContent-Type: text/plain\n\nunterminated");
    put("Maildir/new/.hidden", encoded_subjects);                                          // skipped
    fs::create_directories(root() / "Maildir/cur/1700000003.M1P1Q1.host");                 // skipped
    fs::create_symlink("/etc/passwd", root() / "Maildir/cur/1700000004.M1P1Q1.host");      // skipped
    ASSERT_EQ(::mkfifo((root() / "Maildir/cur/1700000005.M1P1Q1.host").c_str(), 0600), 0); // skipped
    const auto store = open(maildir());
    ASSERT_EQ(store.message_count(), 3U);
    for (std::uint32_t i = 0; i < store.message_count(); ++i) {
        const auto summary = store.summarize(MessageIndex{i});
        EXPECT_TRUE(terminal_clean(summary.subject, false));
        EXPECT_TRUE(terminal_clean(summary.sender, false));
        const auto rendered = store.render(MessageIndex{i});
        ASSERT_TRUE(rendered) << rendered.error();
        EXPECT_TRUE(terminal_clean(format_rendered(*rendered), true)) << "message " << i + 1;
    }
    EXPECT_EQ(store.summarize(MessageIndex{2}).subject, "cut");
    EXPECT_EQ(store.render(MessageIndex{2})->body, "unterminated");
}

TEST_F(MailReaderTest, EscapeSequencesNeverReachTheTerminal)
{
    put("Maildir/new/1700000000.M1P1Q1.host",
        "From: =?UTF-8?B?RXZpbBtbMW0HIE5hbWU=?= <e@example.org>\n"
        "To: x@example.org\n"
        "Subject: =?UTF-8?Q?red=1B[31m_text=C2=9B2J?= \x1b[2J raw\n"
        "Content-Type: text/plain; charset=utf-8\n"
        "\n"
        "line\x1b[1mbold\x1b[0m\ttab\r\nCR alone\rhere \x7f \xc2\x9b bad \xff\xfe end\n");
    const auto store = open(maildir());
    const auto summary = store.summarize(MessageIndex{0});
    EXPECT_TRUE(terminal_clean(summary.subject, false));
    EXPECT_TRUE(terminal_clean(summary.sender, false));
    EXPECT_EQ(summary.subject, "red?[31m text?2J ?[2J raw");
    EXPECT_EQ(summary.sender, "Evil?[1m? Name");
    const auto rendered = store.render(MessageIndex{0});
    ASSERT_TRUE(rendered);
    EXPECT_EQ(rendered->body, "line?[1mbold?[0m\ttab\nCR alone?here ? ? bad  end\n");
    EXPECT_TRUE(terminal_clean(format_rendered(*rendered), true));
}

TEST_F(MailReaderTest, UnparsableAddressesFallBackToTheDecodedField)
{
    put("Maildir/new/1700000000.M1P1Q1.host", "From: =?UTF-8?Q?Evil=1B]0;pwned=07?= <e@example.org>\n\nx\n");
    const auto store = open(maildir());
    const auto sender = store.summarize(MessageIndex{0}).sender;
    EXPECT_EQ(sender.substr(0, 14), "Evil?]0;pwned?");
    EXPECT_TRUE(terminal_clean(sender, false));

    // The whole field as one encoded word (Python's email.header misused): decoded all the same.
    put("Maildir/new/1700000001.M1P1Q1.host",
        "From: =?utf-8?q?Ana_Garc=C3=ADa_=3Cana=40example=2Ees=3E?=\n\nx\n");
    const auto again = open(maildir());
    EXPECT_EQ(again.summarize(MessageIndex{1}).sender, "Ana García <ana@example.es>");
    const auto rendered = again.render(MessageIndex{1});
    ASSERT_TRUE(rendered);
    ASSERT_EQ(rendered->headers.size(), 2U);
    EXPECT_EQ(rendered->headers[0], (std::pair<std::string, std::string>{
                                        "Date", "Tue, 14 Nov 2023 22:13:21 +0000 (arrival; no Date field)"}));
    EXPECT_EQ(rendered->headers[1],
              (std::pair<std::string, std::string>{"From", "Ana García <ana@example.es>"}));
}

TEST_F(MailReaderTest, HeaderReadingForListingIsBounded)
{
    std::string message = "Subject: early\n";
    while (message.size() < max_header_octets + 1000) {
        message += "X-Filler: " + std::string(70, 'f') + "\n";
    }
    message += "From: late@example.org\n\nbody\n";
    put("Maildir/new/1700000000.M1P1Q1.host", message);
    const auto store = open(maildir());
    const auto summary = store.summarize(MessageIndex{0});
    EXPECT_EQ(summary.subject, "early");
    EXPECT_EQ(summary.sender, ""); // past the first 64 KiB: not read for ls
    EXPECT_EQ(summary.octets, message.size());
}

TEST_F(MailReaderTest, LongFieldsAreCut)
{
    const std::string long_subject(100'000, 'S');
    put("Maildir/new/1700000000.M1P1Q1.host", "Subject: " + long_subject + "\n\nbody\n");
    const auto store = open(maildir());
    const auto summary = store.summarize(MessageIndex{0});
    EXPECT_EQ(summary.subject, ""); // the header section is longer than what ls reads
    const auto rendered = store.render(MessageIndex{0});
    ASSERT_TRUE(rendered);
    ASSERT_EQ(rendered->headers.size(), 2U);
    EXPECT_EQ(rendered->headers[1].second, std::string(max_rendered_field_octets, 'S') + "…");
    EXPECT_EQ(rendered->body, "body\n");

    put("Maildir/new/1700000001.M1P1Q1.host", "Subject: " + std::string(5000, 's') + "\n\nbody\n");
    const auto again = open(maildir());
    EXPECT_EQ(again.summarize(MessageIndex{1}).subject, std::string(max_summary_field_octets, 's') + "…");
}

TEST_F(MailReaderTest, AttachmentListIsBounded)
{
    std::string message = "Subject: many\nContent-Type: multipart/mixed; boundary=x\n\n";
    for (std::size_t i = 0; i < max_listed_attachments + 5; ++i) {
        message +=
            "--x\nContent-Type: application/octet-stream\nContent-Disposition: attachment; filename=f" +
            std::to_string(i) + "\n\nabc\n";
    }
    message += "--x--\n";
    put("Maildir/new/1700000000.M1P1Q1.host", message);
    const auto store = open(maildir());
    const auto rendered = store.render(MessageIndex{0});
    ASSERT_TRUE(rendered);
    EXPECT_EQ(rendered->attachments.size(), max_listed_attachments);
    EXPECT_EQ(rendered->attachments_not_listed, 5U);
    EXPECT_EQ(rendered->attachments.back().filename, "f999");
    EXPECT_NE(format_rendered(*rendered).find("  … and 5 more\n"), std::string::npos);
}

TEST_F(MailReaderTest, LongBodiesAreCutAtTheShownLimit)
{
    std::string body;
    while (body.size() <= max_body_text_octets + 100) {
        body += "é"; // two octets: the cut must not split one
    }
    put("Maildir/new/1700000000.M1P1Q1.host",
        "Subject: long\nContent-Type: text/plain; charset=utf-8\n\n" + body);
    const auto store = open(maildir());
    const auto rendered = store.render(MessageIndex{0});
    ASSERT_TRUE(rendered);
    EXPECT_TRUE(rendered->body_truncated);
    EXPECT_LE(rendered->body.size(), max_body_text_octets);
    EXPECT_GE(rendered->body.size(), max_body_text_octets - 1);
    EXPECT_TRUE(terminal_clean(rendered->body, true));
    EXPECT_NE(format_rendered(*rendered).find("[text cut at 1 MiB]"), std::string::npos);
}

TEST_F(MailReaderTest, NumbersSurviveAMoveFromNewToCur)
{
    put("Maildir/new/1700000000.M1P1Q1.host", "Subject: one\n\n1\n");
    put("Maildir/new/1700000001.M1P1Q1.host", "Subject: two\n\n2\n");
    const auto store = open(maildir());
    // A mail reader marks message 1 seen after the listing was made.
    fs::rename(root() / "Maildir/new/1700000000.M1P1Q1.host",
               root() / "Maildir/cur/1700000000.M1P1Q1.host:2,S");
    const auto rendered = store.render(MessageIndex{0});
    ASSERT_TRUE(rendered) << rendered.error();
    EXPECT_EQ(rendered->body, "1\n");
    const auto again = open(maildir());
    ASSERT_EQ(again.message_count(), 2U);
    EXPECT_EQ(again.summarize(MessageIndex{0}).subject, "one");
    EXPECT_EQ(again.summarize(MessageIndex{0}).seen, true);
    EXPECT_EQ(again.summarize(MessageIndex{1}).subject, "two");
}

TEST_F(MailReaderTest, MissingStoresAreErrors)
{
    using Kind = StoreError::Kind;
    const auto missing_maildir = MailStore::open({StoreFormat::maildir, (root() / "nothing").string()});
    ASSERT_FALSE(missing_maildir);
    EXPECT_EQ(missing_maildir.error().kind, Kind::not_found);
    const auto missing_mbox = MailStore::open({StoreFormat::mbox, (root() / "nothing").string()});
    ASSERT_FALSE(missing_mbox);
    EXPECT_EQ(missing_mbox.error().kind, Kind::not_found);
    fs::create_directories(root() / "empty");
    const auto not_maildir = MailStore::open({StoreFormat::maildir, (root() / "empty").string()});
    ASSERT_FALSE(not_maildir);
    EXPECT_EQ(not_maildir.error().kind, Kind::not_a_store);
    EXPECT_NE(not_maildir.error().text.find("not a Maildir"), std::string::npos);
    const auto directory = MailStore::open({StoreFormat::mbox, (root() / "Maildir").string()});
    ASSERT_FALSE(directory);
    EXPECT_EQ(directory.error().kind, Kind::not_a_store);
    // An empty Maildir or mbox is a store with no messages.
    put("mbox", "");
    const auto empty_mbox = MailStore::open(mbox());
    ASSERT_TRUE(empty_mbox);
    EXPECT_EQ(empty_mbox->message_count(), 0U);
}

TEST(MailReaderLocation, ParsesMaildirAndMboxAndRefusesTheRest)
{
    const auto maildir = parse_store_location("maildir:/var/mail/x");
    ASSERT_TRUE(maildir);
    EXPECT_EQ(maildir->format, StoreFormat::maildir);
    EXPECT_EQ(maildir->path, "/var/mail/x");
    const auto mbox = parse_store_location("mbox:/tmp/box");
    ASSERT_TRUE(mbox);
    EXPECT_EQ(mbox->format, StoreFormat::mbox);
    EXPECT_EQ(describe(*mbox), "mbox:/tmp/box");
    const auto command = parse_store_location("command:procmail");
    ASSERT_FALSE(command);
    EXPECT_EQ(command.error(), "delivers to a command; nothing to list");
    EXPECT_FALSE(parse_store_location("imap:imaps://host/INBOX"));
    EXPECT_FALSE(parse_store_location("maildir:"));
    EXPECT_FALSE(parse_store_location("/just/a/path"));
}

TEST(MailReaderText, TerminalSafeReplacesControlsAndInvalidUtf8)
{
    EXPECT_EQ(terminal_safe("a\x1b[31mb", false), "a?[31mb");
    EXPECT_EQ(terminal_safe("tab\there\nnext", false), "tab here next");
    EXPECT_EQ(terminal_safe("tab\there\r\nnext\rx", true), "tab\there\nnext?x");
    EXPECT_EQ(terminal_safe("\xc2\x9b"
                            "2J",
                            false),
              "?2J");                                                                        // C1 CSI
    EXPECT_EQ(terminal_safe("\xc0\xaf", false), "\xEF\xBF\xBD\xEF\xBF\xBD");                 // overlong
    EXPECT_EQ(terminal_safe("\xed\xa0\x80", false), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"); // surrogate
    EXPECT_EQ(terminal_safe("ok ü € 😀", false), "ok ü € 😀");
}

TEST(MailReaderText, CompleteUtf8PrefixHoldsBackAPartialCharacter)
{
    EXPECT_EQ(complete_utf8_prefix("abc"), 3U);
    EXPECT_EQ(complete_utf8_prefix("ab\xc3"), 2U);
    EXPECT_EQ(complete_utf8_prefix("ab\xe2\x82"), 2U);
    EXPECT_EQ(complete_utf8_prefix("ab\xe2\x82\xac"), 5U);
    EXPECT_EQ(complete_utf8_prefix("\xf0\x9f\x98"), 0U);
    EXPECT_EQ(complete_utf8_prefix("\x80\x80\x80\x80"), 4U); // invalid anyway: nothing to wait for
}

TEST(MailReaderText, WidthCountsWideAndCombiningCharacters)
{
    EXPECT_EQ(display_width("abc"), 3U);
    EXPECT_EQ(display_width("Grüße"), 5U);
    EXPECT_EQ(display_width("日本語"), 6U);
    EXPECT_EQ(display_width("e\xcc\x81"), 1U); // e + COMBINING ACUTE ACCENT
    EXPECT_EQ(display_width("😀"), 2U);
    EXPECT_EQ(truncate_to_width("Grüße aus Köln", 20), "Grüße aus Köln");
    EXPECT_EQ(truncate_to_width("Grüße aus Köln", 6), "Grüße…");
    EXPECT_EQ(truncate_to_width("日本語のテキスト", 6), "日本…");
    EXPECT_EQ(display_width(truncate_to_width("日本語のテキスト", 6)), 5U);
    EXPECT_EQ(truncate_to_width("abc", 0), "");
}

TEST(MailReaderText, HumanSizes)
{
    EXPECT_EQ(human_size(0), "0");
    EXPECT_EQ(human_size(1023), "1023");
    EXPECT_EQ(human_size(1024), "1.0K");
    EXPECT_EQ(human_size(12 * 1024 + 100), "12K");
    EXPECT_EQ(human_size(3 * 1024 * 1024 + 400 * 1024), "3.4M");
    EXPECT_EQ(human_size(std::uint64_t{5} << 30U), "5.0G");
}

} // namespace
} // namespace pigeon::client
