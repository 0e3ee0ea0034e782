package insights

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// DeliveryLog remembers which flags each alert channel was sent, so that a
// flag is delivered once per channel across runs (the projection layer: a
// ClickHouse table next to insight_flags). Safe for concurrent use.
type DeliveryLog interface {
	// Delivered returns, for each of ids already delivered to channel, the
	// highest severity it was delivered at; ids never delivered are absent.
	Delivered(ctx context.Context, channel string, ids []string) (map[string]Severity, error)
	// MarkDelivered records that flag id was delivered to channel at sev.
	MarkDelivered(ctx context.Context, channel, id string, sev Severity, at time.Time) error
}

// Headers of a webhook delivery.
const (
	HeaderSignature = "X-UVR-Signature" // "sha256=" + hex HMAC-SHA256 of timestamp + "." + body
	HeaderTimestamp = "X-UVR-Timestamp" // Unix seconds when the attempt was signed
	HeaderEvent     = "X-UVR-Event"     // EventOpened or EventEscalated
	HeaderDelivery  = "X-UVR-Delivery"  // flag id + "." + severity: the same on every retry
)

// Webhook events.
const (
	EventOpened    = "insight.opened"
	EventEscalated = "insight.escalated"
)

// DefaultSignatureTolerance is how old a signed timestamp a receiver should
// accept (VerifySignature): older deliveries are replays.
const DefaultSignatureTolerance = 5 * time.Minute

// MinSecretLength is the shortest HMAC key accepted, in bytes.
const MinSecretLength = 16

// WebhookConfig is a generic webhook channel: a JSON POST signed with
// HMAC-SHA256 (see Sign).
type WebhookConfig struct {
	// Name identifies the channel in metrics and delivery bookkeeping:
	// 1–64 of a-z, 0-9, _ and -; unique among channels.
	Name string
	// URL receives the POST. Secret: it may carry a token; never logged.
	URL string
	// Secret is the HMAC-SHA256 key, at least MinSecretLength bytes.
	// Never logged.
	Secret string
	// MinSeverity of the flags sent; default warning.
	MinSeverity Severity
	// Escalations sends a flag again when its severity rises above what
	// was delivered.
	Escalations bool
}

// SlackConfig is a Slack-compatible incoming webhook ({"text", "blocks"}).
type SlackConfig struct {
	Name string // as WebhookConfig.Name
	// URL is the incoming-webhook URL; it is the credential. Never logged.
	URL         string
	MinSeverity Severity // default warning
	Escalations bool
}

func (c WebhookConfig) String() string {
	return fmt.Sprintf("webhook %s (min %s, url and secret redacted)", c.Name, orWarning(c.MinSeverity))
}

func orWarning(s Severity) Severity {
	if s == "" {
		return SeverityWarning
	}
	return s
}

// GoString keeps %#v from printing the URL and secret.
func (c WebhookConfig) GoString() string { return c.String() }

// LogValue keeps slog from printing the URL and secret.
func (c WebhookConfig) LogValue() slog.Value {
	return slog.GroupValue(slog.String("name", c.Name), slog.String("type", "webhook"), slog.String("min_severity", string(orWarning(c.MinSeverity))))
}

func (c SlackConfig) String() string {
	return fmt.Sprintf("slack %s (min %s, url redacted)", c.Name, orWarning(c.MinSeverity))
}

// GoString keeps %#v from printing the URL.
func (c SlackConfig) GoString() string { return c.String() }

// LogValue keeps slog from printing the URL.
func (c SlackConfig) LogValue() slog.Value {
	return slog.GroupValue(slog.String("name", c.Name), slog.String("type", "slack"), slog.String("min_severity", string(orWarning(c.MinSeverity))))
}

