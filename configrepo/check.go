package configrepo

import (
	"context"
	"errors"
	"fmt"
	"time"

	"slipway/configs"
	"slipway/internal/gitrev"
	"slipway/record"
)

// Check returns why the updates refs of a push to the configuration
// repository may not be made, one line each, or nil when they may (see
// hooks.ConfigRepo). Only main matters: its new commit must hold a
// configuration that passes every check of the daemon's loader, leaves some
// admin a key and leaves the pusher's own key (keyFingerprint; "" for a
// push on the server's disk) an admin's. Other branches and tags may be
// pushed freely: review branches put nothing in force.
func (r *Repo) Check(ctx context.Context, user, keyFingerprint string, refs []record.RefUpdate, quarantine string) []string {
	var lines []string
	for _, u := range refs {
		if u.Name != mainRef {
			continue
		}
		if record.ZeroID(u.New) {
			lines = append(lines, fmt.Sprintf("%s: deleting %s would remove the configuration", configs.ConfigBranch, configs.ConfigBranch))
			continue
		}
		lines = append(lines, r.check(ctx, user, keyFingerprint, u.New, quarantine)...)
	}
	return lines
}

// check returns why commit may not become main, or nil.
func (r *Repo) check(ctx context.Context, user, keyFingerprint, commit, quarantine string) []string {
	short := gitrev.Short(commit)
	data, why, err := r.read(ctx, commit, quarantine)
	if err != nil {
		r.log.Error("configuration push refused: the pushed file could not be read", "user", user, "commit", commit, "err", err)
		return []string{fmt.Sprintf("%s: could not read %s at %s (see the daemon's log); try again", configs.ConfigBranch, configs.ConfigFile, short)}
	}
	if why != "" {
		return []string{configs.ConfigBranch + ": " + why}
	}
	cfg, err := r.o.Parse(data, configs.ConfigFile)
	if err != nil {
		var ve *configs.ValidationError
		if !errors.As(err, &ve) {
			return []string{fmt.Sprintf("%s: %s at %s: %v", configs.ConfigBranch, configs.ConfigFile, short, err)}
		}
		lines := make([]string, 0, len(ve.Problems)+1)
		for _, p := range ve.Problems {
			lines = append(lines, p.String())
		}
		return append(lines, fmt.Sprintf("%s: %s at %s has %s", configs.ConfigBranch, configs.ConfigFile, short, plural(len(ve.Problems), "problem")))
	}
	if why := lockout(cfg, keyFingerprint, time.Now()); why != "" {
		return []string{fmt.Sprintf("%s: this push would %s (%s at %s)", configs.ConfigBranch, why, configs.ConfigFile, short)}
	}
	return nil
}

// lockout says what cfg would do to the admins, or "": leave none with a
// key that may log in at now ("lock every admin out"), or leave the key
// keyFingerprint (the pusher's; "" for none) no admin's.
func lockout(cfg *configs.Config, keyFingerprint string, now time.Time) string {
	usable := func(k configs.AuthorizedKey) bool { return k.Expires.IsZero() || now.Before(k.Expires) }
	admins, own := 0, false
	for i := range cfg.Users {
		u := &cfg.Users[i]
		if !u.Admin {
			continue
		}
		for _, k := range u.AuthorizedKeys() {
			if usable(k) {
				admins++
				own = own || k.Fingerprint == keyFingerprint
			}
		}
	}
	switch {
	case admins == 0:
		return "lock every admin out: no admin has a key that may log in"
	case keyFingerprint != "" && !own:
		return fmt.Sprintf("take away your own admin access: your key %s is no admin's; have another admin push it", keyFingerprint)
	}
	return ""
}
