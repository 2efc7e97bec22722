// SCRAM with RFC 5929 "tls-server-end-point" channel binding. GNU SASL 2.2 binds -PLUS exchanges
// to "tls-unique" and "tls-exporter" only, and its SCRAM cannot be told another binding type (the
// type is inside the client's proof), so this file frames the SCRAM messages itself (RFC 5802 §5,
// §7) for that one binding. The cryptography is not ours: the key derivation is GNU SASL's
// gsasl_scram_secrets_from_password(), SASLprep is gsasl_saslprep(), HMAC, hashing and
// randomness are OpenSSL's.
//
// scram.cpp hands an exchange to these classes when the client's gs2 header names
// "tls-server-end-point" (server) or when only that binding is available (client). Tests also
// run them with no channel binding ("n") against GNU SASL's own SCRAM in both directions, which
// checks the framing and the proofs against an independent implementation.
#pragma once

#include "sasl/mechanism.hpp"

#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace pigeon::sasl {

inline constexpr std::string_view server_end_point_binding = "tls-server-end-point";

// The user name of a SCRAM client-first message (RFC 5802 §5.1 saslname, "=2C" and "=3D"
// decoded), checked as a user name: 1-255 octets of UTF-8 without controls. Nothing otherwise.
[[nodiscard]] std::optional<std::string> scram_user_from_client_first(std::string_view message);

// The RFC 5929 §4.1 data for a DER certificate: its hash with the hash function of its signature
// algorithm, SHA-256 where that is MD5 or SHA-1. Empty when the algorithm names no single hash
// (Ed25519, Ed448): there is no tls-server-end-point for such a certificate.
[[nodiscard]] std::string tls_server_end_point(std::string_view certificate_der);

// `mechanism` is a canonical SCRAM name. With `binding_data` empty the exchange uses no channel
// binding ("n" from the client; the server also accepts "y"), for the tests; otherwise
// "p=tls-server-end-point" with that data. The server takes the client-first message it was
// given and the user's stored secret (nothing for an unknown user: the exchange then fails at
// the proof, as GNU SASL's does).
[[nodiscard]] std::unique_ptr<ServerMechanism> make_endpoint_scram_server(std::string_view mechanism,
                                                                          std::string binding_data);
[[nodiscard]] std::unique_ptr<ClientMechanism>
make_endpoint_scram_client(std::string_view mechanism, std::string authzid, std::string authcid,
                           SecretString password, std::string binding_data);

} // namespace pigeon::sasl
