package election

import (
	"testing"
)

const (
	u1 = "3e11fa47-71ca-11e1-9e33-c80aa9429562"
	u2 = "4b3a5f6e-0000-11e1-9e33-c80aa9429562"
)

func TestParsePosition(t *testing.T) {
	tests := []struct {
		in   string
		want string // "" = error
	}{
		{"0", "0"},
		{"42", "42"},
		{"  42\n", "42"},
		{"007", "7"},
		{"123456789012345678901234567890", "123456789012345678901234567890"},
		{u1 + ":1-5", "5"},
		{u1 + ":7", "1"},
		{u1 + ":1-5:7", "6"},
		{u1 + ":1-5:7-9," + u2 + ":1-3", "11"},
		{u1 + ":1-5,\n" + u2 + ":1-3\n", "8"}, // mysql wraps long sets
		{u1 + ":1-5:3-7", "7"},                // overlap counted once
		{u1 + ":1-5," + u1 + ":4-6", "6"},     // repeated source merged
		{u1 + ":1-5:6-8", "8"},                // adjacent
		{"3E11FA47-71CA-11E1-9E33-C80AA9429562:1-5," + u1 + ":6", "6"}, // case-insensitive uuid
		{"3e11fa4771ca11e19e33c80aa9429562:1-2", "2"},                  // undashed uuid
		{u1 + ":tag_a:1-5:tag_b:1-2", "7"},                             // MySQL 8.4 tags are separate sequences
		{u1 + ":1-3:tag_a:1-3", "6"},
		{u1 + ":1-18446744073709551615", "18446744073709551615"},
		{u1 + ":1-18446744073709551615," + u2 + ":1-18446744073709551615", "36893488147419103230"},
		// PostgreSQL LSNs: hi<<32 | lo.
		{"0/3000148", "50331976"},
		{"16/B374D848", "97500059720"},
		{"16/b374d848\n", "97500059720"},
		{"FFFFFFFF/FFFFFFFF", "18446744073709551615"},
		{"0/", ""},
		{"/3000148", ""},
		{"1/2/3", ""},
		{"G/1", ""},
		{"100000000/0", ""},
		// MariaDB GTID lists: the sum of each domain's highest sequence number.
		{"0-1-42", "42"},
		{"0-1-42,1-2-7", "49"},
		{"0-1-42,\n1-2-7", "49"},
		{"0-1-40,0-2-42", "42"}, // one domain, two servers: its highest
		{"0-1", ""},
		{"0-1-", ""},
		{"0-1-x", ""},
		{"0-1-2-3", ""},
		{"0-1-42,", ""},
		{"", ""},
		{"   \n", ""},
		{"-5", ""},
		{"1.5", ""},
		{"abc", ""},
		{u1, ""},
		{u1 + ":", ""},
		{u1 + ":0-5", ""},
		{u1 + ":5-1", ""},
		{u1 + ":1-", ""},
		{u1 + ":-3", ""},
		{u1 + ":tag", ""},
		{u1 + ":1-5,", ""},
		{"not-a-uuid:1-5", ""},
		{u1 + ":1-99999999999999999999", ""},
	}
	for _, tt := range tests {
		got, err := ParsePosition(tt.in)
		if tt.want == "" {
			if err == nil {
				t.Errorf("ParsePosition(%q) = %v, want error", tt.in, got)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParsePosition(%q): %v", tt.in, err)
			continue
		}
		if got.String() != tt.want {
			t.Errorf("ParsePosition(%q) = %v, want %s", tt.in, got, tt.want)
		}
	}
}

func TestCompare(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"1", "2", -1},
		{"2", "1", 1},
		{"5", "5", 0},
		{"10", "9", 1}, // numeric, not lexical
		{"00010", "10", 0},
		{"", "0", -1},
		{"0", "", 1},
		{"", "", 0},
		{"garbage", "", 0},
		{"garbage", "0", -1},
		{"1", "garbage", 1},
		{u1 + ":1-5", u1 + ":1-4", 1},
		{u1 + ":1-5", u1 + ":1-3," + u2 + ":1-2", 0},
		{u1 + ":1-5", "6", -1}, // integers and GTID sets compare by count
		{u1 + ":1-5", "5", 0},
		{u1 + ":1-1000", u1 + ":1-999:1001", 0},
		{"99999999999999999999999", "99999999999999999999998", 1},
		{"0/3000148", "0/3000200", -1},  // a standby behind the primary
		{"0/FFFFFFFF", "1/0", -1},       // the low half wraps into the high
		{"0/3000148", "0/3000148\n", 0}, // psql's trailing newline
		{"0-1-42", "0-2-43", 1 - 2},     // after a failover the domain's numbers go on
		{"0-1-42,1-1-5", "0-1-42", 1},
	}
	for _, tt := range tests {
		if got := Compare(tt.a, tt.b); got != tt.want {
			t.Errorf("Compare(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
		if got := Compare(tt.b, tt.a); got != -tt.want {
			t.Errorf("Compare(%q, %q) = %d, want %d (antisymmetry)", tt.b, tt.a, got, -tt.want)
		}
	}
}

func TestWinner(t *testing.T) {
	tests := []struct {
		name      string
		positions map[string]string
		ordinals  map[string]int32
		want      string
	}{
		{"empty", nil, nil, ""},
		{"single", map[string]string{"a": "3"}, map[string]int32{"a": 0}, "a"},
		{"highest wins", map[string]string{"a": "3", "b": "7", "c": "5"}, map[string]int32{"a": 0, "b": 1, "c": 2}, "b"},
		{"tie to lowest ordinal", map[string]string{"a": "7", "b": "7", "c": "5"}, map[string]int32{"a": 2, "b": 1, "c": 0}, "b"},
		{"gtid sets", map[string]string{
			"a": u1 + ":1-10",
			"b": u1 + ":1-10," + u2 + ":1",
			"c": u1 + ":1-9",
		}, map[string]int32{"a": 0, "b": 1, "c": 2}, "b"},
		{"unparsable loses", map[string]string{"a": "oops", "b": "", "c": "0"}, map[string]int32{"a": 0, "b": 1, "c": 2}, "c"},
		{"all unparsable: lowest ordinal", map[string]string{"a": "oops", "b": "", "c": "?"}, map[string]int32{"a": 2, "b": 1, "c": 3}, "b"},
		{"missing ordinal ranks last", map[string]string{"a": "5", "b": "5"}, map[string]int32{"b": 9}, "b"},
		{"no ordinals: lowest id", map[string]string{"z": "5", "y": "5", "x": "4"}, nil, "y"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Map order is random: ask several times.
			for range 20 {
				if got := Winner(tt.positions, tt.ordinals); got != tt.want {
					t.Fatalf("Winner = %q, want %q", got, tt.want)
				}
			}
		})
	}
}

