package queue

import (
	"context"
	"fmt"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
)

// Limiter is a GCRA rate limiter in Redis (go-redis/redis_rate), shared by
// every API replica.
type Limiter struct{ l *redis_rate.Limiter }

// NewLimiter returns a Limiter on rdb.
func NewLimiter(rdb redis.UniversalClient) *Limiter {
	return &Limiter{l: redis_rate.NewLimiter(rdb)}
}

// Allow takes n tokens from the bucket key, which refills at perSecond with
// a burst of perSecond. When denied it returns how long until n tokens are
// available.
func (l *Limiter) Allow(ctx context.Context, key string, perSecond, n int) (bool, time.Duration, error) {
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
