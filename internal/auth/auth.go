// Package auth authenticates API callers — API keys and JWT bearer tokens —
// and describes what they may do: a Principal with a tenant and scopes.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Scopes. A scope may be narrowed to one job type with a suffix, e.g.
// "jobs.write:primes" allows creating only primes jobs.
const (
	ScopeJobsRead   = "jobs.read"
	ScopeJobsWrite  = "jobs.write"
	ScopeJobsCancel = "jobs.cancel"
	ScopeAdmin      = "admin"
	// ScopeWorker lets a worker in any language take and run jobs over the
	// worker protocol (WorkerService). It is not part of AllScopes: a key
	// that submits jobs does not run them.
	ScopeWorker = "worker"
)

// AllScopes is full access.
var AllScopes = []string{ScopeJobsRead, ScopeJobsWrite, ScopeJobsCancel, ScopeAdmin}

// Principal is an authenticated caller.
type Principal struct {
	// ID names the caller in audit logs: "key:<id>" or "jwt:<subject>".
	ID     string
	Tenant string
	Scopes []string
}

// Allows reports whether p holds scope for every job type.
func (p *Principal) Allows(scope string) bool {
	return slices.Contains(p.Scopes, scope)
}

// AllowsAny reports whether p holds scope for at least one job type (the
// check made before the request is decoded).
func (p *Principal) AllowsAny(scope string) bool {
	for _, s := range p.Scopes {
		if s == scope || strings.HasPrefix(s, scope+":") {
			return true
		}
	}
	return false
}

// AllowsType reports whether p holds scope for jobs of type typ.
func (p *Principal) AllowsType(scope, typ string) bool {
	return p.Allows(scope) || slices.Contains(p.Scopes, scope+":"+typ)
}

type principalKey struct{}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// FromContext returns the caller, or nil.
func FromContext(ctx context.Context) *Principal {
	p, _ := ctx.Value(principalKey{}).(*Principal)
	return p
}

// Error is an authentication failure. Reason is a stable machine-readable
// word for ErrorInfo; the message is safe to show to the client.
type Error struct {
	Reason string
	Msg    string
}

func (e *Error) Error() string { return e.Msg }

var (
	errMissing = &Error{Reason: "CREDENTIALS_MISSING", Msg: "missing credentials: send `Authorization: Bearer <API key or JWT>`"}
	errInvalid = &Error{Reason: "CREDENTIALS_INVALID", Msg: "invalid credentials"}
	errExpired = &Error{Reason: "CREDENTIALS_EXPIRED", Msg: "credentials expired"}
)

// Authenticator checks bearer credentials against API keys and, when
// configured, JWTs.
type Authenticator struct {
	keys map[string]storedKey // by id
	jwt  *JWTVerifier
	now  func() time.Time
}

// storedKey is a Key with its hash decoded once, when the Authenticator
// is built, rather than on every request.
type storedKey struct {
	Key
	sum [sha256.Size]byte
}

// New returns an Authenticator for keys and an optional JWT verifier.
func New(keys []Key, jwt *JWTVerifier) (*Authenticator, error) {
	a := &Authenticator{keys: map[string]storedKey{}, jwt: jwt, now: time.Now}
	for _, k := range keys {
		if err := k.validate(); err != nil {
			return nil, err
		}
		if _, dup := a.keys[k.ID]; dup {
			return nil, fmt.Errorf("api key %q defined twice", k.ID)
		}
		sk := storedKey{Key: k}
		_, _ = hex.Decode(sk.sum[:], []byte(k.SHA256)) // validate checked: 64 hex digits
		a.keys[k.ID] = sk
	}
	return a, nil
}

// Authenticate checks an Authorization header value ("Bearer <token>").
// Failures are *Error.
func (a *Authenticator) Authenticate(ctx context.Context, header string) (*Principal, error) {
	scheme, token, ok := strings.Cut(strings.TrimSpace(header), " ")
	if header == "" {
		return nil, errMissing
	}
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return nil, &Error{Reason: "CREDENTIALS_MALFORMED", Msg: "malformed Authorization header: want `Bearer <token>`"}
	}
	token = strings.TrimSpace(token)
	if strings.HasPrefix(token, keyPrefix) {
		return a.checkKey(token)
	}
	if a.jwt != nil && strings.Count(token, ".") == 2 {
		return a.jwt.Verify(ctx, token)
	}
	return a.checkOpaque(token)
}

