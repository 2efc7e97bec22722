// The exit codes every `pigeon` sub-command shares, so scripts can tell a "no" from a mistake and
// from a failure worth retrying. 75 is sysexits.h's EX_TEMPFAIL, which MTAs and cron jobs already
// read as "try again later".
#pragma once

namespace pigeon::cli {

constexpr int exit_success = 0;
constexpr int exit_mismatch = 1;   // the answer is no (a password that does not match, ...)
constexpr int exit_usage = 2;      // the command line or its input is wrong; retrying will not help
constexpr int exit_temporary = 75; // EX_TEMPFAIL: the system or its data failed; retry later

} // namespace pigeon::cli
