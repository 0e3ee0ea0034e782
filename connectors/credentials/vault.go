package credentials

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path"
	"strings"
	"time"

	vault "github.com/hashicorp/vault/api"
	"github.com/prometheus/client_golang/prometheus"
)

// Defaults of VaultConfig.
const (
	DefaultVaultMount        = "secret"
	DefaultVaultPrefix       = "uvr/services"
	DefaultVaultAppRoleMount = "approle"
	DefaultVaultTimeout      = 10 * time.Second
)

// VaultConfig configures NewVault. Authenticate with Token, or with RoleID and
// SecretID (AppRole); not both.
type VaultConfig struct {
	Addr string // required, e.g. http://127.0.0.1:8200 (VAULT_ADDR)

	Token string // VAULT_TOKEN

	RoleID       string // VAULT_ROLE_ID
	SecretID     string // VAULT_SECRET_ID
	AppRoleMount string // where the AppRole auth method is mounted; default "approle"

	Mount   string        // KV v2 mount; default "secret" (UVR_VAULT_MOUNT)
	Prefix  string        // path under the mount; default "uvr/services" (UVR_VAULT_PREFIX)
	Timeout time.Duration // per request; default 10s

	Logger     *slog.Logger          // nil discards
	Registerer prometheus.Registerer // nil registers no metrics
}

// Validate reports every problem at once. It never quotes a token or secret id.
func (c VaultConfig) Validate() error {
	var errs []error
	if c.Addr == "" {
		errs = append(errs, errors.New("vault address is required"))
	}
	token, role := c.Token != "", c.RoleID != "" || c.SecretID != ""
	switch {
	case token && role:
		errs = append(errs, errors.New("vault: set either a token or an AppRole role id and secret id, not both"))
	case !token && !role:
		errs = append(errs, errors.New("vault: a token or an AppRole role id and secret id is required"))
	case role && (c.RoleID == "" || c.SecretID == ""):
		errs = append(errs, errors.New("vault: AppRole needs both a role id and a secret id"))
	}
	if strings.Contains(c.Mount, "..") || strings.Contains(c.Prefix, "..") {
		errs = append(errs, errors.New("vault: mount and prefix must not contain '..'"))
	}
	if c.Timeout < 0 {
		errs = append(errs, fmt.Errorf("vault: timeout must be ≥ 0, got %s", c.Timeout))
	}
	return errors.Join(errs...)
}

// Vault stores credentials in a KV v2 mount of HashiCorp Vault, one secret per
// service at <mount>/<prefix>/<service id>. Delete removes every version.
//
// A renewable token (the one given, or the one an AppRole login returns) is
// renewed in the background by a LifetimeWatcher; an AppRole token that can no
// longer be renewed is replaced by a new login. Close stops that.
type Vault struct {
	cfg     VaultConfig
	log     *slog.Logger
	client  *vault.Client
	kv      *vault.KVv2
	metrics *vaultMetrics

	cancel context.CancelFunc
	done   chan struct{}
}

var _ Store = (*Vault)(nil)

type vaultMetrics struct {
	errors *prometheus.CounterVec
	expiry prometheus.Gauge
}

func newVaultMetrics(reg prometheus.Registerer) (*vaultMetrics, error) {
	m := &vaultMetrics{
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "uvr_vault_request_errors_total",
			Help: "Vault requests that failed, by operation (put, get, delete, login, lookup, renew). A missing secret is not an error.",
		}, []string{"op"}),
		expiry: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "uvr_vault_token_expiry_timestamp_seconds",
			Help: "When uvr's Vault token expires (Unix seconds); 0 for a token without expiry.",
		}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.errors, m.expiry} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register vault metrics: %w", err)
		}
	}
	return m, nil
}

// NewVault connects to Vault: it logs in with AppRole (or takes the token),
// looks the token up to learn its expiry, and starts renewing it when it is
// renewable. The KV mount is not checked here; the first Put or Get is.
func NewVault(ctx context.Context, cfg VaultConfig) (*Vault, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("vault config: %w", err)
	}
	if cfg.Mount == "" {
		cfg.Mount = DefaultVaultMount
	}
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultVaultPrefix
	}
	if cfg.AppRoleMount == "" {
		cfg.AppRoleMount = DefaultVaultAppRoleMount
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultVaultTimeout
	}
	cfg.Mount = strings.Trim(cfg.Mount, "/")
	cfg.Prefix = strings.Trim(cfg.Prefix, "/")
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "vault")
	metrics, err := newVaultMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}

	// Not vault.DefaultConfig: it reads VAULT_* from the environment, and only cmd/uvr
	// reads the environment.
	vcfg := &vault.Config{Address: cfg.Addr, HttpClient: &http.Client{Timeout: cfg.Timeout}, Timeout: cfg.Timeout, MaxRetries: 2}
	client, err := vault.NewClient(vcfg)
	if err != nil {
		return nil, fmt.Errorf("vault client for %s: %w", cfg.Addr, err)
	}
	client.ClearToken() // NewClient picks up VAULT_TOKEN by itself
	v := &Vault{cfg: cfg, log: log, client: client, kv: client.KVv2(cfg.Mount), metrics: metrics, done: make(chan struct{})}

	auth, err := v.authenticate(ctx)
	if err != nil {
		return nil, err
	}
	// The renewal outlives the (startup) ctx of this call: it ends with Close.
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	v.cancel = cancel
	go v.renew(rctx, auth)
	return v, nil
}

