package stripe

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"strings"
	"time"

	"github.com/shopspring/decimal"
)

// The JSON shapes below hold only the fields the mapping reads. They accept
// both API generations (before and after 2025-03-31.basil) and the forms
// Airbyte writes, which differ from the API in two ways: integers may come as
// floats with a zero fraction (1720622562.0) and some amounts as strings
// ("discount_amount": "0").

// num is an integer field (minor units, unix seconds). Set tells a present
// value from an absent or null one.
type num struct {
	V   int64
	Set bool
}

func (n *num) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if isNull(b) {
		*n = num{}
		return nil
	}
	text := string(b)
	if b[0] == '"' {
		if err := json.Unmarshal(b, &text); err != nil {
			return err
		}
	}
	d, err := decimal.NewFromString(strings.TrimSpace(text))
	if err != nil {
		return fmt.Errorf("%q is not a number", text)
	}
	if !d.IsInteger() {
		return fmt.Errorf("%s is not a whole number of minor units or seconds", text)
	}
	if d.Abs().GreaterThan(decimal.NewFromInt(math.MaxInt64 / 2)) {
		return fmt.Errorf("%s is out of range", text)
	}
	*n = num{V: d.IntPart(), Set: true}
	return nil
}

// ref is an expandable field: an id string, null, or the expanded object
// (kept in Obj so that a caller can read more of it, e.g. a refund's expanded
// charge's customer).
type ref struct {
	ID  string
	Obj json.RawMessage
}

func (r *ref) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	*r = ref{}
	switch {
	case isNull(b):
		return nil
	case b[0] == '"':
		return json.Unmarshal(b, &r.ID)
	case b[0] == '{':
		var obj struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(b, &obj); err != nil {
			return err
		}
		r.ID = obj.ID
		r.Obj = append(json.RawMessage(nil), b...)
		return nil
	}
	return fmt.Errorf("want an id string or an object, got %.20s", b)
}

// customerOf reads the customer of an expanded object held in r.Obj (a
// refund's or dispute's expanded charge). Empty when not expanded.
func (r ref) customerOf() ref {
	if r.Obj == nil {
		return ref{}
	}
	var o struct {
		Customer ref `json:"customer"`
	}
	_ = json.Unmarshal(r.Obj, &o)
	return o.Customer
}

func isNull(b []byte) bool { return len(b) == 0 || bytes.Equal(b, []byte("null")) }

// unix converts seconds to UTC time.
func unix(n num) time.Time { return time.Unix(n.V, 0).UTC() }

var currencyCode = regexp.MustCompile(`^[A-Z]{3}$`)

// currencyOf upper-cases Stripe's lowercase ISO 4217 code.
func currencyOf(c string) (string, error) {
	up := strings.ToUpper(strings.TrimSpace(c))
	if !currencyCode.MatchString(up) {
		return "", fmt.Errorf("currency %q is not an ISO 4217 code", c)
	}
	return up, nil
}

// The objects, as far as the mapping reads them.

type customerObj struct {
	ID       string                     `json:"id"`
	Object   string                     `json:"object"`
	Email    string                     `json:"email"`
	Name     string                     `json:"name"`
	Metadata map[string]json.RawMessage `json:"metadata"`
	Deleted  bool                       `json:"deleted"`
	Created  num                        `json:"created"`
	Updated  num                        `json:"updated"` // added by Airbyte
	Livemode *bool                      `json:"livemode"`
}

type chargeObj struct {
	ID             string          `json:"id"`
	Customer       ref             `json:"customer"`
	Currency       string          `json:"currency"`
	Status         string          `json:"status"`
	Captured       *bool           `json:"captured"`
	Amount         num             `json:"amount"`
	AmountCaptured num             `json:"amount_captured"`
	Created        num             `json:"created"`
	Invoice        json.RawMessage `json:"invoice"` // absent in API 2025-03-31.basil and later
	PaymentIntent  ref             `json:"payment_intent"`
	Livemode       *bool           `json:"livemode"`
}

type refundObj struct {
	ID       string `json:"id"`
	Amount   num    `json:"amount"`
	Currency string `json:"currency"`
	Status   string `json:"status"`
	Created  num    `json:"created"`
	Charge   ref    `json:"charge"`
	Customer ref    `json:"customer"` // newer API versions only
}

type creditNoteObj struct {
	ID                         string `json:"id"`
	Customer                   ref    `json:"customer"`
	Currency                   string `json:"currency"`
	Status                     string `json:"status"`
	Type                       string `json:"type"`
	Created                    num    `json:"created"`
	EffectiveAt                num    `json:"effective_at"`
	Invoice                    ref    `json:"invoice"`
	Total                      num    `json:"total"`
	TotalExcludingTax          num    `json:"total_excluding_tax"`
	Refund                     ref    `json:"refund"` // before 2025-03-31.basil
	CustomerBalanceTransaction ref    `json:"customer_balance_transaction"`
	OutOfBandAmount            num    `json:"out_of_band_amount"`
	Refunds                    *[]struct {
		AmountRefunded num `json:"amount_refunded"`
		Refund         ref `json:"refund"`
	} `json:"refunds"` // 2025-03-31.basil and later
	Livemode *bool `json:"livemode"`
}

