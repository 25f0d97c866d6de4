package record

// BuildQuery selects builds for a listing, newest first. Every field that
// is set narrows the listing; the zero value is every build.
type BuildQuery struct {
	// Repos keeps the builds of these repositories; empty: of every one.
	// A caller who may read only some repositories passes them here, so
	// that a page is full of builds the caller may see.
	Repos   []string
	Ref     string  // full ref name, e.g. refs/heads/main
	Commit  string  // one commit (full id); with one repository in Repos
	State   State   // one state
	Trigger Trigger // one trigger
	// Before keeps the builds older than this id (a cursor: the id of the
	// last build of the previous page); 0: from the newest.
	Before int64
	// Limit is the most builds returned; <= 0: all.
	Limit int
}

// DeploymentQuery selects deployments for a listing, newest first, the
// way BuildQuery selects builds.
type DeploymentQuery struct {
	Repos  []string // empty: of every repository
	Env    string   // one environment; empty: all
	Commit string   // one commit (full id); empty: all
	Before int64    // only ids below; 0: from the newest
	Limit  int      // <= 0: all
}

// PushQuery selects recorded pushes for a listing, newest first.
type PushQuery struct {
	Repos  []string // empty: of every repository
	Before int64    // only ids below; 0: from the newest
	Limit  int      // <= 0: all
}