// Health reports whether Vault answers and is unsealed and active, for a
// health check. It does not test the token: a denied request says that.
func (v *Vault) Health(ctx context.Context) error {
	h, err := v.client.Sys().HealthWithContext(ctx)
	if err != nil {
		return v.wrap("health", err, nil)
	}
	if h.Sealed || !h.Initialized {
		return fmt.Errorf("vault health: %w: sealed %t, initialized %t", ErrUnavailable, h.Sealed, h.Initialized)
	}
	return nil
}

// Close stops the token renewal. It does not revoke the token.
func (v *Vault) Close() error {
	v.cancel()
	<-v.done
	return nil
}

// authenticate logs in (AppRole) or looks the token up, sets the token on the
// client and returns what the renewal needs.
func (v *Vault) authenticate(ctx context.Context) (*vault.SecretAuth, error) {
	if v.cfg.RoleID != "" {
		secret, err := v.client.Logical().WriteWithContext(ctx, "auth/"+v.cfg.AppRoleMount+"/login", map[string]any{
			"role_id":   v.cfg.RoleID,
			"secret_id": v.cfg.SecretID,
		})
		if err != nil {
			v.metrics.errors.WithLabelValues("login").Inc()
			return nil, v.wrap("AppRole login", err, nil)
		}
		if secret == nil || secret.Auth == nil || secret.Auth.ClientToken == "" {
			v.metrics.errors.WithLabelValues("login").Inc()
			return nil, fmt.Errorf("vault AppRole login at %s: %w: the answer holds no token", v.cfg.AppRoleMount, ErrUnavailable)
		}
		v.client.SetToken(secret.Auth.ClientToken)
		v.setExpiry(time.Duration(secret.Auth.LeaseDuration) * time.Second)
		v.log.Info("logged in to vault with AppRole", "renewable", secret.Auth.Renewable, "ttl", time.Duration(secret.Auth.LeaseDuration)*time.Second)
		return secret.Auth, nil
	}

	v.client.SetToken(v.cfg.Token)
	self, err := v.client.Auth().Token().LookupSelfWithContext(ctx)
	if err != nil {
		v.metrics.errors.WithLabelValues("lookup").Inc()
		return nil, v.wrap("token lookup", err, nil)
	}
	ttl, err := self.TokenTTL()
	if err != nil {
		return nil, fmt.Errorf("vault token lookup: ttl: %w", err)
	}
	renewable, err := self.TokenIsRenewable()
	if err != nil {
		return nil, fmt.Errorf("vault token lookup: renewable: %w", err)
	}
	v.setExpiry(ttl)
	v.log.Info("using vault token", "renewable", renewable, "ttl", ttl)
	return &vault.SecretAuth{ClientToken: v.cfg.Token, Renewable: renewable, LeaseDuration: int(ttl.Seconds())}, nil
}

func (v *Vault) setExpiry(ttl time.Duration) {
	if ttl <= 0 {
		v.metrics.expiry.Set(0)
		return
	}
	v.metrics.expiry.Set(float64(time.Now().Add(ttl).Unix()))
}

// renew keeps the token alive until ctx ends. A token that stops being renewable
// (max TTL reached, revoked) is replaced by a new AppRole login; a static token
// cannot be replaced, so its end is logged and counted and requests start failing
// with ErrDenied.
func (v *Vault) renew(ctx context.Context, auth *vault.SecretAuth) {
	defer close(v.done)
	for {
		ttl := time.Duration(auth.LeaseDuration) * time.Second
		switch {
		case ttl <= 0:
			<-ctx.Done() // a token without expiry (e.g. a root token)
			return
		case auth.Renewable:
			err := v.watch(ctx, auth)
			if ctx.Err() != nil {
				return
			}
			if err != nil {
				v.metrics.errors.WithLabelValues("renew").Inc()
				v.log.Error("vault token renewal failed", "error", v.wrap("renew", err, nil).Error())
			}
		default:
			// Not renewable: an AppRole login is repeated before it expires.
			if !sleep(ctx, ttl*2/3) {
				return
			}
		}
		if v.cfg.RoleID == "" {
			v.log.Error("vault token can no longer be renewed; requests fail once it expires: give uvr a new token")
			<-ctx.Done()
			return
		}
		backoff := time.Second
		for {
			next, err := v.authenticate(ctx)
			if err == nil {
				auth = next
				break
			}
			if ctx.Err() != nil {
				return
			}
			v.log.Error("vault AppRole login failed; retrying", "error", err.Error(), "retry_in", backoff)
			if !sleep(ctx, backoff) {
				return
			}
			backoff = min(2*backoff, time.Minute)
		}
	}
}

