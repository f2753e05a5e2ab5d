package main

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// This file holds a small evaluator of the PromQL the alerts of
// docs/operations.md use (selectors with label matchers, sum [by], / and
// comparisons, and [on()], increase/rate/delta over a range,
// histogram_quantile, absent), over /metrics scrapes taken by a test. A
// range [w] covers the scrapes of the scenario being evaluated (from its
// baseline promScrape to the newest), so alerts over minutes or hours are
// evaluated over the seconds a test runs; rate() divides by the real time
// between those scrapes. The Prometheus engine itself would bring the
// prometheus/prometheus module (and its storage) into go.mod for one test.

// promScrape is one /metrics reading: series key (labels without the name,
// sorted, rendered) -> value, per metric name.
type promScrape struct {
	at     time.Time
	series map[string]map[string]float64
	labels map[string]map[string]string // series key -> labels
}

var promLine = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)`)
var promLabel = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"`)

func readScrape(url string) (promScrape, error) {
	resp, err := http.Get(url)
	if err != nil {
		return promScrape{}, err
	}
	defer resp.Body.Close()
	return parseScrape(resp.Body)
}

func parseScrape(r io.Reader) (promScrape, error) {
	s := promScrape{at: time.Now(), series: map[string]map[string]float64{}, labels: map[string]map[string]string{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if strings.HasPrefix(l, "#") || l == "" {
			continue
		}
		m := promLine.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		v, err := strconv.ParseFloat(m[3], 64)
		if err != nil {
			return s, fmt.Errorf("metrics line %q: %w", l, err)
		}
		ls := map[string]string{}
		for _, lm := range promLabel.FindAllStringSubmatch(m[2], -1) {
			ls[lm[1]] = lm[2]
		}
		k := labelKey(ls)
		if s.series[m[1]] == nil {
			s.series[m[1]] = map[string]float64{}
		}
		s.series[m[1]][k] = v
		s.labels[k] = ls
	}
	return s, sc.Err()
}

func labelKey(ls map[string]string) string {
	keys := make([]string, 0, len(ls))
	for k := range ls {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%q,", k, ls[k])
	}
	return b.String()
}

// sample is one element of an instant vector.
type sample struct {
	labels map[string]string
	v      float64
}

// value is a scalar (vec nil, scalar true) or an instant vector.
type value struct {
	scalar bool
	s      float64
	vec    []sample
}

// promEval evaluates expr over scrapes (oldest first; the newest is "now").
type promEval struct {
	scrapes []promScrape
	toks    []string
	pos     int
	// used records the metric names the expression reads.
	used map[string]bool
}

func evalPromQL(expr string, scrapes []promScrape) (v value, used map[string]bool, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%q: %v", expr, r)
		}
	}()
	e := &promEval{scrapes: scrapes, toks: promTokens(expr), used: map[string]bool{}}
	v = e.parseAnd()
	if e.pos != len(e.toks) {
		panic(fmt.Sprintf("unexpected %q", e.toks[e.pos]))
	}
	return v, e.used, nil
}

func promTokens(s string) []string {
	var out []string
	for i := 0; i < len(s); {
		c := rune(s[i])
		switch {
		case unicode.IsSpace(c):
			i++
		case strings.HasPrefix(s[i:], "=="):
			out = append(out, "==")
			i += 2
		case c == '"':
			j := i + 1
			for j < len(s) && s[j] != '"' {
				j++
			}
			out = append(out, s[i:j+1])
			i = j + 1
		case strings.ContainsRune("(){}[],<>/=", c):
			out = append(out, string(c))
			i++
		default:
			j := i
			for j < len(s) && !unicode.IsSpace(rune(s[j])) && !strings.ContainsRune("(){}[],<>/=\"", rune(s[j])) {
				j++
			}
			out = append(out, s[i:j])
			i = j
		}
	}
	return out
}

func (e *promEval) peek() string {
	if e.pos < len(e.toks) {
		return e.toks[e.pos]
	}
	return ""
}

func (e *promEval) next() string {
	t := e.peek()
	e.pos++
	return t
}

func (e *promEval) expect(t string) {
	if got := e.next(); got != t {
		panic(fmt.Sprintf("want %q, got %q", t, got))
	}
}

func (e *promEval) parseAnd() value {
	l := e.parseCmp()
	for e.peek() == "and" {
		e.next()
		on := false
		if e.peek() == "on" {
			e.next()
			e.expect("(")
			e.expect(")")
			on = true
		}
		r := e.parseCmp()
		var out []sample
		for _, ls := range l.vec {
			for _, rs := range r.vec {
				if on || labelKey(ls.labels) == labelKey(rs.labels) {
					out = append(out, ls)
					break
				}
			}
		}
		l = value{vec: out}
	}
	return l
}

func (e *promEval) parseCmp() value {
	l := e.parseDiv()
	switch op := e.peek(); op {
	case ">", "<", "==":
		e.next()
		r := e.parseDiv()
		if !r.scalar {
			panic("comparison with a vector on the right is not supported")
		}
		var out []sample
		for _, s := range l.vec {
			if op == ">" && s.v > r.s || op == "<" && s.v < r.s || op == "==" && s.v == r.s {
				out = append(out, s)
			}
		}
		return value{vec: out}
	}
	return l
}

