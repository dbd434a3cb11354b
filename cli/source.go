package cli

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/converge-io/converge/apis/v1alpha1"
)

// Source is one manifest input: a file, or standard input ("-").
type Source struct {
	Name string
	Data []byte
}

// manifestExts are the file names a directory contributes, as kubectl reads them.
var manifestExts = map[string]bool{".yaml": true, ".yml": true, ".json": true}

// ReadSources reads every path: a file, a directory (its *.yaml, *.yml and
// *.json files, sorted by name, not recursive) or "-" for stdin. It reads
// everything before anything is decoded, and fails on the first path that
// cannot be read.
func ReadSources(paths []string, stdin io.Reader) ([]Source, error) {
	if len(paths) == 0 {
		return nil, Usage("must give at least one file with -f (a file, a directory or - for stdin)")
	}
	var out []Source
	stdinUsed := false
	for _, p := range paths {
		if p == "-" {
			if stdinUsed {
				return nil, Usage("-f - (standard input) can be given only once")
			}
			stdinUsed = true
			if stdin == nil {
				stdin = os.Stdin
			}
			b, err := io.ReadAll(stdin)
			if err != nil {
				return nil, fmt.Errorf("read standard input: %w", err)
			}
			out = append(out, Source{Name: "<stdin>", Data: b})
			continue
		}
		f, err := os.Open(p)
		if err != nil {
			return nil, err
		}
		fi, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, err
		}
		if !fi.IsDir() {
			b, err := io.ReadAll(f)
			f.Close()
			if err != nil {
				return nil, fmt.Errorf("read %s: %w", p, err)
			}
			out = append(out, Source{Name: p, Data: b})
			continue
		}
		names, err := f.Readdirnames(-1)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("read directory %s: %w", p, err)
		}
		sort.Strings(names)
		found := 0
		for _, n := range names {
			if !manifestExts[strings.ToLower(filepath.Ext(n))] {
				continue
			}
			fp := filepath.Join(p, n)
			st, err := os.Stat(fp)
			if err != nil {
				return nil, err
			}
			if st.IsDir() {
				continue
			}
			b, err := os.ReadFile(fp)
			if err != nil {
				return nil, err
			}
			out = append(out, Source{Name: fp, Data: b})
			found++
		}
		if found == 0 {
			return nil, fmt.Errorf("directory %s holds no manifest (*.yaml, *.yml, *.json)", p)
		}
	}
	return out, nil
}

// DecodeOptions say which namespace objects without one go to.
type DecodeOptions struct {
	// Namespace from -n; used for objects that name none.
	Namespace string
	// NamespaceSet: -n was given, so an object naming another namespace is an
	// error (kubectl's rule), not silently moved.
	NamespaceSet bool
}

// Manifest is one decoded object and the source it came from.
type Manifest struct {
	Source  string
	Cluster *v1alpha1.Cluster
}

// DecodeSources decodes, defaults and validates every document of every
// source. It is all-or-nothing: it returns every problem found, in every
// source, and no object at all if there is one. The same cluster twice is an
// error too.
func DecodeSources(srcs []Source, o DecodeOptions) ([]Manifest, error) {
	var errs []error
	var out []Manifest
	type seenAt struct{ src string }
	seen := map[string]seenAt{}
	for _, s := range srcs {
		objs, err := v1alpha1.Decode(s.Data, s.Name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if err := placeNamespaces(s, objs, o); err != nil {
			errs = append(errs, err)
			continue
		}
		for _, c := range objs {
			key := c.Namespace + "/" + c.Name
			if prev, dup := seen[key]; dup {
				errs = append(errs, fmt.Errorf("%s: cluster %s is given twice (also in %s)", s.Name, key, prev.src))
				continue
			}
			seen[key] = seenAt{s.Name}
			out = append(out, Manifest{Source: s.Name, Cluster: c})
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if len(out) == 0 {
		return nil, errors.New("no objects found in the given files")
	}
	return out, nil
}

// placeNamespaces applies -n. Decode defaults an empty namespace to
// "default", so whether a document named one is read from the raw document.
func placeNamespaces(s Source, objs []*v1alpha1.Cluster, o DecodeOptions) error {
	if !o.NamespaceSet {
		return nil
	}
	raw := rawNamespaces(s.Data)
	for i, c := range objs {
		named := c.Namespace != v1alpha1.DefaultNamespace // certainly written in the file
		if raw != nil && len(raw) == len(objs) {
			named = raw[i] != ""
		}
		if !named {
			c.Namespace = o.Namespace
			continue
		}
		if c.Namespace != o.Namespace {
			return fmt.Errorf("%s: document %d (cluster/%s): metadata.namespace %q does not match --namespace %q: pass -n %s or remove metadata.namespace from the file",
				s.Name, i+1, c.Name, c.Namespace, o.Namespace, c.Namespace)
		}
	}
	return nil
}

// rawNamespaces returns metadata.namespace of each non-empty document (items
// of a list count one each), or nil when the input cannot be read that way.
func rawNamespaces(data []byte) []string {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var out []string
	for {
		doc, err := r.Read()
		if err == io.EOF {
			return out
		}
		if err != nil {
			return nil
		}
		var m struct {
			Kind     string `json:"kind"`
			Metadata struct {
				Namespace string `json:"namespace"`
			} `json:"metadata"`
			Items []struct {
				Metadata struct {
					Namespace string `json:"namespace"`
				} `json:"metadata"`
			} `json:"items"`
		}
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		var probe any
		if err := yaml.Unmarshal(doc, &probe); err != nil {
			return nil
		}
		if probe == nil {
			continue // only comments
		}
		if err := yaml.Unmarshal(doc, &m); err != nil {
			return nil
		}
		if m.Kind == v1alpha1.ListKind {
			for _, it := range m.Items {
				out = append(out, it.Metadata.Namespace)
			}
			continue
		}
		out = append(out, m.Metadata.Namespace)
	}
}
