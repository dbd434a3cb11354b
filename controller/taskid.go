package controller

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
)

// TaskID is "<namespace>.<cluster>.<ordinal>.<suffix>". Namespaces and cluster
// names are DNS-1123 labels (no dots), so the id parses back to its cluster.
func TaskID(ns, name string, ordinal int32, suffix string) string {
	return ns + "." + name + "." + strconv.Itoa(int(ordinal)) + "." + suffix
}

// NewTaskID returns a fresh task id whose suffix is 32 random bits (8 hex
// characters). That is not unique forever: a repeat needs the same cluster
// and ordinal, and after n launches of one ordinal the next id repeats an
// earlier one with probability n/2^32 (about 1 in 4 million after 1000).
func NewTaskID(ns, name string, ordinal int32) string {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err)) // never fails on Linux
	}
	return TaskID(ns, name, ordinal, hex.EncodeToString(b[:]))
}

// ParseTaskID splits a task id made by TaskID; ok is false for ids that are not
// converge's.
func ParseTaskID(id string) (ns, name string, ordinal int32, ok bool) {
	parts := strings.Split(id, ".")
	if len(parts) != 4 || parts[0] == "" || parts[1] == "" || parts[3] == "" {
		return "", "", 0, false
	}
	o, err := strconv.ParseInt(parts[2], 10, 32)
	if err != nil || o < 0 {
		return "", "", 0, false
	}
	return parts[0], parts[1], int32(o), true
}

// TaskName is the Mesos task name: "<namespace>/<cluster>-<ordinal>".
func TaskName(ns, name string, ordinal int32) string {
	return ns + "/" + name + "-" + strconv.Itoa(int(ordinal))
}
