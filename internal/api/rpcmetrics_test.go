package api

import (
	"context"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// fakeStream is a server stream that sends and receives nothing.
type fakeStream struct{ grpc.ServerStream }

func (fakeStream) Context() context.Context { return context.Background() }
func (fakeStream) SendMsg(any) error        { return nil }
func (fakeStream) RecvMsg(any) error        { return nil }

// TestRPCMetrics checks the series of rpcMetrics against what
// go-grpc-middleware's Prometheus provider exports for the same calls:
// started, messages received and sent (a unary call's response only when
// it succeeds), handled by status code (context errors as their codes),
// the latency histogram, and the transport label.
func TestRPCMetrics(t *testing.T) {
	t.Parallel()
	m := newRPCMetrics([]float64{1})
	unary := m.unary(transportGRPC)
	info := &grpc.UnaryServerInfo{FullMethod: "/jobforge.v1.JobService/GetJob"}
	for _, err := range []error{nil, nil, status.Error(codes.NotFound, "no"), context.Canceled} {
		_, got := unary(context.Background(), struct{}{}, info, func(context.Context, any) (any, error) { return struct{}{}, err })
		require.Equal(t, err, got)
	}
	stream := m.stream(transportHTTP)
	sinfo := &grpc.StreamServerInfo{FullMethod: "/jobforge.v1.JobService/WatchJob", IsServerStream: true}
	require.NoError(t, stream(nil, fakeStream{}, sinfo, func(_ any, ss grpc.ServerStream) error {
		for range 3 {
			if err := ss.SendMsg(struct{}{}); err != nil {
				return err
			}
		}
		return ss.RecvMsg(struct{}{})
	}))

	const (
		get   = `grpc_method="GetJob",grpc_service="jobforge.v1.JobService",grpc_type="unary",transport="grpc"`
		watch = `grpc_method="WatchJob",grpc_service="jobforge.v1.JobService",grpc_type="server_stream",transport="http"`
	)
	want := `
# HELP grpc_server_started_total Total number of RPCs started on the server.
# TYPE grpc_server_started_total counter
grpc_server_started_total{` + get + `} 4
grpc_server_started_total{` + watch + `} 1
# HELP grpc_server_handled_total Total number of RPCs completed on the server, regardless of success or failure.
# TYPE grpc_server_handled_total counter
grpc_server_handled_total{grpc_code="Canceled",` + get + `} 1
grpc_server_handled_total{grpc_code="NotFound",` + get + `} 1
grpc_server_handled_total{grpc_code="OK",` + get + `} 2
grpc_server_handled_total{grpc_code="OK",` + watch + `} 1
# HELP grpc_server_msg_received_total Total number of RPC stream messages received on the server.
# TYPE grpc_server_msg_received_total counter
grpc_server_msg_received_total{` + get + `} 4
grpc_server_msg_received_total{` + watch + `} 1
# HELP grpc_server_msg_sent_total Total number of gRPC stream messages sent by the server.
# TYPE grpc_server_msg_sent_total counter
grpc_server_msg_sent_total{` + get + `} 2
grpc_server_msg_sent_total{` + watch + `} 3
# HELP grpc_server_handling_seconds Histogram of response latency (seconds) of gRPC that had been application-level handled by the server.
# TYPE grpc_server_handling_seconds histogram
grpc_server_handling_seconds_bucket{` + get + `,le="1"} 4
grpc_server_handling_seconds_bucket{` + get + `,le="+Inf"} 4
grpc_server_handling_seconds_sum{` + get + `} 0
grpc_server_handling_seconds_count{` + get + `} 4
grpc_server_handling_seconds_bucket{` + watch + `,le="1"} 1
grpc_server_handling_seconds_bucket{` + watch + `,le="+Inf"} 1
grpc_server_handling_seconds_sum{` + watch + `} 0
grpc_server_handling_seconds_count{` + watch + `} 1
`
	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, reg.Register(m))
	require.NoError(t, testutil.GatherAndCompare(zeroSums{reg}, strings.NewReader(want)))
}

// zeroSums gathers a registry's metrics with the sums of histograms (the
// measured durations) set to 0.
type zeroSums struct{ prometheus.Gatherer }

func (g zeroSums) Gather() ([]*dto.MetricFamily, error) {
	mfs, err := g.Gatherer.Gather()
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			if h := m.GetHistogram(); h != nil {
				h.SampleSum = proto.Float64(0)
			}
		}
	}
	return mfs, err
}