func (e *promEval) parseDiv() value {
	l := e.parseUnary()
	for e.peek() == "/" {
		e.next()
		r := e.parseUnary()
		if l.scalar && r.scalar {
			l = value{scalar: true, s: l.s / r.s}
			continue
		}
		var out []sample
		for _, ls := range l.vec {
			for _, rs := range r.vec {
				if labelKey(ls.labels) == labelKey(rs.labels) && rs.v != 0 {
					out = append(out, sample{ls.labels, ls.v / rs.v})
				}
			}
		}
		l = value{vec: out}
	}
	return l
}

func (e *promEval) parseUnary() value {
	t := e.next()
	if f, err := strconv.ParseFloat(t, 64); err == nil {
		return value{scalar: true, s: f}
	}
	switch t {
	case "(":
		v := e.parseAnd()
		e.expect(")")
		return v
	case "sum":
		var by []string
		if e.peek() == "by" {
			e.next()
			e.expect("(")
			for e.peek() != ")" {
				if n := e.next(); n != "," {
					by = append(by, n)
				}
			}
			e.expect(")")
		}
		e.expect("(")
		v := e.parseAnd()
		e.expect(")")
		groups := map[string]*sample{}
		var order []string
		for _, s := range v.vec {
			ls := map[string]string{}
			for _, b := range by {
				if x, ok := s.labels[b]; ok {
					ls[b] = x
				}
			}
			k := labelKey(ls)
			if groups[k] == nil {
				groups[k] = &sample{labels: ls}
				order = append(order, k)
			}
			groups[k].v += s.v
		}
		var out []sample
		for _, k := range order {
			out = append(out, *groups[k])
		}
		return value{vec: out}
	case "increase", "rate", "delta":
		e.expect("(")
		name, match := e.parseSelector(e.next())
		e.expect("[")
		e.next() // the range: the scenario's scrapes
		e.expect("]")
		e.expect(")")
		first, last := e.scrapes[0], e.scrapes[len(e.scrapes)-1]
		secs := last.at.Sub(first.at).Seconds()
		var out []sample
		for k, v := range last.series[name] {
			if !match(last.labels[k]) {
				continue
			}
			d := v - first.series[name][k] // absent at the start: from 0
			if t == "rate" {
				if secs <= 0 {
					continue
				}
				d /= secs
			}
			out = append(out, sample{last.labels[k], d})
		}
		return value{vec: out}
	case "histogram_quantile":
		e.expect("(")
		q := e.parseAnd()
		e.expect(",")
		v := e.parseAnd()
		e.expect(")")
		return value{vec: histogramQuantile(q.s, v.vec)}
	case "absent":
		e.expect("(")
		v := e.parseAnd()
		e.expect(")")
		if len(v.vec) == 0 {
			return value{vec: []sample{{labels: map[string]string{}, v: 1}}}
		}
		return value{}
	}
	name, match := e.parseSelector(t)
	last := e.scrapes[len(e.scrapes)-1]
	var out []sample
	for k, v := range last.series[name] {
		if match(last.labels[k]) {
			out = append(out, sample{last.labels[k], v})
		}
	}
	return value{vec: out}
}

// parseSelector reads name{label="value",...} (name already read).
func (e *promEval) parseSelector(name string) (string, func(map[string]string) bool) {
	if !regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`).MatchString(name) {
		panic(fmt.Sprintf("unexpected %q", name))
	}
	e.used[name] = true
	want := map[string]string{}
	if e.peek() == "{" {
		e.next()
		for e.peek() != "}" {
			l := e.next()
			if l == "," {
				continue
			}
			e.expect("=")
			want[l] = strings.Trim(e.next(), `"`)
		}
		e.expect("}")
	}
	return name, func(ls map[string]string) bool {
		for k, v := range want {
			if ls[k] != v {
				return false
			}
		}
		return true
	}
}

// histogramQuantile is Prometheus's: per series (labels but le), the
// bucket the rank falls in, interpolated linearly.
func histogramQuantile(q float64, vec []sample) []sample {
	type bucket struct{ le, n float64 }
	groups := map[string][]bucket{}
	labels := map[string]map[string]string{}
	for _, s := range vec {
		le, err := strconv.ParseFloat(s.labels["le"], 64)
		if s.labels["le"] == "+Inf" {
			le, err = math.Inf(1), nil
		}
		if err != nil {
			continue
		}
		ls := map[string]string{}
		for k, v := range s.labels {
			if k != "le" {
				ls[k] = v
			}
		}
		k := labelKey(ls)
		labels[k] = ls
		groups[k] = append(groups[k], bucket{le, s.v})
	}
	var out []sample
	for k, bs := range groups {
		sort.Slice(bs, func(i, j int) bool { return bs[i].le < bs[j].le })
		total := bs[len(bs)-1].n
		if total <= 0 {
			continue
		}
		rank := q * total
		lo, prev := 0.0, 0.0
		res := math.NaN()
		for i, b := range bs {
			if b.n >= rank {
				if math.IsInf(b.le, 1) {
					if i > 0 {
						res = bs[i-1].le
					}
				} else {
					res = lo + (b.le-lo)*(rank-prev)/math.Max(b.n-prev, 1e-12)
				}
				break
			}
			lo, prev = b.le, b.n
		}
		out = append(out, sample{labels[k], res})
	}
	return out
}
