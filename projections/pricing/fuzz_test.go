package pricing

import (
	"errors"
	"os"
	"testing"

	"github.com/stretchr/testify/require"
)

// FuzzParseFX: an FX rate table (CSV) from an operator or PUT
// /api/fx-rates. A table rejected is a *ValidationError; a table accepted
// rebuilds from its own rates and answers for every rate it lists.
func FuzzParseFX(f *testing.F) {
	b, err := os.ReadFile("testdata/fx.csv")
	require.NoError(f, err)
	f.Add(b, "USD")
	f.Add([]byte(fxTable), "EUR")
	for _, s := range []string{"", "date,base,quote,rate\n", "date,base,quote,rate\n2026-01-01,EUR,USD,1e-400\n",
		"date,base,quote,rate\n2026-01-01,EUR,USD,0\n", "date,base,quote,rate\n2026-01-01,EUR,USD,-1\n",
		"date,base,quote,rate\n2026-01-01,EUR,EUR,2\n", "date,base,quote,rate\n\"2026-01-01,EUR,USD,1\n",
		"date,base,quote,rate\n2026-02-30,EUR,USD,1.1\n", "date,base,quote,rate\n2026-01-01,EUR,USD,1.1,extra\n",
		"\xff\xfe,base,quote,rate\n"} {
		f.Add([]byte(s), "USD")
	}
	f.Fuzz(func(t *testing.T, data []byte, reporting string) {
		fx, err := ParseFX("fx.csv", data, reporting)
		if err != nil {
			var v *ValidationError
			require.True(t, errors.As(err, &v), "%T %v", err, err)
			require.NotEmpty(t, v.Problems)
			return
		}
		again, err := NewFX(fx.Reporting(), fx.Rates())
		require.NoError(t, err)
		require.Equal(t, fx.Rates(), again.Rates())
		for _, r := range fx.Rates() {
			_, err := fx.Rate(r.Base, r.Quote, r.Day)
			require.NoError(t, err, "%+v", r)
		}
	})
}

// FuzzParseCards: a rate card file (YAML). A file rejected is a
// *ValidationError; a file accepted parses the same way twice.
func FuzzParseCards(f *testing.F) {
	for _, p := range []string{"cards/llm-default.yaml", "testdata/user.yaml", "testdata/invalid.yaml"} {
		b, err := os.ReadFile(p)
		require.NoError(f, err)
		f.Add(b)
	}
	for _, s := range []string{"", "cards: []\n", "cards: [{}]\n", "cards: &a [*a]\n", "\xff\xfe",
		"cards:\n- provider: x\n  currency: USD\n  per: 1e400\n  models: [{model: m, prices: {input: 1e-400}}]\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cards, err := Parse("card.yaml", data)
		if err != nil {
			var v *ValidationError
			require.True(t, errors.As(err, &v), "%T %v", err, err)
			require.NotEmpty(t, v.Problems)
			return
		}
		again, err := Parse("card.yaml", data)
		require.NoError(t, err)
		require.Equal(t, cards, again)
	})
}
