// Package access is who may call uvr's API: users (email + argon2id password),
// roles (admin, analyst, viewer), signed bearer tokens (JWT HS256) and API
// keys for machines.
//
// Users, API keys (their SHA-256 only) and the token signing secret live in a
// compacted Kafka topic (Topic) through pipeline/kafka.Table, so every API
// instance sees the same accounts; a write is visible on the instance that
// made it at once (a revoked key or a deactivated user stops working there
// before the call returns) and on the others as soon as their table reads it.
// The secret material among them, the signing secret and the password hashes,
// is sealed (Config.Sealer, seal.go): reading the topic is not enough to mint
// a token or to attack a hash offline.
//
// The package knows nothing of HTTP: the API (api/auth.go) turns the kinds of
// Error into statuses and runs the checks as Gin middleware.
package access

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/mail"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Topic is the compacted topic of users, API keys and the signing secret. It
// must have one partition: the signing secret is the candidate written first,
// and only one partition orders every write.
const Topic = "uvr.users.v1"

// Defaults and limits.
const (
	DefaultTokenTTL   = 12 * time.Hour
	MinPasswordLength = 8
	maxPasswordLength = 1024 // argon2 hashes anything; this bounds the work per request
	minSecretLength   = 32
	apiKeyPrefix      = "uvr_"
)

// Keys in the table.
const (
	userKeyPrefix   = "user/"              // + user id → userRecord
	apiKeyKeyPrefix = "apikey/"            // + hex SHA-256 of the key → keyRecord
	secretKeyPrefix = "secret/"            // + candidate id → sealed secret (see Open, seal.go)
	claimKeyPrefix  = "claim/first-admin/" // + random id → RFC 3339 time (see RegisterFirst)
)

// Role of a user or API key.
type Role string

// Roles. Admin may write; analyst and viewer only read (the issue names both;
// they differ in nothing yet but are kept apart so that clients can rely on
// the names).
const (
	RoleAdmin   Role = "admin"
	RoleAnalyst Role = "analyst"
	RoleViewer  Role = "viewer"
	// RoleIngest is for API keys only: it may send events (POST
	// /api/events) and nothing else, so a connector or a client SDK never
	// holds a key that reads or administers anything.
	RoleIngest Role = "ingest"
)

// Valid reports whether r is a role a user may have.
func (r Role) Valid() bool { return r == RoleAdmin || r == RoleAnalyst || r == RoleViewer }

// ValidForKey reports whether r is a role an API key may have: a user's, or ingest.
func (r Role) ValidForKey() bool { return r.Valid() || r == RoleIngest }

// CanWrite reports whether r may call write routes (POST, PUT, PATCH, DELETE).
func (r Role) CanWrite() bool { return r == RoleAdmin }

// User is a user without its password hash.
type User struct {
	ID        string
	Email     string
	FullName  string
	Role      Role
	Active    bool
	CreatedAt time.Time
}

// APIKey is an API key as listed: never the key, never its hash.
type APIKey struct {
	ID        string
	Name      string
	Prefix    string // the key's first characters, to recognise it
	Last4     string // its last four characters
	Role      Role
	CreatedBy string // user id, or "" for uvr itself
	CreatedAt time.Time
}

// Principal is who made a request.
type Principal struct {
	UserID   string // "" for an API key or uvr itself
	Email    string
	APIKeyID string // set when authenticated by an API key
	Role     Role
}

// NewUser is what Register needs.
type NewUser struct {
	Email    string
	Password string
	FullName string
	Role     Role
}

// Table is the compacted-topic map accounts live in (pipeline/kafka.Table):
// Put and Delete return once durable and visible to Get here; Sync makes every
// write acknowledged before it visible, from any instance; Position orders
// the writes of one partition.
type Table interface {
	Put(ctx context.Context, key string, value []byte) error
	Delete(ctx context.Context, key string) error
	Get(key string) ([]byte, bool)
	All() map[string][]byte
	Sync(ctx context.Context) error
	Position(key string) (partition int, offset int64, ok bool)
}

