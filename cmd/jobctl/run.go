package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"

	"github.com/jobforge/jobforge/client"
)

// Exit codes: 0 success; 1 the request or the job failed (a job watched
// with --wait that ended FAILED or CANCELLED counts as failed); 2 the
// command line was wrong; 130 interrupted (Ctrl-C).
const (
	exitOK          = 0
	exitFailure     = 1
	exitUsage       = 2
	exitInterrupted = 130
)

// Defaults of the global flags.
const (
	defaultAddr    = "localhost:9090"
	defaultTimeout = 30 * time.Second
	// devKeyFile is where `make run` (cmd/api -dev) writes its generated key,
	// relative to the directory it was started in.
	devKeyFile = ".jobforge/dev-key"
)

// options are the global flags plus the process's environment and streams.
type options struct {
	getenv func(string) string
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer

	addr    string
	token   string
	tls     bool
	caFile  string
	timeout time.Duration
	output  string

	// tokenSource says where token came from ("--token", "JOBFORGE_TOKEN",
	// devKeyFile, or "" for none), for error hints.
	tokenSource string
}

func (o *options) json() bool { return o.output == "json" }

// run executes one jobctl command line. It reports errors on stderr itself;
// the returned error only decides the exit code (see exitCode).
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	o := &options{getenv: getenv, stdin: stdin, stdout: stdout, stderr: stderr}
	root := newRootCmd(o)
	if args == nil {
		args = []string{} // cobra falls back to os.Args on nil
	}
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return nil
	}
	var ce *cmdError
	var ue *usageError
	if errors.As(err, &ue) || !errors.As(err, &ce) {
		// Not from a command's action: cobra rejected a flag, an argument or
		// a flag combination, or an action said the input was wrong.
		fmt.Fprintf(stderr, "jobctl: %v\nRun '%s --help' for usage.\n", err, cmd.CommandPath())
		return &usageError{err: err}
	}
	err = ce.err
	switch {
	case errors.Is(err, errInterrupted):
		fmt.Fprintf(stderr, "jobctl: %v\n", err)
		return err
	case ctx.Err() != nil:
		fmt.Fprintln(stderr, "jobctl: interrupted")
		return fmt.Errorf("%w: %w", errInterrupted, err)
	}
	o.printError(err)
	return err
}

// exitCode maps run's error to the process exit status.
func exitCode(err error) int {
	var ue *usageError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ue):
		return exitUsage
	case errors.Is(err, errInterrupted):
		return exitInterrupted
	default:
		return exitFailure
	}
}

// errInterrupted marks work stopped by the context (Ctrl-C, SIGTERM).
var errInterrupted = errors.New("interrupted")

// usageError is a command line that cannot be run as given (exit code 2).
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return &usageError{err: fmt.Errorf(format, args...)}
}

// cmdError marks an error returned by a command's action, as opposed to
// one cobra produced while parsing the command line.
type cmdError struct{ err error }

func (e *cmdError) Error() string { return e.err.Error() }
func (e *cmdError) Unwrap() error { return e.err }

// action adapts a command's function to cobra, marking its errors.
func action(fn func(cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		if err := fn(cmd, args); err != nil {
			return &cmdError{err: err}
		}
		return nil
	}
}

// jobEndedError is a watched job that ended FAILED or CANCELLED.
type jobEndedError struct {
	name, state, detail string
}

func (e *jobEndedError) Error() string {
	if e.detail == "" {
		return fmt.Sprintf("job %s %s", e.name, e.state)
	}
	return fmt.Sprintf("job %s %s: %s", e.name, e.state, e.detail)
}

// printError writes err to stderr: the server's message with its status
// code, then field violations and hints from the error's details.
func (o *options) printError(err error) {
	fmt.Fprintf(o.stderr, "jobctl: %v\n", err) // a *client.Error ends with its code
	var ce *client.Error
	var ended *jobEndedError
	if errors.As(err, &ended) || !errors.As(err, &ce) {
		return
	}
	vs := ce.FieldViolations
	if len(vs) == 1 && ce.Message == vs[0].GetField()+": "+vs[0].GetDescription() {
		vs = nil // the message already says it
	}
	for _, v := range vs {
		if v.GetField() == "" {
			fmt.Fprintf(o.stderr, "  - %s\n", v.GetDescription())
		} else {
			fmt.Fprintf(o.stderr, "  - %s: %s\n", v.GetField(), v.GetDescription())
		}
	}
	if ce.RetryDelay > 0 {
		fmt.Fprintf(o.stderr, "  retry after %s\n", ce.RetryDelay)
	}
	switch ce.Code {
	case codes.Unauthenticated:
		if o.tokenSource == "" {
			fmt.Fprintf(o.stderr, "hint: no token was sent: pass --token, set JOBFORGE_TOKEN, or run jobctl where `make run` wrote %s\n", devKeyFile)
		} else {
			fmt.Fprintf(o.stderr, "hint: the token came from %s\n", o.tokenSource)
		}
	case codes.Unavailable:
		if strings.Contains(ce.Message, "connection") || strings.Contains(ce.Message, "dial") {
			fmt.Fprintf(o.stderr, "hint: is the jobforge API listening on %s? (--addr, JOBFORGE_ADDR; --tls for TLS)\n", o.addr)
		}
	}
}

