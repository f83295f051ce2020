//go:build faults

package faults_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/jobforge/jobforge/internal/redistest"
)

// pickupBound is how soon after a failover workers run new jobs again.
const (
	pickupBound      = 2 * time.Second
	failoverLoad     = 3 * time.Second // load before the failover and after the switch
	failoverClients  = 4
	failoverMaster   = "jobforge"
	failoverDeadline = 30 * time.Second
)

// TestSentinelFailoverUnderSubmitLoad runs the API and a worker through a
// sentinel (redis-sentinel://) against a primary with one replica, and
// fails the primary over (SENTINEL FAILOVER) under a steady stream of
// creates. Clients do what the API asks of them: each create carries an
// idempotency key and is retried with it after a 503 until acknowledged.
//
// With the durability setting on (-redis-min-replicas 1) every
// acknowledged job must survive; without it the test reports how many were
// lost (the writes the old primary took after the replica was promoted).
// Either way workers must run new jobs within pickupBound of the switch,
// and no request may fail with anything but a 503.
func TestSentinelFailoverUnderSubmitLoad(t *testing.T) {
	failoverWithAndWithoutDurability(t, "sentinel failover", sentinelTopology)
}

// TestClusterFailoverUnderSubmitLoad is the same on a Redis Cluster of
// three masters with a replica each: the master that serves the load's
// queue is killed (kill -9), the Cluster promotes its replica once the
// other masters see it fail (node timeout 2 s), and the killed node comes
// back as the new master's replica.
func TestClusterFailoverUnderSubmitLoad(t *testing.T) {
	failoverWithAndWithoutDurability(t, "cluster master failover", clusterTopology)
}

// failoverWithAndWithoutDurability runs failover on topo with the
// durability setting on, then off; what names the scenario in the figures.
func failoverWithAndWithoutDurability(t *testing.T, what string, topo topology) {
	for _, durable := range []bool{true, false} {
		name := "durability off"
		if durable {
			name = "durability on"
		}
		t.Run(name, func(t *testing.T) { failover(t, what+", "+name, topo, durable) })
	}
}

// A topology starts Redis with a replica and returns a node (for the
// harness), the URL the processes use, and fail, which fails the primary
// over and returns when the replica has taken its place.
type topology func(t *testing.T) (node *redistest.Server, url string, fail func() (switchAt time.Time, replicaBack func() time.Time))

func sentinelTopology(t *testing.T) (*redistest.Server, string, func() (time.Time, func() time.Time)) {
	ctx := context.Background()
	primary := redistest.NewServer(t, redistest.Durable())
	_, port, err := net.SplitHostPort(primary.Addr())
	require.NoError(t, err)
	replica := redistest.NewServer(t, redistest.Durable(), redistest.Args("--replicaof", "127.0.0.1", port))
	sentinel := redistest.NewSentinel(t, primary, redistest.SentinelOptions{MasterName: failoverMaster})
	sc := redis.NewSentinelClient(&redis.Options{Addr: sentinel.Addr()})
	t.Cleanup(func() { _ = sc.Close() })
	// The sentinel learns of the replica from the primary; a failover
	// needs it to know one that is in sync.
	redistest.Eventually(t, 20*time.Second, func() bool {
		rs, err := sc.Replicas(ctx, failoverMaster).Result()
		return err == nil && len(rs) == 1 && rs[0]["flags"] == "slave" && rs[0]["master-link-status"] == "ok"
	}, "the sentinel does not know the replica")
	fail := func() (time.Time, func() time.Time) {
		require.NoError(t, sc.Failover(ctx, failoverMaster).Err())
		var switchAt time.Time
		redistest.Eventually(t, failoverDeadline, func() bool {
			addr, err := sc.GetMasterAddrByName(ctx, failoverMaster).Result()
			if err == nil && len(addr) == 2 && net.JoinHostPort(addr[0], addr[1]) == replica.Addr() {
				switchAt = time.Now()
				return true
			}
			return false
		}, "the sentinel did not promote the replica")
		return switchAt, watchReplicaSync(t, replica.Addr())
	}
	return primary, fmt.Sprintf("redis-sentinel://%s/0?master=%s", sentinel.Addr(), failoverMaster), fail
}

func clusterTopology(t *testing.T) (*redistest.Server, string, func() (time.Time, func() time.Time)) {
	ctx := context.Background()
	rc := redistest.NewCluster(t, redistest.ClusterOptions{Replicas: 1, Durable: true})
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: rc.Addrs()})
	t.Cleanup(func() { _ = cc.Close() })
	// The master of the load's queue ("default") and its replica.
	master, err := cc.MasterForKey(ctx, "asynq:{default}:pending")
	require.NoError(t, err)
	masterAddr := master.Options().Addr
	replicas, err := rc.ReplicasOf(masterAddr)
	require.NoError(t, err)
	require.Len(t, replicas, 1, "replicas of %s", masterAddr)
	replicaAddr := replicas[0]
	// Another master watches the promotion.
	var witness string
	for _, n := range rc.Nodes {
		if a := n.Addr(); a != masterAddr && rc.IsMaster(a, a) {
			witness = a
		}
	}
	killed := rc.Node(masterAddr)
	fail := func() (time.Time, func() time.Time) {
		killed.Stop()
		var switchAt time.Time
		redistest.Eventually(t, failoverDeadline, func() bool {
			if rc.IsMaster(witness, replicaAddr) {
				switchAt = time.Now()
				return true
			}
			return false
		}, "the Cluster did not promote the replica")
		// The killed node comes back (its pod restarted) and rejoins as
		// the new master's replica: until then a create that waits for a
		// replica is refused with 503.
		require.NoError(t, killed.Start())
		return switchAt, watchReplicaSync(t, replicaAddr)
	}
	return killed, rc.URL(), fail
}