// AlerterConfig configures NewAlerter.
type AlerterConfig struct {
	Webhooks []WebhookConfig
	Slack    []SlackConfig
	// Log is the delivery bookkeeping; required when a channel is set.
	Log DeliveryLog
	// Client sends the requests; default: a 10 s timeout, no redirects.
	Client *http.Client
	// MaxAttempts per alert and run (default 5). A 5xx, a 429 or a network
	// error is retried after InitialBackoff (default 1 s), doubling up to
	// MaxBackoff (default 30 s), with jitter; a Retry-After header is
	// honoured up to MaxBackoff. Another status fails at once.
	MaxAttempts                int
	InitialBackoff, MaxBackoff time.Duration
	// LinkBase, when set, links each message to LinkBase + flag id.
	LinkBase string
	Metrics  *Metrics
	Logger   *slog.Logger
	Now      func() time.Time // default time.Now
}

// Alerter delivers new (and, per channel, escalated) open flags. It
// implements Notifier. Safe for concurrent use.
type Alerter struct {
	cfg      AlerterConfig
	channels []*channel
	log      *slog.Logger
}

var _ Notifier = (*Alerter)(nil)

type channel struct {
	name, typ   string // typ: "webhook" or "slack"
	url         string
	secret      []byte
	min         Severity
	escalations bool
}

var channelName = regexp.MustCompile(`^[a-z0-9_-]{1,64}$`)

