package pricing

import (
	"bytes"
	"cmp"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/shopspring/decimal"

	"github.com/uvrhq/uvr/pipeline/event"
)

// ErrNoRate is matched (errors.Is) by FX errors when no rate of a pair is
// known on or before the day.
var ErrNoRate = errors.New("no FX rate")

// FXRate says that on Day one unit of Base was worth Rate units of Quote.
type FXRate struct {
	Day   time.Time // 00:00 UTC
	Base  string
	Quote string
	Rate  decimal.Decimal
}

// FX is a daily FX table, read-only and safe for concurrent use.
//
// Rate(from, to, day) uses, in this order,
//  1. a quote of the pair itself in either direction (to/from is inverted),
//     the latest one on or before the day;
//  2. the cross rate through the reporting currency: from→reporting ×
//     reporting→to, each leg found as in 1.
//
// There is no other path search: a table gives every currency against the
// reporting currency, or the pair itself.
type FX struct {
	reporting string
	// pairs holds each direction's quotes sorted by day.
	pairs map[[2]string][]FXRate
}

// NewFX builds a table. It fails, naming each problem, on an invalid code,
// a non-positive rate, a rate with more than 9 decimals, a pair quoted twice
// on one day, or a pair quoted in both directions on one day.
func NewFX(reporting string, rates []FXRate) (*FX, error) {
	v := validator{file: "(fx)"}
	f := v.fx(reporting, rates, nil)
	if len(v.problems) > 0 {
		return nil, &ValidationError{Problems: v.problems}
	}
	return f, nil
}

// LoadFX reads a CSV FX table (see ParseFX).
func LoadFX(path, reporting string) (*FX, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read FX table: %w", err)
	}
	return ParseFX(filepath.Base(path), b, reporting)
}

// ParseFX reads a CSV FX table with the header date,base,quote,rate (in any
// column order) and one rate per line, e.g.
//
//	date,base,quote,rate
//	2025-06-02,EUR,USD,1.1418
//
// meaning 1 EUR = 1.1418 USD on 2025-06-02. Lines starting with # are
// comments. The rate is decimal text, read exactly. Errors name the file,
// the line and the field.
func ParseFX(name string, data []byte, reporting string) (*FX, error) {
	v := validator{file: name}
	r := csv.NewReader(bytes.NewReader(data))
	r.Comment = '#'
	r.TrimLeadingSpace = true
	header, err := r.Read()
	if err != nil {
		v.add("header", "", "want the header date,base,quote,rate: %v", err)
		return nil, &ValidationError{Problems: v.problems}
	}
	col := map[string]int{}
	for i, h := range header {
		col[strings.ToLower(strings.TrimSpace(h))] = i
	}
	for _, want := range []string{"date", "base", "quote", "rate"} {
		if _, ok := col[want]; !ok {
			v.add("header", want, "missing column (want date,base,quote,rate)")
		}
	}
	if len(v.problems) > 0 {
		return nil, &ValidationError{Problems: v.problems}
	}
	var rates []FXRate
	var lines []string
	for {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				v.add(fmt.Sprintf("line %d", pe.Line), "", "%v", pe.Err)
			} else {
				v.add("", "", "%v", err)
			}
			if errors.Is(err, csv.ErrFieldCount) {
				continue
			}
			break
		}
		line, _ := r.FieldPos(0)
		entry := fmt.Sprintf("line %d", line)
		get := func(k string) string { return strings.TrimSpace(rec[col[k]]) }
		fr := FXRate{Base: get("base"), Quote: get("quote")}
		day, ok := parseDay(get("date"))
		if !ok {
			v.add(entry, "date", "must be YYYY-MM-DD, got %q", get("date"))
		}
		fr.Day = day
		d, err := event.ParseDecimal(get("rate"), event.MoneyDigits, MaxScale)
		if err != nil {
			v.add(entry, "rate", "%v", err)
			continue
		}
		fr.Rate = d
		rates = append(rates, fr)
		lines = append(lines, entry)
	}
	f := v.fx(reporting, rates, lines)
	if len(v.problems) > 0 {
		return nil, &ValidationError{Problems: v.problems}
	}
	return f, nil
}