type disputeObj struct {
	ID       string `json:"id"`
	Amount   num    `json:"amount"`
	Currency string `json:"currency"`
	Status   string `json:"status"`
	Created  num    `json:"created"`
	Charge   ref    `json:"charge"`
	Livemode *bool  `json:"livemode"`
}

type invoiceObj struct {
	ID                string `json:"id"`
	Customer          ref    `json:"customer"`
	CustomerEmail     string `json:"customer_email"`
	CustomerName      string `json:"customer_name"`
	Currency          string `json:"currency"`
	Status            string `json:"status"`
	Number            string `json:"number"`
	Created           num    `json:"created"`
	EffectiveAt       num    `json:"effective_at"`
	StatusTransitions *struct {
		PaidAt num `json:"paid_at"`
	} `json:"status_transitions"`
	Total             num `json:"total"`
	TotalExcludingTax num `json:"total_excluding_tax"`
	Tax               num `json:"tax"` // before 2025-03-31.basil
	Lines             *struct {
		Data    []json.RawMessage `json:"data"`
		HasMore bool              `json:"has_more"`
	} `json:"lines"`
	Subscription ref `json:"subscription"` // before 2025-03-31.basil
	Parent       *struct {
		SubscriptionDetails *struct {
			Subscription ref `json:"subscription"`
		} `json:"subscription_details"`
	} `json:"parent"`
	Livemode *bool `json:"livemode"`
}

type amountObj struct {
	Amount num `json:"amount"`
}

type lineObj struct {
	ID              string      `json:"id"`
	Amount          num         `json:"amount"`
	Currency        string      `json:"currency"`
	Quantity        num         `json:"quantity"`
	DiscountAmounts []amountObj `json:"discount_amounts"`
	// 2025-03-31.basil: discounts and applied credit grants, before tax.
	PretaxCreditAmounts *[]amountObj `json:"pretax_credit_amounts"`
	TaxAmounts          []struct {
		Amount    num  `json:"amount"`
		Inclusive bool `json:"inclusive"`
	} `json:"tax_amounts"` // before basil
	Taxes []struct {
		Amount      num    `json:"amount"`
		TaxBehavior string `json:"tax_behavior"`
	} `json:"taxes"` // basil
	Period *struct {
		Start num `json:"start"`
		End   num `json:"end"`
	} `json:"period"`
	// Before basil.
	Type         string `json:"type"`
	Proration    *bool  `json:"proration"`
	Plan         ref    `json:"plan"`
	Price        ref    `json:"price"`
	Subscription ref    `json:"subscription"`
	// Basil.
	Pricing *struct {
		PriceDetails *struct {
			Price   ref    `json:"price"`
			Product string `json:"product"`
		} `json:"price_details"`
	} `json:"pricing"`
	Parent *struct {
		Type                    string      `json:"type"`
		SubscriptionItemDetails *lineParent `json:"subscription_item_details"`
		InvoiceItemDetails      *lineParent `json:"invoice_item_details"`
	} `json:"parent"`
}

type lineParent struct {
	Proration    bool   `json:"proration"`
	Subscription string `json:"subscription"`
}

type subscriptionObj struct {
	ID                 string `json:"id"`
	Customer           ref    `json:"customer"`
	Status             string `json:"status"`
	Created            num    `json:"created"`
	StartDate          num    `json:"start_date"`
	CanceledAt         num    `json:"canceled_at"`
	EndedAt            num    `json:"ended_at"`
	Updated            num    `json:"updated"`              // added by Airbyte
	CurrentPeriodStart num    `json:"current_period_start"` // before basil
	CurrentPeriodEnd   num    `json:"current_period_end"`
	Plan               ref    `json:"plan"`
	Items              *struct {
		Data []subscriptionItemObj `json:"data"`
	} `json:"items"`
	Livemode *bool `json:"livemode"`
}

type subscriptionItemObj struct {
	ID                 string `json:"id"`
	Created            num    `json:"created"`
	Price              ref    `json:"price"`
	Plan               ref    `json:"plan"`
	CurrentPeriodStart num    `json:"current_period_start"` // basil
	CurrentPeriodEnd   num    `json:"current_period_end"`
}

// priceOf reads the fields of an expanded price or plan object.
func priceOf(r ref) (product, interval string) {
	if r.Obj == nil {
		return "", ""
	}
	var p struct {
		Product   ref    `json:"product"`
		Interval  string `json:"interval"` // plan
		Recurring *struct {
			Interval string `json:"interval"`
		} `json:"recurring"` // price
	}
	_ = json.Unmarshal(r.Obj, &p)
	interval = p.Interval
	if p.Recurring != nil && p.Recurring.Interval != "" {
		interval = p.Recurring.Interval
	}
	return p.Product.ID, interval
}
