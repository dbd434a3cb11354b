package localmesos

import (
	"fmt"
	"math"
	"sort"
	"strings"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
)

// The validators here follow Apache Mesos's src/common/validation.cpp,
// src/common/roles.cpp and src/master/validation.cpp, messages included, so a
// framework sees the errors a real master would give it.

// nameMax is NAME_MAX on Linux, the longest id Mesos accepts.
const nameMax = 255

// validateID is common::validation::validateID (task, executor, agent and
// framework ids become directory names on the agent).
func validateID(id string) string {
	switch {
	case id == "":
		return "ID must not be empty"
	case len(id) > nameMax:
		return fmt.Sprintf("ID must not be greater than %d characters", nameMax)
	case id == "." || id == "..":
		return "'" + id + "' is disallowed"
	}
	for _, c := range []byte(id) {
		if c < 0x20 || c == 0x7f || c == '/' || c == '\\' {
			return "'" + id + "' contains invalid characters"
		}
	}
	return ""
}

// validateRole is roles::validate.
func validateRole(role string) string {
	if role == "*" {
		return ""
	}
	switch {
	case strings.HasPrefix(role, "/"):
		return "Role '" + role + "' cannot start with a slash"
	case strings.HasSuffix(role, "/"):
		return "Role '" + role + "' cannot end with a slash"
	case strings.Contains(role, "//"):
		return "Role '" + role + "' cannot contain two adjacent slashes"
	case role == "":
		return "Role names cannot be the empty string"
	}
	for _, c := range strings.Split(role, "/") {
		switch {
		case c == "." || c == ".." || c == "*":
			return "Role '" + role + "' cannot include '" + c + "' as a component"
		case strings.HasPrefix(c, "-"):
			return "Role component '" + c + "' is invalid because it starts with a dash"
		case strings.ContainsAny(c, "\x09\x0a\x0b\x0c\x0d\x20\x7f"):
			return "Role component '" + c + "' is invalid because it contains backspace or whitespace"
		}
	}
	return ""
}

// validateFrameworkInfo is validation::framework::validate plus
// Master::validateFramework's removed-framework check (done by the caller).
func validateFrameworkInfo(fi *mesos.FrameworkInfo) string {
	multi := hasCapability(fi, mesos.FrameworkInfo_Capability_MULTI_ROLE)
	if multi && fi.Role != nil {
		return "'FrameworkInfo.role' must not be set when the framework is MULTI_ROLE capable"
	}
	if !multi && len(fi.Roles) > 0 {
		return "'FrameworkInfo.roles' must not be set when the framework is not MULTI_ROLE capable"
	}
	if multi {
		seen, dup := map[string]bool{}, map[string]bool{}
		for _, r := range fi.Roles {
			if seen[r] {
				dup[r] = true
			}
			seen[r] = true
		}
		if len(dup) > 0 {
			return "'FrameworkInfo.roles' contains duplicate items: " + stringifySet(dup)
		}
		for _, r := range fi.Roles {
			if msg := validateRole(r); msg != "" {
				return "'FrameworkInfo.roles' contains invalid role: " + msg
			}
		}
	} else if msg := validateRole(fi.GetRole()); msg != "" {
		return "'FrameworkInfo.role' is not a valid role: " + msg
	}
	if id := fi.GetID().GetValue(); id != "" {
		if msg := validateID(id); msg != "" {
			return msg
		}
	}
	for _, of := range fi.OfferFilters {
		if mar := of.MinAllocatableResources; mar != nil {
			for _, q := range mar.Quantities {
				if len(q.Quantities) == 0 {
					return "Resource quantities must contain at least one quantity"
				}
				for name, v := range q.Quantities {
					if msg := validateScalar(v.Value); msg != "" {
						return "Invalid resource quantity for '" + name + "': " + msg
					}
				}
			}
		}
	}
	if ft := fi.GetFailoverTimeout(); math.IsNaN(ft) || ft*1e9 > math.MaxInt64 || ft*1e9 < math.MinInt64 {
		return fmt.Sprintf("The framework failover_timeout (%g) is invalid", ft)
	}
	return ""
}

// validateScalar is common::validation::validateInputScalarValue.
func validateScalar(v float64) string {
	switch {
	case math.IsInf(v, 0):
		return "Infinite values not supported"
	case math.IsNaN(v):
		return "NaN not supported"
	case v != 0 && math.Abs(v) < 0x1p-1022:
		return "Subnormal values not supported"
	case v < 0:
		return "Negative values not supported"
	}
	return ""
}

// stringifySet renders a set as stout's stringify does: "{ a, b }".
func stringifySet(s map[string]bool) string {
	items := make([]string, 0, len(s))
	for k := range s {
		items = append(items, k)
	}
	sort.Strings(items)
	return "{ " + strings.Join(items, ", ") + " }"
}

