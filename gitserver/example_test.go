package gitserver_test

import (
	"fmt"

	"slipway/gitserver"
)

func ExampleParseCommand() {
	for _, line := range []string{
		"git-upload-pack '/team/app.git'",
		"git receive-pack 'it'\\''s.git'",
		"log 42 -f",
	} {
		cl, err := gitserver.ParseCommand(line)
		fmt.Printf("%q %q git=%v %v\n", cl.Name, cl.Args, cl.IsGit(), err)
	}
	// Output:
	// "git-upload-pack" ["/team/app.git"] git=true <nil>
	// "git-receive-pack" ["it's.git"] git=true <nil>
	// "log" ["42" "-f"] git=false <nil>
}

func ExampleRepoPath() {
	for _, name := range []string{"team/app", "/team/app.git", "../etc"} {
		p, err := gitserver.RepoPath("/srv/slipway/repos", name)
		fmt.Println(p, err)
	}
	// Output:
	// /srv/slipway/repos/team/app.git <nil>
	// /srv/slipway/repos/team/app.git <nil>
	//  invalid repository name "../etc": ".." is not allowed
}
