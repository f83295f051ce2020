// Package docs_test runs the examples of the README and of the docs it
// links as a reader would — every ```sh block in a bash session against the
// real `make run` stack (cmd/jobforge-dev, its embedded store and in-process
// worker), every ```go block compiled into the module and its tests run —
// and checks each command's output against the `# →` lines the document
// shows under it. An example cannot rot without this test failing.
//
// The conventions a document follows:
//
//   - A ```sh block runs unless the line before its fence is
//     <!-- not run: reason --> (a block needing a cluster or a long run).
//     A document's blocks run in order in one bash process, so a variable
//     set by one (JOB=$(… | jq -r .name)) is there for the next. Examples
//     never contain placeholders (…): ids come from such variables.
//   - localhost:8080, :9090 and :8081 are replaced by the stack's REST,
//     gRPC and admin addresses; jobctl finds the gRPC address in
//     JOBFORGE_ADDR and the key in .jobforge/dev-key, as after `make run`.
//   - `# → ` lines under a command show its output (stdout and stderr, as
//     a terminal shows them), one line each; a line starting `#` and two
//     spaces continues the line above. "…" stands for anything (a whole
//     line of "…" for any number of lines), "01a2…" for an id, and ids and
//     times of day (12:16:00.684) shown in full for any id and time. Output
//     that starts with { or [ is compared as JSON text without whitespace
//     outside strings; other output line by line with runs of spaces
//     equal. The output must match from start to end.
//   - For curl, a `# → ` line may start with the HTTP status (`# → 400 {…}`);
//     every other curl call must answer 2xx. A command that exits non-zero
//     must show its output.
//   - A ```go block is the file named by the last `path.go` in backquotes
//     before it. A file that does not exist is laid over the module (go
//     test -overlay) and the Test functions it defines must pass. A file
//     that exists (the examples/ modules, built and tested by test/examples)
//     is quoted: the block's lines must appear in it in order, a line
//     "// …" standing for any number of lines.
package docs_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"go/format"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jobforge/jobforge/internal/proctest"
)

func TestMain(m *testing.M) { proctest.Main(m) }

// documents are the files whose examples run, each in its own session
// against its own stack.
var documents = []string{"README.md", "docs/api.md", "docs/jobctl.md"}

// minChecks is the fewest outputs a document's examples must check: a
// parser that stopped finding blocks would otherwise pass quietly.
var minChecks = map[string]int{"README.md": 8, "docs/api.md": 20, "docs/jobctl.md": 6}

func TestDocumentedCommands(t *testing.T) {
	bins := proctest.Build(t, false, "./cmd/jobforge-dev", "./cmd/jobctl")
	grpcurl := grpcurlBinary(t)
	binDir := t.TempDir()
	for name, path := range map[string]string{"jobctl": bins["jobctl"], "grpcurl": grpcurl} {
		require.NoError(t, os.Symlink(path, filepath.Join(binDir, name)))
	}
	for _, doc := range documents {
		t.Run(doc, func(t *testing.T) {
			cmds := parseCommands(t, readDoc(t, doc))
			stack := startStack(t, bins["jobforge-dev"])
			results := runSession(t, stack, binDir, cmds)
			checked := 0
			for i, c := range cmds {
				checked += check(t, doc, c, results[i])
			}
			t.Logf("%s: %d commands run, %d outputs checked", doc, len(cmds), checked)
			require.GreaterOrEqual(t, checked, minChecks[doc], "%s: too few outputs checked; is the parser still finding the examples?", doc)
		})
	}
}

// command is one shell command of a document with the output shown under it.
type command struct {
	line   int    // line number in the document
	text   string // as written
	expect []string
}

// result is what a command did.
type result struct {
	ran      bool
	exit     int
	output   string
	statuses []int // HTTP status of each curl call
}

var (
	fenceRE     = regexp.MustCompile("^```(\\w*)")
	notRunRE    = regexp.MustCompile(`^<!-- not run: \S.* -->$`)
	expectRE    = regexp.MustCompile(`^# → ?(.*)$`)
	continuedRE = regexp.MustCompile(`^#  +(\S.*)$`)
)