// validateSuppressedRoles is validation::framework::validateSuppressedRoles.
func validateSuppressedRoles(fi *mesos.FrameworkInfo, suppressed []string) string {
	roles := map[string]bool{}
	for _, r := range frameworkRoles(fi) {
		roles[r] = true
	}
	bad := map[string]bool{}
	for _, r := range suppressed {
		if !roles[r] {
			bad[r] = true
		}
	}
	if len(bad) > 0 {
		return "Suppressed roles " + stringifySet(bad) + " are not contained in the set of roles"
	}
	return ""
}

// validateFrameworkUpdate is validation::framework::validateUpdate: the
// principal, user and checkpoint of a framework cannot change.
func validateFrameworkUpdate(old, updated *mesos.FrameworkInfo) string {
	if (old.Principal == nil) != (updated.Principal == nil) || old.GetPrincipal() != updated.GetPrincipal() {
		return "Changing framework's principal is not allowed."
	}
	if updated.User != old.User {
		return "Updating 'FrameworkInfo.user' is unsupported; attempted to update from '" + old.User + "' to '" + updated.User + "'"
	}
	if updated.GetCheckpoint() != old.GetCheckpoint() {
		return fmt.Sprintf("Updating 'FrameworkInfo.checkpoint' is unsupported; attempted to update from '%t' to '%t'", old.GetCheckpoint(), updated.GetCheckpoint())
	}
	return ""
}

// preserveImmutableFields is validation::framework::preserveImmutableFields: a
// re-SUBSCRIBE keeps the framework's user and checkpoint (MESOS-703).
func preserveImmutableFields(old mesos.FrameworkInfo, updated *mesos.FrameworkInfo) {
	updated.User = old.User
	if updated.GetCheckpoint() != old.GetCheckpoint() {
		c := old.GetCheckpoint()
		updated.Checkpoint = &c
	}
}

// validateCall is validation::scheduler::call::validate. body presence of
// `type` is checked by the caller (mesos-go decodes a missing enum as 0).
func validateCall(c *scheduler.Call) string {
	if c.Type == scheduler.Call_SUBSCRIBE {
		if c.Subscribe == nil || c.Subscribe.FrameworkInfo == nil {
			return "Expecting 'subscribe' to be present"
		}
		if c.Subscribe.FrameworkInfo.GetID().GetValue() != c.GetFrameworkID().GetValue() {
			return "'framework_id' differs from 'subscribe.framework_info.id'"
		}
		return ""
	}
	if c.FrameworkID == nil {
		return "Expecting 'framework_id' to be present"
	}
	need := func(ok bool, name string) string {
		if !ok {
			return "Expecting '" + name + "' to be present"
		}
		return ""
	}
	switch c.Type {
	case scheduler.Call_ACCEPT:
		return need(c.Accept != nil, "accept")
	case scheduler.Call_DECLINE:
		return need(c.Decline != nil, "decline")
	case scheduler.Call_ACCEPT_INVERSE_OFFERS:
		return need(c.AcceptInverseOffers != nil, "accept_inverse_offers")
	case scheduler.Call_DECLINE_INVERSE_OFFERS:
		return need(c.DeclineInverseOffers != nil, "decline_inverse_offers")
	case scheduler.Call_KILL:
		return need(c.Kill != nil, "kill")
	case scheduler.Call_SHUTDOWN:
		return need(c.Shutdown != nil, "shutdown")
	case scheduler.Call_ACKNOWLEDGE:
		if c.Acknowledge == nil {
			return "Expecting 'acknowledge' to be present"
		}
		if len(c.Acknowledge.UUID) != 16 {
			return "Not a valid UUID"
		}
	case scheduler.Call_ACKNOWLEDGE_OPERATION_STATUS:
		a := c.AcknowledgeOperationStatus
		if a == nil {
			return "Expecting 'acknowledge_operation_status' to be present"
		}
		if len(a.UUID) != 16 {
			return "Not a valid UUID"
		}
		if a.AgentID == nil {
			return "Expecting 'agent_id' to be present"
		}
	case scheduler.Call_RECONCILE:
		return need(c.Reconcile != nil, "reconcile")
	case scheduler.Call_RECONCILE_OPERATIONS:
		return need(c.ReconcileOperations != nil, "reconcile_operations")
	case scheduler.Call_MESSAGE:
		return need(c.Message != nil, "message")
	case scheduler.Call_REQUEST:
		return need(c.Request != nil, "request")
	case scheduler.Call_UPDATE_FRAMEWORK:
		if c.UpdateFramework == nil {
			return "Expecting 'update_framework' to be present"
		}
		if c.UpdateFramework.FrameworkInfo.GetID().GetValue() != c.FrameworkID.Value {
			return "'framework_id' differs from 'update_framework.framework_info.id'"
		}
	}
	return ""
}
