// +k8s:openapi-gen=true
// +k8s:openapi-model-package=io.converge.v1alpha1

// Package v1alpha1 holds the Cluster object users write (docs/design.md section 2):
// its types, defaulting, validation with field paths, and strict decoding.
// It is pure: no I/O.
//
// The OpenAPI definitions the Kubernetes API serves are generated from these
// types by openapi-gen (the tags above; see package kubeapi/openapi), which
// also writes zz_generated.model_name.go: the names the definitions go by.
package v1alpha1
