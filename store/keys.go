package store

import (
	"fmt"
	"regexp"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// MaxTaskIDLength bounds a task id used in a ledger key.
const MaxTaskIDLength = 200

var taskIDRe = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)

// ValidateKeyName checks a namespace or cluster name before it is used in a
// key: a DNS-1123 label of at most 63 characters (so no '/', "..", NUL,
// upper case or empty string).
func ValidateKeyName(what, v string) error {
	if errs := validation.IsDNS1123Label(v); len(errs) > 0 {
		return fmt.Errorf("invalid %s %q: %s", what, truncate(v), strings.Join(errs, "; "))
	}
	return nil
}

// ValidateTaskID checks a task id before it is used in a key:
// [A-Za-z0-9._-], 1..200 characters, not "." or "..".
func ValidateTaskID(id string) error {
	switch {
	case id == "":
		return fmt.Errorf("invalid task id: must not be empty")
	case len(id) > MaxTaskIDLength:
		return fmt.Errorf("invalid task id %q: longer than %d characters", truncate(id), MaxTaskIDLength)
	case id == "." || id == "..":
		return fmt.Errorf("invalid task id %q: must not be %q", id, id)
	case !taskIDRe.MatchString(id):
		return fmt.Errorf("invalid task id %q: only letters, digits, '.', '_' and '-' are allowed", truncate(id))
	}
	return nil
}

func validateNsName(ns, name string) error {
	if err := ValidateKeyName("namespace", ns); err != nil {
		return err
	}
	return ValidateKeyName("name", name)
}

// truncate keeps error messages short when a caller passes a huge string.
func truncate(v string) string {
	if len(v) > 80 {
		return v[:80] + "..."
	}
	return v
}

func (s *Store) clustersPrefix(ns string) string {
	if ns == "" {
		return s.prefix + "/clusters/"
	}
	return s.prefix + "/clusters/" + ns + "/"
}

// The *Key helpers assume validated input; every exported method validates first.
func (s *Store) clusterKey(ns, name string) string { return s.prefix + "/clusters/" + ns + "/" + name }
func (s *Store) tasksPrefix(ns, name string) string {
	return s.prefix + "/tasks/" + ns + "/" + name + "/"
}
func (s *Store) taskKey(ns, name, id string) string { return s.tasksPrefix(ns, name) + id }
func (s *Store) electionKey(ns, name string) string {
	return s.prefix + "/elections/" + ns + "/" + name
}
func (s *Store) endpointsKey(ns, name string) string {
	return s.prefix + "/endpoints/" + ns + "/" + name
}
func (s *Store) eventsKey(ns, name string) string { return s.prefix + "/events/" + ns + "/" + name }
func (s *Store) frameworkKey() string             { return s.shardPrefix() + "/framework" }

// nsNameFromKey returns "ns/name" for a key <base><ns>/<name>.
func nsNameFromKey(base, key string) (ns, name string, ok bool) {
	rest, found := strings.CutPrefix(key, base)
	if !found {
		return "", "", false
	}
	ns, name, ok = strings.Cut(rest, "/")
	if !ok || strings.Contains(name, "/") {
		return "", "", false
	}
	return ns, name, true
}
