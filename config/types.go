package config

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// Duration is a time.Duration written like Go durations ("250ms", "5m",
// "1h30m") plus whole days and weeks ("7d", "2w"). A bare number is
// rejected: every duration in config.yaml carries a unit.
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// ParseDuration parses the Duration syntax described on Duration.
func ParseDuration(s string) (Duration, error) {
	s = strings.TrimSpace(s)
	bad := fmt.Errorf("%q is not a duration (write e.g. 7d, 12h, 5m, 30s, 250ms)", s)
	if s == "" {
		return 0, errors.New("empty duration")
	}
	for _, unit := range []struct {
		suffix string
		mult   time.Duration
	}{{"d", 24 * time.Hour}, {"w", 7 * 24 * time.Hour}} {
		if n, ok := strings.CutSuffix(s, unit.suffix); ok {
			v, err := strconv.ParseFloat(n, 64)
			if err != nil || v < 0 || math.IsInf(v, 0) || math.IsNaN(v) {
				return 0, bad
			}
			return Duration(v * float64(unit.mult)), nil
		}
	}
	d, err := time.ParseDuration(s) // "0" is the one number without a unit it accepts
	if _, nerr := strconv.ParseFloat(s, 64); err != nil && nerr == nil {
		return 0, fmt.Errorf("%q has no unit (write e.g. %ss or %sms)", s, s, s)
	} else if err != nil {
		return 0, bad
	}
	return Duration(d), nil
}

// String formats d compactly: "7d", "5m", "1h30m", "250ms", "0s".
func (d Duration) String() string {
	const day = 24 * time.Hour
	if td := time.Duration(d); td != 0 && td%day == 0 {
		return fmt.Sprintf("%dd", td/day)
	}
	s := time.Duration(d).String() // "0s", "1h30m0s", "1h0m0s"
	for _, zero := range []string{"m0s", "h0m"} {
		if strings.HasSuffix(s, zero) {
			s = s[:len(s)-2]
		}
	}
	return s
}

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// ByteSize is a size in bytes, written as a plain integer or with a unit:
// B, KB/MB/GB (powers of 1000) or KiB/MiB/GiB (powers of 1024).
type ByteSize int64

var byteUnits = []struct {
	suffix string
	mult   int64
}{
	{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30}, {"tib", 1 << 40},
	{"kb", 1000}, {"mb", 1000 * 1000}, {"gb", 1000 * 1000 * 1000}, {"tb", 1000 * 1000 * 1000 * 1000},
	{"k", 1 << 10}, {"m", 1 << 20}, {"g", 1 << 30},
	{"b", 1},
}

// ParseByteSize parses the ByteSize syntax described on ByteSize.
func ParseByteSize(s string) (ByteSize, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	if t == "" {
		return 0, errors.New("empty size")
	}
	mult := int64(1)
	for _, u := range byteUnits {
		if n, ok := strings.CutSuffix(t, u.suffix); ok {
			t, mult = strings.TrimSpace(n), u.mult
			break
		}
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || v < 0 || math.IsNaN(v) || v*float64(mult) > math.MaxInt64/2 {
		return 0, fmt.Errorf("%q is not a size (write e.g. 1048576, 512KiB, 64MiB, 1GB)", s)
	}
	return ByteSize(v * float64(mult)), nil
}

// String formats b with the largest binary unit that divides it exactly.
func (b ByteSize) String() string {
	switch {
	case b == 0:
		return "0"
	case b%(1<<30) == 0:
		return fmt.Sprintf("%dGiB", b>>30)
	case b%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", b>>20)
	case b%(1<<10) == 0:
		return fmt.Sprintf("%dKiB", b>>10)
	}
	return strconv.FormatInt(int64(b), 10)
}

// MarshalText implements encoding.TextMarshaler.
func (b ByteSize) MarshalText() ([]byte, error) { return []byte(b.String()), nil }

// Secret holds a password, token or API key. It never prints its value:
// String, GoString, MarshalText and LogValue all return "<redacted>" (or ""
// when unset). Read the value with Value.
type Secret string

const redacted = "<redacted>"

// Value returns the secret in clear text. Use it only to authenticate.
func (s Secret) Value() string { return string(s) }

// IsSet reports whether the secret is non-empty.
func (s Secret) IsSet() bool { return s != "" }

func (s Secret) mask() string {
	if s == "" {
		return ""
	}
	return redacted
}

func (s Secret) String() string                { return s.mask() }
func (s Secret) GoString() string              { return strconv.Quote(s.mask()) }
func (s Secret) LogValue() slog.Value          { return slog.StringValue(s.mask()) }
func (s Secret) MarshalText() ([]byte, error)  { return []byte(s.mask()), nil }
func (s Secret) MarshalYAML() (any, error)     { return s.mask(), nil }
func (s Secret) Format(f fmt.State, verb rune) { fmt.Fprint(f, s.mask()) }
func (s Secret) MarshalJSON() ([]byte, error)  { return []byte(strconv.Quote(s.mask())), nil }

// Schedule is when a periodic job runs: a duration ("5m", "30s") meaning
// "every", or a cron expression with 5 fields ("*/5 * * * *"), 6 fields
// (leading seconds) or a descriptor ("@hourly", "@every 90s").
type Schedule string

var cronParser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// Parse returns the schedule as a robfig/cron Schedule (Next(t) gives the
// next run). Durations must be at least one second.
func (s Schedule) Parse() (cron.Schedule, error) {
	str := strings.TrimSpace(string(s))
	if str == "" {
		return nil, errors.New("empty schedule")
	}
	if !strings.ContainsAny(str, " @*") {
		d, err := ParseDuration(str)
		if err != nil {
			return nil, fmt.Errorf("%q is neither a duration (5m, 30s) nor a cron expression (*/5 * * * *)", str)
		}
		if d.D() < time.Second {
			return nil, fmt.Errorf("%q is shorter than the minimum of 1s", str)
		}
		return cron.Every(d.D()), nil
	}
	sch, err := cronParser.Parse(str)
	if err != nil {
		return nil, fmt.Errorf("%q is not a valid cron expression (%v); write e.g. \"*/5 * * * *\" or a duration like 5m", str, err)
	}
	return sch, nil
}
