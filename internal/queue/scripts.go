package queue

import (
	"context"
	"errors"
	"fmt"
	"strconv"
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
	for _, sc := range []*redis.Script{createScript, startScript, progressScript, finishScript, cancelScript, retryScript, removeScript, interruptScript, recoverScript} {
		if err := sc.Load(ctx, rdb).Err(); err != nil {
			return fmt.Errorf("load script: %w", err)
		}
	}
	return nil
}

// Lua scripts that move a job through its lifecycle. Each runs in one round
// trip, touches only keys of the job's queue (one hash tag, so one Redis
// Cluster slot: the job's keys and asynq's keys of its queue), appends the matching event to the job's stream, and refuses to
// overwrite a terminal state, so a late write from a slow or duplicate
// attempt cannot resurrect a finished job.
//
// Keys: KEYS[1] record hash, KEYS[2] event stream, KEYS[3] attempt-error list.
// Event fields: k kind (S state, P progress), s state, a attempt, t time (µs),
// p percent, m message, r result, e error (JSON).
var (
	// createScript writes whole new jobs, each in one step: the
	// idempotency key, the record, the tenant's index and waiting-set
	// entries and the asynq task (see asynqlayout.go), so that no crash at
	// any point leaves a key without a job or a job without a task. It
	// writes no event: the event stream starts with the first change after
	// the create (a watch starts with a snapshot of the record), as
	// creating a Redis stream per job cost almost half of the script's
	// Redis time (XADD ~22 µs of ~48 µs).
	//
	// One call writes several jobs of one queue (one slot), one after the
	// other, each checked before it is written: a job whose check fails is
	// answered and skipped, the others go on. Every redis.call costs Redis
	// about as much again as the command's own work (the call's
	// bookkeeping, its arguments and reply converted to and from Lua), and
	// so does the script call itself: the jobs of one call share the call,
	// the quota's ZCARD, and one ZADD or LPUSH per key for the index,
	// waiting-set and asynq list entries, made at the end of the script —
	// still within it, so each job is written whole or not at all. (A
	// script's first write is the only one Redis refuses for memory; an
	// error in a later one would be a programming error.)
	//
	// KEYS, six per job (all in the queue's slot): 1 record, 2 index, 3
	// waiting set, 4 idempotency key (the record key when there is none), 5
	// asynq task, 6 asynq pending list or scheduled set. (asynq's set of
	// queues has a slot of its own: Store.registerQueue adds to it.)
	// ARGV: 1 idempotency window ms, 2 waiting-job quota (0 for none), 3
	// now in Unix nanoseconds (asynq's pending_since), 4 the queue, 5 the
	// wake-up channel (a call that enqueued a job to run now publishes the
	// queue there once, in the same round trip: see wakeup.go); then per
	// job (createJobArgs): n (the number of extra record field arguments),
	// now_us, idempotency value ("" for none), task message, job id,
	// process-at Unix seconds ("" to run now: the job is PENDING, else
	// SCHEDULED), the record's tenant, type, payload, max_attempts and
	// timeout_ms; then n extra field names and values (schedule, labels,
	// retry policy, idempotency key). The fixed record fields are named
	// here, not sent, and what the script can derive (the queue, the state)
	// is not sent either: each argument costs Redis a Lua string and the
	// API a RESP write (record.go has the names; the store's tests read
	// every field back).
	// Returns one reply per job: 1 when created, 0 when the id exists
	// already (deterministic ids: schedules), the key's value "<job id>
	// <request hash>" when the idempotency key is taken, 3 when the quota
	// is full, 4 when an asynq task with the job's id exists without a
	// record (never written over: the job would have no task of its own).
	// (Flat replies and no helper taking varargs: a table per job cost
	// Redis a sixth of the script's time.)
	createScript = redis.NewScript(`
local createJobArgs = ` + strconv.Itoa(createJobArgs) + `
local call = redis.call
local out = {}
local quota = tonumber(ARGV[2])
local waiting = {}          -- waiting-set key -> jobs in it
local zadd, znx = {}, {}    -- key -> score, member, ... to add (znx: NX)
local lpush = {}            -- pending list -> ids
local function add(t, key, x, y)
  local l = t[key]
  if not l then l = {} t[key] = l end
  l[#l+1] = x
  if y then l[#l+1] = y end
end
local a = 6
for k = 0, #KEYS - 1, 6 do
  local n = tonumber(ARGV[a])
  local idem = ARGV[a+2]
  local r
  if idem ~= '' then r = call('GET', KEYS[k+4]) end
  if not r and call('EXISTS', KEYS[k+1], KEYS[k+5]) > 0 then
    if call('EXISTS', KEYS[k+1]) == 1 then r = 0 else r = 4 end
  end
  local wk = KEYS[k+3]
  if not r and quota > 0 then
    local w = waiting[wk]
    if not w then w = call('ZCARD', wk) waiting[wk] = w end
    if w >= quota then r = 3 end
  end
  if not r then
    local id, now, at = ARGV[a+4], ARGV[a+1], ARGV[a+5]
    if idem ~= '' then call('SET', KEYS[k+4], idem, 'PX', ARGV[1]) end
    call('HSET', KEYS[k+1], 'tenant', ARGV[a+6], 'type', ARGV[a+7], 'queue', ARGV[4],
      'state', at == '' and 'PENDING' or 'SCHEDULED', 'payload', ARGV[a+8], 'max_attempts', ARGV[a+9],
      'attempts', '0', 'timeout_ms', ARGV[a+10], 'create_us', now, 'update_us', now, unpack(ARGV, a+11, a+10+n))
    add(znx, KEYS[k+2], now, id)
    add(znx, wk, now, id)
    if waiting[wk] then waiting[wk] = waiting[wk] + 1 end
    if at == '' then
      call('HSET', KEYS[k+5], 'msg', ARGV[a+3], 'state', 'pending', 'pending_since', ARGV[3])
      add(lpush, KEYS[k+6], id)
    else
      call('HSET', KEYS[k+5], 'msg', ARGV[a+3], 'state', 'scheduled')
      add(zadd, KEYS[k+6], at, id)
    end
    r = 1
  end
  out[#out+1] = r
  a = a + createJobArgs + n
end
for key, l in pairs(znx) do call('ZADD', key, 'NX', unpack(l)) end
for key, l in pairs(zadd) do call('ZADD', key, unpack(l)) end
for key, l in pairs(lpush) do call('LPUSH', key, unpack(l)) end
if next(lpush) then call('PUBLISH', ARGV[5], ARGV[4]) end
return out`)

	// startScript marks a job RUNNING on worker ARGV[2] and counts the
	// attempt. A job that is RUNNING already lost its previous attempt
	// without an outcome (its worker shut down and asynq requeued the
	// task): that attempt is taken over and not counted twice, and the
	// previous worker's late writes are refused (they name another worker).
	//
	// ARGV now_us, worker id. Returns {state, attempt, budget base,
	// max_attempts}, or false when the record is gone.
	startScript = redis.NewScript(`
local v = redis.call('HMGET', KEYS[1], 'state', 'attempts', 'budget_base', 'max_attempts')
local st = v[1]
if not st then return false end
if st == 'SUCCEEDED' or st == 'FAILED' or st == 'CANCELLED' then return {st, 0, 0, 0} end
local n = tonumber(v[2] or '0')
if st ~= 'RUNNING' then
  n = n + 1
  redis.call('HSET', KEYS[1], 'attempts', n)
end
redis.call('HSET', KEYS[1], 'state', 'RUNNING', 'start_us', ARGV[1], 'update_us', ARGV[1], 'worker', ARGV[2])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', 1000, '*', 'k', 'S', 's', 'RUNNING', 'a', n, 't', ARGV[1])
return {'RUNNING', n, tonumber(v[3] or '0'), tonumber(v[4] or '1')}`)

	// ARGV percent, message, now_us, worker id. Returns 1 when recorded, 0
	// when the job is no longer RUNNING (e.g. cancelled: the worker then
	// stops the handler), -1 when another worker holds the job now.
	progressScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'state') ~= 'RUNNING' then return 0 end
