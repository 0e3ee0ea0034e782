package source_test

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/uvrhq/uvr/connectors/source"
)

func TestFromMinor(t *testing.T) {
	tests := []struct {
		amount   int64
		currency string
		want     string
	}{
		{4900, "usd", "49"},
		{-397824, "USD", "-3978.24"},
		{1, "eur", "0.01"},
		{500, "JPY", "500"},
		{1234, "kwd", "1.234"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, source.FromMinor(tt.amount, tt.currency).String(), "%d %s", tt.amount, tt.currency)
	}
}
