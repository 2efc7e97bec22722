#include "auth/password_scheme.hpp"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <array>
#include <map>
#include <string>
#include <string_view>
#include <utility>

namespace pigeon::auth {
namespace {

using namespace std::string_view_literals;

constexpr std::string_view awkward_password = "pässwörd with spaces:$x";

// Made by Dovecot 2.3.19's `doveadm pw -s SCHEME -p secret` (with -c /dev/null) on this project's
// machine: every one must verify in Pigeon, so an operator's existing passwd-file keeps working.
constexpr std::array<std::pair<std::string_view, std::string_view>, 10> doveadm_secret_hashes{{
    {"ARGON2ID", "{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$FksmPam8t9U+m5vC71trrg$"
                 "xEg/NN8sU2D0RPrkE8nbYA41NUXAS4D41HiETh35a6g"},
    {"ARGON2I", "{ARGON2I}$argon2i$v=19$m=32768,t=4,p=1$4rtgVpkqBWuy5iud/MQkmg$"
                "bcRV2uL9w34D2t5DtD1bnH/d61GJ7zCi0WuKwxPfTH0"},
    {"BLF-CRYPT", "{BLF-CRYPT}$2y$05$QXTcVqWsbuNeq0X8g9Mu9.HCFkEQjd8idJukBFtLRmT/7tksWuEl."},
    {"SHA512-CRYPT",
     "{SHA512-CRYPT}$6$PYhMS5dI.cxJ0ens$NHjsjICG1Y8EXoq3l.cztUukkhn8jMP8X8muVqIC23hOsUGRlgQt2LuOoUM3"
     "X9C7Z0Vds8KPa91m4dHBAedaN0"},
    {"SHA256-CRYPT", "{SHA256-CRYPT}$5$UOq1pvXsOM/1JQEJ$HU0hGbJlPNeH0PrzQAjFjkbAL4bGHqhVOYLYZU5nE91"},
    {"CRYPT", "{CRYPT}$2y$05$F2WofkQHO1z0k1Vga2zJMOl4uSCYM3DqlcjCmUXIAoDdh4PLtmiX."},
    {"PLAIN", "{PLAIN}secret"},
    {"CRAM-MD5", "{CRAM-MD5}cd3ba7deaad6e5ca23448ba42e379747a9e0f7f1fbc00c8a81bbaac395731b56"},
    {"SCRAM-SHA-1", "{SCRAM-SHA-1}4096,v4aUeKzur/Bx/FQCL+wutQ==,lm523vma+1M29nyi9lzWWavjFFU=,"
                    "EM1siAslxyaSXdQv/oQb/Ozrd8k="},
    {"SCRAM-SHA-256",
     "{SCRAM-SHA-256}4096,Hp9zq55uTXllMK8sPZkZDg==,xgiJLCO+xJ+8LXVWparDuz+0oRATucp8XpTji2Hy/Lc=,"
     "ovraie0AnUPEkhWHePbzMe8xk5Zeuk41bndoYqlLCY0="},
}};

// `doveadm pw -s SCHEME -p 'pässwörd with spaces:$x'`: UTF-8, spaces and the passwd-file
// separator reach the hash untouched.
constexpr std::array<std::string_view, 5> doveadm_awkward_hashes{
    "{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$WS+3OXLtzBAFHT/"
    "eEz6fAQ$Zo8Fk+ferCyVZgFLu7ues00i3Zbeg3P2YpCllQm1VTQ",
    "{SHA512-CRYPT}$6$SkI3HmBaKbKIvZlG$wuXv/"
    "OFD1fEc6OEXqGxkm1OYvzmZLGoepeOQJn9axK45e4B8NGxHggzJEoHaGmXNUiBtk0NQGYTds"
    "n8vdFQnG1",
    "{BLF-CRYPT}$2y$05$bfPfjup28K/wjjrwth7YRuT1CTdULO/KR9mxW/yzWnTllSdZwcknq",
    "{CRAM-MD5}5d763a5a8af384649fc1edfc0d08467b6c7aa672412812e357e4a9a14a2adc93",
    "{SCRAM-SHA-256}4096,F3I9QZ7+FcB3CbT3bP6m9A==,E4lefJZF4vF6jGWbLBXgaAzkdzZSa8EzKW0f3GTs0II=,"
    "VntfeYJdUJgqCmn8z3j/Dd6qT5DQww/2gdcFXxGuWQ4=",
};

// Every scheme, salted or not, must give `expected` for (stored, password).
void expect_verify(std::string_view stored, std::string_view password, bool expected)
{
    const auto result = verify_password(stored, password);
    ASSERT_TRUE(result) << stored << ": " << result.error().message();
    EXPECT_EQ(*result, expected) << stored;
}

TEST(PasswordScheme, DoveadmHashesVerify)
{
    for (const auto& [scheme, hash] : doveadm_secret_hashes) {
        SCOPED_TRACE(scheme);
        expect_verify(hash, "secret", true);
        expect_verify(hash, "Secret", false);
        expect_verify(hash, "secret ", false);
        expect_verify(hash, "", false);
    }
}

TEST(PasswordScheme, DoveadmHashesOfAnAwkwardPasswordVerify)
{
    for (const auto hash : doveadm_awkward_hashes) {
        expect_verify(hash, awkward_password, true);
        expect_verify(hash, "passwörd with spaces:$x", false);
    }
}

TEST(PasswordScheme, DoveadmHashesWithOtherCostsVerify)
{
    // `doveadm pw -r 10000 -s SHA512-CRYPT` and `doveadm pw -r 7 -s BLF-CRYPT`.
    expect_verify(
        "{SHA512-CRYPT}$6$rounds=10000$j2vEJ9Pacj4uaRHi$pRsgeuncNOMeZS219X8UPaJSJLuVvI/ri1CRwjaRDZx/"
        "Ze1fUw5Mj/WjFLBTwqYJUuQ4spctWlgWGaAsi6e/N.",
        "secret", true);
    expect_verify("{BLF-CRYPT}$2y$07$wQcMMEJzAk6QEuThE3YlH.1Hw26Q79cTdG/Iy2V1syBH9a6vMlkuW", "secret", true);
    expect_verify("{BLF-CRYPT}$2y$07$wQcMMEJzAk6QEuThE3YlH.1Hw26Q79cTdG/Iy2V1syBH9a6vMlkuW", "secreT", false);
}

TEST(PasswordScheme, Argon2TypeComesFromTheEncodedString)
{
    // Dovecot (libsodium) verifies an ARGON2ID string filed under {ARGON2I}; so does Pigeon.
    expect_verify("{ARGON2I}$argon2id$v=19$m=65536,t=3,p=1$FksmPam8t9U+m5vC71trrg$"
                  "xEg/NN8sU2D0RPrkE8nbYA41NUXAS4D41HiETh35a6g",
                  "secret", true);
}

TEST(PasswordScheme, CramMd5IsDoveadmsExactly)
{
    // CRAM-MD5 has no salt: the same password gives doveadm's value byte for byte, including
    // keys longer than the HMAC block (hashed first, RFC 2104 §2) and the empty password.
    const std::array<std::pair<std::string, std::string_view>, 5> vectors{{
        {"secret", "{CRAM-MD5}cd3ba7deaad6e5ca23448ba42e379747a9e0f7f1fbc00c8a81bbaac395731b56"},
        {std::string(awkward_password),
         "{CRAM-MD5}5d763a5a8af384649fc1edfc0d08467b6c7aa672412812e357e4a9a14a2adc93"},
        {std::string(64, 'a'), "{CRAM-MD5}6957714d5e68e79c4af1e64841006d9a695110dd110308dabf8a187ea80da0bc"},
        {std::string(100, 'b'), "{CRAM-MD5}38197314b626a37a1418df5b7ab69ed530d4329c6798da6a6f24ba4609d22a79"},
        {"", "{CRAM-MD5}00747cf2ffaf11c5ea4a64979c3901fc1d20dee13f480bb598f7d8575b23e61b"},
    }};
    for (const auto& [password, expected] : vectors) {
        EXPECT_EQ(hash_password(PasswordScheme::cram_md5, password).value(), expected);
        expect_verify(expected, password, true);
    }
    // Upper-case hex is read too.
    expect_verify("{CRAM-MD5}CD3BA7DEAAD6E5CA23448BA42E379747A9E0F7F1FBC00C8A81BBAAC395731B56", "secret",
                  true);
}

TEST(PasswordScheme, EverySchemeRoundTripsInDoveadmsFormat)
{
    // What each scheme's value looks like after "{SCHEME}", as doveadm writes it (its costs).
    const std::array<std::pair<PasswordScheme, std::string_view>, 10> formats{{
        {PasswordScheme::argon2id, "$argon2id$v=19$m=65536,t=3,p=1$"},
        {PasswordScheme::argon2i, "$argon2i$v=19$m=32768,t=4,p=1$"},
        {PasswordScheme::blf_crypt, "$2y$05$"},
        {PasswordScheme::sha512_crypt, "$6$"},
        {PasswordScheme::sha256_crypt, "$5$"},
        {PasswordScheme::crypt, "$2y$05$"},
        {PasswordScheme::plain, ""},
        {PasswordScheme::cram_md5, ""},
        {PasswordScheme::scram_sha_1, "4096,"},
        {PasswordScheme::scram_sha_256, "4096,"},
    }};
    ASSERT_EQ(all_password_schemes().size(), formats.size());
    for (const auto& [scheme, format] : formats) {
        SCOPED_TRACE(scheme_name(scheme));
        const auto hash = hash_password(scheme, awkward_password);
        ASSERT_TRUE(hash);
        const std::string prefix = "{" + std::string(scheme_name(scheme)) + "}" + std::string(format);
        EXPECT_TRUE(hash->starts_with(prefix)) << *hash;
        expect_verify(*hash, awkward_password, true);
        expect_verify(*hash, "passwörd with spaces:$x", false);
        expect_verify(*hash, "", false);
    }
    // Lengths doveadm's values have: 22 + 43 base64 characters of argon2 salt and hash, a 60
    // character bcrypt string, 16 characters of SHA-crypt salt, a 16-octet SCRAM salt.
    EXPECT_EQ(hash_password(PasswordScheme::argon2id, "x")->size(),
              "{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$"sv.size() + 22 + 1 + 43);
    EXPECT_EQ(hash_password(PasswordScheme::blf_crypt, "x")->size(), "{BLF-CRYPT}"sv.size() + 60);
    EXPECT_EQ(hash_password(PasswordScheme::sha512_crypt, "x")->find('$', "{SHA512-CRYPT}$6$"sv.size()),
              "{SHA512-CRYPT}$6$"sv.size() + 16);
    EXPECT_EQ(hash_password(PasswordScheme::sha256_crypt, "x")->find('$', "{SHA256-CRYPT}$5$"sv.size()),
              "{SHA256-CRYPT}$5$"sv.size() + 16);
    EXPECT_EQ(hash_password(PasswordScheme::scram_sha_256, "x")->find(',', "{SCRAM-SHA-256}4096,"sv.size()),
              "{SCRAM-SHA-256}4096,"sv.size() + 24);
}

TEST(PasswordScheme, SaltedSchemesNeverRepeat)
{
    // (ARGON2* take their salt from the same RAND_bytes call as SCRAM; they are left out for time.)
    for (const auto scheme : {PasswordScheme::blf_crypt, PasswordScheme::crypt, PasswordScheme::sha512_crypt,
                              PasswordScheme::sha256_crypt, PasswordScheme::scram_sha_1}) {
        EXPECT_NE(hash_password(scheme, "x").value(), hash_password(scheme, "x").value())
            << scheme_name(scheme);
    }
}

TEST(PasswordScheme, BareCryptStringsAreCrypt)
{
    // A passwd-file line without {SCHEME}: a crypt(3) string, as Dovecot reads it, whatever its
    // method; yescrypt ($y$, Debian's /etc/shadow default) made by libxcrypt, verified by doveadm.
    expect_verify(
        "$6$PYhMS5dI.cxJ0ens$NHjsjICG1Y8EXoq3l.cztUukkhn8jMP8X8muVqIC23hOsUGRlgQt2LuOoUM3X9C7Z0Vds8KPa91m4dH"
        "BAedaN0",
        "secret", true);
    expect_verify("$2y$05$QXTcVqWsbuNeq0X8g9Mu9.HCFkEQjd8idJukBFtLRmT/7tksWuEl.", "secret", true);
    expect_verify("$y$j9T$OSs.ahJj.BUJntOMHKNsb/$1umC3lNKDzzYGj8VdKMg.UMcDp7XsdvW6A2nfV2Jd3D", "secret",
                  true);
    expect_verify("{CRYPT}$y$j9T$OSs.ahJj.BUJntOMHKNsb/$1umC3lNKDzzYGj8VdKMg.UMcDp7XsdvW6A2nfV2Jd3D",
                  "secreT", false);
    // The scheme name does not bind the method: Dovecot hands any of them to crypt(3).
    expect_verify("{SHA512-CRYPT}$2y$05$QXTcVqWsbuNeq0X8g9Mu9.HCFkEQjd8idJukBFtLRmT/7tksWuEl.", "secret",
                  true);
}

TEST(PasswordScheme, NamesAndAliases)
{
    for (const auto scheme : all_password_schemes()) {
        EXPECT_EQ(scheme_from_name(scheme_name(scheme)), scheme);
    }
    EXPECT_EQ(scheme_from_name("sha512-crypt"), PasswordScheme::sha512_crypt);
    EXPECT_EQ(scheme_from_name("Scram-Sha-256"), PasswordScheme::scram_sha_256);
    EXPECT_EQ(scheme_from_name("CLEARTEXT"), PasswordScheme::plain);
    EXPECT_EQ(scheme_from_name("clear"), PasswordScheme::plain);
    EXPECT_EQ(scheme_from_name("HMAC-MD5"), PasswordScheme::cram_md5);
    EXPECT_EQ(scheme_name(PasswordScheme::plain), "PLAIN");
    EXPECT_FALSE(scheme_from_name("MD5-NOPE"));
    EXPECT_FALSE(scheme_from_name(""));
    expect_verify("{cleartext}secret", "secret", true);
    expect_verify("{hmac-md5}cd3ba7deaad6e5ca23448ba42e379747a9e0f7f1fbc00c8a81bbaac395731b56", "secret",
                  true);
    // An aliased scheme is written under its canonical name.
    EXPECT_EQ(hash_password(*scheme_from_name("CLEAR"), "x").value(), "{PLAIN}x");
}

TEST(PasswordScheme, ParseStoredPassword)
{
    const auto bare = parse_stored_password("$6$abc$def");
    ASSERT_TRUE(bare);
    EXPECT_EQ(bare->scheme, PasswordScheme::crypt);
    EXPECT_EQ(bare->data, "$6$abc$def");
    const auto named = parse_stored_password("{Plain}a}b");
    ASSERT_TRUE(named);
    EXPECT_EQ(named->scheme, PasswordScheme::plain);
    EXPECT_EQ(named->data, "a}b");
    EXPECT_EQ(parse_stored_password("{PLAIN").error(), make_error_code(errc::auth_temporary_failure));
    EXPECT_EQ(parse_stored_password("{}x").error(), make_error_code(errc::auth_temporary_failure));
    // Dovecot's ".encoding" suffixes are not read (yet): unreadable, not a guess.
    EXPECT_EQ(parse_stored_password("{PLAIN.b64}c2VjcmV0").error(),
              make_error_code(errc::auth_temporary_failure));
}

TEST(PasswordScheme, UnreadableStoredValuesAreTemporaryFailuresNotCrashes)
{
    const std::array<std::string_view, 29> unreadable{
        "{NOPE}x",
        "{PLAIN",
        "",
        "*",
        "!",
        "{ARGON2ID}",
        "{ARGON2ID}garbage",
        "{ARGON2ID}$argon2d$v=19$m=65536,t=3,p=1$FksmPam8t9U+m5vC71trrg$xEg/"
        "NN8sU2D0RPrkE8nbYA41NUXAS4D41HiETh35a6g",
        "{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$FksmPam8t9U+m5vC71trrg$",
        "{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$$xEg/NN8sU2D0RPrkE8nbYA41NUXAS4D41HiETh35a6g",
        "{ARGON2ID}$argon2id$v=19$m=1,t=3,p=1$FksmPam8t9U+m5vC71trrg$xEg/"
        "NN8sU2D0RPrkE8nbYA41NUXAS4D41HiETh35a6g",
        // Costs beyond any login check's (a corrupted or hostile database): refused, not run.
        "{ARGON2ID}$argon2id$v=19$m=4194304,t=3,p=1$FksmPam8t9U+m5vC71trrg$xEg/"
        "NN8sU2D0RPrkE8nbYA41NUXAS4D41HiETh35a6g",
        "{ARGON2ID}$argon2id$v=19$m=65536,t=4294967295,p=1$FksmPam8t9U+m5vC71trrg$"
        "xEg/NN8sU2D0RPrkE8nbYA41NUXAS4D41HiETh35a6g",
        "{BLF-CRYPT}$2y$31$QXTcVqWsbuNeq0X8g9Mu9.HCFkEQjd8idJukBFtLRmT/7tksWuEl.",
        "{SHA512-CRYPT}$6$rounds=999999999$j2vEJ9Pacj4uaRHi$pRsgeuncNOMeZS219X8UPaJSJLuVvI/ri1CRwjaRDZx/"
        "Ze1fUw5Mj/"
        "WjFLBTwqYJUuQ4spctWlgWGaAsi6e/N.",
        "{SCRAM-SHA-256}4294967295,Hp9zq55uTXllMK8sPZkZDg==,xgiJLCO+xJ+8LXVWparDuz+0oRATucp8XpTji2Hy/Lc=,"
        "ovraie0AnUPEkhWHePbzMe8xk5Zeuk41bndoYqlLCY0=",
        "{SHA512-CRYPT}",
        "{BLF-CRYPT}$2y$05$",
        "{CRYPT}$9$nonsense",
        "{CRAM-MD5}abc",
        "{CRAM-MD5}zz3ba7deaad6e5ca23448ba42e379747a9e0f7f1fbc00c8a81bbaac395731b56",
        "{CRAM-MD5}cd3ba7deaad6e5ca23448ba42e379747a9e0f7f1fbc00c8a81bbaac395731b5600",
        "{SCRAM-SHA-256}4096,x,y,z",
        "{SCRAM-SHA-256}0,Hp9zq55uTXllMK8sPZkZDg==,xgiJLCO+xJ+8LXVWparDuz+0oRATucp8XpTji2Hy/Lc=,"
        "ovraie0AnUPEkhWHePbzMe8xk5Zeuk41bndoYqlLCY0=",
        "{SCRAM-SHA-256}4096,Hp9zq55uTXllMK8sPZkZDg==,xgiJLCO+xJ+8LXVWparDuz+0oRATucp8XpTji2Hy/Lc=",
        // SHA-1 keys under SHA-256 and the other way round: the key length gives it away.
        "{SCRAM-SHA-256}4096,v4aUeKzur/Bx/FQCL+wutQ==,lm523vma+1M29nyi9lzWWavjFFU=,EM1siAslxyaSXdQv/oQb/"
        "Ozrd8k=",
        "{SCRAM-SHA-1}4096,Hp9zq55uTXllMK8sPZkZDg==,xgiJLCO+xJ+8LXVWparDuz+0oRATucp8XpTji2Hy/Lc=,"
        "ovraie0AnUPEkhWHePbzMe8xk5Zeuk41bndoYqlLCY0=",
        "{SCRAM-SHA-1}",
        "{SCRAM-SHA-1},,,",
    };
    for (const auto stored : unreadable) {
        const auto result = verify_password(stored, "secret");
        ASSERT_FALSE(result) << stored << " gave " << *result;
        EXPECT_EQ(result.error(), make_error_code(errc::auth_temporary_failure)) << stored;
    }
    // crypt(3) reads "$6$" as an empty salt: a readable value that no password matches.
    expect_verify("{SHA512-CRYPT}$6$", "secret", false);
    // A value with a NUL octet inside (a database may hand out anything).
    const std::string with_nul("{SHA512-CRYPT}$6$PYhMS5dI.cxJ0ens$\0NHjsjICG", 41);
    EXPECT_EQ(verify_password(with_nul, "secret").error(), make_error_code(errc::auth_temporary_failure));
}

TEST(PasswordScheme, PasswordsCryptCannotTakeAreRefusedNotTruncated)
{
    // crypt(3) takes C strings: "a\0b" would be hashed as "a". Refused when hashing, and never
    // equal to anything when verifying.
    const std::string with_nul("a\0b", 3);
    EXPECT_EQ(hash_password(PasswordScheme::sha512_crypt, with_nul).error(),
              make_error_code(errc::syntax_error));
    EXPECT_EQ(hash_password(PasswordScheme::blf_crypt, std::string(512, 'x')).error(),
              make_error_code(errc::syntax_error));
    const auto hash_of_a = hash_password(PasswordScheme::blf_crypt, "a").value();
    expect_verify(hash_of_a, with_nul, false);
    expect_verify(doveadm_secret_hashes[3].second, std::string(100'000, 's'), false);
    // Other schemes take any octets.
    for (const auto scheme :
         {PasswordScheme::plain, PasswordScheme::cram_md5, PasswordScheme::scram_sha_256}) {
        const auto hash = hash_password(scheme, with_nul).value();
        expect_verify(hash, with_nul, true);
        expect_verify(hash, "a", false);
    }
}

std::string hmac_md5_hex(std::string_view key, std::string_view message)
{
    std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
    unsigned int length = 0;
    HMAC(EVP_md5(), key.data(), static_cast<int>(key.size()),
         reinterpret_cast<const unsigned char*>(message.data()), message.size(), digest.data(), &length);
    std::string hex;
    for (unsigned int i = 0; i < length; ++i) {
        static constexpr std::string_view digits = "0123456789abcdef";
        hex.push_back(digits[digest[i] >> 4U]);
        hex.push_back(digits[digest[i] & 0x0FU]);
    }
    return hex;
}

TEST(PasswordScheme, CramMd5DigestFromStoredContexts)
{
    // RFC 2195 §2's example exchange.
    constexpr std::string_view challenge = "<1896.697170952@postoffice.reston.mci.net>";
    const auto stored = hash_password(PasswordScheme::cram_md5, "tanstaaftanstaaf").value();
    EXPECT_EQ(cram_md5_digest(stored, challenge).value(), "b913a602c7eda7a495b4e6e7334d3890");
    EXPECT_EQ(cram_md5_digest("{PLAIN}tanstaaftanstaaf", challenge).value(),
              "b913a602c7eda7a495b4e6e7334d3890");

    // Equal to OpenSSL's HMAC-MD5 for keys around the 64-octet block and challenges that end
    // before, at and after MD5's padding boundaries.
    for (const std::size_t key_octets : {0U, 1U, 55U, 63U, 64U, 65U, 200U}) {
        const std::string key(key_octets, 'k');
        for (const std::size_t challenge_octets : {0U, 1U, 55U, 56U, 63U, 64U, 65U, 119U, 120U, 300U}) {
            const std::string message(challenge_octets, 'c');
            const auto from_contexts =
                cram_md5_digest(hash_password(PasswordScheme::cram_md5, key).value(), message);
            ASSERT_TRUE(from_contexts);
            EXPECT_EQ(*from_contexts, hmac_md5_hex(key, message)) << key_octets << "/" << challenge_octets;
            EXPECT_EQ(cram_md5_digest("{PLAIN}" + key, message).value(), *from_contexts);
        }
    }
    // doveadm's value for "secret" answers as the password itself would.
    EXPECT_EQ(cram_md5_digest(doveadm_secret_hashes[7].second, challenge).value(),
              hmac_md5_hex("secret", challenge));
}

TEST(PasswordScheme, CramMd5DigestNeedsContextsOrThePassword)
{
    // A one-way hash cannot answer CRAM-MD5: the login fails (as in Dovecot), nothing is wrong
    // with the database.
    EXPECT_EQ(cram_md5_digest(doveadm_secret_hashes[3].second, "<x@y>").error(),
              make_error_code(errc::auth_failed));
    EXPECT_EQ(cram_md5_digest(doveadm_secret_hashes[0].second, "<x@y>").error(),
              make_error_code(errc::auth_failed));
    for (const std::string_view broken : {"{CRAM-MD5}abc"sv, "{CRAM-MD5}"sv, "{NOPE}x"sv, "{PLAIN"sv}) {
        EXPECT_EQ(cram_md5_digest(broken, "<x@y>").error(), make_error_code(errc::auth_temporary_failure))
            << broken;
    }
}

} // namespace
} // namespace pigeon::auth

namespace pigeon::auth {
namespace {

// A damaged or hostile stored value must not make a verification start hundreds of threads
// (Argon2 lanes) or allocate gigabytes (a yescrypt cost): it is refused as unreadable instead.
TEST(PasswordSchemeCosts, HostileParametersAreRefusedNotRun)
{
    const auto lanes = verify_password("{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=512$Y75Sgj9w0TRdY5d6+/ZMXQ$"
                                       "Boa9uqTuJEZnhtpz+twiqUtkbIpNJuqSe38tXMYclm4",
                                       "secret");
    ASSERT_FALSE(lanes);
    EXPECT_EQ(lanes.error(), make_error_code(errc::auth_temporary_failure));
    const auto yescrypt = verify_password(
        "{CRYPT}$y$jJT$abcdefghijklmnopqrstuv$abcdefghijklmnopqrstuvwxyz0123456789ABCD", "secret");
    ASSERT_FALSE(yescrypt);
    EXPECT_EQ(yescrypt.error(), make_error_code(errc::auth_temporary_failure));
}

} // namespace
} // namespace pigeon::auth