// NewAlerter checks cfg (every problem at once) and returns an Alerter. Its
// errors never contain a URL or a secret.
func NewAlerter(cfg AlerterConfig) (*Alerter, error) {
	var errs []error
	a := &Alerter{}
	seen := map[string]bool{}
	add := func(typ, name, rawURL, secret string, minSev Severity, esc bool) {
		where := typ + " channel " + strconv.Quote(name)
		if !channelName.MatchString(name) {
			errs = append(errs, fmt.Errorf("%s: name must be 1-64 of a-z, 0-9, _ and -", where))
		} else if seen[name] {
			errs = append(errs, fmt.Errorf("%s: name used twice", where))
		}
		seen[name] = true
		if u, err := url.Parse(rawURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("%s: url must be an absolute http(s) URL", where))
		}
		if typ == "webhook" && len(secret) < MinSecretLength {
			errs = append(errs, fmt.Errorf("%s: secret must be at least %d bytes", where, MinSecretLength))
		}
		if minSev = orWarning(minSev); !minSev.Valid() {
			errs = append(errs, fmt.Errorf("%s: min severity must be info, warning or critical, got %q", where, minSev))
		}
		a.channels = append(a.channels, &channel{name: name, typ: typ, url: rawURL, secret: []byte(secret), min: minSev, escalations: esc})
	}
	for _, w := range cfg.Webhooks {
		add("webhook", w.Name, w.URL, w.Secret, w.MinSeverity, w.Escalations)
	}
	for _, s := range cfg.Slack {
		add("slack", s.Name, s.URL, "", s.MinSeverity, s.Escalations)
	}
	if len(a.channels) > 0 && cfg.Log == nil {
		errs = append(errs, errors.New("delivery log is required"))
	}
	if cfg.MaxAttempts < 0 || cfg.InitialBackoff < 0 || cfg.MaxBackoff < 0 {
		errs = append(errs, errors.New("max attempts and backoffs must not be negative"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("insights alerter: %w", err)
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{
			Timeout:       10 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	if cfg.MaxAttempts == 0 {
		cfg.MaxAttempts = 5
	}
	if cfg.InitialBackoff == 0 {
		cfg.InitialBackoff = time.Second
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = 30 * time.Second
	}
	cfg.MaxBackoff = max(cfg.MaxBackoff, cfg.InitialBackoff)
	if cfg.Metrics == nil {
		cfg.Metrics, _ = NewMetrics(nil) // unregistered: cannot fail
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	a.cfg, a.log = cfg, cfg.Logger.With("component", "insights_alerts")
	for _, ch := range a.channels {
		cfg.Metrics.channel(ch.name, ch.typ)
	}
	return a, nil
}

// DeliveryReport counts one Notify.
type DeliveryReport struct {
	Sent   int // alerts delivered (2xx)
	Failed int // alerts not delivered after every attempt
	// Deferred alerts were not tried: their channel was unavailable (an
	// alert had just failed on a 5xx, a 429 or a network error) and they
	// wait for the next run.
	Deferred int
}

// DeliveryError is an alert that could not be delivered. It names the
// channel, never its URL or secret.
type DeliveryError struct {
	Channel  string
	FlagID   string
	Status   int // the last HTTP status; 0 after a network error
	Attempts int
	Reason   string
}

func (e *DeliveryError) Error() string {
	return fmt.Sprintf("alert %s to %s: %s (after %d %s)", e.FlagID, e.Channel, e.Reason, e.Attempts, plural(e.Attempts, "attempt", "attempts"))
}

// Notify sends every open flag (acknowledged ones are known already) of
// at least a channel's minimum severity that the channel has not been sent,
// and, on channels with Escalations, flags whose severity rose since. A
// delivery is recorded in the log right after the receiver's 2xx; if that
// record fails, the next run sends the alert again with the same
// X-UVR-Delivery id, so receivers should treat it as idempotency key.
// Failures are joined into the error. After an alert fails on a 5xx, a 429
// or a network error, the channel's other alerts are deferred to the next
// run (a run never waits through every alert's retries); after another
// failure (a 4xx) Notify goes on with the next alert.
func (a *Alerter) Notify(ctx context.Context, flags []Flag) (DeliveryReport, error) {
	var rep DeliveryReport
	var errs []error
	for _, ch := range a.channels {
		var due []Flag
		var ids []string
		for _, f := range flags {
			if f.Status == StatusOpen && f.Severity.AtLeast(ch.min) {
				due = append(due, f)
				ids = append(ids, f.ID)
			}
		}
		if len(due) == 0 {
			continue
		}
		delivered, err := a.cfg.Log.Delivered(ctx, ch.name, ids)
		if err != nil {
			errs = append(errs, fmt.Errorf("read deliveries of %s: %w", ch.name, err))
			continue
		}
		down := false
		for _, f := range due {
			event := EventOpened
			if prev, ok := delivered[f.ID]; ok {
				if !ch.escalations || f.Severity.Rank() <= prev.Rank() {
					continue
				}
				event = EventEscalated
			}
			if err := ctx.Err(); err != nil {
				return rep, errors.Join(append(errs, err)...)
			}
			if down {
				rep.Deferred++
				continue
			}
			if err := a.deliver(ctx, ch, event, f); err != nil {
				rep.Failed++
				a.cfg.Metrics.failures.WithLabelValues(ch.name, ch.typ).Inc()
				errs = append(errs, err)
				var de *DeliveryError
				down = errors.As(err, &de) && retryable(de.Status)
				continue
			}
			rep.Sent++
			a.cfg.Metrics.deliveries.WithLabelValues(ch.name, ch.typ).Inc()
			if err := a.cfg.Log.MarkDelivered(ctx, ch.name, f.ID, f.Severity, a.cfg.Now()); err != nil {
				errs = append(errs, fmt.Errorf("record delivery of %s to %s: %w", f.ID, ch.name, err))
			}
		}
	}
	return rep, errors.Join(errs...)
}

// deliver sends one alert with retries.
func (a *Alerter) deliver(ctx context.Context, ch *channel, event string, f Flag) error {
	started := time.Now()
	defer func() { a.cfg.Metrics.deliverySecs.WithLabelValues(ch.typ).Observe(time.Since(started).Seconds()) }()
	body, err := a.body(ch, event, f)
	if err != nil {
		return &DeliveryError{Channel: ch.name, FlagID: f.ID, Reason: "encode: " + err.Error()}
	}
	for attempt := 1; ; attempt++ {
		status, retryAfter, reason := a.attempt(ctx, ch, event, f, body)
		if reason == "" {
			return nil
		}
		if !retryable(status) || attempt >= a.cfg.MaxAttempts || ctx.Err() != nil {
			return &DeliveryError{Channel: ch.name, FlagID: f.ID, Status: status, Attempts: attempt, Reason: reason}
		}
		wait := a.backoff(attempt, retryAfter)
		a.cfg.Metrics.retries.WithLabelValues(ch.name, ch.typ).Inc()
		a.log.Warn("retrying alert", "channel", ch.name, "flag_id", f.ID, "attempt", attempt, "status", status, "reason", reason, "wait", wait)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return &DeliveryError{Channel: ch.name, FlagID: f.ID, Status: status, Attempts: attempt, Reason: reason + "; " + ctx.Err().Error()}
		case <-t.C:
		}
	}
}

// retryable statuses: a network error (0), 429 and 5xx.
func retryable(status int) bool {
	return status == 0 || status == http.StatusTooManyRequests || status >= 500
}

// attempt makes one request; reason is "" on a 2xx. The reason never holds
// the URL or the secret.
func (a *Alerter) attempt(ctx context.Context, ch *channel, event string, f Flag, body []byte) (status int, retryAfter time.Duration, reason string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ch.url, bytes.NewReader(body))
	if err != nil {
		return 0, 0, "build request: " + redact(err, ch)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "uvr-insights/1")
	if ch.typ == "webhook" {
		ts := strconv.FormatInt(a.cfg.Now().Unix(), 10)
		req.Header.Set(HeaderEvent, event)
		req.Header.Set(HeaderDelivery, f.ID+"."+string(f.Severity))
		req.Header.Set(HeaderTimestamp, ts)
		req.Header.Set(HeaderSignature, Sign(ch.secret, ts, body))
	}
	resp, err := a.cfg.Client.Do(req)
	if err != nil {
		return 0, 0, redact(err, ch)
	}
	defer resp.Body.Close()
	detail, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return resp.StatusCode, 0, ""
	}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
		retryAfter = time.Duration(s) * time.Second
	}
	reason = "HTTP " + strconv.Itoa(resp.StatusCode)
	if d := strings.TrimSpace(strings.ToValidUTF8(string(detail), "")); d != "" {
		reason += ": " + strings.ReplaceAll(d, "\n", " ")
	}
	return resp.StatusCode, retryAfter, redactString(reason, ch)
}

