// Package record holds the records Slipway keeps and every package shares:
// pushes and their ref updates, builds, deployments and each host's part in
// them, schedule fires, their states and triggers, and the sentinel errors
// callers branch on. It has no storage of its own and links no database
// driver; package store keeps these records in SQLite.
package record
