// Package browser_test opens jobforge's web pages in a real browser: it
// builds and starts the API binary against a real redis-server, loads /docs
// and /monitoring in headless Chromium (Debian's chromium package, installed
// by `make deps`), checks that they render real content, and saves
// screenshots under out/browser, or $ARTIFACTS_DIR when set.
package browser_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/jobforge/jobforge/internal/auth"
	"github.com/jobforge/jobforge/internal/proctest"
	"github.com/jobforge/jobforge/internal/redistest"
)

func TestMain(m *testing.M) { proctest.Main(m) }

// adminToken is the API key the test's API accepts, with every scope.
const adminToken = "jfk_browser.0123456789abcdef0123456789abcdef"

func TestDocsAndMonitoringRenderInChromium(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("browser test; skipped in -short mode")
	}
	chromium, err := exec.LookPath("chromium")
	require.NoError(t, err, "chromium not found: run `make deps` (Debian package chromium)")
	baseURL := startAPI(t, redistest.NewDB(t))

	// Jobs on two queues, so the queue UI has queues to list (no worker
	// runs: they stay pending).
	for _, body := range []string{
		`{"type":"simulate","payload":{"outcome":"succeed"}}`,
		`{"type":"primes","payload":{"limit":1000}}`,
	} {
		req, err := http.NewRequest(http.MethodPost, baseURL+"/v1/jobs", strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+adminToken)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		b, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode, "%s", b)
	}

	ctx := newBrowser(t, chromium)
	artifacts := artifactsDir(t)

	tests := []struct {
		name string
		path string
		// ready is visible once the page has rendered its content.
		ready chromedp.Action[chromedp.Void]
		// check runs on the rendered page.
		check func(t *testing.T, ctx context.Context)
	}{
		{
			name:  "docs",
			path:  "/docs",
			ready: chromedp.WaitVisible(chromedp.CSS(`#swagger-ui .opblock`)),
			check: func(t *testing.T, ctx context.Context) {
				text, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`#swagger-ui`)))
				require.NoError(t, err)
				// The JobService's operations, as the generated OpenAPI
				// document describes them, rendered by Swagger UI.
				for _, want := range []string{"jobforge", "JobService", "/v1/jobs", "/v1/jobs/{job}", "/v1/jobs/{job}:cancel", "/v1/jobTypes", "Authorize"} {
					require.Contains(t, text, want)
				}
				ops, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('#swagger-ui .opblock').length`))
				require.NoError(t, err)
				require.GreaterOrEqual(t, ops, 8, "operations rendered")
			},
		},
		{
			name:  "monitoring",
			path:  "/monitoring/",
			ready: chromedp.WaitVisible(chromedp.Search(`//table//tr[contains(., "default")]`)),
			check: func(t *testing.T, ctx context.Context) {
				// The queues list of asynqmon's dashboard.
				text, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`table`)))
				require.NoError(t, err)
				for _, want := range []string{"Queue", "default", "cpu"} {
					require.Contains(t, text, want)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tctx, cancel := chromedp.NewContext(ctx) // a new tab
			defer cancel()
			require.NoError(t, chromedp.Do(tctx))
			// The queue UI is behind the admin credentials.
			_, err := chromedp.Call(tctx, network.Enable, network.EnableParams{})
			require.NoError(t, err)
			_, err = chromedp.Call(tctx, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{
				Headers: network.Headers{"Authorization": "Bearer " + adminToken},
			})
			require.NoError(t, err)

			wctx, cancelWait := context.WithTimeout(tctx, 60*time.Second)
			defer cancelWait()
			err = chromedp.Do(wctx, chromedp.Navigate(baseURL+tt.path), tt.ready)
			if shot, serr := chromedp.Run(tctx, chromedp.FullScreenshot(100)); serr == nil {
				path := filepath.Join(artifacts, tt.name+".png")
				require.NoError(t, os.WriteFile(path, shot, 0o644))
				t.Logf("screenshot: %s", path)
			}
			require.NoError(t, err, "page %s did not render", tt.path)
			tt.check(t, tctx)
		})
	}
}

// newBrowser starts headless Chromium with a fresh profile and no
// background traffic; it is stopped when the test ends.
func newBrowser(t *testing.T, path string) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1366, 900),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	require.NoError(t, chromedp.Do(ctx), "start chromium")
	t.Cleanup(func() { cancel(); cancelAlloc() })
	return ctx
}

func artifactsDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("ARTIFACTS_DIR")
	if dir == "" {
		dir = filepath.Join("..", "..", "out", "browser")
	} else {
		dir = filepath.Join(dir, "browser")
	}
	require.NoError(t, os.MkdirAll(dir, 0o755))
	return dir
}

// startAPI builds cmd/api and runs it against redisURL with authentication
// on (one admin key), returning its base URL. The built-in job types are
// published (`worker publish`) without running a worker, so jobs stay
// queued for the queue UI to show.
func startAPI(t *testing.T, redisURL string) string {
	t.Helper()
	bins := proctest.Build(t, false, "./cmd/api", "./cmd/worker")
	publish := exec.Command(bins["worker"], "publish")
	publish.Env = append(os.Environ(), "REDIS_URL="+redisURL)
	out, err := publish.CombinedOutput()
	require.NoError(t, err, "%s", out)
	apiBin := bins["api"]
	keys, err := json.Marshal(map[string]any{"keys": []auth.Key{auth.HashedKey(adminToken, "browser", "default", auth.AllScopes)}})
	require.NoError(t, err)
	keyFile := filepath.Join(t.TempDir(), "keys.json")
	require.NoError(t, os.WriteFile(keyFile, keys, 0o600))
	p := proctest.Start(t, apiBin, []string{"REDIS_URL=" + redisURL, "JOBFORGE_LOG_FORMAT=json"}, "api started",
		"-grpc-addr", "127.0.0.1:0", "-http-addr", "127.0.0.1:0", "-admin-addr", "127.0.0.1:0",
		"-api-keys-file", keyFile)
	return "http://" + p.Field("api started", "http_addr")
}
