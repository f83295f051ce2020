// Command render writes one overlay of jobforge's Kubernetes manifests,
// rendered with the kustomize API and with the jobforge image set, to a
// file: `make k8s IMAGE=... [OVERLAY=...]` runs it.
//
//	go run ./cmd/render -overlay production -image registry.example/jobforge@sha256:... -out out.yaml
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/jobforge/jobforge/deploy/k8s"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "render:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("render", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", ".", "the directory holding base/, components/ and overlays/")
	overlay := fs.String("overlay", "dev", "the overlay to render (a directory under overlays/)")
	image := fs.String("image", "", "the jobforge image: name:tag or name@sha256:digest (required)")
	out := fs.String("out", "-", "where to write the manifests; - for standard output")
	if err := fs.Parse(args); err != nil {
		return err
	}
	m, err := k8s.Render(k8s.Options{Dir: *dir, Target: filepath.Join("overlays", *overlay), Image: *image})
	if err != nil {
		return err
	}
	yaml, err := m.AsYaml()
	if err != nil {
		return err
	}
	if *out == "-" {
		_, err = stdout.Write(yaml)
		return err
	}
	if err := os.MkdirAll(filepath.Dir(*out), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(*out, yaml, 0o600); err != nil { // it holds Secrets
		return err
	}
	fmt.Fprintln(stdout, *out)
	return nil
}
