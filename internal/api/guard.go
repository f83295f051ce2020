package api

import (
	"context"
	"fmt"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/durationpb"

	jobforgev1 "github.com/jobforge/jobforge/api/gen/jobforge/v1"
	"github.com/jobforge/jobforge/internal/auth"
)

// Limits are the per-caller rate limits (requests per second; 0 disables).
// Writes and reads have separate buckets, per principal and per tenant.
type Limits struct {
	PrincipalWrite, PrincipalRead int
	TenantWrite, TenantRead       int
}

// RateLimiter takes tokens from a shared bucket (queue.Limiter).
type RateLimiter interface {
	Allow(ctx context.Context, key string, perSecond, n int) (bool, time.Duration, error)
}

// methodScopes is the scope each method requires. Methods not listed
// require admin; the health and reflection services are open.
var methodScopes = map[string]string{
	"/jobforge.v1.JobService/CreateJob":           auth.ScopeJobsWrite,
	"/jobforge.v1.JobService/BatchCreateJobs":     auth.ScopeJobsWrite,
	"/jobforge.v1.JobService/RetryJob":            auth.ScopeJobsWrite,
	"/jobforge.v1.JobService/CancelJob":           auth.ScopeJobsCancel,
	"/jobforge.v1.JobService/GetJob":              auth.ScopeJobsRead,
	"/jobforge.v1.JobService/ListJobs":            auth.ScopeJobsRead,
	"/jobforge.v1.JobService/WatchJob":            auth.ScopeJobsRead,
	"/jobforge.v1.JobService/ListJobTypes":        auth.ScopeJobsRead,
	"/jobforge.v1.ScheduleService/CreateSchedule": auth.ScopeJobsWrite,
	"/jobforge.v1.ScheduleService/DeleteSchedule": auth.ScopeJobsWrite,
	"/jobforge.v1.ScheduleService/GetSchedule":    auth.ScopeJobsRead,
	"/jobforge.v1.ScheduleService/ListSchedules":  auth.ScopeJobsRead,
	"/jobforge.v1.QueueService/ListQueues":        auth.ScopeAdmin,
	"/jobforge.v1.QueueService/PauseQueue":        auth.ScopeAdmin,
	"/jobforge.v1.QueueService/ResumeQueue":       auth.ScopeAdmin,
	"/jobforge.v1.QueueService/ListWorkers":       auth.ScopeAdmin,
}

func openMethod(method string) bool {
	return strings.HasPrefix(method, "/grpc.health.v1.") || strings.HasPrefix(method, "/grpc.reflection.")
}

// anonymous is the caller when authentication is disabled explicitly.
var anonymous = &auth.Principal{ID: "anonymous", Tenant: defaultTenant, Scopes: auth.AllScopes}

// guard authenticates the caller, checks the method's scope and applies
// the rate limits — before the request is validated or any job is looked
// up, so permission is checked before existence.
func (i *interceptors) guard(ctx context.Context, method string, req any) (context.Context, error) {
	if openMethod(method) {
		return ctx, nil
	}
	p := anonymous
	if i.auth != nil {
		// ValueFromIncomingContext reads one header; FromIncomingContext
		// would copy them all, on every request.
		header := ""
		if v := metadata.ValueFromIncomingContext(ctx, "authorization"); len(v) > 0 {
			header = v[0]
		}
		var err error
		if p, err = i.auth.Authenticate(ctx, header); err != nil {
			ae, ok := err.(*auth.Error)
			if !ok {
				return ctx, fmt.Errorf("authenticate: %w", err)
			}
			return ctx, withDetails(codes.Unauthenticated, ae.Msg,
				&errdetails.ErrorInfo{Reason: ae.Reason, Domain: errorDomain})
		}
	}
	scope, ok := methodScopes[method]
	if !ok {
		scope = auth.ScopeAdmin
	}
	if !p.AllowsAny(scope) {
		return ctx, permissionDenied(scope)
	}
	if err := i.rateLimit(ctx, p, scope, method, req); err != nil {
		return ctx, err
	}
	return auth.WithPrincipal(ctx, p), nil
}

func permissionDenied(scope string) error {
	return withDetails(codes.PermissionDenied, fmt.Sprintf("permission denied: requires scope %q", scope),
		&errdetails.ErrorInfo{Reason: "MISSING_SCOPE", Domain: errorDomain, Metadata: map[string]string{"scope": scope}})
}

func (i *interceptors) rateLimit(ctx context.Context, p *auth.Principal, scope, method string, req any) error {
	if i.limiter == nil {
		return nil
	}
	write := scope != auth.ScopeJobsRead
	cost := 1
	if b, ok := req.(*jobforgev1.BatchCreateJobsRequest); ok {
		cost = max(len(b.GetRequests()), 1)
	}
	class, pRate, tRate := "read", i.limits.PrincipalRead, i.limits.TenantRead
	if write {
		class, pRate, tRate = "write", i.limits.PrincipalWrite, i.limits.TenantWrite
	}
	buckets := []struct {
		key  string
		rate int
		who  string
	}{
		{"rate:principal:" + p.ID + ":" + class, pRate, "caller"},
		{"rate:tenant:" + p.Tenant + ":" + class, tRate, "tenant"},
	}
	for _, b := range buckets {
		if b.rate <= 0 {
			continue
		}
		ok, retry, err := i.limiter.Allow(ctx, b.key, b.rate, cost)
		if err != nil {
			// Fail open: the limiter protects capacity, and when its Redis
			// is unreachable the store is too, so requests fail anyway.
			i.log.WarnContext(ctx, "rate limiter unavailable; allowing request", "error", err)
			return nil
		}
		if !ok {
			retry = max(retry, time.Millisecond).Round(time.Millisecond)
			return withDetails(codes.ResourceExhausted,
				fmt.Sprintf("rate limit exceeded: at most %d %s requests per second per %s; retry in %s", b.rate, class, b.who, retry),
				&errdetails.ErrorInfo{Reason: "RATE_LIMITED", Domain: errorDomain, Metadata: map[string]string{"limit": fmt.Sprint(b.rate), "scope": b.who}},
				&errdetails.RetryInfo{RetryDelay: durationpb.New(retry)})
		}
	}
	return nil
}
