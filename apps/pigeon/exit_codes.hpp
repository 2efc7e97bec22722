// The exit codes every `pigeon` sub-command shares, so scripts can tell a "no" from a mistake and
// from a failure worth retrying. 75 is sysexits.h's EX_TEMPFAIL, which MTAs and cron jobs already
// read as "try again later".
#pragma once

namespace pigeon::cli {

constexpr int exit_success = 0;
constexpr int exit_mismatch = 1;   // the answer is no (a password that does not match, ...)
constexpr int exit_usage = 2;      // the command line or its input is wrong; retrying will not help
constexpr int exit_temporary = 75; // EX_TEMPFAIL: the system or its data failed; retry later

// sysexits.h codes that `pigeon deliver` uses besides EX_TEMPFAIL, as MTAs read a delivery
// command's status (dovecot-lda's choices: docs/operations.md).
constexpr int exit_sysexits_usage = 64; // EX_USAGE: the command line is wrong
constexpr int exit_no_user = 67;        // EX_NOUSER: no such recipient
constexpr int exit_no_permission = 77;  // EX_NOPERM: refused for good (over quota, too big)

} // namespace pigeon::cli
