package record

// Pruned is what one prune removed from the records. The files kept beside
// these records (build logs and artifacts, deployment logs) are the
// caller's to remove; the pushes had no files.
type Pruned struct {
	Builds      []int64 // builds whose records are gone
	Deployments []int64 // deployments of those builds, gone with them
	Pushes      int     // push records no kept build or deployment needed
	Events      int     // events of the outbox every consumer was done with
	Deliveries  int     // finished webhook deliveries beyond their retention
}
