// Package viewstest is a fixture for the tests of the read model and of
// its two faces (the SSH console and the JSON API): fixed records written
// into a real store with fixed times, build logs written through the real
// log store, and the services the views act through as thin adapters over
// that store.
package viewstest
