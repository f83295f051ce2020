package freeport

import (
	"net"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestLoopbackIsBelowTheEphemeralRange(t *testing.T) {
	t.Parallel()
	start := ephemeralStart()
	if start-low < 1000 {
		t.Skipf("no room below the ephemeral range (it starts at %d)", start)
	}
	seen := map[int]bool{}
	for range 20 {
		p, err := Loopback()
		require.NoError(t, err)
		require.GreaterOrEqual(t, p, low)
		require.Less(t, p, start, "a port of the ephemeral range can be taken by any outgoing connection")
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		require.NoError(t, err, "the port is free")
		require.NoError(t, l.Close())
		seen[p] = true
	}
	require.Greater(t, len(seen), 1, "ports are picked at random, so that concurrent callers rarely meet")
}
