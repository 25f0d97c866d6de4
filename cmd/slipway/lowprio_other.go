//go:build !linux

package main

// lowPriority runs functions as they come; only Linux lets one thread's
// priority be lowered.
type lowPriority struct{}

func (*lowPriority) close() {}

func atLowPriority[T any](_ *lowPriority, fn func() T) T { return fn() }
