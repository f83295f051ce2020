// Package k8s renders jobforge's Kubernetes manifests (base/, components/
// and overlays/ beside this file) with the kustomize API and sets the
// jobforge image. `make k8s` runs it through cmd/render, and
// manifests_test.go checks every overlay as it renders.
//
// Rendering works on an in-memory copy of the directory, so nothing is ever
// written next to the manifests: not the wrapper kustomization that sets the
// image, nor, in tests, the example secrets that stand in for an overlay's
// real (never committed) secrets/ files.
package k8s

import (
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/resmap"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// ImageName is the image the manifests name for the API and the workers;
// Render replaces it with the image given.
const ImageName = "jobforge"

// exampleSuffix marks the committed stand-in of a secrets/ file.
const exampleSuffix = ".example"

// Options says what to render.
type Options struct {
	// Dir holds base/, components/ and overlays/ (deploy/k8s).
	Dir string
	// Target is the kustomization to render, relative to Dir: "base" or
	// "overlays/<name>".
	Target string
	// Image is the jobforge image, "name:tag", "name@sha256:…" or both
	// (see ParseImage).
	Image string
	// ExampleSecrets renders with every secrets/<file>.example in place of
	// secrets/<file>, whether or not the real file exists: for tests, which
	// must not depend on (or see) a developer's real secrets.
	ExampleSecrets bool
	// Edit, when set, may change the in-memory copy of Dir (rooted at
	// root) before it is rendered: for tests.
	Edit func(fsys filesys.FileSystem, root string) error
}

// Image is a parsed image reference.
type Image struct {
	Name   string // registry and repository
	Tag    string // may be empty when Digest is set
	Digest string // sha256:<64 hex>, or empty
}

// String returns the reference as a container's image field holds it
// after rendering (kustomize drops the tag when a digest is given).
func (im Image) String() string {
	if im.Digest != "" {
		return im.Name + "@" + im.Digest
	}
	return im.Name + ":" + im.Tag
}

var (
	imageName   = regexp.MustCompile(`^[a-z0-9]+(?:[._-][a-z0-9]+)*(?::[0-9]+)?(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$`)
	imageTag    = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)
	imageDigest = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)
)

// ParseImage parses name[:tag][@sha256:digest]. It refuses references that
// float: without a tag or digest, or tagged "latest" without a digest.
func ParseImage(ref string) (Image, error) {
	if ref == "" {
		return Image{}, fmt.Errorf("no image: give name:tag or name@sha256:<digest>")
	}
	var im Image
	name, digest, hasDigest := strings.Cut(ref, "@")
	if hasDigest {
		if !imageDigest.MatchString(digest) {
			return Image{}, fmt.Errorf("image %q: digest must be sha256:<64 hex digits>", ref)
		}
		im.Digest = digest
	}
	if i := strings.LastIndex(name, ":"); i > strings.LastIndex(name, "/") {
		name, im.Tag = name[:i], name[i+1:]
		if !imageTag.MatchString(im.Tag) {
			return Image{}, fmt.Errorf("image %q: bad tag %q", ref, im.Tag)
		}
	}
	if !imageName.MatchString(name) {
		return Image{}, fmt.Errorf("image %q: bad name %q", ref, name)
	}
	im.Name = name
	switch {
	case im.Tag == "" && im.Digest == "":
		return Image{}, fmt.Errorf("image %q: give a tag or a digest (name:tag, name@sha256:...)", ref)
	case im.Tag == "latest" && im.Digest == "":
		return Image{}, fmt.Errorf("image %q: \"latest\" floats; give a version tag or a digest", ref)
	}
	return im, nil
}

// Overlays returns the names of the overlays under dir/overlays.
func Overlays(dir string) ([]string, error) {
	entries, err := os.ReadDir(filepath.Join(dir, "overlays"))
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if _, err := os.Stat(filepath.Join(dir, "overlays", e.Name(), "kustomization.yaml")); err == nil && e.IsDir() {
			out = append(out, e.Name())
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no overlays in %s", dir)
	}
	return out, nil
}

// Render renders opts.Target with the jobforge image set to opts.Image.
func Render(opts Options) (resmap.ResMap, error) {
	im, err := ParseImage(opts.Image)
	if err != nil {
		return nil, err
	}
	const src, wrapper = "/src", "/render"
	fsys, err := copyToMemory(opts.Dir, src, opts.ExampleSecrets)
	if err != nil {
		return nil, err
	}
	if opts.Edit != nil {
		if err := opts.Edit(fsys, src); err != nil {
			return nil, fmt.Errorf("edit: %w", err)
		}
	}
	target := path.Clean(filepath.ToSlash(opts.Target))
	if !fsys.Exists(path.Join(src, target, "kustomization.yaml")) {
		return nil, fmt.Errorf("%s has no kustomization.yaml", path.Join(opts.Dir, target))
	}
	if !opts.ExampleSecrets {
		if err := secretsPresent(opts.Dir, target); err != nil {
			return nil, err
		}
	}
	// A kustomization of our own around the target sets the image, so the
	// committed manifests never name one.
	k := fmt.Sprintf("apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"+
		"resources:\n  - %s\nimages:\n  - name: %s\n    newName: %q\n",
		path.Join("..", src, target), ImageName, im.Name)
	if im.Tag != "" {
		k += fmt.Sprintf("    newTag: %q\n", im.Tag)
	}
	if im.Digest != "" {
		k += fmt.Sprintf("    digest: %q\n", im.Digest)
	}
	if err := fsys.MkdirAll(wrapper); err != nil {
		return nil, err
	}
	if err := fsys.WriteFile(path.Join(wrapper, "kustomization.yaml"), []byte(k)); err != nil {
		return nil, err
	}
	m, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(fsys, wrapper)
	if err != nil {
		return nil, fmt.Errorf("render %s: %w", target, err)
	}
	return m, nil
}

// secretsPresent checks that each secrets/<f>.example of target has its
// real secrets/<f> next to it, which the overlay's generators read.
func secretsPresent(dir, target string) error {
	examples, err := filepath.Glob(filepath.Join(dir, filepath.FromSlash(target), "secrets", "*"+exampleSuffix))
	if err != nil {
		return err
	}
	for _, ex := range examples {
		file := strings.TrimSuffix(ex, exampleSuffix)
		if _, err := os.Stat(file); err != nil {
			return fmt.Errorf("%s is missing: copy %s and fill in the real values (never commit it)", file, filepath.Base(ex))
		}
	}
	return nil
}

// copyToMemory copies the manifests under dir (not the Go files) into an
// in-memory file system at root. With examples, each secrets/<f>.example
// is copied to secrets/<f> and the real secrets/ files are left out.
func copyToMemory(dir, root string, examples bool) (filesys.FileSystem, error) {
	fsys := filesys.MakeFsInMemory()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if slices.Contains([]string{".go", ".mod", ".sum"}, path.Ext(rel)) {
			return nil
		}
		if inSecrets := path.Base(path.Dir(rel)) == "secrets"; inSecrets && examples {
			var ok bool
			if rel, ok = strings.CutSuffix(rel, exampleSuffix); !ok {
				return nil // a real secret: the example stands in for it
			}
		}
		raw, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		dst := path.Join(root, rel)
		if err := fsys.MkdirAll(path.Dir(dst)); err != nil {
			return err
		}
		return fsys.WriteFile(dst, raw)
	})
	if err != nil {
		return nil, fmt.Errorf("copy %s: %w", dir, err)
	}
	return fsys, nil
}
