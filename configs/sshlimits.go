package configs

import (
	"fmt"
	"strconv"
	"strings"
)

// Startups is OpenSSH's MaxStartups, written "start:rate:full" or as one
// number N (the same as "N:100:N", a plain cap): below Start unauthenticated
// connections every new one is let in; from Start on a new one is refused
// with a probability of Rate percent, rising linearly to 100% at Full.
type Startups struct {
	Start, Rate, Full int

	err error // what is wrong with the text, reported by validation
}

// UnmarshalText implements encoding.TextUnmarshaler. A malformed value is
// kept as a problem for validation to report with the file's others,
// rather than stopping the decoding at the first.
func (s *Startups) UnmarshalText(b []byte) error {
	v, err := parseStartups(b)
	if err != nil {
		v = Startups{err: err}
	}
	*s = v
	return nil
}

func parseStartups(b []byte) (Startups, error) {
	text := strings.TrimSpace(string(b))
	parts := strings.Split(text, ":")
	nums := make([]int, len(parts))
	for i, p := range parts {
		n, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil || (len(parts) != 1 && len(parts) != 3) {
			return Startups{}, fmt.Errorf("%q is not START:RATE:FULL (such as %q) or one number", truncate(text), DefaultMaxStartups.String())
		}
		nums[i] = n
	}
	v := Startups{Start: nums[0], Rate: 100, Full: nums[0]}
	if len(nums) == 3 {
		v = Startups{Start: nums[0], Rate: nums[1], Full: nums[2]}
	}
	switch {
	case v.Start < 1 || v.Full < 1:
		return Startups{}, fmt.Errorf("%q: start and full must be at least 1", text)
	case v.Rate < 1 || v.Rate > 100:
		return Startups{}, fmt.Errorf("%q: the rate is a percentage from 1 to 100", text)
	case v.Start > v.Full:
		return Startups{}, fmt.Errorf("%q: start (%d) is more than full (%d)", text, v.Start, v.Full)
	}
	return v, nil
}

// MarshalText implements encoding.TextMarshaler.
func (s Startups) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

func (s Startups) String() string { return fmt.Sprintf("%d:%d:%d", s.Start, s.Rate, s.Full) }

// NetBlockSize is OpenSSH's PerSourceNetBlockSize, "V4:V6" or "V4": the
// prefix lengths that group client addresses into one source for
// per_source_max_startups. "32:128" makes every address its own source;
// the default, "32:64", counts an IPv6 /64 (usually one subscriber) as one.
type NetBlockSize struct {
	V4, V6 int

	err error // what is wrong with the text, reported by validation
}

// UnmarshalText implements encoding.TextUnmarshaler, keeping a malformed
// value as a problem for validation, as Startups does.
func (n *NetBlockSize) UnmarshalText(b []byte) error {
	v, err := parseNetBlockSize(b)
	if err != nil {
		v = NetBlockSize{err: err}
	}
	*n = v
	return nil
}

func parseNetBlockSize(b []byte) (NetBlockSize, error) {
	text := strings.TrimSpace(string(b))
	v4s, v6s, two := strings.Cut(text, ":")
	v := NetBlockSize{V6: DefaultNetBlockSize.V6}
	var err4, err6 error
	v.V4, err4 = strconv.Atoi(strings.TrimSpace(v4s))
	if two {
		v.V6, err6 = strconv.Atoi(strings.TrimSpace(v6s))
	}
	switch {
	case err4 != nil || err6 != nil:
		return NetBlockSize{}, fmt.Errorf("%q is not IPV4_BITS:IPV6_BITS (such as %q)", truncate(text), DefaultNetBlockSize.String())
	case v.V4 < 1 || v.V4 > 32:
		return NetBlockSize{}, fmt.Errorf("%q: the IPv4 prefix length must be from 1 to 32", text)
	case v.V6 < 1 || v.V6 > 128:
		return NetBlockSize{}, fmt.Errorf("%q: the IPv6 prefix length must be from 1 to 128", text)
	}
	return v, nil
}

// MarshalText implements encoding.TextMarshaler.
func (n NetBlockSize) MarshalText() ([]byte, error) { return []byte(n.String()), nil }

func (n NetBlockSize) String() string { return fmt.Sprintf("%d:%d", n.V4, n.V6) }
