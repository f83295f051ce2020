package queue

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
)

// Limiter is a GCRA rate limiter in Redis (go-redis/redis_rate), shared by
// every API replica.
//
// A Redis round trip per request would cost more than the request itself
// at high rates, so for limits of at least leaseMinRate a process takes
// tokens from the shared bucket in leases of 1/leaseDivisor of the
// per-second limit and admits requests from its lease locally; a lease
// unused after leaseTTL is dropped. A process never admits more than the
// bucket granted it, so all replicas together stay within the limit plus at
// most one lease each. When a whole lease is not available the request
// takes exactly its own tokens, as without leasing.
type Limiter struct {
	l *redis_rate.Limiter

	mu     sync.Mutex
	leases map[string]*lease
	now    func() time.Time
}

// lease is a process-local share of a bucket's tokens.
type lease struct {
	tokens  int
	expires time.Time
	// noLeaseUntil is set when the bucket could not grant a whole lease:
	// until then requests take exact tokens without trying for one.
	noLeaseUntil time.Time
}

const (
	leaseMinRate = 100 // below this every request asks Redis
	leaseDivisor = 50  // a lease is 20 ms worth of the limit
	leaseTTL     = time.Second
	maxLeases    = 10_000 // keys whose leases are kept (principals, tenants)
)

// NewLimiter returns a Limiter on rdb.
func NewLimiter(rdb redis.UniversalClient) *Limiter {
	return &Limiter{l: redis_rate.NewLimiter(rdb), leases: map[string]*lease{}, now: time.Now}
}

// fromLease takes n tokens from the local lease of key if it holds them;
// tryLease says whether asking the bucket for a new lease is worthwhile.
func (l *Limiter) fromLease(key string, n int) (ok, tryLease bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ls := l.leases[key]
	if ls == nil {
		return false, true
	}
	now := l.now()
	if ls.tokens >= n && now.Before(ls.expires) {
		ls.tokens -= n
		return true, false
	}
	return false, !now.Before(ls.noLeaseUntil)
}

// leaseDenied records that the bucket of key cannot grant a lease for d.
func (l *Limiter) leaseDenied(key string, d time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ls := l.leases[key]
	if ls == nil {
		if len(l.leases) >= maxLeases {
			return
		}
		ls = &lease{}
		l.leases[key] = ls
	}
	ls.noLeaseUntil = l.now().Add(max(d, time.Millisecond))
}

// addLease keeps the tokens of a new lease of key.
func (l *Limiter) addLease(key string, tokens int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if len(l.leases) >= maxLeases {
		for k, ls := range l.leases {
			if !now.Before(ls.expires) {
				delete(l.leases, k)
			}
		}
		if len(l.leases) >= maxLeases {
			return // the tokens are wasted: the limit still holds
		}
	}
	ls := l.leases[key]
	if ls == nil {
		ls = &lease{}
		l.leases[key] = ls
	}
	if !now.Before(ls.expires) {
		ls.tokens = 0
	}
	ls.tokens += tokens // concurrent requests may each have taken a lease
	ls.expires = now.Add(leaseTTL)
}

// Allow takes n tokens from the bucket key, which refills at perSecond with
// a burst of perSecond. When denied it returns how long until n tokens are
// available.
func (l *Limiter) Allow(ctx context.Context, key string, perSecond, n int) (bool, time.Duration, error) {
	if size := perSecond / leaseDivisor; perSecond >= leaseMinRate && n < size {
		ok, tryLease := l.fromLease(key, n)
		if ok {
			return true, 0, nil
		}
		if tryLease {
			res, err := l.l.AllowN(ctx, keyPrefix+key, redis_rate.PerSecond(perSecond), size)
			if err == nil && res.Allowed >= size {
				l.addLease(key, size-n)
				return true, 0, nil
			}
			if err == nil {
				l.leaseDenied(key, res.RetryAfter)
			}
		}
		// No whole lease left: take exactly n tokens, as without leasing.
	}
	res, err := l.l.AllowN(ctx, keyPrefix+key, redis_rate.PerSecond(perSecond), n)
	if err != nil {
		return false, 0, fmt.Errorf("rate limit: %w", err)
	}
	if res.Allowed >= n {
		return true, 0, nil
	}
	retry := res.RetryAfter
	if retry < 0 { // n exceeds the burst: it will never fit
		retry = time.Second
	}
	return false, retry, nil
}
