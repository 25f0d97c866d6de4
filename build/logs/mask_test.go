package logs

import (
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
)

func TestSecretSetExpandsMultilineValues(t *testing.T) {
	got := secretSet([]string{
		"-----BEGIN KEY-----\nMIIEabcd\r\n  efgh\n}\n-----END KEY-----\n",
		"tok\n", // from a file: the newline is not part of what gets printed
		"", "  \n",
		"tok\n", // duplicates collapse
	})
	want := []string{
		"-----BEGIN KEY-----\nMIIEabcd\r\n  efgh\n}\n-----END KEY-----\n",
		"-----BEGIN KEY-----\nMIIEabcd\r\n  efgh\n}\n-----END KEY-----",
		"-----BEGIN KEY-----", "-----END KEY-----",
		"MIIEabcd", "efgh",
		"tok\n", "tok",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("secretSet:\n got %q\nwant %q", got, want)
	}
}

// maskWhole is the oracle: strings.Replacer also replaces leftmost matches,
// trying the old strings in argument order (longest first) at each position.
func maskWhole(secrets []string, s string) string {
	var pairs []string
	for _, v := range secretSet(secrets) {
		pairs = append(pairs, v, maskFor(v))
	}
	if len(pairs) == 0 {
		return s
	}
	return strings.NewReplacer(pairs...).Replace(s)
}

// maskSplit masks s written in chunks cut at random places.
func maskSplit(secrets []string, s string, seed uint64) string {
	m := newMasker(secrets)
	r := rand.New(rand.NewPCG(seed, seed>>7))
	var out []byte
	for len(s) > 0 {
		n := r.IntN(len(s)) + 1
		if r.IntN(3) == 0 {
			n = min(len(s), r.IntN(3)+1) // favour tiny writes, where splits bite
		}
		out = m.write(out, []byte(s[:n]))
		s = s[n:]
	}
	return string(m.flush(out))
}

func TestMaskSplitWrites(t *testing.T) {
	secrets := []string{"hunter2", "hunt", "s3cr3t-s3cr3t"}
	input := "user hunter2 hunts hunter s3cr3t-s3cr3t-s3cr3t hunter2hunter2 huhunter2"
	want := "user *** ***s ***er ***-s3cr3t ****** hu***"
	if got := maskWhole(secrets, input); got != want {
		t.Fatalf("oracle = %q, want %q", got, want)
	}
	for seed := range uint64(200) {
		if got := maskSplit(secrets, input, seed); got != want {
			t.Fatalf("seed %d: %q, want %q", seed, got, want)
		}
	}
}

func TestMaskHoldsBackOnlyPossibleSecrets(t *testing.T) {
	m := newMasker([]string{"password123"})
	if got := string(m.write(nil, []byte("downloading 45%"))); got != "downloading 45%" {
		t.Errorf("plain output held back: got %q", got)
	}
	if got := string(m.write(nil, []byte("the pass"))); got != "the " {
		t.Errorf("write of a secret's start: got %q, want %q", got, "the ")
	}
	if got := string(m.write(nil, []byte("port\n"))); got != "passport\n" {
		t.Errorf("after it turned out not to be one: got %q", got)
	}
}

func TestMultilineSecretKeepsLineBreaks(t *testing.T) {
	key := "-----BEGIN KEY-----\nAAAA\r\n\nBBBB\n-----END KEY-----\n"
	got := maskSplit([]string{key}, "key:\n"+key+"next\n", 1)
	if want := "key:\n***\n***\r\n\n***\n***\nnext\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func FuzzMaskSplit(f *testing.F) {
	f.Add("a secret and a sec", "secret", "sec\nret", uint64(1))
	f.Add("aaaaaaaaaab", "aab", "aaaab", uint64(2))
	f.Add("-----BEGIN-----\nline-one\nline-two\n-----END-----", "-----BEGIN-----\nline-one\nline-two\n-----END-----\n", "x", uint64(3))
	f.Add("", "", "", uint64(4))
	f.Fuzz(func(t *testing.T, input, s1, s2 string, seed uint64) {
		secrets := []string{s1, s2}
		want := maskWhole(secrets, input)
		if got := maskSplit(secrets, input, seed); got != want {
			t.Fatalf("split writes: %q\nwhole:        %q", got, want)
		}
	})
}
