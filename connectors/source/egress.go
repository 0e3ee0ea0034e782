package source

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// AllowPrivateHostsEnv names the operator setting that widens Egress (read
// by cmd/uvr only; named here so errors can tell the operator what to set).
const AllowPrivateHostsEnv = "UVR_CONNECTOR_ALLOW_PRIVATE_HOSTS"

// Env is what a connector built from a service's credentials is given beside
// them (catalog.Factory).
type Env struct {
	Logger *slog.Logger // nil discards
	// Egress bounds the addresses the connector may call. Its zero value is
	// the safe default: https to public addresses only.
	Egress Egress
	// MappingDir is the only directory a mapping_file setting may name a
	// file in (mapping.LoadIn); "" refuses every mapping_file.
	MappingDir string
}

// Egress is the policy of the addresses a connector configured through the
// API may reach, against server-side request forgery: a service's base_url
// is chosen by whoever may configure services, and uvr sends the service's
// key there. By default only https to public addresses passes; loopback,
// link-local (the cloud metadata address 169.254.169.254 among them),
// private, shared, unspecified and multicast addresses are refused. The
// operator allows named hosts, addresses or networks (AllowPrivateHostsEnv);
// such a host may also be called over plain http (stripe-mock, a local peer).
//
// The rule is checked twice: on the URL when a service is saved or tested
// (CheckURL), and on every address actually dialled (Client), so a name that
// resolves to a public address when checked and to a private one later (DNS
// rebinding) is still refused. The zero value is ready to use. Immutable.
type Egress struct {
	hosts    map[string]bool // lower-case host names allowed by name
	prefixes []netip.Prefix  // addresses allowed
}

// ParseEgress builds the policy allowing entries: host names (stripe-mock),
// addresses (127.0.0.1, ::1) or networks (10.0.0.0/8). Blank entries are
// ignored; a malformed one is an error naming it.
func ParseEgress(entries []string) (Egress, error) {
	var e Egress
	var errs []error
	for _, raw := range entries {
		s := strings.ToLower(strings.TrimSpace(raw))
		switch {
		case s == "":
		case strings.Contains(s, "/"):
			p, err := netip.ParsePrefix(s)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %q is not a network (address/bits)", AllowPrivateHostsEnv, raw))
				continue
			}
			e.prefixes = append(e.prefixes, p.Masked())
		default:
			if ip, err := netip.ParseAddr(strings.Trim(s, "[]")); err == nil {
				e.prefixes = append(e.prefixes, netip.PrefixFrom(ip.Unmap(), ip.Unmap().BitLen()))
				continue
			}
			if strings.ContainsAny(s, ":@ ") {
				errs = append(errs, fmt.Errorf("%s: %q is neither a host name, an address nor a network", AllowPrivateHostsEnv, raw))
				continue
			}
			if e.hosts == nil {
				e.hosts = map[string]bool{}
			}
			e.hosts[s] = true
		}
	}
	return e, errors.Join(errs...)
}

// EgressError is an address the policy refuses. It names the field checked
// (base_url, or the address of a redirect), the host and the reason; it holds
// no credential (the URL's path, query and user info are left out).
type EgressError struct {
	Field  string
	Host   string
	Reason string
}

func (e *EgressError) Error() string {
	return fmt.Sprintf("%s: %s is refused: %s (an operator may allow it with %s)", e.Field, e.Host, e.Reason, AllowPrivateHostsEnv)
}

// IsEgress reports whether err is or wraps an *EgressError.
func IsEgress(err error) bool {
	var e *EgressError
	return errors.As(err, &e)
}

// CheckURL checks the URL raw given as field: absolute, http(s), and https to
// a public host unless the host is allowed. A host name is judged here by
// its name only (localhost is loopback); the addresses it resolves to are
// judged when dialled.
func (e Egress) CheckURL(field, raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" {
		return &EgressError{Field: field, Host: "the address", Reason: "it must be an absolute https URL"}
	}
	host := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
	if e.hostAllowed(host) {
		return nil
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if reason := refused(ip.Unmap()); reason != "" {
			return &EgressError{Field: field, Host: host, Reason: reason}
		}
	}
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return &EgressError{Field: field, Host: host, Reason: "it is a loopback address"}
	}
	if u.Scheme != "https" {
		return &EgressError{Field: field, Host: host, Reason: "plain http is allowed to allowed hosts only: use https"}
	}
	return nil
}

