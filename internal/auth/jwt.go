package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
)

// JWTConfig configures bearer JWT verification.
type JWTConfig struct {
	// JWKS is a file path or an http(s) URL of the signing keys.
	JWKS string
	// Issuer and Audience must match the token's iss and aud.
	Issuer   string
	Audience string
	// Algorithms are the only accepted signing algorithms (e.g. RS256, ES256).
	Algorithms []string
	// TenantClaim names the claim holding the tenant (default "tenant").
	TenantClaim string
}

// JWTVerifier verifies JWTs: pinned algorithms, signature from the JWKS,
// iss, aud, exp (required) and nbf, with 30 s leeway for clock skew. Scopes
// come from the "scope" claim (space-separated) or "scp" (list).
type JWTVerifier struct {
	cfg    JWTConfig
	keys   keyfunc.Keyfunc
	parser *jwt.Parser
}

// NewJWTVerifier loads the JWKS (and, for a URL, keeps it refreshed until
// ctx is done).
func NewJWTVerifier(ctx context.Context, cfg JWTConfig) (*JWTVerifier, error) {
	if cfg.Issuer == "" || cfg.Audience == "" || len(cfg.Algorithms) == 0 {
		return nil, errors.New("jwt: issuer, audience and algorithms are required")
	}
	if cfg.TenantClaim == "" {
		cfg.TenantClaim = "tenant"
	}
	var kf keyfunc.Keyfunc
	var err error
	if strings.HasPrefix(cfg.JWKS, "https://") || strings.HasPrefix(cfg.JWKS, "http://") {
		kf, err = keyfunc.NewDefaultCtx(ctx, []string{cfg.JWKS})
	} else {
		var raw []byte
		if raw, err = os.ReadFile(cfg.JWKS); err == nil {
			kf, err = keyfunc.NewJWKSetJSON(json.RawMessage(raw))
		}
	}
	if err != nil {
		return nil, fmt.Errorf("jwt: load jwks %s: %w", cfg.JWKS, err)
	}
	return &JWTVerifier{
		cfg:  cfg,
		keys: kf,
		parser: jwt.NewParser(
			jwt.WithValidMethods(cfg.Algorithms),
			jwt.WithIssuer(cfg.Issuer),
			jwt.WithAudience(cfg.Audience),
			jwt.WithExpirationRequired(),
			jwt.WithLeeway(30*time.Second),
		),
	}, nil
}

// Verify checks a token and returns its principal.
func (v *JWTVerifier) Verify(_ context.Context, token string) (*Principal, error) {
	claims := jwt.MapClaims{}
	if _, err := v.parser.ParseWithClaims(token, claims, v.keys.Keyfunc); err != nil {
		if errors.Is(err, jwt.ErrTokenExpired) {
			return nil, errExpired
		}
		if errors.Is(err, jwt.ErrTokenNotValidYet) {
			return nil, &Error{Reason: "CREDENTIALS_NOT_YET_VALID", Msg: "token not valid yet"}
		}
		return nil, errInvalid
	}
	tenant, _ := claims[v.cfg.TenantClaim].(string)
	if tenant == "" || !keyID.MatchString(tenant) {
		return nil, &Error{Reason: "CREDENTIALS_INVALID", Msg: fmt.Sprintf("token has no valid %q claim", v.cfg.TenantClaim)}
	}
	sub, _ := claims["sub"].(string)
	var scopes []string
	switch s := claims["scope"].(type) {
	case string:
		scopes = strings.Fields(s)
	}
	switch s := claims["scp"].(type) {
	case []any:
		for _, x := range s {
			if str, ok := x.(string); ok {
				scopes = append(scopes, str)
			}
		}
	case string:
		scopes = append(scopes, strings.Fields(s)...)
	}
	return &Principal{ID: "jwt:" + sub, Tenant: tenant, Scopes: scopes}, nil
}