// checkOpaque matches a token without the key prefix (an operator-chosen
// dev key) against every key's hash, in constant time per key.
func (a *Authenticator) checkOpaque(token string) (*Principal, error) {
	sum := sha256.Sum256([]byte(token))
	var match *storedKey
	for _, k := range a.keys {
		if subtle.ConstantTimeCompare(sum[:], k.sum[:]) == 1 {
			match = &k
		}
	}
	if match == nil {
		return nil, errInvalid
	}
	if match.Expires != nil && !a.now().Before(*match.Expires) {
		return nil, errExpired
	}
	return &Principal{ID: "key:" + match.ID, Tenant: match.Tenant, Scopes: slices.Clone(match.Scopes)}, nil
}

// API keys look like "jfk_<id>.<secret>"; the id selects the key entry and
// the SHA-256 of the whole token is compared in constant time with the
// stored hash. Secrets are 256 random bits, so a fast hash is enough.
const keyPrefix = "jfk_"

var keyID = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// Key is one API key as stored: never the token itself, only its hash.
type Key struct {
	ID      string     `json:"id"`
	Tenant  string     `json:"tenant"`
	Scopes  []string   `json:"scopes"`
	SHA256  string     `json:"sha256"`
	Expires *time.Time `json:"expires,omitempty"`
}

func (k Key) validate() error {
	switch {
	case !keyID.MatchString(k.ID):
		return fmt.Errorf("api key id %q: want lowercase letters, digits and -", k.ID)
	case k.Tenant == "" || !keyID.MatchString(k.Tenant):
		return fmt.Errorf("api key %q: tenant %q: want lowercase letters, digits and -", k.ID, k.Tenant)
	case len(k.SHA256) != 64:
		return fmt.Errorf("api key %q: sha256 must be 64 hex digits", k.ID)
	case len(k.Scopes) == 0:
		return fmt.Errorf("api key %q: no scopes", k.ID)
	}
	if _, err := hex.DecodeString(k.SHA256); err != nil {
		return fmt.Errorf("api key %q: sha256: %w", k.ID, err)
	}
	return nil
}

func (a *Authenticator) checkKey(token string) (*Principal, error) {
	id, _, ok := strings.Cut(strings.TrimPrefix(token, keyPrefix), ".")
	if !ok {
		return nil, errInvalid
	}
	k, found := a.keys[id] // the zero key's sum when not found: compare anyway, same time either way
	sum := sha256.Sum256([]byte(token))
	if subtle.ConstantTimeCompare(sum[:], k.sum[:]) != 1 || !found {
		return nil, errInvalid
	}
	if k.Expires != nil && !a.now().Before(*k.Expires) {
		return nil, errExpired
	}
	return &Principal{ID: "key:" + k.ID, Tenant: k.Tenant, Scopes: slices.Clone(k.Scopes)}, nil
}

// NewKey returns a fresh API key: the token to hand to the client (shown
// once) and the entry to store.
func NewKey(id, tenant string, scopes []string, expires *time.Time) (token string, k Key, err error) {
	var secret [32]byte
	if _, err := rand.Read(secret[:]); err != nil {
		return "", Key{}, err
	}
	token = keyPrefix + id + "." + base64.RawURLEncoding.EncodeToString(secret[:])
	sum := sha256.Sum256([]byte(token))
	k = Key{ID: id, Tenant: tenant, Scopes: scopes, SHA256: hex.EncodeToString(sum[:]), Expires: expires}
	return token, k, k.validate()
}

// HashedKey returns the stored form of a token the operator chose (dev
// mode); the token need not have the jfk_ form.
func HashedKey(token, id, tenant string, scopes []string) Key {
	sum := sha256.Sum256([]byte(token))
	return Key{ID: id, Tenant: tenant, Scopes: scopes, SHA256: hex.EncodeToString(sum[:])}
}

// LoadKeys reads a key file: {"keys": [Key, ...]} — for example a mounted
// Kubernetes Secret.
func LoadKeys(path string) ([]Key, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read api keys: %w", err)
	}
	var f struct {
		Keys []Key `json:"keys"`
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("parse api keys %s: %w", path, err)
	}
	if len(f.Keys) == 0 {
		return nil, errors.New("api keys file has no keys")
	}
	return f.Keys, nil
}