func newRootCmd(o *options) *cobra.Command {
	root := &cobra.Command{
		Use:   "jobctl",
		Short: "Command-line client of the jobforge job service",
		Long: `jobctl submits, lists, watches, cancels and retries jobforge jobs, and shows
queues, workers and schedules, over the gRPC API.

The global flags fall back to environment variables, named in their help.
Without --token or JOBFORGE_TOKEN, jobctl uses ` + devKeyFile + `
(the key ` + "`make run`" + ` writes) when it exists in the current directory.`,
		SilenceErrors: true,
		SilenceUsage:  true,
		// Errors from here are usage errors (exit code 2).
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error { return o.resolve(cmd) },
	}
	pf := root.PersistentFlags()
	pf.StringVar(&o.addr, "addr", defaultAddr, "gRPC address of the jobforge API (env JOBFORGE_ADDR)")
	pf.StringVar(&o.token, "token", "", "bearer token: an API key or a JWT (env JOBFORGE_TOKEN; default: "+devKeyFile+" if present)")
	pf.BoolVar(&o.tls, "tls", false, "connect with TLS, verifying the server against the system roots (env JOBFORGE_TLS)")
	pf.StringVar(&o.caFile, "ca-file", "", "PEM CA bundle to verify the server with; implies --tls (env JOBFORGE_CA_FILE)")
	pf.DurationVar(&o.timeout, "timeout", defaultTimeout, "deadline of each request; 0 for none; watches are not limited (env JOBFORGE_TIMEOUT)")
	pf.StringVarP(&o.output, "output", "o", "text", "output format: text or json (protobuf JSON) (env JOBFORGE_OUTPUT)")

	root.AddCommand(
		newTypesCmd(o),
		newSubmitCmd(o),
		newGetCmd(o),
		newListCmd(o),
		newWatchCmd(o),
		newCancelCmd(o),
		newRetryCmd(o),
		newQueuesCmd(o),
		newWorkersCmd(o),
		newSchedulesCmd(o),
	)
	return root
}

// resolve applies the environment fallbacks of the global flags that were
// not given on the command line, and checks them.
func (o *options) resolve(cmd *cobra.Command) error {
	root := cmd.Root().PersistentFlags()
	// A subcommand may define a local flag of the same name (submit
	// --timeout is the job's timeout); the global one is then unset here
	// and takes its value from the environment.
	changed := func(name string) bool { return root.Lookup(name).Changed }
	env := func(name string) (string, bool) {
		v := strings.TrimSpace(o.getenv(name))
		return v, v != ""
	}
	if v, ok := env("JOBFORGE_ADDR"); ok && !changed("addr") {
		o.addr = v
	}
	if v, ok := env("JOBFORGE_CA_FILE"); ok && !changed("ca-file") {
		o.caFile = v
	}
	if v, ok := env("JOBFORGE_TLS"); ok && !changed("tls") {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return usagef("JOBFORGE_TLS: want true or false, got %q", v)
		}
		o.tls = b
	}
	if v, ok := env("JOBFORGE_TIMEOUT"); ok && !changed("timeout") {
		d, err := time.ParseDuration(v)
		if err != nil {
			return usagef("JOBFORGE_TIMEOUT: %v", err)
		}
		o.timeout = d
	}
	if v, ok := env("JOBFORGE_OUTPUT"); ok && !changed("output") {
		o.output = v
	}
	switch {
	case o.output != "text" && o.output != "json":
		return usagef("--output: want text or json, got %q", o.output)
	case o.timeout < 0:
		return usagef("--timeout: must not be negative, got %s", o.timeout)
	case o.addr == "":
		return usagef("--addr: must not be empty")
	}
	if o.caFile != "" {
		o.tls = true
	}
	// The token is found when a connection is made (reading devKeyFile is
	// not a usage matter).
	if changed("token") {
		o.tokenSource = "--token"
	}
	return nil
}

// exactArgs requires exactly the named positional arguments.
func exactArgs(names ...string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		switch {
		case len(args) < len(names):
			return usagef("missing %s", strings.Join(names[len(args):], " "))
		case len(args) > len(names):
			return usagef("unexpected argument %q", args[len(names)])
		}
		return nil
	}
}
