package config

import "strings"

// editDistance is the optimal-string-alignment distance (Levenshtein plus
// transposition of adjacent characters), case-insensitive.
func editDistance(a, b string) int {
	ra, rb := []rune(strings.ToLower(a)), []rune(strings.ToLower(b))
	n, m := len(ra), len(rb)
	d := make([][]int, n+1)
	for i := range d {
		d[i] = make([]int, m+1)
		d[i][0] = i
	}
	for j := 0; j <= m; j++ {
		d[0][j] = j
	}
	for i := 1; i <= n; i++ {
		for j := 1; j <= m; j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[n][m]
}

// closest returns the candidate nearest to word, if it is near enough to be
// a plausible typo (distance <= max(2, len/3)); "" otherwise.
func closest(word string, candidates []string) string {
	best, bestD := "", 1<<30
	for _, c := range candidates {
		if c == "" {
			continue
		}
		d := editDistance(word, c)
		// Prefer candidates that contain the word or vice versa
		// ("password" for "pass", "brokers" for "broker").
		lw, lc := strings.ToLower(word), strings.ToLower(c)
		if d > 0 && len(lw) >= 3 && (strings.Contains(lc, lw) || strings.Contains(lw, lc)) {
			d = min(d, 2)
		}
		if d < bestD {
			best, bestD = c, d
		}
	}
	limit := max(2, len([]rune(word))/3)
	if bestD <= limit {
		return best
	}
	return ""
}