if redis.call('HGET', KEYS[1], 'worker') ~= ARGV[4] then return -1 end
redis.call('HSET', KEYS[1], 'progress_pct', ARGV[1], 'progress_msg', ARGV[2], 'progress_us', ARGV[3], 'update_us', ARGV[3])
local a = redis.call('HGET', KEYS[1], 'attempts')
redis.call('XADD', KEYS[2], 'MAXLEN', '~', 1000, '*', 'k', 'P', 'p', ARGV[1], 'm', ARGV[2], 'a', a, 't', ARGV[3])
return 1`)

	// ARGV state, now_us, retention_s, expire_us, result, error, worker id.
	// Empty result/error are not written. Returns the state after the
	// call, or "FENCED" when another worker holds the job now (this
	// attempt's outcome is refused).
	finishScript = redis.NewScript(`
local v = redis.call('HMGET', KEYS[1], 'state', 'worker', 'attempts')
local st = v[1]
if not st then return false end
if st ~= 'RUNNING' then return st end
if v[2] ~= ARGV[7] then return 'FENCED' end
local a = v[3]
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

	// interruptScript gives back the attempt of a job whose worker is
	// shutting down before the handler finished: asynq has put the task
	// back in its queue, and the job is PENDING again without having used
	// an attempt. Nothing changes when another worker took the job over.
	//
	// ARGV worker id, attempt, now_us, error JSON. Returns 1 when the
	// attempt was given back.
	interruptScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'state') ~= 'RUNNING' then return 0 end
