// +k8s:openapi-gen=true

// Package v1alpha1 holds the Cluster object users write (docs/design.md section 2):
// its types, defaulting, validation with field paths, and strict decoding.
// It is pure: no I/O.
//
// The OpenAPI definitions the Kubernetes API serves are generated from these
// types by openapi-gen (the tag above; see package kubeapi/openapi).
package v1alpha1
