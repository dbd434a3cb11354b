package localmesos

import (
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// filesReadMax caps one read as Mesos does: 16 pages (files.cpp _read).
var filesReadMax = int64(os.Getpagesize() * 16)

// serveFilesRead is the agent's GET /files/read (Mesos src/files/files.cpp
// __read/_read): path (required), offset (default -1), length (default: to
// the end, -1 too). It answers {"data": ..., "offset": ...}; offset -1 answers
// the file's size with no data; a read past the end answers no data; a read
// is capped at 16 pages. The path is an executor's virtual run directory as
// the agent attaches it, /frameworks/FID/executors/EID/runs/latest[/FILE]
// (slave/paths.cpp getExecutorVirtualPath), or the same directory's real
// path, and must resolve (symlinks too) inside it. 400 for bad parameters, a
// directory or a path escaping its run directory; 404 when nothing is
// attached there.
func (m *Mesos) serveFilesRead(a *agent, w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "Expecting 'GET', received '"+r.Method+"'", http.StatusMethodNotAllowed)
		return
	}
	q := r.URL.Query()
	p := q.Get("path")
	if p == "" {
		http.Error(w, "Expecting 'path=value' in query.", http.StatusBadRequest)
		return
	}
	offset, length, msg := readRange(q.Get("offset"), q.Has("offset"), q.Get("length"), q.Has("length"))
	if msg != "" {
		http.Error(w, msg, http.StatusBadRequest)
		return
	}
	file, status, msg := m.resolveFile(a, p)
	if status != http.StatusOK {
		http.Error(w, msg, status)
		return
	}
	size, data, err := readAt(file, offset, length)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	out := struct {
		Data   string `json:"data"`
		Offset int64  `json:"offset"`
	}{Data: string(data), Offset: offset}
	if offset == -1 {
		out.Offset = size
	}
	body, _ := json.Marshal(out) // a string and an integer always marshal
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(body)
}

// readRange parses offset and length as Mesos does: offset >= -1 (absent:
// -1), length >= -1 (absent or -1: to the end, capped).
func readRange(offS string, hasOff bool, lenS string, hasLen bool) (offset, length int64, msg string) {
	offset, length = -1, -1
	if hasOff {
		v, err := strconv.ParseInt(offS, 10, 64)
		if err != nil {
			return 0, 0, "Failed to parse offset: Failed to convert '" + offS + "' to number."
		}
		if v < -1 {
			return 0, 0, "Negative offset provided: " + offS + "."
		}
		offset = v
	}
	if hasLen {
		v, err := strconv.ParseInt(lenS, 10, 64)
		if err != nil {
			return 0, 0, "Failed to parse length: Failed to convert '" + lenS + "' to number."
		}
		if v < -1 {
			return 0, 0, "Negative length provided: " + lenS + "."
		}
		length = v
	}
	return offset, length, ""
}

// resolveFile maps a requested path to a file in one of a's executor run
// directories (files.cpp resolve: the longest attached prefix, the rest
// appended, the canonical result kept inside the attached directory).
func (m *Mesos) resolveFile(a *agent, p string) (file string, status int, msg string) {
	root := filepath.Join(m.workDir, "agents", a.id)
	if strings.Contains(p, "\x00") {
		return "", http.StatusNotFound, ""
	}
	// The real path of a run directory is attached too.
	rel := strings.TrimSuffix(strings.TrimPrefix(p, root), "/")
	// /frameworks/F/executors/E/runs/latest is what the agent attaches.
	parts := strings.SplitN(strings.TrimPrefix(rel, "/"), "/", 7)
	if !strings.HasPrefix(rel, "/") || len(parts) < 6 || parts[0] != "frameworks" || parts[2] != "executors" || parts[4] != "runs" || parts[5] != "latest" ||
		!validSegment(parts[1]) || !validSegment(parts[3]) {
		return "", http.StatusNotFound, ""
	}
	run := filepath.Join(root, "frameworks", parts[1], "executors", parts[3], "runs", "latest")
	if fi, err := os.Stat(run); err != nil || !fi.IsDir() {
		return "", http.StatusNotFound, "" // never attached, or collected
	}
	// The unresolved request, as Mesos joins it: a ".." in it is resolved by
	// realpath below and must not leave the run directory either.
	target := run
	if len(parts) == 7 {
		target = filepath.Join(run, filepath.FromSlash(parts[6]))
	}
	real, err := filepath.EvalSymlinks(target)
	if errors.Is(err, fs.ErrNotExist) {
		return "", http.StatusNotFound, ""
	} else if err != nil {
		return "", http.StatusBadRequest, "Failed to determine canonical path of '" + target + "': " + err.Error() + "."
	}
	realRun, err := filepath.EvalSymlinks(run)
	if err != nil {
		return "", http.StatusNotFound, ""
	}
	if real != realRun && !strings.HasPrefix(real, realRun+string(filepath.Separator)) {
		return "", http.StatusBadRequest, "'" + target + "' is inaccessible."
	}
	if fi, err := os.Stat(real); err != nil {
		return "", http.StatusNotFound, ""
	} else if fi.IsDir() {
		return "", http.StatusBadRequest, "Cannot read a directory."
	}
	return real, http.StatusOK, ""
}

// validSegment: a framework or executor id as a path segment (ids never
// contain "/", and "." or ".." would name another directory).
func validSegment(s string) bool { return s != "" && s != "." && s != ".." }

// readAt returns the file's size and up to length bytes (-1: to the end)
// from offset, at most filesReadMax; offset -1 reads nothing.
func readAt(file string, offset, length int64) (int64, []byte, error) {
	f, err := os.Open(file)
	if err != nil {
		return 0, nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, nil, err
	}
	size := fi.Size()
	if offset == -1 || offset >= size || length == 0 {
		return size, nil, nil
	}
	if length < 0 || length > size-offset {
		length = size - offset
	}
	length = min(length, filesReadMax)
	buf := make([]byte, length)
	n, err := f.ReadAt(buf, offset)
	if err != nil && !errors.Is(err, io.EOF) {
		return size, nil, err
	}
	return size, buf[:n], nil
}
