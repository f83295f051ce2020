package api

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	jobforgev1 "github.com/jobforge/jobforge/api/gen/jobforge/v1"
)

// newGateway is the REST gateway: the services' HTTP routes, calling them
// through the in-process channel.
func newGateway(inproc grpc.ClientConnInterface, opts Options, obs *observability) (*runtime.ServeMux, error) {
	probe := runtime.NewServeMux(
		runtime.WithMiddlewares(markRouted),
		runtime.WithRoutingErrorHandler(func(context.Context, *runtime.ServeMux, runtime.Marshaler, http.ResponseWriter, *http.Request, int) {}),
		runtime.WithDisablePathLengthFallback(),
	)
	gw := runtime.NewServeMux(
		runtime.WithMarshalerOption(runtime.MIMEWildcard, newRESTMarshaler()),
		runtime.WithIncomingHeaderMatcher(incomingHeader),
		runtime.WithOutgoingHeaderMatcher(outgoingHeader),
		runtime.WithErrorHandler(httpErrorHandler),
		runtime.WithRoutingErrorHandler(routingErrorHandler(probe)),
		runtime.WithMetadata(obs.gatewayMetadata),
		// No POST-with-form-body-as-GET fallback: curl -d sends JSON labelled
		// as a form, which must not turn a wrong method into a GET.
		runtime.WithDisablePathLengthFallback(),
	)
	for _, mux := range []*runtime.ServeMux{gw, probe} {
		if err := registerRoutes(mux, inproc, opts); err != nil {
			return nil, err
		}
	}
	return gw, nil
}

func registerRoutes(mux *runtime.ServeMux, inproc grpc.ClientConnInterface, opts Options) error {
	ctx := context.Background()
	if err := jobforgev1.RegisterJobServiceHandlerClient(ctx, mux, jobforgev1.NewJobServiceClient(inproc)); err != nil {
		return fmt.Errorf("register gateway: %w", err)
	}
	if opts.QueueService != nil {
		if err := jobforgev1.RegisterQueueServiceHandlerClient(ctx, mux, jobforgev1.NewQueueServiceClient(inproc)); err != nil {
			return fmt.Errorf("register queue gateway: %w", err)
		}
	}
	if opts.ScheduleService != nil {
		if err := jobforgev1.RegisterScheduleServiceHandlerClient(ctx, mux, jobforgev1.NewScheduleServiceClient(inproc)); err != nil {
			return fmt.Errorf("register schedule gateway: %w", err)
		}
	}
	return nil
}

// routedHeader marks a probe response whose route matched.
const routedHeader = "X-Jobforge-Routed"

// markRouted replaces every handler of the probe mux: it records that the
// route matched instead of calling the service.
func markRouted(runtime.HandlerFunc) runtime.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request, _ map[string]string) {
		w.Header().Set(routedHeader, "1")
	}
}

// routeMethods are the methods the gateway's routes use.
var routeMethods = []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}

// allowedMethods are the methods probe routes for r's path, by asking the
// probe mux (the gateway's routes with inert handlers) about each one, so
// the answer follows the gateway's own path matching.
func allowedMethods(probe *runtime.ServeMux, r *http.Request) []string {
	var allow []string
	for _, m := range routeMethods {
		req := r.Clone(r.Context())
		req.Method, req.Body, req.ContentLength = m, http.NoBody, 0
		req.Header = http.Header{}
		w := &probeWriter{header: http.Header{}}
		probe.ServeHTTP(w, req)
		if w.header.Get(routedHeader) != "" {
			allow = append(allow, m)
		}
	}
	return allow
}

// probeWriter discards what the probe mux writes, keeping the headers.
type probeWriter struct{ header http.Header }

func (w *probeWriter) Header() http.Header         { return w.header }
func (w *probeWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *probeWriter) WriteHeader(int)             {}

// routingErrorHandler answers requests no route takes, in the API's error
// format: a method the path does not support is 405 with the Allow header
// (RFC 9110; the gateway's default is 501), an unknown path is 404 with a
// pointer to the API description.
func routingErrorHandler(probe *runtime.ServeMux) runtime.RoutingErrorHandlerFunc {
	return func(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, code int) {
		var err error
		switch code {
		case http.StatusMethodNotAllowed:
			allow := allowedMethods(probe, r)
			w.Header().Set("Allow", strings.Join(allow, ", "))
			err = &runtime.HTTPStatusError{HTTPStatus: code, Err: withDetails(codes.Unimplemented,
				fmt.Sprintf("method %s is not allowed on %s; allowed: %s", r.Method, r.URL.Path, strings.Join(allow, ", ")),
				&errdetails.ErrorInfo{Reason: "METHOD_NOT_ALLOWED", Domain: errorDomain})}
		case http.StatusNotFound:
			err = withDetails(codes.NotFound,
				fmt.Sprintf("no API route for %s %s; the routes are listed at /openapi.json and /docs", r.Method, r.URL.Path),
				&errdetails.ErrorInfo{Reason: "ROUTE_NOT_FOUND", Domain: errorDomain})
		default:
			runtime.DefaultRoutingErrorHandler(ctx, mux, m, w, r, code)
			return
		}
		httpErrorHandler(ctx, mux, m, w, r, err)
	}
}
