package pipeline_test

import (
	"fmt"

	"slipway/build/pipeline"
)

func ExampleParse() {
	f, err := pipeline.Parse([]byte(`
[build]
steps = ["go vet ./...", "go test ./..."]
timeout = "15m"
artifacts = ["bin/"]
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	// A schedule asks for [nightly]; this file has none, so it gets [build].
	p, section, _ := f.Section("nightly", pipeline.DefaultSection)
	fmt.Println(section, p.Steps, p.Timeout, p.Artifacts)

	_, err = pipeline.Parse([]byte("[build]\nsteps = [\"make\"]\ntimeot = \"1m\"\n"))
	fmt.Println(err)
	// Output:
	// build [go vet ./... go test ./...] 15m0s [bin]
	// .slipway.toml:3:1: unknown key "timeot" in [build] (did you mean "timeout"?)
}
