package localmesos

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

// fetcher is the Mesos fetcher of the local agents: it puts a command's URIs
// into a sandbox, through its cache for URIs with cache: true, as the agent's
// fetcher does (apache/mesos docs/fetcher.md, src/slave/containerizer/fetcher.cpp).
//
// One cache serves every agent: they share one machine and one work dir. A
// cached file reaches the sandbox as a hard link to the cache file (Mesos
// copies it): a 50 MB executor binary fetched for every task costs its size
// once, not once per sandbox. The cache file is made read-only for that
// reason; a task running as root can still write through it.
type fetcher struct {
	dir     string // the cache directory (Mesos's --fetcher_cache_dir)
	home    string // --frameworks_home, for relative URIs
	maxSize int64  // --fetcher_cache_size
	log     logr.Logger

	mu      sync.Mutex
	entries map[string]*cacheEntry // by cacheKey
	size    int64                  // bytes of the entries that completed
	serial  int
}

// cacheEntry is one cached URI. done closes when the download ends; err is
// then set if it failed (the entry is gone from the cache by then).
type cacheEntry struct {
	key, path string
	done      chan struct{}
	err       error
	size      int64
	refs      int // fetches using the file now: it cannot be evicted
	lastUse   time.Time
}

// errCacheFull: the file does not fit even after evicting every unused
// entry; the fetch bypasses the cache, as Mesos's does.
var errCacheFull = errors.New("fetcher cache full")

// newFetcher starts with an empty cache directory: as the Mesos agent's
// Fetcher constructor does (fetcher.cpp: "os::rmdir(flags.fetcher_cache_dir)"),
// so that a restarted local Mesos never serves a stale copy of a rebuilt file.
func newFetcher(dir string, maxSize int64, log logr.Logger) (*fetcher, error) {
	if err := os.RemoveAll(dir); err != nil {
		return nil, fmt.Errorf("clear fetcher cache %s: %w", dir, err)
	}
	return &fetcher{dir: dir, maxSize: maxSize, log: log, entries: map[string]*cacheEntry{}}, nil
}

// fetchAll fetches every URI into the sandbox dir, for the OS user user
// ("" when none is given): the cache is per user, as in Mesos.
func (f *fetcher) fetchAll(uris []mesos.CommandInfo_URI, dir, user string) error {
	for _, u := range uris {
		u.Value = f.resolve(u.Value)
		if err := f.fetch(u, dir, user); err != nil {
			return fmt.Errorf("%s: %w", u.Value, err)
		}
	}
	return nil
}

// resolve puts a relative local path under the frameworks home (the Mesos
// fetcher's --frameworks_home); other URIs are returned as they are.
func (f *fetcher) resolve(v string) string {
	if f == nil || f.home == "" || v == "" || filepath.IsAbs(v) || strings.Contains(v, "://") {
		return v
	}
	return filepath.Join(f.home, v)
}

func (f *fetcher) fetch(u mesos.CommandInfo_URI, dir, user string) error {
	name, err := fetchName(u)
	if err != nil {
		return err
	}
	dst := filepath.Join(dir, name)
	if !u.GetCache() || f == nil || f.maxSize <= 0 {
		return fetchDirect(u, name, dir, dst)
	}
	e, err := f.acquire(u.Value, user)
	if errors.Is(err, errCacheFull) {
		return fetchDirect(u, name, dir, dst)
	}
	if err != nil {
		return err
	}
	defer f.release(e)
	if u.GetExtract() && !u.GetExecutable() && isArchive(name) {
		// From a cache file only the extraction lands in the sandbox
		// (docs/fetcher.md, "Archive extraction").
		return extract(e.path, name, dir)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	_ = os.Remove(dst)
	if err := os.Link(e.path, dst); err != nil {
		// Another file system: copy, as Mesos always does.
		if err := copyFile(e.path, dst); err != nil {
			return err
		}
	}
	if u.GetExecutable() {
		return os.Chmod(dst, 0o555)
	}
	return nil
}

// commandUser is the user a fetch is for: the command's, else the
// framework's (fetcher.cpp, FetcherProcess::fetch).
func commandUser(fw *framework, c *mesos.CommandInfo) string {
	if c != nil && c.GetUser() != "" {
		return c.GetUser()
	}
	return fw.info.GetUser()
}

// cacheKey is fetcher.cpp's cacheKey: the URI, per user.
func cacheKey(user, uri string) string {
	if user == "" {
		return uri
	}
	return user + "@" + uri
}

// acquire returns the completed cache entry of uri for user, downloading it
// first unless it is cached or on its way (then it waits for that download:
// every URI is downloaded at most once per user while it is cached).
func (f *fetcher) acquire(uri, user string) (*cacheEntry, error) {
	key := cacheKey(user, uri)
	f.mu.Lock()
	e := f.entries[key]
	if e != nil {
		e.refs++
		f.mu.Unlock()
		<-e.done
		if e.err != nil {
			f.release(e)
			return nil, e.err
		}
		return e, nil
	}
	f.serial++
	dir := f.dir
	if user != "" {
		dir = filepath.Join(dir, user) // fetcher.cpp: "Segregating per-user cache directories"
	}
	e = &cacheEntry{key: key, path: filepath.Join(dir, cacheFileName(f.serial, uri)), done: make(chan struct{}), refs: 1}
	f.entries[key] = e
	f.mu.Unlock()

	size, err := f.download(uri, e.path)
	f.mu.Lock()
	if err == nil {
		err = f.reserveLocked(e, size)
	}
	if err != nil {
		delete(f.entries, key)
		_ = os.Remove(e.path)
		e.refs--
	} else {
		e.size = size
		f.size += size
	}
	e.err = err
	f.mu.Unlock()
	close(e.done)
	return e, err
}

// cacheFileName is fetcher.cpp's: "c<serial>-" and the URI's base name
// (shortened), keeping its extension for extraction.
func cacheFileName(serial int, uri string) string {
	base := filepath.Base(strings.TrimSuffix(uri, "/"))
	if i := strings.IndexAny(base, "?#"); i >= 0 {
		base = base[:i]
	}
	if len(base) > 20 {
		base = base[:10] + "_" + base[len(base)-10:]
	}
	return "c" + strconv.Itoa(serial) + "-" + base
}

func (f *fetcher) download(uri, path string) (int64, error) {
	src, err := openURI(uri)
	if err != nil {
		return 0, err
	}
	defer src.Close()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return 0, err
	}
	if err := writeFile(path, src, 0o644); err != nil {
		return 0, err
	}
	st, err := os.Stat(path)
	if err != nil {
		return 0, err
	}
	// Read-only: sandboxes hold hard links to it.
	return st.Size(), os.Chmod(path, 0o444)
}

