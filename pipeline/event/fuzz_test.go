package event_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/pipeline/event"
)

// edgeBodies are hostile bodies every event target starts from, among them
// the decimals of huge exponents that once took minutes to refuse
// (ParseDecimal now refuses them on their text).
var edgeBodies = []string{
	``, `null`, `{}`, `[]`, `[{}]`, `"x"`, `1e-400`,
	strings.Replace(usageExample, `"quantity":"125000"`, `"quantity":"1e-30000000"`, 1),
	strings.Replace(usageExample, `"quantity":"125000"`, `"quantity":9e99999999`, 1),
	"{\"specversion\":\"1.0\",\"id\":\"\xff\xfe\",\"source\":\"\xc3\x28\"}",
	strings.Repeat(`[`, 10000) + strings.Repeat(`]`, 10000),
	`{"data":` + strings.Repeat(`{"a":`, 5000) + `1` + strings.Repeat(`}`, 5000) + `}`,
	strings.Replace(usageExample, `"2026-11-01T10:00:00Z"`, `"0000-01-01T00:00:00Z"`, 1),
	strings.Replace(usageExample, `"2026-11-01T10:00:00Z"`, `"9999-12-31T23:59:59.999999999+14:00"`, 1),
	strings.Replace(revenueExample, `"version":1`, `"version":4294967296`, 1),
	strings.Replace(revenueExample, `"currency":"USD"`, `"currency":"usd"`, 1),
}

// requireProblems checks that a rejection is the documented error: a
// ValidationError naming at least one field and reason, or a batch over max.
func requireProblems(t *testing.T, err error) {
	t.Helper()
	var tooLarge *event.TooLargeError
	if errors.As(err, &tooLarge) {
		return
	}
	var v *event.ValidationError
	require.ErrorAs(t, err, &v)
	require.NotEmpty(t, v.Problems)
	for _, p := range v.Problems {
		require.NotEmpty(t, p.Field, "%v", err)
		require.NotEmpty(t, p.Reason, "%v", err)
	}
}

// requireCanonical checks that an accepted event passes Validate and that
// its canonical form parses back to the same canonical form.
func requireCanonical(t *testing.T, ev event.Event) {
	t.Helper()
	require.NoError(t, ev.Validate())
	b, err := ev.Marshal()
	require.NoError(t, err)
	again, err := event.Parse(b)
	require.NoError(t, err, "%s", b)
	b2, err := again.Marshal()
	require.NoError(t, err)
	require.Equal(t, string(b), string(b2))
}

// FuzzParse: the CloudEvents body of POST /api/events.
func FuzzParse(f *testing.F) {
	for _, b := range append([]string{usageExample, revenueExample}, edgeBodies...) {
		f.Add([]byte(b))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		ev, err := event.Parse(body)
		if err != nil {
			requireProblems(t, err)
			return
		}
		requireCanonical(t, ev)
	})
}

// FuzzParseBatch: the application/cloudevents-batch+json body.
func FuzzParseBatch(f *testing.F) {
	f.Add([]byte(`[`+usageExample+`,`+revenueExample+`]`), 0)
	f.Add([]byte(`[`+usageExample+`,`+revenueExample+`]`), 1)
	for _, b := range edgeBodies {
		f.Add([]byte(b), 2)
	}
	f.Fuzz(func(t *testing.T, body []byte, max int) {
		evs, err := event.ParseBatch(body, max)
		if err != nil {
			requireProblems(t, err)
			return
		}
		require.NotEmpty(t, evs)
		if max > 0 {
			require.LessOrEqual(t, len(evs), max)
		}
		for _, ev := range evs {
			requireCanonical(t, ev)
		}
	})
}

// FuzzDecimal: a decimal field (quantity, Decimal(38,9)) given as a JSON
// string or as a bare JSON number. An accepted value is exactly the text's
// number, has at most MaxScale decimals and fits the column.
func FuzzDecimal(f *testing.F) {
	for _, s := range []string{"125000", "12.50", "0.000000001", "0.0000000001", " 7 ", "-0", "+1", ".5", "5.",
		"1E+3", "1e-400", "1e-30000000", "9e99999999", "1e999999999999", "1e40", "123456789012345678901234567890.123456789", "NaN", "Infinity", "0x10", "1_000",
		"1,5", "١٢", "", "\xff", "1e", "e5", "--1", "1e-9", "9e28", "99999999999999999999999999999.999999999"} {
		f.Add(s)
	}
	limit := decimal.New(1, 38-event.MaxScale)
	f.Fuzz(func(t *testing.T, text string) {
		quoted, err := json.Marshal(text)
		require.NoError(t, err)
		forms := []string{string(quoted)}
		if t := strings.TrimSpace(text); json.Valid([]byte(t)) && !strings.HasPrefix(t, `"`) {
			forms = append(forms, text) // a bare JSON number, not a string or JSON that adds keys
		}
		for _, raw := range forms {
			body := strings.Replace(usageExample, `"quantity":"125000"`, `"quantity":`+raw, 1)
			ev, err := event.Parse([]byte(body))
			if err != nil {
				requireProblems(t, err)
				continue
			}
			q := *ev.Data.Quantity
			want, err := decimal.NewFromString(strings.TrimSpace(text))
			require.NoError(t, err, "accepted %q", text)
			require.True(t, q.Equal(want), "accepted %q as %s", text, q)
			require.True(t, q.Equal(q.Truncate(event.MaxScale)), "accepted %q with more than %d decimals", text, event.MaxScale)
			require.Negative(t, q.Abs().Cmp(limit), "accepted %q beyond Decimal(38,9)", text)
			requireCanonical(t, ev)
		}
	})
}