// Config configures New.
type Config struct {
	Table Table // required, on Topic
	// Sealer encrypts the signing secret and the password hashes on the
	// topic (required): every instance sharing the topic needs one that
	// opens what the others sealed.
	Sealer Sealer
	// Secret signs tokens (UVR_AUTH_SECRET, ≥ 32 bytes). Empty: Open takes the
	// one shared in the table, generating it on the first start.
	Secret   []byte
	TokenTTL time.Duration // default 12h

	Logger     *slog.Logger          // nil discards
	Registerer prometheus.Registerer // nil: metrics not registered
	Now        func() time.Time      // default time.Now
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	var errs []error
	if c.Table == nil {
		errs = append(errs, errors.New("access: Table is required"))
	}
	if c.Sealer == nil {
		errs = append(errs, errors.New("access: Sealer is required (secret material is never written in plain text)"))
	}
	if len(c.Secret) > 0 && len(c.Secret) < minSecretLength {
		errs = append(errs, fmt.Errorf("access: the auth secret must be at least %d bytes", minSecretLength))
	}
	if c.TokenTTL < 0 {
		errs = append(errs, errors.New("access: TokenTTL must be ≥ 0"))
	}
	return errors.Join(errs...)
}

// Store holds users and API keys. Safe for concurrent use. Open before use.
type Store struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics

	secretMu sync.RWMutex
	secret   []byte

	writeMu sync.Mutex // one register at a time on this instance: the email check and the write
	// dummy is a hash verified when the email is unknown, and sealedDummy its
	// sealed form (set by Open), opened then as a known user's hash is: the
	// time of a login does not tell whether the email exists.
	dummy       string
	sealedDummy string
}