// reserveLocked makes room for size bytes by evicting unused entries, least
// recently used first (docs/fetcher.md, "Cache eviction"), or fails with
// errCacheFull.
func (f *fetcher) reserveLocked(e *cacheEntry, size int64) error {
	if f.size+size <= f.maxSize {
		return nil
	}
	var idle []*cacheEntry
	for _, o := range f.entries {
		if o != e && o.refs == 0 && o.size > 0 {
			idle = append(idle, o)
		}
	}
	sort.Slice(idle, func(i, j int) bool { return idle[i].lastUse.Before(idle[j].lastUse) })
	for _, o := range idle {
		if f.size+size <= f.maxSize {
			break
		}
		delete(f.entries, o.key)
		f.size -= o.size
		_ = os.Remove(o.path)
		f.log.V(1).Info("fetcher cache evicted", "uri", o.key, "bytes", o.size)
	}
	if f.size+size > f.maxSize {
		return errCacheFull
	}
	return nil
}

func (f *fetcher) release(e *cacheEntry) {
	f.mu.Lock()
	e.refs--
	e.lastUse = time.Now()
	f.mu.Unlock()
}

// fetchName is the file name a URI gets in the sandbox: output_file, or
// the URI's base name without query and fragment.
func fetchName(u mesos.CommandInfo_URI) (string, error) {
	name := filepath.Base(strings.TrimSuffix(u.Value, "/"))
	if i := strings.IndexAny(name, "?#"); i >= 0 {
		name = name[:i]
	}
	if u.OutputFile != nil && *u.OutputFile != "" {
		name = *u.OutputFile
	}
	if name == "" || name == "." || name == "/" || strings.Contains(name, "..") {
		return "", errors.New("cannot name the fetched file")
	}
	return name, nil
}

// fetchDirect downloads a URI straight into the sandbox (cache bypassed):
// the archive stays beside what is extracted from it.
func fetchDirect(u mesos.CommandInfo_URI, name, dir, dst string) error {
	src, err := openURI(u.Value)
	if err != nil {
		return err
	}
	defer src.Close()
	if err := writeFile(dst, src, 0o644); err != nil {
		return err
	}
	if u.GetExecutable() {
		if err := os.Chmod(dst, 0o755); err != nil {
			return err
		}
	}
	if u.GetExtract() && !u.GetExecutable() && isArchive(name) {
		return extract(dst, name, dir)
	}
	return nil
}

// openURI opens what local Mesos can fetch: local paths, file:// and
// loopback http(s).
func openURI(v string) (io.ReadCloser, error) {
	switch {
	case strings.HasPrefix(v, "http://") || strings.HasPrefix(v, "https://"):
		pu, err := url.Parse(v)
		if err != nil {
			return nil, err
		}
		if !isLoopback(pu.Hostname()) {
			return nil, errors.New("only loopback http(s) URIs can be fetched by local mesos")
		}
		client := &http.Client{Timeout: 60 * time.Second}
		resp, err := client.Get(v)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode != http.StatusOK {
			resp.Body.Close()
			return nil, fmt.Errorf("HTTP %d", resp.StatusCode)
		}
		return resp.Body, nil
	case strings.HasPrefix(v, "file://") || filepath.IsAbs(v):
		return os.Open(strings.TrimPrefix(v, "file://"))
	default:
		return nil, errors.New("unsupported URI (use an absolute path, file:// or loopback http)")
	}
}

func isArchive(name string) bool {
	for _, ext := range []string{".tar.gz", ".tgz", ".tar", ".zip"} {
		if strings.HasSuffix(name, ext) {
			return true
		}
	}
	return false
}

// extract unpacks the archive at path (named name) into dir.
func extract(path, name, dir string) error {
	switch {
	case strings.HasSuffix(name, ".tar.gz") || strings.HasSuffix(name, ".tgz"):
		return extractTar(path, dir, true)
	case strings.HasSuffix(name, ".tar"):
		return extractTar(path, dir, false)
	default:
		return extractZip(path, dir)
	}
}

func copyFile(from, to string) error {
	src, err := os.Open(from)
	if err != nil {
		return err
	}
	defer src.Close()
	return writeFile(to, src, 0o644)
}