// watch runs one LifetimeWatcher until it gives up (nil: the token reached its
// max TTL) or fails.
func (v *Vault) watch(ctx context.Context, auth *vault.SecretAuth) error {
	w, err := v.client.NewLifetimeWatcher(&vault.LifetimeWatcherInput{Secret: &vault.Secret{Auth: auth}})
	if err != nil {
		return err
	}
	go w.Start()
	defer w.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-w.DoneCh():
			return err
		case r := <-w.RenewCh():
			if r != nil && r.Secret != nil && r.Secret.Auth != nil {
				ttl := time.Duration(r.Secret.Auth.LeaseDuration) * time.Second
				v.setExpiry(ttl)
				v.log.Debug("vault token renewed", "ttl", ttl)
			}
		}
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func (v *Vault) secretPath(serviceID string) string {
	return path.Join(v.cfg.Prefix, serviceID)
}

// Put implements Store.
func (v *Vault) Put(ctx context.Context, serviceID string, creds map[string]string) error {
	if err := checkID(serviceID); err != nil {
		return err
	}
	if err := checkCreds(creds); err != nil {
		return err
	}
	data := make(map[string]any, len(creds))
	for k, val := range creds {
		data[k] = val
	}
	if _, err := v.kv.Put(ctx, v.secretPath(serviceID), data); err != nil {
		v.metrics.errors.WithLabelValues("put").Inc()
		return v.wrap("put credentials of service "+serviceID, err, creds)
	}
	return nil
}

// Get implements Store.
func (v *Vault) Get(ctx context.Context, serviceID string) (map[string]string, error) {
	if err := checkID(serviceID); err != nil {
		return nil, err
	}
	secret, err := v.kv.Get(ctx, v.secretPath(serviceID))
	if errors.Is(err, vault.ErrSecretNotFound) {
		return nil, fmt.Errorf("service %s: %w", serviceID, ErrNotFound)
	}
	if err != nil {
		v.metrics.errors.WithLabelValues("get").Inc()
		return nil, v.wrap("get credentials of service "+serviceID, err, nil)
	}
	creds := make(map[string]string, len(secret.Data))
	for k, val := range secret.Data {
		s, ok := val.(string)
		if !ok {
			// Written by something else than uvr; the value itself is not shown.
			return nil, fmt.Errorf("vault: credentials of service %s: field %q is a %T, not a string", serviceID, k, val)
		}
		creds[k] = s
	}
	return creds, nil
}

// Delete implements Store: every version and the metadata go.
func (v *Vault) Delete(ctx context.Context, serviceID string) error {
	if err := checkID(serviceID); err != nil {
		return err
	}
	p := v.secretPath(serviceID)
	if _, err := v.kv.GetMetadata(ctx, p); err != nil {
		if errors.Is(err, vault.ErrSecretNotFound) {
			return fmt.Errorf("service %s: %w", serviceID, ErrNotFound)
		}
		v.metrics.errors.WithLabelValues("delete").Inc()
		return v.wrap("delete credentials of service "+serviceID, err, nil)
	}
	if err := v.kv.DeleteMetadata(ctx, p); err != nil {
		v.metrics.errors.WithLabelValues("delete").Inc()
		return v.wrap("delete credentials of service "+serviceID, err, nil)
	}
	return nil
}

// wrap turns a Vault client error into one of this package's kinds, with a
// message that holds the status and Vault's own error strings but never a
// token, a secret id or a credential value.
func (v *Vault) wrap(op string, err error, creds map[string]string) error {
	secrets := map[string]string{"token": v.cfg.Token, "secret_id": v.cfg.SecretID, "client": v.client.Token()}
	for k, val := range creds {
		secrets["cred:"+k] = val
	}
	var resp *vault.ResponseError
	if errors.As(err, &resp) {
		detail := redact(strings.Join(resp.Errors, "; "), secrets)
		kind := ErrUnavailable
		switch {
		case resp.StatusCode == http.StatusForbidden || resp.StatusCode == http.StatusUnauthorized:
			kind = ErrDenied
		case resp.StatusCode == http.StatusBadRequest && strings.Contains(op, "login"):
			kind = ErrDenied // AppRole answers 400 "invalid role or secret ID"
		case resp.StatusCode >= 400 && resp.StatusCode < 500:
			kind = ErrInvalid
		}
		return fmt.Errorf("vault %s: %w: HTTP %d: %s", op, kind, resp.StatusCode, detail)
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("vault %s: %w: %w", op, ErrUnavailable, err)
	}
	return fmt.Errorf("vault %s: %w: %s", op, ErrUnavailable, redact(err.Error(), secrets))
}
