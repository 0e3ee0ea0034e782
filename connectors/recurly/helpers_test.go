package recurly

import (
	"encoding/csv"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/connectors/source/sourcetest"
)

// seedRows reads one Fivetran seed table as maps column → value.
func seedRows(t testing.TB, table string) []map[string]string {
	t.Helper()
	f, err := os.Open(sourcetest.Samples(t, "recurly-fivetran-seeds", table+".csv"))
	require.NoError(t, err)
	defer f.Close()
	all, err := csv.NewReader(f).ReadAll()
	require.NoError(t, err)
	var out []map[string]string
	for _, row := range all[1:] {
		m := map[string]string{}
		for i, col := range all[0] {
			m[col] = row[i]
		}
		out = append(out, m)
	}
	return out
}

// rfc3339 turns a seed time ("2015-02-11 08:19:59", Recurly's UTC) into the
// API's RFC 3339 form; empty stays absent.
func rfc3339(s string) any {
	if s == "" {
		return nil
	}
	return strings.Replace(s, " ", "T", 1) + "Z"
}

func num(s string) any {
	if s == "" {
		return nil
	}
	return json.Number(s)
}

func str(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// v3Transaction builds the v3 Transaction object of a transaction_data row
// (see testdata/README.md).
func v3Transaction(r map[string]string) map[string]any {
	m := map[string]any{
		"id": r["id"], "object": "transaction", "uuid": str(r["uuid"]), "type": r["type"], "origin": str(r["origin"]),
		"status": r["status"], "success": r["success"] == "true", "refunded": r["refunded"] == "true",
		"currency": r["currency"], "amount": num(r["amount"]),
		"original_transaction_id": str(r["original_transaction_id"]),
		"collection_method":       str(r["collection_method"]),
		"created_at":              rfc3339(r["created_at"]), "collected_at": rfc3339(r["collected_at"]),
		"voided_at": rfc3339(r["voided_at"]),
		"account":   map[string]any{"id": r["account_id"], "object": "account"},
	}
	if r["invoice_id"] != "" {
		m["invoice"] = map[string]any{"id": r["invoice_id"], "object": "invoice"}
	}
	return m
}

func v3Account(r map[string]string) map[string]any {
	return map[string]any{
		"id": r["id"], "object": "account", "code": r["code"], "state": r["state"], "email": str(r["email"]),
		"first_name": str(r["account_first_name"]), "last_name": str(r["account_last_name"]), "company": str(r["company"]),
		"created_at": rfc3339(r["created_at"]), "updated_at": rfc3339(r["updated_at"]), "deleted_at": rfc3339(r["deleted_at"]),
	}
}

func v3Subscription(r map[string]string) map[string]any {
	return map[string]any{
		"id": r["id"], "object": "subscription", "uuid": r["uuid"], "state": r["state"], "currency": r["currency"],
		"account":      map[string]any{"id": r["account_id"], "object": "account"},
		"plan":         map[string]any{"id": r["plan_id"], "object": "plan"},
		"activated_at": rfc3339(r["activated_at"]), "canceled_at": rfc3339(r["canceled_at"]),
		"expires_at": rfc3339(r["expires_at"]), "created_at": rfc3339(r["created_at"]), "updated_at": rfc3339(r["updated_at"]),
		"unit_amount": num(r["unit_amount"]), "quantity": num(r["quantity"]),
	}
}