if redis.call('HGET', KEYS[1], 'worker') ~= ARGV[1] then return 0 end
if redis.call('HGET', KEYS[1], 'attempts') ~= ARGV[2] then return 0 end
local a = redis.call('HINCRBY', KEYS[1], 'attempts', -1)
redis.call('HSET', KEYS[1], 'state', 'PENDING', 'update_us', ARGV[3])
redis.call('RPUSH', KEYS[3], ARGV[4])
redis.call('LTRIM', KEYS[3], -10, -1)
redis.call('XADD', KEYS[2], 'MAXLEN', '~', 1000, '*', 'k', 'S', 's', 'PENDING', 'a', a, 't', ARGV[3], 'e', ARGV[4])
return 1`)

	// recoverScript returns a task whose lease went stale (its worker
	// stopped extending it) to its queue, consistently with asynq's own
	// bookkeeping (active list, lease set, task state), so asynq's
	// recoverer later finds nothing to redo:
	//   - a RUNNING job whose worker stopped heartbeating lost its attempt:
	//     the attempt is given back and counted as lost instead; after
	//     ARGV[5] lost attempts (since the last retry) the job FAILS with
	//     reason WORKER_LOST, so a job that kills its worker stops
	//     crash-looping the fleet;
	//   - a job that was taken but not started yet goes back as it is;
	//   - a RUNNING job whose worker is alive but no longer holds the task
	//     (it gave the attempt up: Redis was unreachable for longer than its
	//     write retries) gets the attempt back, not counted as lost;
	//   - a finished job (its worker died before acknowledging the task)
	//     has its task removed.
	//
	// KEYS: 1 record, 2 events, 3 errors, 4 asynq task, 5 active, 6 lease,
	// 7 pending (one queue's slot).
	// ARGV: 1 job id, 2 now_us, 3 stale lease score (Unix s), 4 now_ms,
	// 5 lost-attempt limit, 6 retention_s, 7 expire_us, 8 now (RFC 3339),
	// 9 lease score below which a live worker's task counts as given up,
	// 10... the ids of the workers that heartbeat (read just before: the
	// heartbeats have a slot of their own).
	// Returns "fresh", "requeued", "lost", "abandoned", "failed" or "acked".
	recoverScript = redis.NewScript(`
local ls = redis.call('ZSCORE', KEYS[6], ARGV[1])
if not ls or tonumber(ls) > tonumber(ARGV[3]) then return 'fresh' end
local st = redis.call('HGET', KEYS[1], 'state')
local function release()
  redis.call('LREM', KEYS[5], 0, ARGV[1])
  redis.call('ZREM', KEYS[6], ARGV[1])
