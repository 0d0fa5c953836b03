package testbed

import "strings"

// WithParams returns the URL u with query parameters appended, given as
// "key=value" strings already encoded. It works on URLs with or without a
// query, such as external servers' (TESTBED_DIRECT_URL) that have none.
func WithParams(u string, params ...string) string {
	if len(params) == 0 {
		return u
	}
	sep := "?"
	if strings.Contains(u, "?") {
		sep = "&"
	}
	return u + sep + strings.Join(params, "&")
}