func TestLag(t *testing.T) {
	tests := []struct {
		master, member string
		want           string // "" = error
	}{
		{"100", "40", "60"},
		{"40", "100", "0"}, // ahead of the last report: no lag
		{"0/3000148", "0/3000000", "328"},
		{"1/0", "0/FFFFFF00", "256"}, // across the 4 GiB boundary: bytes of WAL
		{"0-1-42", "0-2-40", "2"},    // another server, same domain
		{"0-1-42,1-1-10", "0-1-42,1-1-7", "3"},
		{u1 + ":1-10", u1 + ":1-4", "6"},
		{u1 + ":1-10", u1 + ":1-10:12", "0"},
		{"0/3000148", "42", ""}, // formats differ
		{"0-1-42", u1 + ":1-5", ""},
		{"", "42", ""},
		{"42", "junk", ""},
	}
	for _, tt := range tests {
		got, err := Lag(tt.master, tt.member)
		switch {
		case tt.want == "" && err == nil:
			t.Errorf("Lag(%q, %q) = %s, want an error", tt.master, tt.member, got)
		case tt.want != "" && err != nil:
			t.Errorf("Lag(%q, %q): %v", tt.master, tt.member, err)
		case tt.want != "" && got.String() != tt.want:
			t.Errorf("Lag(%q, %q) = %s, want %s", tt.master, tt.member, got, tt.want)
		}
	}
	for in, want := range map[string]string{"7": FormatInteger, "16/B374D848": FormatLSN, "0-1-42": FormatMariaDB, u1 + ":1-5": FormatGTIDSet, "x": ""} {
		if got := Format(in); got != want {
			t.Errorf("Format(%q) = %q, want %q", in, got, want)
		}
	}
}