end
local function requeue()
  release()
  redis.call('RPUSH', KEYS[7], ARGV[1])
  redis.call('HSET', KEYS[4], 'state', 'pending')
end
if not st or st == 'SUCCEEDED' or st == 'FAILED' or st == 'CANCELLED' then
  release()
  redis.call('DEL', KEYS[4])
  return 'acked'
end
if st ~= 'RUNNING' then
  requeue()
  return 'requeued'
end
local w = redis.call('HGET', KEYS[1], 'worker') or ''
local a = tonumber(redis.call('HGET', KEYS[1], 'attempts') or '1')
local alive = false
for i = 10, #ARGV do
  if ARGV[i] == w then alive = true; break end
end
if alive then
  -- The worker is alive, so it would have extended the lease of a task it
  -- still held (heartbeat and leases are written together): once the lease
  -- is staler still (ARGV[9]: two more seconds, beyond the one-second
  -- precision of lease scores), it gave the attempt up without an outcome
  -- (Redis was unreachable for longer than its write retries). Give the
  -- attempt back; not a lost worker.
  if tonumber(ls) > tonumber(ARGV[9]) then return 'fresh' end
  local e = cjson.encode({message = 'attempt abandoned: worker ' .. w .. ' could not record it (Redis unreachable); the job was put back in its queue',
    attempt = a, time = ARGV[8], lost = true})
  redis.call('RPUSH', KEYS[3], e)
  redis.call('LTRIM', KEYS[3], -10, -1)
  redis.call('HINCRBY', KEYS[1], 'attempts', -1)
  redis.call('HSET', KEYS[1], 'state', 'PENDING', 'update_us', ARGV[2])
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', 1000, '*', 'k', 'S', 's', 'PENDING', 'a', a - 1, 't', ARGV[2], 'e', e)
  requeue()
  return 'abandoned'
end
local lost = redis.call('HINCRBY', KEYS[1], 'lost', 1)
local lostBase = tonumber(redis.call('HGET', KEYS[1], 'lost_base') or '0')
local failed = lost - lostBase >= tonumber(ARGV[5])
local msg = 'worker lost (' .. w .. ' stopped heartbeating)'
if failed then
  msg = msg .. '; the job lost ' .. (lost - lostBase) .. ' attempts to workers that stopped: WORKER_LOST'
end
local ej = {message = msg, attempt = a, time = ARGV[8], lost = true}
if failed then ej.permanent = true; ej.reason = 'WORKER_LOST' end
local e = cjson.encode(ej)
redis.call('RPUSH', KEYS[3], e)
redis.call('LTRIM', KEYS[3], -10, -1)
redis.call('HSET', KEYS[1], 'error', e, 'update_us', ARGV[2])
if failed then
  redis.call('HSET', KEYS[1], 'state', 'FAILED', 'fail_reason', 'WORKER_LOST', 'end_us', ARGV[2], 'expire_us', ARGV[7])
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', 1000, '*', 'k', 'S', 's', 'FAILED', 'a', a, 't', ARGV[2], 'e', e)
  redis.call('EXPIRE', KEYS[1], ARGV[6])
  redis.call('EXPIRE', KEYS[2], ARGV[6])
  redis.call('EXPIRE', KEYS[3], ARGV[6])
  release()
  redis.call('DEL', KEYS[4])
  return 'failed'
