package api

import (
	"encoding/json"
	"testing"

	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestNumberIsExactJSON(t *testing.T) {
	tests := []struct{ in, want string }{
		{"0.1", "0.1"},
		{"49.00", "49"},
		{"-3978.24", "-3978.24"},
		{"12345678901234567890.123456789", "12345678901234567890.123456789"},
		{"0", "0"},
	}
	for _, tt := range tests {
		d := decimal.RequireFromString(tt.in)
		b, err := json.Marshal(struct {
			N  Number  `json:"n"`
			P  *Number `json:"p"`
			NP *Number `json:"np"`
		}{N: num(d), P: optNum(&d)})
		require.NoError(t, err)
		assert.JSONEq(t, `{"n":`+tt.want+`,"p":`+tt.want+`,"np":null}`, string(b))
		assert.Contains(t, string(b), `"n":`+tt.want+`,`, "the digits are written as they are, not via float64")
	}
	// Sums that floats get wrong stay exact.
	sum := decimal.RequireFromString("0.1").Add(decimal.RequireFromString("0.2"))
	b, err := json.Marshal(num(sum))
	require.NoError(t, err)
	assert.Equal(t, "0.3", string(b))
}
