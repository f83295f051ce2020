package queue

import "github.com/redis/go-redis/v9"

// withRESP2 returns a client like c that speaks RESP2. jobforge uses no
// RESP3 feature, and on RESP3 connections go-redis looks for pending push
// notifications around every command (an extra read on the socket): about
// a tenth of the CPU of a busy worker or API process. Not for failover
// (Sentinel) clients: their options carry a dialer bound to the client.
func withRESP2(c redis.UniversalClient) redis.UniversalClient {
	switch cc := c.(type) {
	case *redis.Client:
		o := cc.Options()
		if o.Protocol == 2 {
			return c
		}
		o.Protocol = 2
		_ = cc.Close()
		return redis.NewClient(o)
	case *redis.ClusterClient:
		o := cc.Options()
		if o.Protocol == 2 {
			return c
		}
		o.Protocol = 2
		_ = cc.Close()
		return redis.NewClusterClient(o)
	}
	return c
}
