package queue

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"
)

// pipelined runs a pipeline that calls scripts by SHA. Scripts are loaded
// on first use and again after Redis lost them (restart, failover), and
// the pipeline is then sent once more; its commands are idempotent. A
// script returning nil (redis.Nil) is not a pipeline failure: callers read
// it from their command.
func pipelined(ctx context.Context, rdb redis.UniversalClient, build func(redis.Pipeliner)) error {
	for try := 0; ; try++ {
		pipe := rdb.Pipeline()
		build(pipe)
		_, err := pipe.Exec(ctx)
		if err == nil || errors.Is(err, redis.Nil) {
			return nil
		}
		if try > 0 || !strings.HasPrefix(err.Error(), "NOSCRIPT") {
			return err
		}
		if err := loadScripts(ctx, rdb); err != nil {
			return err
		}
	}
}

// loadScripts loads every lifecycle script, for pipelines that call them by
// SHA (pipelines cannot fall back from EVALSHA to EVAL per command).
func loadScripts(ctx context.Context, rdb redis.Scripter) error {
	for _, sc := range []*redis.Script{createScript, startScript, progressScript, finishScript, cancelScript, retryScript} {
		if err := sc.Load(ctx, rdb).Err(); err != nil {
			return fmt.Errorf("load script: %w", err)
		}
	}
	return nil
}

// Lua scripts that move a job through its lifecycle. Each runs in one round
// trip, touches only the keys of one job (one hash tag, so one Redis Cluster
// slot), appends the matching event to the job's stream, and refuses to
// overwrite a terminal state, so a late write from a slow or duplicate
// attempt cannot resurrect a finished job.
//
// Keys: KEYS[1] record hash, KEYS[2] event stream, KEYS[3] attempt-error list.
// Event fields: k kind (S state, P progress), s state, a attempt, t time (µs),
// p percent, m message, r result, e error (JSON).
var (
	// ARGV now_us, state, tenant, field, value, ... Returns 0 when the
	// record already exists (deterministic ids: schedules, idempotency).
	createScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'tenant', ARGV[3], unpack(ARGV, 4))
redis.call('XADD', KEYS[2], 'MAXLEN', '~', 1000, '*', 'k', 'S', 's', ARGV[2], 'a', 0, 't', ARGV[1])
return 1`)

	// ARGV now_us. Returns {state, attempt}, or false when the record is gone.
	startScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
local st = redis.call('HGET', KEYS[1], 'state')
if st == 'SUCCEEDED' or st == 'FAILED' or st == 'CANCELLED' then return {st, 0} end
local n = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
redis.call('HSET', KEYS[1], 'state', 'RUNNING', 'start_us', ARGV[1], 'update_us', ARGV[1])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', 1000, '*', 'k', 'S', 's', 'RUNNING', 'a', n, 't', ARGV[1])
return {'RUNNING', n}`)

	// ARGV percent, message, now_us. Returns 0 when the job is no longer
	// RUNNING (e.g. cancelled): the worker then stops the handler.
	progressScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'state') ~= 'RUNNING' then return 0 end
redis.call('HSET', KEYS[1], 'progress_pct', ARGV[1], 'progress_msg', ARGV[2], 'progress_us', ARGV[3], 'update_us', ARGV[3])
local a = redis.call('HGET', KEYS[1], 'attempts')
redis.call('XADD', KEYS[2], 'MAXLEN', '~', 1000, '*', 'k', 'P', 'p', ARGV[1], 'm', ARGV[2], 'a', a, 't', ARGV[3])
return 1`)

	// ARGV state, now_us, retention_s, expire_us, result, error. Empty
	// result/error are not written. Returns the state after the call.
	finishScript = redis.NewScript(`
local st = redis.call('HGET', KEYS[1], 'state')
if not st then return false end
if st ~= 'RUNNING' then return st end
local a = redis.call('HGET', KEYS[1], 'attempts')
redis.call('HSET', KEYS[1], 'state', ARGV[1], 'update_us', ARGV[2])
local ev = {'k', 'S', 's', ARGV[1], 'a', a, 't', ARGV[2]}
if ARGV[5] ~= '' then
  redis.call('HSET', KEYS[1], 'result', ARGV[5])
  table.insert(ev, 'r'); table.insert(ev, ARGV[5])
end
if ARGV[6] ~= '' then
  redis.call('HSET', KEYS[1], 'error', ARGV[6])
  redis.call('RPUSH', KEYS[3], ARGV[6])
  redis.call('LTRIM', KEYS[3], -10, -1)
  table.insert(ev, 'e'); table.insert(ev, ARGV[6])
end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', 1000, '*', unpack(ev))
if ARGV[1] == 'SUCCEEDED' or ARGV[1] == 'FAILED' then
  redis.call('HSET', KEYS[1], 'end_us', ARGV[2], 'expire_us', ARGV[4])
  if ARGV[1] == 'SUCCEEDED' then redis.call('HSET', KEYS[1], 'progress_pct', 100, 'progress_us', ARGV[2]) end
  redis.call('EXPIRE', KEYS[1], ARGV[3])
  redis.call('EXPIRE', KEYS[2], ARGV[3])
  redis.call('EXPIRE', KEYS[3], ARGV[3])
end
return ARGV[1]`)

	// ARGV tenant, now_us, retention_s, expire_us, reason, requested_by.
	// Returns {1, previous state} when cancelled, {0, state} when already
	// finished, false when absent.
	cancelScript = redis.NewScript(`
local st = redis.call('HGET', KEYS[1], 'state')
if not st or redis.call('HGET', KEYS[1], 'tenant') ~= ARGV[1] then return false end
if st == 'SUCCEEDED' or st == 'FAILED' or st == 'CANCELLED' then return {0, st} end
redis.call('HSET', KEYS[1], 'state', 'CANCELLED', 'update_us', ARGV[2], 'end_us', ARGV[2], 'expire_us', ARGV[4],
  'cancel_reason', ARGV[5], 'cancel_by', ARGV[6], 'cancel_us', ARGV[2])
local a = redis.call('HGET', KEYS[1], 'attempts')
redis.call('XADD', KEYS[2], 'MAXLEN', '~', 1000, '*', 'k', 'S', 's', 'CANCELLED', 'a', a, 't', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[3])
redis.call('EXPIRE', KEYS[3], ARGV[3])
return {1, st}`)

	// ARGV tenant, now_us. Returns {1, previous state} when the job is
	// PENDING again, {0, state} when it is not FAILED or CANCELLED, false
	// when absent.
	retryScript = redis.NewScript(`
local st = redis.call('HGET', KEYS[1], 'state')
if not st or redis.call('HGET', KEYS[1], 'tenant') ~= ARGV[1] then return false end
if st ~= 'FAILED' and st ~= 'CANCELLED' then return {0, st} end
redis.call('HSET', KEYS[1], 'state', 'PENDING', 'update_us', ARGV[2])
redis.call('HDEL', KEYS[1], 'end_us', 'expire_us', 'result', 'cancel_reason', 'cancel_by', 'cancel_us',
  'progress_pct', 'progress_msg', 'progress_us', 'schedule_us')
redis.call('PERSIST', KEYS[1])
redis.call('PERSIST', KEYS[2])
redis.call('PERSIST', KEYS[3])
local a = redis.call('HGET', KEYS[1], 'attempts')
redis.call('XADD', KEYS[2], 'MAXLEN', '~', 1000, '*', 'k', 'S', 's', 'PENDING', 'a', a, 't', ARGV[2])
return {1, st}`)
)
