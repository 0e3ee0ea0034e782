package syncer

import "regexp"

// Redacted replaces a secret in a run's error and log lines.
const Redacted = "[REDACTED]"

// secretPatterns catch credentials that a source's error may still carry
// although source.HTTP already redacts the values it was given: a key in a
// URL's userinfo or query, an Authorization header, "api_key: …" pairs, and
// the shapes of common vendor keys. This is defence in depth: a run's error
// is stored in ClickHouse and served by the API, so it must never hold one.
var secretPatterns = []struct {
	re   *regexp.Regexp
	repl string
}{
	// scheme://user:password@host
	{regexp.MustCompile(`(://)[^/\s:@]+:[^/\s@]+@`), "${1}" + Redacted + "@"},
	// Authorization: Bearer x / Basic x / Token x / x
	{regexp.MustCompile(`(?i)(authorization["']?\s*[:=]\s*["']?(?:bearer\s+|basic\s+|token\s+)?)[^\s"',;}]{4,}`), "${1}" + Redacted},
	// a bearer token quoted anywhere else
	{regexp.MustCompile(`(?i)\b(bearer\s+)[A-Za-z0-9._~+/=:-]{6,}`), "${1}" + Redacted},
	// key=value, "key": "value", key: value for credential-looking keys
	{regexp.MustCompile(`(?i)\b([a-z_-]*(?:api[_-]?key|apikey|app[_-]?key|secret|password|passwd|token|private[_-]?key|access[_-]?key[_-]?id|signature|sig)[a-z_-]*)(["']?\s*[:=]\s*["']?)([^\s"'&,;}]+)`), "${1}${2}" + Redacted},
	// Vendor key shapes: OpenAI/Anthropic sk-…, Stripe sk_/rk_/whsec_, AWS access key ids.
	{regexp.MustCompile(`\b(?:sk-[A-Za-z0-9_-]{8,}|(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{8,}|whsec_[A-Za-z0-9]{8,}|(?:AKIA|ASIA)[0-9A-Z]{16})\b`), Redacted},
}

// redact removes credential-looking substrings from s.
func redact(s string) string {
	for _, p := range secretPatterns {
		s = p.re.ReplaceAllString(s, p.repl)
	}
	return s
}
