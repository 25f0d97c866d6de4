// Package closest finds the known name a misspelt one most likely meant,
// for the "did you mean" of configuration and pipeline file messages.
package closest

import "strings"

// Name returns the candidate closest to word (case-insensitive equality
// first, then Levenshtein distance below 3 and shorter than both names),
// or "" when none is close enough to be a likely typo.
func Name(word string, candidates []string) string {
	best, bestDist := "", 3
	for _, c := range candidates {
		if strings.EqualFold(c, word) {
			return c
		}
		d := distance(strings.ToLower(word), c)
		if d < bestDist && d < len(word) && d < len(c) {
			best, bestDist = c, d
		}
	}
	return best
}

// distance is the Levenshtein distance; the inputs are short names, and
// anything longer than 64 bytes counts as far from everything.
func distance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 64
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
