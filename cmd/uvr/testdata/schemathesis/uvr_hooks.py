"""schemathesis hooks of TestAPIConformsToItsDocument (cmd/uvr/conformance_test.go)."""
