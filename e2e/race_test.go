//go:build race

package e2e

// raceEnabled says the test binary was built with -race; TestMain then
// builds slipway with -race too, and only then.
const raceEnabled = true