// backoff is the wait before attempt+1: InitialBackoff·2^(attempt−1) capped at
// MaxBackoff, between half of it and all of it (jitter), or Retry-After.
func (a *Alerter) backoff(attempt int, retryAfter time.Duration) time.Duration {
	if retryAfter > 0 {
		return min(retryAfter, a.cfg.MaxBackoff)
	}
	d := a.cfg.InitialBackoff << min(attempt-1, 30)
	if d <= 0 || d > a.cfg.MaxBackoff {
		d = a.cfg.MaxBackoff
	}
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}

// redact turns a client error into text without the URL (url.Error prints
// it) or the secret.
func redact(err error, ch *channel) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return redactString(err.Error(), ch)
}

func redactString(s string, ch *channel) string {
	if ch.url != "" {
		s = strings.ReplaceAll(s, ch.url, "[redacted]")
		if u, err := url.Parse(ch.url); err == nil {
			if u.RawQuery != "" {
				s = strings.ReplaceAll(s, u.RawQuery, "[redacted]")
			}
			if u.Path != "" && u.Path != "/" {
				s = strings.ReplaceAll(s, u.Path, "[redacted]")
			}
		}
	}
	if len(ch.secret) > 0 {
		s = strings.ReplaceAll(s, string(ch.secret), "[redacted]")
	}
	return s
}

// Sign returns the X-UVR-Signature of a webhook body signed at timestamp (Unix
// seconds, the X-UVR-Timestamp header): "sha256=" and the hex HMAC-SHA256,
// keyed by secret, of timestamp + "." + body.
func Sign(secret []byte, timestamp string, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(timestamp))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// Errors of VerifySignature.
var (
	ErrBadSignature = errors.New("webhook signature does not match")
	ErrStale        = errors.New("webhook timestamp outside the tolerance (replay?)")
)

// VerifySignature checks a received webhook: the signature must be Sign of
// the raw body at the timestamp header (compared in constant time), and the
// timestamp within tolerance of now (0: DefaultSignatureTolerance), which
// stops a captured delivery from being replayed later.
func VerifySignature(secret []byte, timestamp, signature string, body []byte, now time.Time, tolerance time.Duration) error {
	if tolerance <= 0 {
		tolerance = DefaultSignatureTolerance
	}
	ts, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: timestamp %q is not Unix seconds", ErrStale, timestamp)
	}
	if d := now.Sub(time.Unix(ts, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("%w: signed %s ago", ErrStale, d.Round(time.Second))
	}
	if !hmac.Equal([]byte(Sign(secret, timestamp, body)), []byte(signature)) {
		return ErrBadSignature
	}
	return nil
}