end
redis.call('HINCRBY', KEYS[1], 'attempts', -1)
redis.call('HSET', KEYS[1], 'state', 'PENDING')
redis.call('XADD', KEYS[2], 'MAXLEN', '~', 1000, '*', 'k', 'S', 's', 'PENDING', 'a', a - 1, 't', ARGV[2], 'e', e)
requeue()
return 'lost'`)

	// KEYS: 1 record, 2 events, 3 errors, 4 the tenant's waiting set.
	// ARGV tenant, now_us, retention_s, expire_us, reason, requested_by,
	// job id. Returns {1, previous state, record (HGETALL), attempt errors}
	// when cancelled, {0, state} when already finished, false when absent.
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
redis.call('ZREM', KEYS[4], ARGV[7])
return {1, st, redis.call('HGETALL', KEYS[1]), redis.call('LRANGE', KEYS[3], 0, -1)}`)

	// retryScript runs a FAILED or CANCELLED job again: the record becomes
	// PENDING with a fresh attempt budget (attempts and lost attempts so far
	// become the base the limits count from) and the job's old asynq task
	// is replaced by a new one, in one step.
	//
	// KEYS (one queue's slot): 1 record, 2 events, 3 waiting set, 4 asynq
	// task, 5 pending, 6 archived, 7 retry, 8 scheduled, 9 active.
	// ARGV: 1 tenant, 2 now_us, 3 task message, 4 job id, 5 queue,
	// 6 now in Unix nanoseconds, 7 the wake-up channel (the queue is
	// published there, as createScript does).
	// Returns {1, previous state} when the job is PENDING again, {0, state}
	// when it is not FAILED or CANCELLED, {0, 'RUNNING', 'held'} while the
	// worker of its last attempt still holds the task (a cancelled attempt
	// still stopping, or an outcome not yet acknowledged), false when absent.
	retryScript = redis.NewScript(`
local st = redis.call('HGET', KEYS[1], 'state')
if not st or redis.call('HGET', KEYS[1], 'tenant') ~= ARGV[1] then return false end
if st ~= 'FAILED' and st ~= 'CANCELLED' then return {0, st} end
if redis.call('LPOS', KEYS[9], ARGV[4]) then return {0, 'RUNNING', 'held'} end
redis.call('HSET', KEYS[1], 'state', 'PENDING', 'update_us', ARGV[2],
  'budget_base', redis.call('HGET', KEYS[1], 'attempts') or 0, 'lost_base', redis.call('HGET', KEYS[1], 'lost') or 0)
redis.call('HDEL', KEYS[1], 'end_us', 'expire_us', 'result', 'cancel_reason', 'cancel_by', 'cancel_us',
  'progress_pct', 'progress_msg', 'progress_us', 'schedule_us', 'fail_reason')
redis.call('PERSIST', KEYS[1])
redis.call('PERSIST', KEYS[2])
local a = redis.call('HGET', KEYS[1], 'attempts')
redis.call('XADD', KEYS[2], 'MAXLEN', '~', 1000, '*', 'k', 'S', 's', 'PENDING', 'a', a, 't', ARGV[2])
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[4])
redis.call('LREM', KEYS[5], 0, ARGV[4])
redis.call('ZREM', KEYS[6], ARGV[4])
redis.call('ZREM', KEYS[7], ARGV[4])
redis.call('ZREM', KEYS[8], ARGV[4])
redis.call('DEL', KEYS[4])
redis.call('HSET', KEYS[4], 'msg', ARGV[3], 'state', 'pending', 'pending_since', ARGV[6])
redis.call('LPUSH', KEYS[5], ARGV[4])
redis.call('PUBLISH', ARGV[7], ARGV[5])
return {1, st, redis.call('HGETALL', KEYS[1])}`)

	// removeScript deletes a job created by an all-or-nothing batch whose
	// other items failed, with its task if no worker took it yet.
	//
	// KEYS: 1 record, 2 events, 3 errors, 4 index, 5 waiting set,
	// 6 idempotency key (the record key when there is none), 7 asynq task,
	// 8 pending, 9 scheduled (one queue's slot). ARGV: 1 job id.
	removeScript = redis.NewScript(`
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
redis.call('ZREM', KEYS[4], ARGV[1])
redis.call('ZREM', KEYS[5], ARGV[1])
local v = redis.call('GET', KEYS[6])
if v and string.sub(v, 1, #ARGV[1] + 1) == ARGV[1] .. ' ' then redis.call('DEL', KEYS[6]) end
if redis.call('LREM', KEYS[8], 0, ARGV[1]) + redis.call('ZREM', KEYS[9], ARGV[1]) > 0 then
  redis.call('DEL', KEYS[7])
end
return 1`)
)
