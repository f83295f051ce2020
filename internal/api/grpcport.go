package api

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"sync"
)

// http1Listener is the gRPC port's listener. gRPC speaks only HTTP/2, and
// grpc-go answers an HTTP/1.1 request (curl, a browser, a REST client
// pointed at the wrong port) with binary HTTP/2 frames that clients report
// as "Received HTTP/0.9". So each connection's first bytes are looked at
// before gRPC reads or writes anything: an HTTP/1.x request line gets a
// short plain-text answer naming the REST port, and the connection closes.
// Everything else (gRPC's HTTP/2 preface, a TLS handshake) passes through
// untouched.
type http1Listener struct {
	net.Listener
	hint []byte
}

func newHTTP1Listener(l net.Listener, restURL, grpcAddr string) *http1Listener {
	body := fmt.Sprintf("This is jobforge's gRPC port: it speaks gRPC (HTTP/2) only.\n"+
		"The REST/JSON API is at %s/ (e.g. %s/v1/jobTypes, docs at %s/docs).\n"+
		"From a shell, gRPC goes through grpcurl: grpcurl -plaintext %s list\n", restURL, restURL, restURL, grpcAddr)
	hint := fmt.Sprintf("HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n"+
		"Content-Length: %d\r\nConnection: close\r\n\r\n%s", len(body), body)
	return &http1Listener{Listener: l, hint: []byte(hint)}
}

func (l *http1Listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &sniffConn{Conn: c, hint: l.hint}, nil
}

// sniffConn reads a connection's first bytes on its first Read or Write
// (gRPC runs each connection's handshake on its own goroutine, under its
// connection timeout, so the wait blocks no one else).
type sniffConn struct {
	net.Conn
	hint   []byte
	once   sync.Once
	peeked []byte // read by the sniff, not yet handed to Read
	err    error  // the sniff's read error, or io.EOF after answering HTTP/1
}

// sniffLen bytes tell an HTTP/1 request line ("OPTIONS " is the longest
// method worth knowing) from an HTTP/2 preface ("PRI * HTTP/2.0…") or a TLS
// record; every client sends at least that many bytes first.
const sniffLen = 8

var http1Methods = [][]byte{
	[]byte("GET "), []byte("POST "), []byte("PUT "), []byte("PATCH "), []byte("DELETE "),
	[]byte("HEAD "), []byte("OPTIONS "), []byte("CONNECT "), []byte("TRACE "),
}

func (c *sniffConn) sniff() {
	c.once.Do(func() {
		buf := make([]byte, sniffLen)
		n, err := io.ReadFull(c.Conn, buf)
		c.peeked, c.err = buf[:n], err
		if err != nil {
			return
		}
		for _, m := range http1Methods {
			if bytes.HasPrefix(buf, m) {
				_, _ = c.Conn.Write(c.hint)
				_ = c.Conn.Close()
				c.peeked, c.err = nil, io.EOF
				return
			}
		}
	})
}

func (c *sniffConn) Read(p []byte) (int, error) {
	c.sniff()
	if len(c.peeked) > 0 {
		n := copy(p, c.peeked)
		c.peeked = c.peeked[n:]
		return n, nil
	}
	if c.err != nil {
		return 0, c.err
	}
	return c.Conn.Read(p)
}

func (c *sniffConn) Write(p []byte) (int, error) {
	c.sniff()
	if c.err != nil {
		return 0, c.err
	}
	return c.Conn.Write(p)
}