// WebhookPayload is the JSON body of a webhook delivery.
type WebhookPayload struct {
	Event      string    `json:"event"`       // EventOpened or EventEscalated
	DeliveryID string    `json:"delivery_id"` // as the X-UVR-Delivery header
	SentAt     time.Time `json:"sent_at"`
	Flag       Flag      `json:"flag"`
	URL        string    `json:"url,omitempty"` // LinkBase + flag id, when configured
}

func (a *Alerter) link(f Flag) string {
	if a.cfg.LinkBase == "" {
		return ""
	}
	return a.cfg.LinkBase + f.ID
}

func (a *Alerter) body(ch *channel, event string, f Flag) ([]byte, error) {
	if ch.typ == "webhook" {
		return json.Marshal(WebhookPayload{
			Event: event, DeliveryID: f.ID + "." + string(f.Severity), SentAt: a.cfg.Now().UTC(), Flag: f, URL: a.link(f),
		})
	}
	return json.Marshal(slackMessage(event, f, a.link(f)))
}

// Slack Block Kit limits: a header's text, a section's text and a field.
const (
	slackHeaderMax  = 150
	slackSectionMax = 3000
	slackFieldMax   = 2000
)

var slackIcons = map[Severity]string{SeverityInfo: ":information_source:", SeverityWarning: ":warning:", SeverityCritical: ":red_circle:"}

// slackMessage is {"text": fallback, "blocks": [...]}: a header with severity
// and kind, the title and description, fields (customer, feature, window,
// evidence) and a context line with the flag id.
func slackMessage(event string, f Flag, link string) map[string]any {
	verb := ""
	if event == EventEscalated {
		verb = " (escalated)"
	}
	sev := string(f.Severity)
	if sev != "" {
		sev = strings.ToUpper(sev[:1]) + sev[1:]
	}
	header := fmt.Sprintf("%s %s: %s%s", slackIcons[f.Severity], sev, f.Kind.Label(), verb)
	fields := []map[string]any{}
	field := func(name, value string) {
		if value != "" {
			fields = append(fields, map[string]any{"type": "mrkdwn", "text": truncate("*"+name+"*\n"+slackEscape(value), slackFieldMax)})
		}
	}
	customer := f.CustomerName
	if customer == "" {
		customer = f.CustomerID
	} else if f.CustomerID != "" {
		customer += " (" + f.CustomerID + ")"
	}
	field("Customer", customer)
	field("Feature", f.Feature)
	field("Window", f.Window.String())
	field("Severity", string(f.Severity))
	footer := "uvr insight `" + f.ID + "` · first seen " + f.FirstSeen.UTC().Format(time.RFC3339)
	if link != "" {
		footer += " · <" + link + "|open in uvr>"
	}
	blocks := []map[string]any{
		{"type": "header", "text": map[string]any{"type": "plain_text", "text": truncate(header, slackHeaderMax), "emoji": true}},
		{"type": "section", "text": map[string]any{"type": "mrkdwn", "text": truncate("*"+slackEscape(f.Title)+"*\n"+slackEscape(f.Description), slackSectionMax)}},
	}
	if len(fields) > 0 {
		blocks = append(blocks, map[string]any{"type": "section", "fields": fields[:min(len(fields), 10)]})
	}
	blocks = append(blocks, map[string]any{"type": "context", "elements": []map[string]any{{"type": "mrkdwn", "text": footer}}})
	return map[string]any{
		// The fallback text is mrkdwn too (notifications, clients without
		// blocks): the title holds a customer's name, escaped like the rest.
		"text":   fmt.Sprintf("[%s] %s%s", f.Severity, slackEscape(f.Title), verb),
		"blocks": blocks,
	}
}

// slackEscape escapes the three characters Slack's mrkdwn reserves, so that
// a customer or feature name (text from outside) can neither mention
// (<!channel>, <@U123>) nor link (<https://…|label>) in a message.
func slackEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}
