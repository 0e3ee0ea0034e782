// Package insights turns daily usage, cost and revenue into flags that say
// what to do: unprofitable customers and features, eroding margins, usage
// anomalies, upsell opportunities and churn risks.
//
// The package is storage-independent. It reads daily aggregates through a
// Source, evaluates the rules of a Config into Findings (pure: Evaluate),
// merges them into the existing Flags (pure: Reconcile) and persists them
// through a Store; the Evaluator runs those steps and hands open flags to the
// Alerter, which delivers each flag once per channel (signed webhook, Slack).
// The projection layer implements Source, Store and DeliveryLog on
// ClickHouse.
//
// Money is shopspring decimal throughout. Only the usage-anomaly statistics
// (median, MAD and robust z-score of usage quantities) use float64; they
// decide whether a day is anomalous, never an amount of money.
//
// Days are UTC calendar days. A run at time now evaluates the complete days
// before now's day: "the last 30 days" at 2026-11-27T06:00Z are 2026-10-28
// through 2026-11-26.
package insights

import (
	"encoding/json"
	"fmt"
	"time"
)

// Kind is the rule a flag comes from.
type Kind string

// Kinds, in the order rules are evaluated and listed.
const (
	KindUnprofitableCustomer Kind = "unprofitable_customer"
	KindUnprofitableFeature  Kind = "unprofitable_feature"
	KindMarginErosion        Kind = "margin_erosion"
	KindUsageAnomaly         Kind = "usage_anomaly"
	KindUpsellOpportunity    Kind = "upsell_opportunity"
	KindChurnRisk            Kind = "churn_risk"
)

// Kinds lists every kind in evaluation order.
var Kinds = []Kind{
	KindUnprofitableCustomer, KindUnprofitableFeature, KindMarginErosion,
	KindUsageAnomaly, KindUpsellOpportunity, KindChurnRisk,
}

// Valid reports whether k is one of Kinds.
func (k Kind) Valid() bool {
	for _, x := range Kinds {
		if k == x {
			return true
		}
	}
	return false
}

// Label is the kind in plain words ("Unprofitable customer").
func (k Kind) Label() string {
	switch k {
	case KindUnprofitableCustomer:
		return "Unprofitable customer"
	case KindUnprofitableFeature:
		return "Unprofitable feature"
	case KindMarginErosion:
		return "Margin erosion"
	case KindUsageAnomaly:
		return "Usage anomaly"
	case KindUpsellOpportunity:
		return "Upsell opportunity"
	case KindChurnRisk:
		return "Churn risk"
	}
	return string(k)
}

// Severity ranks flags; alert channels subscribe from a minimum severity.
type Severity string

// Severities, lowest first.
const (
	SeverityInfo     Severity = "info"
	SeverityWarning  Severity = "warning"
	SeverityCritical Severity = "critical"
)

// Severities lists every severity, lowest first.
var Severities = []Severity{SeverityInfo, SeverityWarning, SeverityCritical}

// Rank orders severities: info 1, warning 2, critical 3; 0 for an unknown one.
func (s Severity) Rank() int {
	switch s {
	case SeverityInfo:
		return 1
	case SeverityWarning:
		return 2
	case SeverityCritical:
		return 3
	}
	return 0
}

// Valid reports whether s is one of Severities.
func (s Severity) Valid() bool { return s.Rank() > 0 }

// AtLeast reports whether s is min or higher.
func (s Severity) AtLeast(min Severity) bool { return s.Rank() >= min.Rank() }

// ParseSeverity accepts "info", "warning" or "critical".
func ParseSeverity(s string) (Severity, error) {
	if v := Severity(s); v.Valid() {
		return v, nil
	}
	return "", fmt.Errorf("unknown severity %q (want info, warning or critical)", s)
}

// Status is where a flag is in its lifecycle.
type Status string

// Statuses. Open and acknowledged flags are "active": their condition held at
// the last run.
const (
	StatusOpen         Status = "open"
	StatusAcknowledged Status = "acknowledged"
	StatusResolved     Status = "resolved"
)

// Statuses lists every status.
var Statuses = []Status{StatusOpen, StatusAcknowledged, StatusResolved}

// Valid reports whether s is one of Statuses.
func (s Status) Valid() bool {
	return s == StatusOpen || s == StatusAcknowledged || s == StatusResolved
}

// Active reports whether the flag is open or acknowledged.
func (s Status) Active() bool { return s == StatusOpen || s == StatusAcknowledged }

// Window is a range of UTC days [Start, End): Start is the first day's
// midnight, End the midnight after the last day.
type Window struct {
	Start time.Time
	End   time.Time
}

// LastDays returns the n days before asOf's day: [day(asOf)-n, day(asOf)).
func LastDays(asOf time.Time, n int) Window {
	end := Day(asOf)
	return Window{Start: end.AddDate(0, 0, -n), End: end}
}

// Days is the number of days in w.
func (w Window) Days() int { return int(w.End.Sub(w.Start) / (24 * time.Hour)) }

// LastDay is the midnight of w's last day.
func (w Window) LastDay() time.Time { return w.End.AddDate(0, 0, -1) }

// Contains reports whether t falls on one of w's days.
func (w Window) Contains(t time.Time) bool { return !t.Before(w.Start) && t.Before(w.End) }

// String is "2026-10-28 to 2026-11-26" (both days included), or one date
// for a one-day window.
func (w Window) String() string {
	if w.Days() == 1 {
		return w.Start.Format(time.DateOnly)
	}
	return w.Start.Format(time.DateOnly) + " to " + w.LastDay().Format(time.DateOnly)
}

// MarshalJSON writes {"start":"2026-10-28","end":"2026-11-26"} with the last
// day included, as the API's start_date/end_date are.
func (w Window) MarshalJSON() ([]byte, error) {
	if w.Start.IsZero() && w.End.IsZero() {
		return []byte(`{"start":"","end":""}`), nil
	}
	return json.Marshal(struct {
		Start string `json:"start"`
		End   string `json:"end"`
	}{w.Start.Format(time.DateOnly), w.LastDay().Format(time.DateOnly)})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (w *Window) UnmarshalJSON(b []byte) error {
	var v struct {
		Start string `json:"start"`
		End   string `json:"end"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	if v.Start == "" && v.End == "" {
		*w = Window{}
		return nil
	}
	start, err := time.Parse(time.DateOnly, v.Start)
	if err != nil {
		return fmt.Errorf("window start: %w", err)
	}
	last, err := time.Parse(time.DateOnly, v.End)
	if err != nil {
		return fmt.Errorf("window end: %w", err)
	}
	*w = Window{Start: start, End: last.AddDate(0, 0, 1)}
	return nil
}

// Day is the UTC midnight of t's UTC day.
func Day(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
}
