package cli

import (
	"strings"
)

// IsClusterResource reports whether s names the cluster resource the way
// kubectl users write it: singular, plural or short name.
func IsClusterResource(s string) bool {
	switch strings.ToLower(s) {
	case "cluster", "clusters", "cl", "cluster.converge.io", "clusters.converge.io":
		return true
	}
	return false
}

// ParseNames reads kubectl-style resource arguments, either "TYPE [NAME...]"
// or "TYPE/NAME...", and returns the names (none for "TYPE" alone).
func ParseNames(args []string) ([]string, error) {
	if len(args) == 0 {
		return nil, Usage("you must specify the type of resource: cluster (e.g. cluster/NAME)")
	}
	if strings.Contains(args[0], "/") {
		var names []string
		for _, a := range args {
			typ, name, ok := strings.Cut(a, "/")
			if !ok {
				return nil, Usage("there is no need to give a resource type as a separate argument when passing arguments in TYPE/NAME form: %q", a)
			}
			if !IsClusterResource(typ) {
				return nil, Usage("unknown resource type %q: converge manages clusters (cluster, clusters, cl)", typ)
			}
			if name == "" {
				return nil, Usage("%q names no object: write cluster/NAME", a)
			}
			names = append(names, name)
		}
		return names, nil
	}
	if !IsClusterResource(args[0]) {
		return nil, Usage("unknown resource type %q: converge manages clusters (cluster, clusters, cl)", args[0])
	}
	for _, a := range args[1:] {
		if strings.Contains(a, "/") {
			return nil, Usage("there is no need to give a resource type as a separate argument when passing arguments in TYPE/NAME form: %q", a)
		}
	}
	return args[1:], nil
}

// Ref is how objects are named in output: "cluster/NAME".
func Ref(name string) string { return "cluster/" + name }
