package rawevents

import (
	"fmt"
	"time"
)

// Date is a calendar day, without time or zone. The projection's days are
// UTC days: an event counts on the UTC date of its time.
type Date struct {
	Year  int
	Month time.Month
	Day   int
}

const dateLayout = "2006-01-02"

// DateOf is the date of t in t's location.
func DateOf(t time.Time) Date {
	y, m, d := t.Date()
	return Date{Year: y, Month: m, Day: d}
}

// ParseDate parses YYYY-MM-DD.
func ParseDate(s string) (Date, error) {
	t, err := time.Parse(dateLayout, s)
	if err != nil {
		return Date{}, fmt.Errorf("date %q: want YYYY-MM-DD", s)
	}
	return DateOf(t), nil
}

// String is YYYY-MM-DD.
func (d Date) String() string {
	return d.midnight().Format(dateLayout)
}

// AddDays returns the date n days later (earlier when n < 0).
func (d Date) AddDays(n int) Date {
	return DateOf(time.Date(d.Year, d.Month, d.Day+n, 0, 0, 0, 0, time.UTC))
}

// Before reports whether d is before o; After whether it is after.
func (d Date) Before(o Date) bool { return d.midnight().Before(o.midnight()) }
func (d Date) After(o Date) bool  { return d.midnight().After(o.midnight()) }

// DaysUntil is the number of days from d to o (negative when o is before d).
func (d Date) DaysUntil(o Date) int {
	return int(o.midnight().Sub(d.midnight()).Hours() / 24)
}

// MarshalText and UnmarshalText use YYYY-MM-DD.
func (d Date) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

func (d *Date) UnmarshalText(b []byte) error {
	p, err := ParseDate(string(b))
	if err != nil {
		return err
	}
	*d = p
	return nil
}

// Midnight is the start of the day in UTC.
func (d Date) Midnight() time.Time { return d.midnight() }

func (d Date) midnight() time.Time {
	return time.Date(d.Year, d.Month, d.Day, 0, 0, 0, 0, time.UTC)
}
