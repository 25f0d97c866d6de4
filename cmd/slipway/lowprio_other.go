//go:build !linux

package main

// atLowPriority runs fn; only Linux lets one thread's priority be lowered.
func atLowPriority[T any](fn func() T) T { return fn() }