// hostAllowed: allowed by name, or an address literal in an allowed network.
func (e Egress) hostAllowed(host string) bool {
	if e.hosts[host] {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && e.addrAllowed(ip.Unmap())
}

func (e Egress) addrAllowed(ip netip.Addr) bool {
	for _, p := range e.prefixes {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// Networks refused besides those netip classifies itself.
var (
	sharedNet   = netip.MustParsePrefix("100.64.0.0/10") // carrier-grade NAT (RFC 6598)
	thisNet     = netip.MustParsePrefix("0.0.0.0/8")     // "this network" (RFC 1122)
	broadcast   = netip.MustParseAddr("255.255.255.255")
	nat64Prefix = netip.MustParsePrefix("64:ff9b::/96") // IPv4 embedded in IPv6 (RFC 6052)
)

// refused says why ip may not be reached by default, or "" when it may.
func refused(ip netip.Addr) string {
	if nat64Prefix.Contains(ip) {
		b := ip.As16()
		if r := refused(netip.AddrFrom4([4]byte(b[12:]))); r != "" {
			return r + " (embedded in a NAT64 address)"
		}
	}
	switch {
	case ip.IsUnspecified() || thisNet.Contains(ip):
		return "it is an unspecified address"
	case ip.IsLoopback():
		return "it is a loopback address"
	case ip.IsLinkLocalUnicast():
		return "it is a link-local address (the cloud metadata service lives there)"
	case ip.IsMulticast() || ip.IsLinkLocalMulticast() || ip.IsInterfaceLocalMulticast() || ip == broadcast:
		return "it is a multicast or broadcast address"
	case ip.IsPrivate() || sharedNet.Contains(ip):
		return "it is a private address"
	}
	return ""
}

// Client is an HTTP client bounded by timeout whose every connection obeys
// the policy: the address dialled (after DNS resolution) must be public or
// allowed, and a redirect must stay on the same host and pass CheckURL. A nil
// *Egress gives a plain client (an address the operator configured, tests).
// Proxies from the environment are not used: the check must see the real
// peer, which a proxy would hide.
func (e *Egress) Client(timeout time.Duration) *http.Client {
	if e == nil {
		return &http.Client{Timeout: timeout}
	}
	policy := *e
	// http.DefaultTransport's settings, built anew: the default may have
	// been replaced, and its proxy and dialer are exactly what must differ.
	t := &http.Transport{
		DialContext:           policy.dial(&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}),
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	return &http.Client{Timeout: timeout, Transport: t, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		if !strings.EqualFold(req.URL.Host, via[0].URL.Host) {
			return &EgressError{Field: "redirect", Host: req.URL.Hostname(), Reason: "a redirect may not leave the configured host"}
		}
		return policy.CheckURL("redirect", req.URL.String())
	}}
}

// dial connects to addr, refusing any resolved address the policy does not
// allow: the check runs in the dialer's Control hook, on the very address
// of the socket, after name resolution.
func (e Egress) dial(base *net.Dialer) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, fmt.Errorf("dial %s: %w", addr, err)
		}
		host = strings.TrimSuffix(strings.ToLower(host), ".")
		if e.hosts[host] {
			return base.DialContext(ctx, network, addr)
		}
		d := *base
		d.Control = func(_, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return fmt.Errorf("dial %s: %w", address, err)
			}
			ip := ap.Addr().Unmap()
			if e.addrAllowed(ip) {
				return nil
			}
			if reason := refused(ip); reason != "" {
				return &EgressError{Field: "base_url", Host: host + " (" + ip.String() + ")", Reason: reason}
			}
			return nil
		}
		return d.DialContext(ctx, network, addr)
	}
}
