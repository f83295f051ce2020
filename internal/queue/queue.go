// Package queue is jobforge's storage and queueing layer: the only package
// that talks to Redis. Jobs are queued and executed through asynq; what
// asynq does not keep (state as clients see it, progress, results, attempt
// errors, timestamps) lives in one Redis hash per job under the "jobforge:"
// prefix, written with go-redis.
//
// Every jobforge key of a job carries the job id as a hash tag
// ("jobforge:job:{<id>}") so that a job's keys share one Redis Cluster slot.
package queue

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/jobforge/jobforge/internal/store"
)

const keyPrefix = "jobforge:"

// Task headers jobforge adds to asynq tasks.
const (
	headerTimeout   = "jf-timeout-ms" // per-attempt timeout in milliseconds
	headerRetry     = "jf-retry"      // RetryPolicy.String()
	headerNotBefore = "jf-not-before" // schedule time, Unix microseconds
	headerTenant    = "jf-tenant"     // owner of the job
)

func jobKey(id string) string    { return keyPrefix + "job:{" + id + "}" }
func eventsKey(id string) string { return keyPrefix + "job:{" + id + "}:events" }
func errorsKey(id string) string { return keyPrefix + "job:{" + id + "}:errors" }

// jobKeys are the keys of one job, in the order the lifecycle scripts take.
func jobKeys(id string) []string { return []string{jobKey(id), eventsKey(id), errorsKey(id)} }

// indexKey is a tenant's list index: a sorted set of job ids scored by
// create time in microseconds.
func indexKey(tenant string) string { return keyPrefix + "index:{" + tenant + "}" }

// waitingKey holds a tenant's jobs that have not started (PENDING,
// SCHEDULED), for the per-tenant quota.
func waitingKey(tenant string) string { return keyPrefix + "waiting:{" + tenant + "}" }

// idemKey remembers an idempotency key of a tenant.
func idemKey(tenant, key string) string { return keyPrefix + "idem:{" + tenant + "}:" + key }

// cancelChannel carries the ids of running jobs that were cancelled.
const cancelChannel = keyPrefix + "cancel"

// TLSFiles are optional PEM files for rediss:// connections: a CA bundle
// to verify the server and a client certificate and key.
type TLSFiles struct {
	CA, Cert, Key string
}

func (f TLSFiles) apply(cfg *tls.Config) (*tls.Config, error) {
	if f.CA == "" && f.Cert == "" {
		return cfg, nil
	}
	if cfg == nil {
		cfg = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	if f.CA != "" {
		pem, err := os.ReadFile(f.CA)
		if err != nil {
			return nil, fmt.Errorf("read redis CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("redis CA %s: no certificates", f.CA)
		}
		cfg.RootCAs = pool
	}
	if f.Cert != "" {
		cert, err := tls.LoadX509KeyPair(f.Cert, f.Key)
		if err != nil {
			return nil, fmt.Errorf("load redis client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// Client timeouts. While Redis is unreachable every call must fail fast, so
// that the API answers 503 with a retry hint within a second instead of
// hanging: go-redis's defaults (5 s dial timeout, 3 retries of 5 dial
// attempts each) made a request wait up to 3 s. A refused connection now
// fails in about 100 ms; a Redis that accepts but does not answer, after
// ioTimeout. Blocking reads (watch) get their block time on top.
const (
	dialTimeout     = time.Second
	ioTimeout       = time.Second
	maxRetries      = 1
	dialerRetries   = 2
	dialerRetryWait = 50 * time.Millisecond
)

// Connect opens a go-redis client for a redis://, rediss://, redis-socket://
// or redis-sentinel:// URL and checks that the server answers. tlsFiles
// (optional) configure certificate checks for rediss://.
func Connect(ctx context.Context, url string, tlsFiles ...TLSFiles) (redis.UniversalClient, error) {
	opt, err := asynq.ParseRedisURI(url)
	if err != nil {
		return nil, fmt.Errorf("parse redis url: %w", err)
	}
	if len(tlsFiles) > 0 {
		switch o := opt.(type) {
		case asynq.RedisClientOpt:
			if o.TLSConfig, err = tlsFiles[0].apply(o.TLSConfig); err != nil {
				return nil, err
			}
			opt = o
		case asynq.RedisFailoverClientOpt:
			if o.TLSConfig, err = tlsFiles[0].apply(o.TLSConfig); err != nil {
				return nil, err
			}
			opt = o
		}
	}
	var rdb redis.UniversalClient
	switch o := opt.(type) {
	case asynq.RedisClientOpt:
		rdb = redis.NewClient(&redis.Options{
			Network: o.Network, Addr: o.Addr, Username: o.Username, Password: o.Password, DB: o.DB,
			TLSConfig: o.TLSConfig, PoolSize: o.PoolSize,
			// RESP2: jobforge uses no RESP3 feature, and on RESP3
			// connections go-redis looks for pending push notifications
			// around every command (an extra read on the socket): about a
			// tenth of the CPU of a busy worker or API process.
			Protocol:     2,
			DialTimeout:  dialTimeout,
			ReadTimeout:  ioTimeout,
			WriteTimeout: ioTimeout,
			MaxRetries:   maxRetries, DialerRetries: dialerRetries, DialerRetryTimeout: dialerRetryWait,
		})
	case asynq.RedisFailoverClientOpt:
		rdb = redis.NewFailoverClient(&redis.FailoverOptions{
			MasterName: o.MasterName, SentinelAddrs: o.SentinelAddrs,
			SentinelUsername: o.SentinelUsername, SentinelPassword: o.SentinelPassword,
			Username: o.Username, Password: o.Password, DB: o.DB, TLSConfig: o.TLSConfig, PoolSize: o.PoolSize,
			DialTimeout:  dialTimeout,
			ReadTimeout:  ioTimeout,
			WriteTimeout: ioTimeout,
			MaxRetries:   maxRetries, DialerRetries: dialerRetries, DialerRetryTimeout: dialerRetryWait,
		})
	default:
		return nil, fmt.Errorf("unsupported redis url %q", url)
	}
	pingCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := rdb.Ping(pingCtx).Err(); err != nil {
		_ = rdb.Close()
		return nil, fmt.Errorf("ping redis: %w", err)
	}
	return rdb, nil
}

// IsUnavailable reports whether err means Redis could not be reached (as
// opposed to a bug or a bad request), so callers may answer "retry later".
func IsUnavailable(err error) bool {
	var netErr net.Error
	return errors.As(err, &netErr) ||
		errors.Is(err, redis.ErrClosed) ||
		errors.Is(err, redis.ErrPoolTimeout) ||
		errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, net.ErrClosed)
}

// unavailableError is an error that means Redis could not be reached,
// marked so that callers on the other side of the store seam can tell it
// (errors.Is(err, store.ErrUnavailable)) without knowing Redis's errors.
type unavailableError struct{ err error }

func (e *unavailableError) Error() string   { return e.err.Error() }
func (e *unavailableError) Unwrap() []error { return []error{e.err, store.ErrUnavailable} }

// markUnavailable marks *err if it means Redis could not be reached. Every
// method of the store seam defers it.
func markUnavailable(err *error) {
	if *err != nil && IsUnavailable(*err) && !errors.Is(*err, store.ErrUnavailable) {
		*err = &unavailableError{*err}
	}
}

// Client is the Redis client the queue layer uses; callers only pass it
// around and close it.
type Client = redis.UniversalClient
