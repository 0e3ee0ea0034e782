package api

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"golang.org/x/time/rate"

	"github.com/uvrhq/uvr/api/access"
)

// LoginLimits bound password logins (loginGuard). Zero values take the
// defaults of DefaultLoginLimits.
type LoginLimits struct {
	// Hashes is how many password checks run at once. Each is an argon2id
	// verification of 19 MiB and tens of milliseconds of CPU; a burst of
	// logins waits for a slot instead of exhausting memory.
	Hashes int
	// HashWait is how long a login waits for a slot before a 503 with
	// Retry-After.
	HashWait time.Duration
	// Per account (the email as typed, case-insensitive) and per client
	// address: Burst attempts at once, then one per Every. Over either is a
	// 429 with Retry-After. Successful attempts count too: the limit is on
	// password checks, which is what costs.
	AccountBurst int
	AccountEvery time.Duration
	ClientBurst  int
	ClientEvery  time.Duration
}

// DefaultLoginLimits: four checks at once (≈ 76 MiB), 5 attempts per account
// then one every 20 s, 20 per client address then one every 3 s.
var DefaultLoginLimits = LoginLimits{
	Hashes: 4, HashWait: 5 * time.Second,
	AccountBurst: 5, AccountEvery: 20 * time.Second,
	ClientBurst: 20, ClientEvery: 3 * time.Second,
}

func (l LoginLimits) withDefaults() LoginLimits {
	d := DefaultLoginLimits
	if l.Hashes <= 0 {
		l.Hashes = d.Hashes
	}
	if l.HashWait <= 0 {
		l.HashWait = d.HashWait
	}
	if l.AccountBurst <= 0 || l.AccountEvery <= 0 {
		l.AccountBurst, l.AccountEvery = d.AccountBurst, d.AccountEvery
	}
	if l.ClientBurst <= 0 || l.ClientEvery <= 0 {
		l.ClientBurst, l.ClientEvery = d.ClientBurst, d.ClientEvery
	}
	return l
}

// Login is the part of Auth the guard protects.
type Login interface {
	Login(ctx context.Context, email, password string) (access.User, string, error)
}

// loginGuard is the one gate of password logins: rate limits per account
// and per client address, then a semaphore around the password check.
// Unknown emails cost the same as known ones: access.Store verifies a dummy
// hash for them, inside the same semaphore. Safe for concurrent use.
type loginGuard struct {
	limits   LoginLimits
	auth     Login
	hashes   chan struct{}
	accounts *limiters
	clients  *limiters
	refused  func(reason string)
}

func newLoginGuard(auth Login, limits LoginLimits, refused func(reason string)) *loginGuard {
	limits = limits.withDefaults()
	return &loginGuard{
		limits: limits, auth: auth, refused: refused,
		hashes:   make(chan struct{}, limits.Hashes),
		accounts: newLimiters(rate.Every(limits.AccountEvery), limits.AccountBurst),
		clients:  newLimiters(rate.Every(limits.ClientEvery), limits.ClientBurst),
	}
}

// login checks the limits of (email, the client's address), then the
// password; a refusal sets Retry-After and is an *Error of KindTooManyRequests
// (a limit) or KindUnavailable (every slot busy for HashWait).
func (g *loginGuard) login(c *gin.Context, email, password string) (access.User, string, error) {
	account := strings.ToLower(strings.TrimSpace(email))
	now := time.Now()
	if wait := reserveBoth(now, g.accounts.get(account, now), g.clients.get(c.ClientIP(), now)); wait > 0 {
		g.refused("rate_limited")
		return access.User{}, "", refuse(c, KindTooManyRequests, "too many login attempts for this account or from this address", wait)
	}
	timer := time.NewTimer(g.limits.HashWait)
	defer timer.Stop()
	select {
	case g.hashes <- struct{}{}:
		defer func() { <-g.hashes }()
	case <-timer.C:
		g.refused("busy")
		return access.User{}, "", refuse(c, KindUnavailable, "too many logins are being checked at once", time.Second)
	case <-c.Request.Context().Done():
		return access.User{}, "", c.Request.Context().Err()
	}
	return g.auth.Login(c, email, password)
}

// refuse sets Retry-After to wait, in whole seconds, and returns the error
// of kind to answer.
func refuse(c *gin.Context, kind, detail string, wait time.Duration) error {
	secs := max(1, int(math.Ceil(wait.Seconds())))
	c.Header("Retry-After", strconv.Itoa(secs))
	return &Error{Kind: kind, Detail: fmt.Sprintf("%s; retry in %d s", detail, secs)}
}

// reserveBoth takes one attempt from each limiter, or none: when either is
// empty it gives both back and returns how long to wait.
func reserveBoth(now time.Time, a, b *rate.Limiter) time.Duration {
	ra, rb := a.ReserveN(now, 1), b.ReserveN(now, 1)
	wait := max(ra.DelayFrom(now), rb.DelayFrom(now))
	if wait > 0 {
		ra.CancelAt(now)
		rb.CancelAt(now)
	}
	return wait
}

// maxLimiters bounds each map of limiters: beyond it, limiters that have
// refilled (they hold nothing a fresh one would not) are dropped.
const maxLimiters = 100_000

// limiters is a token bucket per key with bounded memory.
type limiters struct {
	mu    sync.Mutex
	every rate.Limit
	burst int
	full  time.Duration // time for an empty bucket to refill
	m     map[string]*keyLimiter
}

type keyLimiter struct {
	*rate.Limiter
	last time.Time
}

func newLimiters(every rate.Limit, burst int) *limiters {
	return &limiters{every: every, burst: burst, full: time.Duration(float64(burst) / float64(every) * float64(time.Second)),
		m: map[string]*keyLimiter{}}
}

func (l *limiters) get(key string, now time.Time) *rate.Limiter {
	l.mu.Lock()
	defer l.mu.Unlock()
	k, ok := l.m[key]
	if !ok {
		if len(l.m) >= maxLimiters {
			l.sweep(now)
		}
		k = &keyLimiter{Limiter: rate.NewLimiter(l.every, l.burst)}
		l.m[key] = k
	}
	k.last = now
	return k.Limiter
}

// sweep drops the limiters idle long enough to be full again. If every one
// is in use (a flood from more addresses or accounts than maxLimiters), it
// starts over: memory stays bounded, and the hash semaphore still bounds
// the cost of what gets through.
func (l *limiters) sweep(now time.Time) {
	for key, k := range l.m {
		if now.Sub(k.last) >= l.full {
			delete(l.m, key)
		}
	}
	if len(l.m) >= maxLimiters {
		clear(l.m)
	}
}
