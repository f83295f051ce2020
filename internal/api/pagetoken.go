package api

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"

	"github.com/jobforge/jobforge/internal/store"
)

// pageTokens issues and verifies ListJobs page tokens: opaque to clients,
// tamper-evident (HMAC-SHA256 with a secret shared by all API replicas),
// and bound to the tenant and filter they were issued for.
type pageTokens struct{ key []byte }

type pageTokenBody struct {
	Score  int64  `json:"s"`
	ID     string `json:"i"`
	Filter []byte `json:"f"`
	Tenant string `json:"t"`
}

var errBadPageToken = errors.New("invalid page_token: it was not issued by this service for this filter; start again without a page token")

func (p pageTokens) encode(c *store.Cursor, filterHash []byte, tenant string) string {
	body, _ := json.Marshal(pageTokenBody{Score: c.Score, ID: c.ID, Filter: filterHash, Tenant: tenant})
	mac := hmac.New(sha256.New, p.key)
	mac.Write(body)
	return base64.RawURLEncoding.EncodeToString(body) + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

func (p pageTokens) decode(tok string, filterHash []byte, tenant string) (*store.Cursor, error) {
	b64body, b64mac, ok := strings.Cut(tok, ".")
	if !ok {
		return nil, errBadPageToken
	}
	body, err1 := base64.RawURLEncoding.DecodeString(b64body)
	sum, err2 := base64.RawURLEncoding.DecodeString(b64mac)
	if err1 != nil || err2 != nil {
		return nil, errBadPageToken
	}
	mac := hmac.New(sha256.New, p.key)
	mac.Write(body)
	if !hmac.Equal(sum, mac.Sum(nil)) {
		return nil, errBadPageToken
	}
	var t pageTokenBody
	if err := json.Unmarshal(body, &t); err != nil {
		return nil, errBadPageToken
	}
	if !hmac.Equal(t.Filter, filterHash) || t.Tenant != tenant {
		return nil, errors.New("invalid page_token: it belongs to a different filter; start again without a page token")
	}
	return &store.Cursor{Score: t.Score, ID: t.ID}, nil
}
