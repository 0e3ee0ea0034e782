package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/deploy/servicetest"
)

// An API instance given another key than the one the users topic was sealed
// with refuses to start, naming the topic and the setting: it never starts
// with an empty user table or a signing secret of its own.
func TestUsersTopicSealedWithAnotherKeyFailsStart(t *testing.T) {
	newKey := func() string {
		k := make([]byte, 32)
		_, _ = rand.Read(k)
		return base64.StdEncoding.EncodeToString(k)
	}
	cfg := testConfig(t)
	cfg.EncryptionKey = newKey()
	m := startMain(t, cfg, Roles{API: true})
	login(t, m.URL(), testAdminEmail, testAdminPassword)

	other := cfg
	other.EncryptionKey = newKey()
	other.DataDir = t.TempDir()
	second := NewMain(other, Roles{API: true}, testLogger(t))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err := second.Open(ctx)
	require.Error(t, err)
	for _, want := range []string{"open the user store on " + cfg.topicNames().Users, "UVR_ENCRYPTION_KEY", "cannot open"} {
		assert.Contains(t, err.Error(), want)
	}
	assert.NotContains(t, err.Error(), other.EncryptionKey)
	assert.NotContains(t, err.Error(), cfg.EncryptionKey)

	// The right key starts.
	cfg.DataDir = t.TempDir()
	third := startMain(t, cfg, Roles{API: true})
	login(t, third.URL(), testAdminEmail, testAdminPassword)
}

// With Vault, the API seals the users topic with its transit key; an
// instance given another transit key refuses to start, naming the setting.
func TestUsersTopicSealedWithVaultTransit(t *testing.T) {
	cfg := testConfig(t)
	cfg.VaultAddr, cfg.VaultToken = servicetest.Vault(t)
	cfg.VaultPrefix = "uvr-test-" + servicetest.Suffix() + "/services"
	cfg.VaultTransitKey = "uvr-test-users-" + servicetest.Suffix()
	m := startMain(t, cfg, Roles{API: true})
	login(t, m.URL(), testAdminEmail, testAdminPassword)

	other := cfg
	other.VaultTransitKey = "uvr-test-other-" + servicetest.Suffix()
	second := NewMain(other, Roles{API: true}, testLogger(t))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err := second.Open(ctx)
	require.Error(t, err)
	for _, want := range []string{"open the user store on " + cfg.topicNames().Users, "UVR_VAULT_TRANSIT_KEY", other.VaultTransitKey} {
		assert.Contains(t, err.Error(), want)
	}
	assert.NotContains(t, err.Error(), cfg.VaultToken)
}