func failover(t *testing.T, scenario string, topo topology, durable bool) {
	node, url, fail := topo(t)
	c := newClusterOn(t, node, url)
	if durable {
		c.apiEnv = []string{"JOBFORGE_REDIS_MIN_REPLICAS=1", "JOBFORGE_REDIS_REPLICA_TIMEOUT=300ms"}
	}
	c.startAPI()
	c.startWorker(nil, "-concurrency", "16")

	var (
		mu         sync.Mutex
		names      []string
		steady     []time.Duration    // latency of the acknowledged creates sent before the failover
		acked      []time.Time        // when each create was acknowledged
		failoverAt time.Time          // set under mu
		codes      = map[string]int{} // replies other than 200, by status
		unacked    int                // creates still refused when the load stopped
		wg         sync.WaitGroup
		stop       = make(chan struct{})
		stopped    = func() bool {
			select {
			case <-stop:
				return true
			default:
				return false
			}
		}
	)
	for range failoverClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stopped() {
				key := rand.Text()
				for {
					name, r := c.create(simulate{durationMillis: 20}, "Idempotency-Key", key)
					if name != "" {
						mu.Lock()
						names = append(names, name)
						acked = append(acked, time.Now())
						if failoverAt.IsZero() || r.start.Before(failoverAt) {
							steady = append(steady, r.latency)
						}
						mu.Unlock()
						break
					}
					mu.Lock()
					if r.err != nil {
						codes["no answer"]++
					} else {
						codes[strconv.Itoa(r.code)]++
					}
					mu.Unlock()
					if stopped() {
						mu.Lock()
						unacked++
						mu.Unlock()
						break
					}
					// Sooner than the 503's one-second Retry-After: the
					// failover window is about a second long.
					time.Sleep(100 * time.Millisecond)
				}
			}
		}()
	}
	stopLoad := func() {
		if !stopped() {
			close(stop)
			wg.Wait()
		}
	}
	t.Cleanup(stopLoad)

	<-time.After(failoverLoad) // load shape, not a wait for a condition
	mu.Lock()
	before := len(names)
	failoverAt = time.Now()
	mu.Unlock()
	switchAt, replicaBack := fail()
	// Load goes on until creates are acknowledged again (with the
	// durability setting, once the new primary has a replica in sync), and
	// for failoverLoad after that.
	redistest.Eventually(t, failoverDeadline, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(acked) > 0 && acked[len(acked)-1].After(switchAt)
	}, "no create was acknowledged after the switch")
	<-time.After(failoverLoad)
	stopLoad()

	final, _, lost := c.settle(names, time.Now().Add(time.Minute), nil)
	led := c.ledger()
	// Pickup: the first attempt any job started after the switch.
	pickup := time.Duration(-1)
	for _, j := range final {
		if st := j.time("startTime"); st.After(switchAt) && (pickup < 0 || st.Sub(switchAt) < pickup) {
			pickup = st.Sub(switchAt)
		}
	}
	dup := twice(led, names)
	// Creates resume: the first acknowledged after the switch.
	resume := time.Duration(-1)
	for _, at := range acked {
		if at.After(switchAt) {
			resume = at.Sub(switchAt)
			break
		}
	}
	slices.Sort(steady)
	refused := codes["503"]
	others := 0
	for code, n := range codes {
		if code != "503" {
			others += n
		}
	}
	report(scenario,
		"acknowledged", len(names), "before_failover", before, "lost", len(lost), "executed_twice", len(dup),
		"refused_503", refused, "other_errors", others, "unacknowledged_at_stop", unacked,
		"switch_s", switchAt.Sub(failoverAt), "creates_resume_after_switch_s", resume, "replica_in_sync_after_switch_s", since(replicaBack(), switchAt), "pickup_after_switch_s", pickup,
		"create_p50_ms", percentile(steady, 0.5), "create_p99_ms", percentile(steady, 0.99))
	check(t, others == 0, "requests failed with something other than 503: %v", codes)
	check(t, len(names) > before, "no job was acknowledged after the failover")
	check(t, pickup >= 0 && pickup <= pickupBound, "workers ran new jobs %s after the switch; want at most %s", pickup, pickupBound)
	if durable {
		check(t, len(lost) == 0, "%d acknowledged jobs lost with -redis-min-replicas 1: %s", len(lost), sample(lost, 5))
	}
}

// watchReplicaSync polls the new primary at addr until a replica of its
// own is in sync, and returns when that happened (zero until then).
func watchReplicaSync(t *testing.T, addr string) func() time.Time {
	var (
		mu sync.Mutex
		at time.Time
	)
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	done := make(chan struct{})
	t.Cleanup(func() { close(done); _ = rdb.Close() })
	go func() {
		for {
			info, err := rdb.Info(context.Background(), "replication").Result()
			if err == nil && strings.Contains(info, "state=online") {
				mu.Lock()
				at = time.Now()
				mu.Unlock()
				return
			}
			select {
			case <-done:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	return func() time.Time { mu.Lock(); defer mu.Unlock(); return at }
}

// since is at - from, or -1 when at is zero (never).
func since(at, from time.Time) time.Duration {
	if at.IsZero() {
		return -1
	}
	return at.Sub(from)
}

// percentile of sorted durations, in milliseconds.
func percentile(sorted []time.Duration, p float64) float64 {
	if len(sorted) == 0 {
		return -1
	}
	return float64(sorted[int(p*float64(len(sorted)-1))].Microseconds()) / 1000
}