// New builds a Store. It does no I/O.
func New(cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.TokenTTL == 0 {
		cfg.TokenTTL = DefaultTokenTTL
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	dummy, err := hashPassword(randomString(16))
	if err != nil {
		return nil, err
	}
	return &Store{cfg: cfg, log: log.With("component", "access"), metrics: m, secret: cfg.Secret, dummy: dummy}, nil
}

// Open loads the table, checks that the Sealer opens what the topic holds,
// seals what an older uvr left there in plain text (seal.go) and settles the
// signing secret.
//
// Without a configured secret, every instance must sign with the same one:
// each candidate is written under its own key, and the one with the lowest
// offset wins. An instance that writes a candidate reads the table to the end
// afterwards, so it sees every candidate acknowledged before its own, and no
// later write can get a lower offset: two instances starting at once agree.
func (s *Store) Open(ctx context.Context) error {
	if err := s.cfg.Table.Sync(ctx); err != nil {
		return unavailable(fmt.Errorf("load accounts: %w", err))
	}
	dummy, err := s.sealHash(ctx, "", s.dummy)
	if err != nil {
		return err
	}
	s.sealedDummy = dummy
	if err := s.checkSealed(ctx); err != nil {
		return err
	}
	if err := s.sealPlaintext(ctx); err != nil {
		return err
	}
	if len(s.cfg.Secret) > 0 {
		return nil
	}
	secret, ok, err := s.firstSecret(ctx)
	if err != nil {
		return err
	}
	if ok {
		s.setSecret(secret)
		return nil
	}
	candidate := make([]byte, 32)
	if _, err := rand.Read(candidate); err != nil {
		return fmt.Errorf("generate the signing secret: %w", err)
	}
	key := secretKeyPrefix + randomString(8)
	sealed, err := s.seal(ctx, key, candidate)
	if err != nil {
		return err
	}
	if err := s.cfg.Table.Put(ctx, key, sealed); err != nil {
		return unavailable(fmt.Errorf("store the signing secret: %w", err))
	}
	if err := s.cfg.Table.Sync(ctx); err != nil {
		return unavailable(fmt.Errorf("load accounts: %w", err))
	}
	secret, ok, err = s.firstSecret(ctx)
	if err != nil {
		return err
	}
	if !ok {
		return errors.New("access: the signing secret just written is not in the table")
	}
	s.setSecret(secret)
	return nil
}

// firstSecret opens the sealed candidate of the lowest offset. Plain-text
// candidates of an older uvr are not candidates any more (sealPlaintext
// removes them).
func (s *Store) firstSecret(ctx context.Context) ([]byte, bool, error) {
	var best string
	var bestPart int
	var bestOff int64
	for key, value := range s.cfg.Table.All() {
		if !strings.HasPrefix(key, secretKeyPrefix) || !isSealedSecret(value) {
			continue
		}
		p, off, ok := s.cfg.Table.Position(key)
		if !ok {
			continue
		}
		if best == "" || p < bestPart || (p == bestPart && off < bestOff) {
			best, bestPart, bestOff = key, p, off
		}
	}
	if best == "" {
		return nil, false, nil
	}
	value, _ := s.cfg.Table.Get(best)
	secret, err := s.openSecret(ctx, best, value)
	if err != nil {
		return nil, false, err
	}
	return secret, true, nil
}

func (s *Store) setSecret(b []byte) {
	s.secretMu.Lock()
	defer s.secretMu.Unlock()
	s.secret = b
}

func (s *Store) signingSecret() ([]byte, error) {
	s.secretMu.RLock()
	defer s.secretMu.RUnlock()
	if len(s.secret) == 0 {
		return nil, errors.New("access: the store is not open")
	}
	return s.secret, nil
}

// userRecord is a user as stored.
type userRecord struct {
	ID       string `json:"id"`
	Email    string `json:"email"`
	FullName string `json:"full_name,omitempty"`
	Role     Role   `json:"role"`
	Active   bool   `json:"active"`
	// SealedPasswordHash is the argon2id hash sealed by Config.Sealer
	// (base64); PasswordHash the hash in plain text, as an older uvr wrote
	// it and as no write of this one does (sealPlaintext, putUser).
	SealedPasswordHash string    `json:"sealed_password_hash,omitempty"`
	PasswordHash       string    `json:"password_hash,omitempty"`
	CreatedAt          time.Time `json:"created_at"`
}

func (r userRecord) user() User {
	return User{ID: r.ID, Email: r.Email, FullName: r.FullName, Role: r.Role, Active: r.Active, CreatedAt: r.CreatedAt}
}

// keyRecord is an API key as stored, keyed by the key's hash.
type keyRecord struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Prefix    string    `json:"prefix"`
	Last4     string    `json:"last4"`
	Role      Role      `json:"role"`
	CreatedBy string    `json:"created_by,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

func (r keyRecord) key() APIKey {
	return APIKey{ID: r.ID, Name: r.Name, Prefix: r.Prefix, Last4: r.Last4, Role: r.Role, CreatedBy: r.CreatedBy, CreatedAt: r.CreatedAt}
}

// normalizeEmail checks an address and returns it lower-cased: emails are
// unique regardless of case.
func normalizeEmail(email string) (string, error) {
	email = strings.TrimSpace(email)
	if email == "" {
		return "", invalid("email", "email is required")
	}
	addr, err := mail.ParseAddress(email)
	if err != nil || addr.Address != email || !strings.Contains(email[strings.LastIndex(email, "@")+1:], ".") {
		return "", invalid("email", "email is not a valid address")
	}
	return strings.ToLower(email), nil
}

func checkPassword(password string) error {
	switch {
	case len([]rune(password)) < MinPasswordLength:
		return invalid("password", fmt.Sprintf("password must be at least %d characters", MinPasswordLength))
	case len(password) > maxPasswordLength:
		return invalid("password", fmt.Sprintf("password must be at most %d bytes", maxPasswordLength))
	}
	return nil
}

// HasUsers reports whether any user exists (from any instance, as of the call).
func (s *Store) HasUsers(ctx context.Context) (bool, error) {
	if err := s.cfg.Table.Sync(ctx); err != nil {
		return false, unavailable(err)
	}
	return s.anyUser(), nil
}

// Register creates a user. The email must be new (KindConflict otherwise).
func (s *Store) Register(ctx context.Context, nu NewUser) (User, error) {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	return s.register(ctx, nu)
}

// validateNew checks nu and returns the first problem.
func (s *Store) validateNew(nu NewUser) error {
	if _, err := normalizeEmail(nu.Email); err != nil {
		return err
	}
	if err := checkPassword(nu.Password); err != nil {
		return err
	}
	if !nu.Role.Valid() {
		return invalid("role", "role must be admin, analyst or viewer")
	}
	if len(nu.FullName) > 200 {
		return invalid("full_name", "full_name must be at most 200 characters")
	}
	return nil
}

func (s *Store) register(ctx context.Context, nu NewUser) (User, error) {
	if err := s.validateNew(nu); err != nil {
		return User{}, err
	}
	email, _ := normalizeEmail(nu.Email) // checked by validateNew
	if err := s.cfg.Table.Sync(ctx); err != nil {
		return User{}, unavailable(err)
	}
	if _, ok := s.findByEmail(email); ok {
		return User{}, &Error{Kind: KindConflict, Field: "email", Message: "a user with this email already exists"}
	}
	hash, err := hashPassword(nu.Password)
	if err != nil {
		return User{}, err
	}
	rec := userRecord{
		ID: "usr_" + randomString(12), Email: email, FullName: strings.TrimSpace(nu.FullName), Role: nu.Role,
		Active: true, CreatedAt: s.cfg.Now().UTC().Truncate(time.Millisecond),
	}
	if rec.SealedPasswordHash, err = s.sealHash(ctx, rec.ID, hash); err != nil {
		return User{}, err
	}
	if err := s.putUser(ctx, rec); err != nil {
		return User{}, err
	}
	s.log.Info("user registered", "user_id", rec.ID, "role", string(rec.Role))
	return rec.user(), nil
}

// RegisterFirst registers nu as an admin only while no user exists: the
// open bootstrap of POST /api/auth/register. Of concurrent first
// registrations, on this instance or on several sharing the topic, exactly
// one succeeds; the others are KindConflict.
//
// The topic is the arbiter (it has one partition, so its offsets order every
// write): each attempt writes a claim, reads the topic to its end, and wins
// only if no user exists yet and its claim is the earliest recent one. A
// later claim reads every earlier one (written before it, so read by its
// Sync), and the winner removes its claim only after writing the user, so a
// loser sees either the earlier claim or the user. A claim older than
// claimTTL is ignored, so a winner that died before writing its user does
// not block the bootstrap for ever.
func (s *Store) RegisterFirst(ctx context.Context, nu NewUser) (User, error) {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	taken := &Error{Kind: KindConflict, Message: "the first admin has already been registered: log in as an admin to register users"}
	if err := s.cfg.Table.Sync(ctx); err != nil {
		return User{}, unavailable(err)
	}
	if s.anyUser() {
		return User{}, taken
	}
	nu.Role = RoleAdmin
	if err := s.validateNew(nu); err != nil { // before claiming: a bad request must not block a good one
		return User{}, err
	}
	claim := claimKeyPrefix + randomString(12)
	stamp, _ := s.cfg.Now().UTC().MarshalText()
	if err := s.cfg.Table.Put(ctx, claim, stamp); err != nil {
		return User{}, unavailable(fmt.Errorf("claim the first admin: %w", err))
	}
	defer func() {
		// Removed whatever the outcome: the winner's once its user exists.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if err := s.cfg.Table.Delete(dctx, claim); err != nil {
			s.log.Warn("a first-admin claim is left on the users topic (it expires)", "error", err)
		}
	}()
	if err := s.cfg.Table.Sync(ctx); err != nil {
		return User{}, unavailable(err)
	}
	if s.anyUser() || s.earliestClaim() != claim {
		return User{}, taken
	}
	return s.register(ctx, nu)
}

// claimTTL bounds how long a first-admin claim counts (see RegisterFirst).
const claimTTL = time.Minute

// earliestClaim is the key of the first-admin claim written first among
// those younger than claimTTL.
func (s *Store) earliestClaim() string {
	var best string
	var bestOff int64
	for key, value := range s.cfg.Table.All() {
		if !strings.HasPrefix(key, claimKeyPrefix) {
			continue
		}
		var at time.Time
		if err := at.UnmarshalText(value); err != nil || s.cfg.Now().Sub(at) > claimTTL {
			continue
		}
		_, off, ok := s.cfg.Table.Position(key)
		if ok && (best == "" || off < bestOff) {
			best, bestOff = key, off
		}
	}
	return best
}

func (s *Store) anyUser() bool {
	for key := range s.cfg.Table.All() {
		if strings.HasPrefix(key, userKeyPrefix) {
			return true
		}
	}
	return false
}

// EnsureUser registers nu unless a user with its email exists, which is then
// left as it is (password and role included): the admin from the environment
// is created on the first start only.
func (s *Store) EnsureUser(ctx context.Context, nu NewUser) (User, bool, error) {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	email, err := normalizeEmail(nu.Email)
	if err != nil {
		return User{}, false, err
	}
	if err := s.cfg.Table.Sync(ctx); err != nil {
		return User{}, false, unavailable(err)
	}
	if rec, ok := s.findByEmail(email); ok {
		return rec.user(), false, nil
	}
	u, err := s.register(ctx, nu)
	return u, err == nil, err
}

// putUser writes rec, sealing a plain-text hash an older uvr left in it.
func (s *Store) putUser(ctx context.Context, rec userRecord) error {
	if rec.PasswordHash != "" {
		sealed, err := s.sealHash(ctx, rec.ID, rec.PasswordHash)
		if err != nil {
			return err
		}
		rec.SealedPasswordHash, rec.PasswordHash = sealed, ""
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("encode user: %w", err)
	}
	if err := s.cfg.Table.Put(ctx, userKeyPrefix+rec.ID, b); err != nil {
		return unavailable(fmt.Errorf("write user %s: %w", rec.ID, err))
	}
	return nil
}

func (s *Store) findByEmail(email string) (userRecord, bool) {
	for _, rec := range s.userRecords() {
		if rec.Email == email {
			return rec, true
		}
	}
	return userRecord{}, false
}

func (s *Store) userByID(id string) (userRecord, bool) {
	raw, ok := s.cfg.Table.Get(userKeyPrefix + id)
	if !ok {
		return userRecord{}, false
	}
	var rec userRecord
	if err := json.Unmarshal(raw, &rec); err != nil {
		s.log.Warn("unreadable user record", "user_id", id, "error", err)
		return userRecord{}, false
	}
	return rec, true
}

// badCredentials is the one answer to a failed login: it never says whether
// the email exists.
func badCredentials() *Error { return unauthorized("incorrect email or password") }

// Login checks email and password and returns the user and a bearer token.
// Every failure is the same KindUnauthorized error, in about the same time.
func (s *Store) Login(ctx context.Context, email, password string) (User, string, error) {
	email = strings.ToLower(strings.TrimSpace(email))
	rec, ok := s.findByEmail(email)
	if !ok {
		// Registered on another instance a moment ago? Read the log to its end.
		if err := s.cfg.Table.Sync(ctx); err != nil {
			s.metrics.attempt(methodPassword, resultUnavailable)
			return User{}, "", unavailable(err)
		}
		rec, ok = s.findByEmail(email)
	}
	hash, err := s.passwordHash(ctx, rec, ok)
	if err != nil {
		s.metrics.attempt(methodPassword, resultUnavailable)
		return User{}, "", err
	}
	match, err := verifyPassword(password, hash)
	if err != nil {
		s.log.Error("unreadable password hash", "user_id", rec.ID, "error", err)
	}
	if !ok || !match || err != nil {
		s.metrics.attempt(methodPassword, resultBadCredentials)
		return User{}, "", badCredentials()
	}
	if !rec.Active {
		s.metrics.attempt(methodPassword, resultInactive)
		return User{}, "", badCredentials()
	}
	token, err := s.IssueToken(rec.ID, 0)
	if err != nil {
		return User{}, "", err
	}
	s.metrics.attempt(methodPassword, resultOK)
	return rec.user(), token, nil
}

// IssueToken signs a bearer token for a user id, valid for ttl (0: the
// configured TokenTTL).
func (s *Store) IssueToken(userID string, ttl time.Duration) (string, error) {
	secret, err := s.signingSecret()
	if err != nil {
		return "", err
	}
	if ttl <= 0 {
		ttl = s.cfg.TokenTTL
	}
	return issueToken(secret, userID, s.cfg.Now(), ttl)
}

// TokenTTL is the lifetime of the tokens Login issues.
func (s *Store) TokenTTL() time.Duration { return s.cfg.TokenTTL }

// SystemToken signs a token for uvr itself (an admin without a user), for
// in-process clients such as the demo loader. Keep ttl short.
func (s *Store) SystemToken(ttl time.Duration) (string, error) {
	return s.IssueToken(systemSubject, ttl)
}

// Authenticate resolves a credential: a bearer token (JWT) or an API key
// (uvr_…). The user behind a token is read at every call, so a deactivated
// user or a changed role applies at once. Every failure is KindUnauthorized.
func (s *Store) Authenticate(ctx context.Context, credential string) (Principal, error) {
	if credential == "" {
		s.metrics.attempt(methodNone, resultMissing)
		return Principal{}, unauthorized("not authenticated")
	}
	if strings.HasPrefix(credential, apiKeyPrefix) {
		return s.authenticateKey(credential)
	}
	secret, err := s.signingSecret()
	if err != nil {
		return Principal{}, err
	}
	subject, err := verifyToken(secret, credential, s.cfg.Now())
	if errors.Is(err, errTokenExpired) {
		s.metrics.attempt(methodToken, resultExpired)
		return Principal{}, unauthorized("the token has expired")
	}
	if err != nil {
		s.metrics.attempt(methodToken, resultBadCredentials)
		return Principal{}, unauthorized("invalid token")
	}
	if subject == systemSubject {
		s.metrics.attempt(methodToken, resultOK)
		return Principal{Role: RoleAdmin}, nil
	}
	rec, ok := s.userByID(subject)
	if !ok {
		// A token is signed only for users that exist: one made on another
		// instance a moment ago may not be here yet.
		if err := s.cfg.Table.Sync(ctx); err != nil {
			s.metrics.attempt(methodToken, resultUnavailable)
			return Principal{}, unavailable(err)
		}
		rec, ok = s.userByID(subject)
	}
	if !ok {
		s.metrics.attempt(methodToken, resultBadCredentials)
		return Principal{}, unauthorized("invalid token")
	}
	if !rec.Active {
		s.metrics.attempt(methodToken, resultInactive)
		return Principal{}, unauthorized("the user is deactivated")
	}
	s.metrics.attempt(methodToken, resultOK)
	return Principal{UserID: rec.ID, Email: rec.Email, Role: rec.Role}, nil
}

func (s *Store) authenticateKey(key string) (Principal, error) {
	// A revoked key's record is deleted: it is simply not found. No Sync on a
	// miss here, or every guessed key would cost a round trip to Kafka.
	raw, ok := s.cfg.Table.Get(apiKeyKeyPrefix + hashKey(key))
	var rec keyRecord
	if ok {
		if err := json.Unmarshal(raw, &rec); err != nil {
			s.log.Warn("unreadable API key record", "error", err)
			ok = false
		}
	}
	if !ok {
		s.metrics.attempt(methodAPIKey, resultBadCredentials)
		return Principal{}, unauthorized("invalid API key")
	}
	role := rec.Role
	if rec.CreatedBy != "" {
		// A key answers for the person who made it, who saw it once and may
		// have kept it: while that user is deactivated the key stops
		// working (and works again on reactivation), a deleted user's keys
		// are revoked with it (DeleteUser), and a key never holds more than
		// its creator now does (an admin's key of a user demoted to viewer
		// reads only). Rotating machine keys when people leave is the price;
		// a key made by uvr itself (no creator) is not tied to anyone. The
		// creator's record precedes the key's on the one partition, so a
		// visible key has a visible creator unless the creator is gone.
		creator, found := s.userByID(rec.CreatedBy)
		if !found || !creator.Active {
			s.metrics.attempt(methodAPIKey, resultInactive)
			return Principal{}, unauthorized("the user who created this API key is deactivated or deleted")
		}
		if role.CanWrite() && !creator.Role.CanWrite() {
			role = creator.Role
		}
	}
	s.metrics.attempt(methodAPIKey, resultOK)
	return Principal{APIKeyID: rec.ID, Role: role}, nil
}

// User returns a user by id.
func (s *Store) User(ctx context.Context, id string) (User, error) {
	rec, ok := s.userByID(id)
	if !ok {
		if err := s.cfg.Table.Sync(ctx); err != nil {
			return User{}, unavailable(err)
		}
		if rec, ok = s.userByID(id); !ok {
			return User{}, &Error{Kind: KindNotFound, Message: "no such user"}
		}
	}
	return rec.user(), nil
}

// CreateAPIKey makes a key with role for a machine. The key is returned here
// only: the table keeps its SHA-256.
func (s *Store) CreateAPIKey(ctx context.Context, name string, role Role, createdBy string) (APIKey, string, error) {
	name = strings.TrimSpace(name)
	switch {
	case name == "":
		return APIKey{}, "", invalid("name", "name is required")
	case len(name) > 100:
		return APIKey{}, "", invalid("name", "name must be at most 100 characters")
	case !role.ValidForKey():
		return APIKey{}, "", invalid("role", "role must be admin, analyst, viewer or ingest")
	}
	raw := make([]byte, 32) // 256 bits: a SHA-256 of it needs no salt or slow hash
	if _, err := rand.Read(raw); err != nil {
		return APIKey{}, "", fmt.Errorf("generate API key: %w", err)
	}
	key := apiKeyPrefix + base64.RawURLEncoding.EncodeToString(raw)
	rec := keyRecord{
		ID: "key_" + randomString(12), Name: name, Prefix: key[:len(apiKeyPrefix)+4], Last4: key[len(key)-4:],
		Role: role, CreatedBy: createdBy, CreatedAt: s.cfg.Now().UTC().Truncate(time.Millisecond),
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return APIKey{}, "", fmt.Errorf("encode API key: %w", err)
	}
	if err := s.cfg.Table.Put(ctx, apiKeyKeyPrefix+hashKey(key), b); err != nil {
		return APIKey{}, "", unavailable(fmt.Errorf("write API key %s: %w", rec.ID, err))
	}
	s.log.Info("API key created", "api_key_id", rec.ID, "role", string(role))
	return rec.key(), key, nil
}

// ListAPIKeys returns every key, oldest first, without secrets.
func (s *Store) ListAPIKeys(ctx context.Context) ([]APIKey, error) {
	if err := s.cfg.Table.Sync(ctx); err != nil {
		return nil, unavailable(err)
	}
	recs := s.keyRecords()
	out := make([]APIKey, 0, len(recs))
	for _, r := range recs {
		out = append(out, r.rec.key())
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].CreatedAt.Equal(out[j].CreatedAt) {
			return out[i].CreatedAt.Before(out[j].CreatedAt)
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

type storedKey struct {
	tableKey string
	rec      keyRecord
}

func (s *Store) keyRecords() []storedKey {
	keys, recs := records[keyRecord](s, apiKeyKeyPrefix, "API key")
	out := make([]storedKey, len(recs))
	for i := range recs {
		out[i] = storedKey{tableKey: keys[i], rec: recs[i]}
	}
	return out
}

// RevokeAPIKey deletes a key: it stops working on this instance before the
// call returns, on the others when their table reads the delete.
func (s *Store) RevokeAPIKey(ctx context.Context, id string) error {
	if err := s.cfg.Table.Sync(ctx); err != nil {
		return unavailable(err)
	}
	for _, k := range s.keyRecords() {
		if k.rec.ID != id {
			continue
		}
		if err := s.cfg.Table.Delete(ctx, k.tableKey); err != nil {
			return unavailable(fmt.Errorf("revoke API key %s: %w", id, err))
		}
		s.log.Info("API key revoked", "api_key_id", id)
		return nil
	}
	return &Error{Kind: KindNotFound, Message: "no API key with this id"}
}

func hashKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// randomString returns n random bytes, base32-like lowercase hex.
func randomString(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go ≥ 1.24)
	return hex.EncodeToString(b)
}
