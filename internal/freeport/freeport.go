// Package freeport picks loopback ports for the processes that tests and the
// benchmark suite start.
//
// A port the kernel hands out for "127.0.0.1:0" comes from its ephemeral
// range, the range it also takes the local port of every outgoing
// connection from: between closing the probe listener and the child's bind,
// a connection of any process on the machine can take the port, and the
// child fails with "address already in use" (seen in the benchmark suite,
// whose clients open connections by the thousand). The kernel hands out no
// port below its ephemeral range, so a port picked there stays free unless
// a process binds that very port.
package freeport

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
)

// low is the first port Loopback picks from: well clear of the privileged
// ports and of the usual services (Redis's 6379, 8080, 9090, …).
const low = 10_000

// Loopback returns a port on 127.0.0.1 that was free a moment ago, below the
// kernel's ephemeral range when it has room there, else one the kernel
// chose.
func Loopback() (int, error) {
	if high := ephemeralStart(); high-low >= 1000 {
		for range 100 {
			p := low + rand.IntN(high-low)
			if l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p))); err == nil {
				_ = l.Close()
				return p, nil
			}
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pick a free loopback port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// ephemeralStart is the first port of the kernel's ephemeral range (Linux's
// net.ipv4.ip_local_port_range), or 0 when it cannot be read.
func ephemeralStart() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 0
	}
	p, err := strconv.Atoi(f[0])
	if err != nil {
		return 0
	}
	return p
}
