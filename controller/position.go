package controller

import (
	"math/big"
	"strconv"
	"strings"
)

// ComparePositions orders replication positions: decimal integers compare as
// numbers; MySQL GTID sets ("uuid:1-5:7,uuid2:1-3") compare by their total
// transaction count; an empty or unparsable position is lowest. It is the
// rule of election.Compare (docs/internals.md), kept here so the planner's
// tie-breaking (lowest ordinal) is pinned by its own tests.
func ComparePositions(a, b string) int {
	va, oka := positionValue(a)
	vb, okb := positionValue(b)
	switch {
	case !oka && !okb:
		return 0
	case !oka:
		return -1
	case !okb:
		return 1
	}
	return va.Cmp(vb)
}

func positionValue(s string) (*big.Int, bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, false
	}
	if v, ok := new(big.Int).SetString(s, 10); ok {
		return v, true
	}
	// GTID set: comma-separated "uuid:interval[:interval...]", interval "n" or "n-m".
	total := new(big.Int)
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		fields := strings.Split(part, ":")
		if len(fields) < 2 || fields[0] == "" {
			return nil, false
		}
		for _, iv := range fields[1:] {
			lo, hi, found := strings.Cut(iv, "-")
			l, err := strconv.ParseUint(lo, 10, 64)
			if err != nil {
				return nil, false
			}
			h := l
			if found {
				if h, err = strconv.ParseUint(hi, 10, 64); err != nil || h < l {
					return nil, false
				}
			}
			total.Add(total, new(big.Int).SetUint64(h-l+1))
		}
	}
	return total, true
}
