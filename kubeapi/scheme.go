// Package kubeapi serves the Kubernetes API for clusters.converge.io/v1alpha1
// (and the core v1 events converge records) on k8s.io/apiserver's generic
// server, so that kubectl, Flux and Argo CD manage converge clusters
// unchanged. Objects live in converge's own store (package store): what
// kubectl writes is what the converge CLI and the controller read, with the
// store's resourceVersions, generations, conflicts and finalizers.
package kubeapi

import (
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"

	"github.com/converge-io/converge/apis/v1alpha1"
)

// GroupVersion is the API group version served for clusters.
var GroupVersion = schema.GroupVersion{Group: v1alpha1.Group, Version: v1alpha1.Version}

// groupResource names clusters in API errors ("clusters.converge.io").
var groupResource = GroupVersion.WithResource("clusters").GroupResource()

// groupKind names Cluster in validation errors.
var groupKind = GroupVersion.WithKind(v1alpha1.Kind).GroupKind()

// Scheme knows the served types. Cluster has a single version, so the same Go
// type is registered as the group's internal version too: conversion to and
// from it only sets the kind (runtime.Scheme does no copying for a type
// registered under both), as k8s.io/apiserver's handlers expect a hub version.
var (
	Scheme = runtime.NewScheme()
	Codecs = serializer.NewCodecFactory(Scheme)
)

func init() {
	utilruntime.Must(addKnownTypes(Scheme))
}

func addKnownTypes(s *runtime.Scheme) error {
	internal := schema.GroupVersion{Group: v1alpha1.Group, Version: runtime.APIVersionInternal}
	for _, gv := range []schema.GroupVersion{GroupVersion, internal} {
		s.AddKnownTypes(gv, &v1alpha1.Cluster{}, &v1alpha1.ClusterList{})
	}
	metav1.AddToGroupVersion(s, GroupVersion)
	// Options (list, get, delete) are decoded as meta v1, the
	// OptionsExternalVersion of k8s.io/apiserver's default group info.
	metav1.AddToGroupVersion(s, schema.GroupVersion{Version: "v1"})

	// The scale subresource speaks autoscaling/v1 Scale.
	if err := autoscalingv1.AddToScheme(s); err != nil {
		return err
	}
	s.AddKnownTypes(schema.GroupVersion{Group: autoscalingv1.GroupName, Version: runtime.APIVersionInternal}, &autoscalingv1.Scale{})

	// Core v1 events (read-only), served under /api/v1 like kube-apiserver's:
	// the same Go type as internal version, as for Cluster, and the field
	// labels kube-apiserver accepts for events.
	for _, gv := range []schema.GroupVersion{corev1.SchemeGroupVersion, {Version: runtime.APIVersionInternal}} {
		s.AddKnownTypes(gv, &corev1.Event{}, &corev1.EventList{})
	}
	if err := s.AddFieldLabelConversionFunc(corev1.SchemeGroupVersion.WithKind("Event"), convertEventFieldLabel); err != nil {
		return err
	}

	// Types every group's handlers use unversioned (errors, discovery).
	unversioned := schema.GroupVersion{Group: "", Version: "v1"}
	s.AddUnversionedTypes(unversioned,
		&metav1.Status{}, &metav1.APIVersions{}, &metav1.APIGroupList{},
		&metav1.APIGroup{}, &metav1.APIResourceList{})

	// kubectl reads the defaults back (apply, diff); namespace is left to
	// the request (a manifest without one goes to the request's namespace).
	s.AddTypeDefaultingFunc(&v1alpha1.Cluster{}, func(obj any) { setDefaults(obj.(*v1alpha1.Cluster)) })
	return nil
}

// setDefaults is v1alpha1.SetDefaults except for metadata.namespace, which
// the request decides.
func setDefaults(c *v1alpha1.Cluster) {
	ns := c.Namespace
	v1alpha1.SetDefaults(c)
	c.Namespace = ns
}