func readDoc(t *testing.T, doc string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(proctest.ModuleRoot(t), doc))
	require.NoError(t, err)
	return strings.Split(string(b), "\n")
}

// parseCommands returns the commands of the document's runnable sh blocks.
func parseCommands(t *testing.T, lines []string) []command {
	t.Helper()
	var cmds []command
	for i := 0; i < len(lines); i++ {
		m := fenceRE.FindStringSubmatch(lines[i])
		if m == nil {
			continue
		}
		start := i
		for i++; i < len(lines) && !strings.HasPrefix(lines[i], "```"); i++ {
		}
		if m[1] != "sh" || (start > 0 && notRunRE.MatchString(lines[start-1])) {
			continue
		}
		cmds = append(cmds, parseBlock(t, lines[start+1:i], start+2)...)
	}
	return cmds
}

func parseBlock(t *testing.T, lines []string, first int) []command {
	t.Helper()
	var cmds []command
	var pending []string
	pendingLine := 0
	lastExpect := false
	for j, l := range lines {
		lineNo := first + j
		if len(pending) == 0 {
			if m := expectRE.FindStringSubmatch(l); m != nil {
				require.NotEmpty(t, cmds, "line %d: output shown before any command", lineNo)
				c := &cmds[len(cmds)-1]
				c.expect = append(c.expect, m[1])
				lastExpect = true
				continue
			}
			if m := continuedRE.FindStringSubmatch(l); m != nil && lastExpect {
				c := &cmds[len(cmds)-1]
				c.expect[len(c.expect)-1] += " " + m[1]
				continue
			}
			lastExpect = false
			if trimmed := strings.TrimSpace(l); trimmed == "" || strings.HasPrefix(trimmed, "#") {
				continue
			}
			pendingLine = lineNo
		}
		pending = append(pending, l)
		text := strings.Join(pending, "\n")
		if strings.HasSuffix(l, `\`) || !completeShell(text) {
			continue
		}
		require.NotContains(t, text, "…", "line %d: a runnable example must not contain placeholders", pendingLine)
		cmds = append(cmds, command{line: pendingLine, text: text})
		pending = nil
	}
	require.Empty(t, pending, "line %d: command not complete at the end of its block", pendingLine)
	return cmds
}

// completeShell reports whether text parses as complete shell input.
func completeShell(text string) bool {
	return exec.Command("bash", "-n", "-c", text).Run() == nil
}

// stack is a running `make run`: cmd/jobforge-dev in its own directory.
type stack struct {
	dir                       string
	httpAddr, grpcAddr, admin string
}

func startStack(t *testing.T, devBin string) stack {
	t.Helper()
	dir := t.TempDir()
	p := proctest.StartWith(t, proctest.Options{Dir: dir}, devBin, []string{"REDIS_URL=", "JOBFORGE_DEV_KEY=", "JOBFORGE_LOG_FORMAT=json"},
		"api started", "-grpc-addr", "127.0.0.1:0", "-http-addr", "127.0.0.1:0", "-admin-addr", "127.0.0.1:0")
	t.Cleanup(func() { p.Stop(t, 30*time.Second) })
	return stack{dir: dir, httpAddr: p.Field("api started", "http_addr"), grpcAddr: p.Field("api started", "grpc_addr"),
		admin: p.Field("api started", "admin_addr")}
}

// statusRE is the line the curl wrapper writes to stderr after each call.
var statusRE = regexp.MustCompile(`jfdocs-status (\d{3})\n`)

// runSession runs the commands in order in one bash process, each with
// its output and exit status kept apart.
func runSession(t *testing.T, s stack, binDir string, cmds []command) []result {
	t.Helper()
	out := t.TempDir()
	var script strings.Builder
	fmt.Fprintf(&script, "cd %q || exit 1\n", s.dir)
	fmt.Fprintf(&script, "export PATH=%q:\"$PATH\" JOBFORGE_ADDR=%q\n", binDir, s.grpcAddr)
	script.WriteString("unset JF_KEY AUTH JOBFORGE_TOKEN JOBFORGE_OUTPUT\n")
	// The status of every curl call, for the checks; stdout is untouched.
	script.WriteString("curl() { command curl -w '%{stderr}jfdocs-status %{http_code}\\n' \"$@\"; }\n")
	replacer := strings.NewReplacer("localhost:8080", s.httpAddr, "localhost:9090", s.grpcAddr, "localhost:8081", s.admin)
	for i, c := range cmds {
		f := filepath.Join(out, strconv.Itoa(i))
		fmt.Fprintf(&script, "{ %s\n} >%q 2>&1 </dev/null; __rc=$?; echo $__rc >%q; (exit $__rc)\n", replacer.Replace(c.text), f, f+".rc")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "--noprofile", "--norc")
	cmd.Stdin = strings.NewReader(script.String())
	b, err := cmd.CombinedOutput()
	require.NoError(t, err, "bash session: %s", b)

	results := make([]result, len(cmds))
	for i := range cmds {
		f := filepath.Join(out, strconv.Itoa(i))
		rc, err := os.ReadFile(f + ".rc")
		if err != nil {
			continue
		}
		output, err := os.ReadFile(f)
		require.NoError(t, err)
		r := result{ran: true, output: statusRE.ReplaceAllString(string(output), "")}
		r.exit, err = strconv.Atoi(strings.TrimSpace(string(rc)))
		require.NoError(t, err)
		for _, m := range statusRE.FindAllStringSubmatch(string(output), -1) {
			code, _ := strconv.Atoi(m[1])
			r.statuses = append(r.statuses, code)
		}
		results[i] = r
	}
	return results
}

var statusPrefixRE = regexp.MustCompile(`^(\d{3})(?: |$)`)

// check compares a command's result with what the document shows, and
// returns the number of outputs it checked.
func check(t *testing.T, doc string, c command, r result) int {
	t.Helper()
	where := fmt.Sprintf("%s:%d: %s", doc, c.line, firstLine(c.text))
	if !r.ran {
		t.Errorf("%s\ndid not run (did the session stop before it?)", where)
		return 0
	}
	expect := append([]string(nil), c.expect...)
	wantStatus := 0
	if len(expect) > 0 && strings.Contains(c.text, "curl ") {
		if m := statusPrefixRE.FindStringSubmatch(expect[0]); m != nil {
			wantStatus, _ = strconv.Atoi(m[1])
			expect[0] = strings.TrimSpace(expect[0][len(m[0]):])
			if expect[0] == "" {
				expect = expect[1:]
			}
		}
	}
	checked := 0
	for i, code := range r.statuses {
		last := i == len(r.statuses)-1
		switch {
		case last && wantStatus != 0:
			if code != wantStatus {
				t.Errorf("%s\nHTTP status %d, the document shows %d\noutput:\n%s", where, code, wantStatus, r.output)
			}
			checked++
		case code < 200 || code > 299:
			t.Errorf("%s\nHTTP status %d, and the document shows no error\noutput:\n%s", where, code, r.output)
		}
	}
	if wantStatus != 0 && len(r.statuses) == 0 {
		t.Errorf("%s\nthe document shows HTTP status %d, but curl made no request", where, wantStatus)
	}
	if len(expect) == 0 {
		if r.exit != 0 {
			t.Errorf("%s\nexit status %d, and the document shows no output\noutput:\n%s", where, r.exit, r.output)
		}
		return checked
	}
	re, err := outputPattern(expect)
	require.NoError(t, err, "%s: pattern of the shown output", where)
	if !re.MatchString(normalize(expect, r.output)) {
		t.Errorf("%s\noutput does not match the document\ndocument:\n%s\noutput:\n%s", where, strings.Join(expect, "\n"), r.output)
	}
	return checked + 1
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

// isJSON reports whether the shown output is compared as JSON text.
func isJSON(expect []string) bool {
	return strings.HasPrefix(expect[0], "{") || strings.HasPrefix(expect[0], "[")
}

// normalize prepares actual output for matching: JSON without whitespace
// outside strings; text with runs of spaces as one and no trailing blanks.
func normalize(expect []string, output string) string {
	if isJSON(expect) {
		return stripJSONSpace(output)
	}
	lines := textLines(output)
	if len(lines) == 0 {
		return ""
	}
	return strings.Join(lines, "\n") + "\n"
}

var spacesRE = regexp.MustCompile(`[ \t]+`)

func textLines(s string) []string {
	var lines []string
	sc := bufio.NewScanner(strings.NewReader(strings.TrimRight(s, "\n")))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		lines = append(lines, strings.TrimSpace(spacesRE.ReplaceAllString(sc.Text(), " ")))
	}
	return lines
}

// stripJSONSpace removes whitespace outside JSON strings.
func stripJSONSpace(s string) string {
	var b strings.Builder
	inString, escaped := false, false
	for _, r := range s {
		switch {
		case inString:
			b.WriteRune(r)
			switch {
			case escaped:
				escaped = false
			case r == '\\':
				escaped = true
			case r == '"':
				inString = false
			}
		case r == '"':
			inString = true
			b.WriteRune(r)
		case r == ' ' || r == '\t' || r == '\n' || r == '\r':
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

var (
	uuidRE      = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)
	timeOfDayRE = regexp.MustCompile(`\b\d\d:\d\d:\d\d\.\d{3}\b`)
)

// outputPattern turns the shown output into an anchored regexp.
func outputPattern(expect []string) (*regexp.Regexp, error) {
	const (
		anything = "\x00any\x00"
		id       = "\x00id\x00"
		clock    = "\x00clock\x00"
	)
	subst := func(s string) string {
		s = strings.ReplaceAll(s, "01a2…", id)
		s = uuidRE.ReplaceAllString(s, id)
		s = timeOfDayRE.ReplaceAllString(s, clock)
		return strings.ReplaceAll(s, "…", anything)
	}
	var pattern string
	if isJSON(expect) {
		pattern = regexp.QuoteMeta(subst(stripJSONSpace(strings.Join(expect, "\n"))))
	} else {
		// Line by line, each ending in a newline; a line of "…" is any
		// number of lines, including none.
		var b strings.Builder
		for _, l := range expect {
			l = strings.TrimSpace(spacesRE.ReplaceAllString(l, " "))
			if l == "…" {
				b.WriteString(`(?:.*\n)*?`)
				continue
			}
			b.WriteString(regexp.QuoteMeta(subst(l)) + `\n`)
		}
		pattern = b.String()
	}
	pattern = strings.ReplaceAll(pattern, regexp.QuoteMeta(anything), `.*?`)
	pattern = strings.ReplaceAll(pattern, regexp.QuoteMeta(id), `[0-9a-f][0-9a-f-]*`)
	pattern = strings.ReplaceAll(pattern, regexp.QuoteMeta(clock), `\d\d:\d\d:\d\d\.\d{3}`)
	if isJSON(expect) {
		return regexp.Compile(`(?s)^` + pattern + `$`)
	}
	return regexp.Compile(`^` + pattern + `$`)
}

// TestGoSnippets compiles the README's Go blocks into the module and runs
// the tests they define.
func TestGoSnippets(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and tests the module; skipped in -short mode")
	}
	root := proctest.ModuleRoot(t)
	lines := readDoc(t, "README.md")
	pathRE := regexp.MustCompile("`([\\w/.-]+\\.go)`")
	testRE := regexp.MustCompile(`(?m)^func (Test\w+)\(t \*testing\.T\)`)
	overlay := map[string]string{}
	var tests, pkgs []string
	dir := t.TempDir()
	lastPath := ""
	excerpts := 0
	for i := 0; i < len(lines); i++ {
		if ms := pathRE.FindAllStringSubmatch(lines[i], -1); ms != nil {
			lastPath = ms[len(ms)-1][1]
		}
		if lines[i] != "```go" {
			continue
		}
		start := i + 1
		for i++; i < len(lines) && lines[i] != "```"; i++ {
		}
		require.NotEmpty(t, lastPath, "README.md:%d: a Go block needs its file named before it", start)
		if quoted, err := os.ReadFile(filepath.Join(root, lastPath)); err == nil {
			requireExcerpt(t, fmt.Sprintf("README.md:%d", start), string(quoted), lines[start:i])
			excerpts++
			lastPath = ""
			continue
		}
		src := strings.Join(lines[start:i], "\n") + "\n"
		formatted, err := format.Source([]byte(src))
		require.NoError(t, err, "README.md:%d: Go block", start)
		require.Equal(t, string(formatted), src, "README.md:%d: the Go block is gofmt'ed", start)
		f := filepath.Join(dir, strconv.Itoa(len(overlay))+".go")
		require.NoError(t, os.WriteFile(f, []byte(src), 0o600))
		overlay[filepath.Join(root, lastPath)] = f
		pkgs = append(pkgs, "./"+filepath.Dir(lastPath))
		for _, m := range testRE.FindAllStringSubmatch(src, -1) {
			tests = append(tests, m[1])
		}
		lastPath = ""
	}
	require.NotZero(t, excerpts, "no quoted Go blocks found in README.md")
	if len(overlay) == 0 {
		return
	}
	require.NotEmpty(t, tests, "the README's new Go files define no test")
	b, err := json.Marshal(map[string]any{"Replace": overlay})
	require.NoError(t, err)
	ov := filepath.Join(dir, "overlay.json")
	require.NoError(t, os.WriteFile(ov, b, 0o600))
	args := append([]string{"test", "-count=1", "-v", "-overlay", ov, "-run", "^(" + strings.Join(tests, "|") + ")$"}, dedupe(pkgs)...)
	cmd := exec.CommandContext(t.Context(), "go", args...)
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "go %s\n%s", strings.Join(args, " "), out)
	for _, name := range tests {
		require.Contains(t, string(out), "--- PASS: "+name+" ", "%s ran and passed", name)
	}
}

