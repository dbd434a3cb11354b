package election

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// ParsePosition reads a replication position as positionCommand prints it
// and returns how far along it is:
//   - a decimal integer is itself;
//   - a PostgreSQL LSN (`16/B374D848`, as pg_current_wal_lsn() and
//     pg_last_wal_replay_lsn() print it) is its byte offset in the WAL;
//   - a MariaDB GTID list (`0-1-42`, or `0-1-42,1-2-7` with one entry per
//     replication domain, as @@gtid_current_pos prints it) is the sum over
//     domains of each domain's sequence number (a domain's numbers keep
//     growing across masters);
//   - a MySQL GTID set (`uuid:1-5:7,uuid2:1-3`, MySQL 8.4 tags `uuid:tag:1-5`
//     included) is the number of transactions it holds.
//
// Whitespace anywhere is ignored (mysql prints long sets over several lines).
// The empty GTID set is not a position: an empty answer is indistinguishable
// from a failed command.
func ParsePosition(s string) (*big.Int, error) {
	s = strings.Join(strings.Fields(s), "")
	switch {
	case s == "":
		return nil, errors.New("empty position")
	case isDigits(s):
		n, ok := new(big.Int).SetString(s, 10)
		if !ok {
			return nil, fmt.Errorf("position %q: not a decimal integer", s)
		}
		return n, nil
	case strings.Contains(s, "/"):
		return lsn(s)
	case !strings.Contains(s, ":"):
		return mariaDBGTIDs(s)
	}
	return gtidCount(s)
}

// lsn reads a PostgreSQL LSN, two hexadecimal halves of a 64-bit WAL offset.
func lsn(s string) (*big.Int, error) {
	hiS, loS, _ := strings.Cut(s, "/")
	hi, err1 := strconv.ParseUint(hiS, 16, 32)
	lo, err2 := strconv.ParseUint(loS, 16, 32)
	if err1 != nil || err2 != nil || hiS == "" || loS == "" {
		return nil, fmt.Errorf("position %q: not a PostgreSQL LSN (hex/hex, e.g. 16/B374D848)", s)
	}
	return new(big.Int).SetUint64(hi<<32 | lo), nil
}

// mariaDBGTIDs reads a MariaDB GTID list, domain-server-sequence entries.
func mariaDBGTIDs(s string) (*big.Int, error) {
	seqs := map[uint64]uint64{} // domain -> highest sequence number
	for _, g := range strings.Split(s, ",") {
		f := strings.Split(g, "-")
		if len(f) != 3 {
			return nil, fmt.Errorf("position %q: %q is not an integer, an LSN, a MariaDB GTID (domain-server-sequence) or a MySQL GTID set member", s, g)
		}
		var n [3]uint64
		for i, x := range f {
			v, err := strconv.ParseUint(x, 10, 64)
			if err != nil || !isDigits(x) {
				return nil, fmt.Errorf("position %q: %q is not a MariaDB GTID (domain-server-sequence)", s, g)
			}
			n[i] = v
		}
		seqs[n[0]] = max(seqs[n[0]], n[2])
	}
	total := new(big.Int)
	for _, seq := range seqs {
		total.Add(total, new(big.Int).SetUint64(seq))
	}
	return total, nil
}

// Compare orders two positions: -1 if a is behind b, 0 if level, +1 if a is
// ahead. An empty or unparsable position is lower than every valid one, and
// two of them are level.
func Compare(a, b string) int {
	pa, errA := ParsePosition(a)
	pb, errB := ParsePosition(b)
	switch {
	case errA != nil && errB != nil:
		return 0
	case errA != nil:
		return -1
	case errB != nil:
		return 1
	}
	return pa.Cmp(pb)
}