func (v *validator) fx(reporting string, rates []FXRate, entries []string) *FX {
	if !currencyPattern.MatchString(reporting) {
		v.add("", "reporting currency", "must be an ISO 4217 code such as USD, got %q", reporting)
	}
	f := &FX{reporting: reporting, pairs: map[[2]string][]FXRate{}}
	seen := map[string]string{}
	for i, r := range rates {
		entry := fmt.Sprintf("rates[%d]", i)
		if entries != nil {
			entry = entries[i]
		}
		ok := true
		for _, c := range []struct{ field, code string }{{"base", r.Base}, {"quote", r.Quote}} {
			if !currencyPattern.MatchString(c.code) {
				v.add(entry, c.field, "must be an ISO 4217 code such as USD, got %q", c.code)
				ok = false
			}
		}
		if ok && r.Base == r.Quote {
			v.add(entry, "quote", "equals base (%s)", r.Base)
			ok = false
		}
		if !r.Rate.IsPositive() {
			v.add(entry, "rate", "must be positive, got %s", r.Rate)
			ok = false
		} else if !r.Rate.Equal(r.Rate.Truncate(MaxScale)) {
			v.add(entry, "rate", "has more than %d decimal places: %s", MaxScale, r.Rate)
			ok = false
		}
		if r.Day.IsZero() {
			ok = false // reported by the parser, or a missing day from NewFX
			if entries == nil {
				v.add(entry, "date", "is required")
			}
		}
		if !ok {
			continue
		}
		r.Day = Day(r.Day)
		day := r.Day.Format(dateLayout)
		k := r.Base + "/" + r.Quote + "@" + day
		if prev, dup := seen[k]; dup {
			v.add(entry, "rate", "%s/%s is already quoted on %s (%s)", r.Base, r.Quote, day, prev)
			continue
		}
		if prev, dup := seen[r.Quote+"/"+r.Base+"@"+day]; dup {
			v.add(entry, "rate", "%s/%s is already quoted the other way on %s (%s); give one direction per day", r.Base, r.Quote, day, prev)
			continue
		}
		seen[k] = entry
		pk := [2]string{r.Base, r.Quote}
		f.pairs[pk] = append(f.pairs[pk], r)
	}
	for k, rs := range f.pairs {
		slices.SortFunc(rs, func(a, b FXRate) int { return a.Day.Compare(b.Day) })
		f.pairs[k] = rs
	}
	return f
}

// Reporting is the table's reporting currency, the pivot of cross rates.
func (f *FX) Reporting() string { return f.reporting }

// ratio is an exact rate num/den.
type ratio struct{ num, den decimal.Decimal }

// latest returns the last quote of base/quote on or before day.
func (f *FX) latest(base, quote string, day time.Time) (FXRate, bool) {
	rs := f.pairs[[2]string{base, quote}]
	i, found := slices.BinarySearchFunc(rs, day, func(r FXRate, d time.Time) int { return r.Day.Compare(d) })
	if found {
		return rs[i], true
	}
	if i == 0 {
		return FXRate{}, false
	}
	return rs[i-1], true
}

// leg finds from→to from a quote of the pair in either direction, taking
// the more recent of the two.
func (f *FX) leg(from, to string, day time.Time) (ratio, bool) {
	direct, dOK := f.latest(from, to, day)
	inverse, iOK := f.latest(to, from, day)
	switch {
	case dOK && (!iOK || !inverse.Day.After(direct.Day)):
		return ratio{direct.Rate, one}, true
	case iOK:
		return ratio{one, inverse.Rate}, true
	}
	return ratio{}, false
}

func (f *FX) ratio(from, to string, day time.Time) (ratio, error) {
	day = Day(day)
	if from == to {
		return ratio{one, one}, nil
	}
	if r, ok := f.leg(from, to, day); ok {
		return r, nil
	}
	d := day.Format(dateLayout)
	if from == f.reporting || to == f.reporting {
		return ratio{}, fmt.Errorf("%s/%s on or before %s: %w", from, to, d, ErrNoRate)
	}
	a, ok := f.leg(from, f.reporting, day)
	if !ok {
		return ratio{}, fmt.Errorf("%s/%s on or before %s: neither the pair nor %s/%s is quoted: %w", from, to, d, from, f.reporting, ErrNoRate)
	}
	b, ok := f.leg(f.reporting, to, day)
	if !ok {
		return ratio{}, fmt.Errorf("%s/%s on or before %s: neither the pair nor %s/%s is quoted: %w", from, to, d, f.reporting, to, ErrNoRate)
	}
	return ratio{a.num.Mul(b.num), a.den.Mul(b.den)}, nil
}

// Rate returns how many units of to one unit of from was worth on the UTC
// day of day, rounded half to even to 9 decimal places (for display and
// storage; Convert uses the exact rate). The error wraps ErrNoRate and names
// the pair and the day when no rate is known on or before the day.
func (f *FX) Rate(from, to string, day time.Time) (decimal.Decimal, error) {
	r, err := f.ratio(from, to, day)
	if err != nil {
		return decimal.Decimal{}, err
	}
	return divRound(r.num, r.den, MaxScale), nil
}

// Convert converts amount from one currency to another at the rate of the
// UTC day of day: amount × the exact rate (inverse and cross rates kept as
// fractions), rounded once, half to even, to 9 decimal places.
func (f *FX) Convert(amount decimal.Decimal, from, to string, day time.Time) (decimal.Decimal, error) {
	r, err := f.ratio(from, to, day)
	if err != nil {
		return decimal.Decimal{}, fmt.Errorf("convert %s to %s: %w", from, to, err)
	}
	return divRound(amount.Mul(r.num), r.den, MaxScale), nil
}

// Rates returns every quote of the table, by day, base and quote.
func (f *FX) Rates() []FXRate {
	var out []FXRate
	for _, rs := range f.pairs {
		out = append(out, rs...)
	}
	slices.SortFunc(out, func(a, b FXRate) int {
		return cmp.Or(a.Day.Compare(b.Day), strings.Compare(a.Base, b.Base), strings.Compare(a.Quote, b.Quote))
	})
	return out
}