// requireExcerpt checks that block's lines appear in file in order
// (compared without leading and trailing space); "// …" skips any lines.
func requireExcerpt(t *testing.T, where, file string, block []string) {
	t.Helper()
	have := strings.Split(file, "\n")
	at := 0
	for _, line := range block {
		want := strings.TrimSpace(line)
		if want == "" || want == "// …" {
			continue
		}
		for at < len(have) && strings.TrimSpace(have[at]) != want {
			at++
		}
		require.Less(t, at, len(have), "%s: %q is not in the quoted file (after the lines before it)", where, want)
		at++
	}
}

func dedupe(s []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, v := range s {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}

// grpcurlBinary returns grpcurl at the version the Makefile pins
// (GRPCURL_VERSION), installing it into bin/ as `make tools-grpcurl` does.
func grpcurlBinary(t *testing.T) string {
	t.Helper()
	root := proctest.ModuleRoot(t)
	mk, err := os.ReadFile(filepath.Join(root, "Makefile"))
	require.NoError(t, err)
	m := regexp.MustCompile(`(?m)^GRPCURL_VERSION\s*:=\s*(\S+)`).FindSubmatch(mk)
	require.NotNil(t, m, "GRPCURL_VERSION in the Makefile")
	dir := filepath.Join(root, "bin", "grpcurl-"+string(m[1]))
	bin := filepath.Join(dir, "grpcurl")
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	cmd := exec.CommandContext(t.Context(), "go", "install", "github.com/fullstorydev/grpcurl/cmd/grpcurl@"+string(m[1]))
	cmd.Env = append(os.Environ(), "GOBIN="+dir)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "install grpcurl: %s", out)
	return bin
}