// Winner returns the task with the highest position; ties go to the lowest
// ordinal (a task without one ranks after every ordinal), then to the lowest
// task id, so the result never depends on map order. It returns "" when
// positions is empty.
func Winner(positions map[string]string, ordinals map[string]int32) string {
	type candidate struct {
		id      string
		pos     *big.Int // nil: unparsable, lowest
		ordinal int64
	}
	cands := make([]candidate, 0, len(positions))
	for id, p := range positions {
		c := candidate{id: id, ordinal: math.MaxInt64}
		if n, err := ParsePosition(p); err == nil {
			c.pos = n
		}
		if o, ok := ordinals[id]; ok {
			c.ordinal = int64(o)
		}
		cands = append(cands, c)
	}
	if len(cands) == 0 {
		return ""
	}
	better := func(a, b candidate) bool {
		switch {
		case a.pos != nil && b.pos == nil:
			return true
		case a.pos == nil && b.pos != nil:
			return false
		case a.pos != nil && b.pos != nil:
			if c := a.pos.Cmp(b.pos); c != 0 {
				return c > 0
			}
		}
		if a.ordinal != b.ordinal {
			return a.ordinal < b.ordinal
		}
		return a.id < b.id
	}
	best := cands[0]
	for _, c := range cands[1:] {
		if better(c, best) {
			best = c
		}
	}
	return best.id
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

var (
	uuidRe = regexp.MustCompile(`^(?:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|[0-9a-fA-F]{32})$`)
	// tagRe is MySQL's GTID tag: a letter or underscore, then up to 31
	// letters, digits or underscores.
	tagRe = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]{0,31}$`)
)

type interval struct{ lo, hi uint64 }

// gtidCount returns the number of distinct transactions in a GTID set.
// Overlapping or repeated intervals of the same source and tag count once.
func gtidCount(s string) (*big.Int, error) {
	sets := map[string][]interval{} // uuid:tag -> intervals
	for _, member := range strings.Split(s, ",") {
		parts := strings.Split(member, ":")
		if len(parts) < 2 || !uuidRe.MatchString(parts[0]) {
			return nil, fmt.Errorf("position %q: %q is not an integer or a GTID set member (uuid:interval...)", s, member)
		}
		uuid := strings.ToLower(strings.ReplaceAll(parts[0], "-", ""))
		tag := ""
		sawInterval := false
		for _, part := range parts[1:] {
			if tagRe.MatchString(part) {
				tag = strings.ToLower(part)
				sawInterval = false
				continue
			}
			iv, err := parseInterval(part)
			if err != nil {
				return nil, fmt.Errorf("position %q: %w", s, err)
			}
			key := uuid + ":" + tag
			sets[key] = append(sets[key], iv)
			sawInterval = true
		}
		if !sawInterval {
			return nil, fmt.Errorf("position %q: %q has no transaction interval", s, member)
		}
	}
	total := new(big.Int)
	for _, ivs := range sets {
		sort.Slice(ivs, func(i, j int) bool { return ivs[i].lo < ivs[j].lo })
		cur := ivs[0]
		for _, iv := range ivs[1:] {
			if cur.hi != math.MaxUint64 && iv.lo <= cur.hi+1 {
				cur.hi = max(cur.hi, iv.hi)
				continue
			}
			total.Add(total, span(cur))
			cur = iv
		}
		total.Add(total, span(cur))
	}
	return total, nil
}

func span(iv interval) *big.Int {
	n := new(big.Int).SetUint64(iv.hi - iv.lo)
	return n.Add(n, big.NewInt(1))
}

// parseInterval reads "n" or "n-m", 1 <= n <= m (MySQL numbers transactions
// from 1).
func parseInterval(s string) (interval, error) {
	loS, hiS, isRange := strings.Cut(s, "-")
	if !isDigits(loS) || loS == "" || (isRange && (!isDigits(hiS) || hiS == "")) {
		return interval{}, fmt.Errorf("bad interval %q", s)
	}
	lo, err := strconv.ParseUint(loS, 10, 64)
	if err != nil {
		return interval{}, fmt.Errorf("bad interval %q: %w", s, err)
	}
	hi := lo
	if isRange {
		if hi, err = strconv.ParseUint(hiS, 10, 64); err != nil {
			return interval{}, fmt.Errorf("bad interval %q: %w", s, err)
		}
	}
	if lo == 0 || hi < lo {
		return interval{}, fmt.Errorf("bad interval %q: transactions are numbered from 1 and a range must not run backwards", s)
	}
	return interval{lo, hi}, nil
}

// Position formats, as Format names them.
const (
	FormatInteger = "integer"
	FormatLSN     = "PostgreSQL LSN"
	FormatMariaDB = "MariaDB GTID list"
	FormatGTIDSet = "MySQL GTID set"
)

// Format names the format of a position ParsePosition accepts ("" if it
// accepts none).
func Format(s string) string {
	if _, err := ParsePosition(s); err != nil {
		return ""
	}
	s = strings.Join(strings.Fields(s), "")
	switch {
	case isDigits(s):
		return FormatInteger
	case strings.Contains(s, "/"):
		return FormatLSN
	case !strings.Contains(s, ":"):
		return FormatMariaDB
	}
	return FormatGTIDSet
}

// Lag returns how far member is behind master (zero when level or ahead),
// in the unit of their format, as election.maximumLagOnFailover counts it
// (Patroni's maximum_lag_on_failover counts WAL bytes):
//   - integers: their difference, in whatever the integers count;
//   - PostgreSQL LSNs: bytes of WAL;
//   - MariaDB GTID lists: transactions, summed over replication domains;
//   - MySQL GTID sets: transactions (the difference of their counts, so
//     transactions the member holds and the master lacks offset some the
//     master holds and the member lacks; errant transactions are not
//     detected).
//
// Positions of different formats have no lag: an error says so.
func Lag(master, member string) (*big.Int, error) {
	fm, fo := Format(master), Format(member)
	if fm == "" || fo == "" || fm != fo {
		return nil, fmt.Errorf("cannot measure the lag of %q behind %q: not two valid positions of one format", member, master)
	}
	pm, _ := ParsePosition(master)
	po, _ := ParsePosition(member)
	lag := new(big.Int).Sub(pm, po)
	if lag.Sign() < 0 {
		lag.SetInt64(0)
	}
	return lag, nil
}
