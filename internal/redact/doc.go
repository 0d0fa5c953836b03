// Package redact keeps passwords out of supapool's errors, logs and
// formatted values. It is the module's one place that knows where a
// connection string keeps its secrets, so every package masks them the same
// way:
//
//   - [ConnString] masks the passwords of a connection string, URL or
//     keyword/value, for logs;
//   - [Value] echoes a configuration value in an error only when it cannot
//     hold a secret, and describes it otherwise;
//   - [Text] and [Wrap] mask known secrets, and any credentials that look
//     like them, in a message written by someone else (pgx, net/url, a YAML
//     parser);
//   - [URLError] keeps the reason of a net/url error without the text it
//     quotes, and [Unencoded] tells when a URL's password needs
//     percent-encoding, which is the usual reason a URL holding a password
//     does not parse.
//
// Redaction of malformed input is necessarily best effort: where the
// boundaries of a password cannot be known, more is masked rather than less.
package redact
