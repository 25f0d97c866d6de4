package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"slipway/configs"
	"slipway/hooks"
)

const usage = `usage:
  slipway serve [--config FILE] [--listen ADDR] [--http ADDR|off] [--data DIR]
                                  run the daemon (on the embedded default config without
                                  --config); --listen, --http and --data override
                                  [ssh] listen, [http] listen and data_dir
  slipway config check FILE       validate a configuration file
  slipway config default          print the embedded default configuration
  slipway config example          print the commented reference configuration
  slipway version                 print the version
  slipway hook [--socket S] NAME [ARG]  run by git, not by people
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "serve":
		fs := flag.NewFlagSet("serve", flag.ContinueOnError)
		fs.SetOutput(stderr)
		var o serveOptions
		fs.StringVar(&o.configPath, "config", "", "configuration `file` (default: the embedded default)")
		fs.StringVar(&o.listen, "listen", "", "SSH `address` HOST:PORT, instead of the config's [ssh] listen (port 0: any free port)")
		fs.StringVar(&o.dataDir, "data", "", "data `folder`, instead of the config's data_dir")
		fs.StringVar(&o.httpListen, "http", "", "web side `address` HOST:PORT, instead of the config's [http] listen; \"off\" turns it off")
		if err := fs.Parse(args[1:]); err != nil || fs.NArg() != 0 {
			fmt.Fprint(stderr, usage)
			return 2
		}
		if o.listen != "" {
			if err := configs.CheckListen(o.listen); err != nil {
				fmt.Fprintf(stderr, "slipway: --listen %v\n", err)
				return 2
			}
		}
		if o.httpListen != "" && o.httpListen != "off" {
			if err := configs.CheckListen(o.httpListen); err != nil {
				fmt.Fprintf(stderr, "slipway: --http %v\n", err)
				return 2
			}
		}
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		if err := serve(ctx, o, stdout, stderr); err != nil {
			printError(stderr, err)
			return 1
		}
		return 0
	case "hook":
		fs := flag.NewFlagSet("hook", flag.ContinueOnError)
		fs.SetOutput(stderr)
		socket := fs.String("socket", "", "the daemon's hook `socket`")
		if err := fs.Parse(args[1:]); err != nil || fs.NArg() < 1 || fs.NArg() > 2 {
			fmt.Fprint(stderr, usage)
			return 2
		}
		return hooks.RunClient(context.Background(), fs.Arg(0), *socket, stdin, stderr, os.Environ(), fs.Args()[1:]...)
	case "config":
		switch {
		case len(args) == 3 && args[1] == "check":
			return configCheck(args[2], stdout, stderr)
		case len(args) == 2 && args[1] == "default":
			stdout.Write(configs.DefaultTOML())
			return 0
		case len(args) == 2 && args[1] == "example":
			stdout.Write(configs.ExampleTOML())
			return 0
		}
		fmt.Fprint(stderr, usage)
		return 2
	case "version", "--version", "-v":
		if kubernetesBuilt {
			fmt.Fprintln(stdout, "slipway", version(), "(with the Kubernetes executor)")
		} else {
			fmt.Fprintln(stdout, "slipway", version())
		}
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "slipway: unknown command %q\n%s", args[0], usage)
		return 2
	}
}

func configCheck(path string, stdout, stderr io.Writer) int {
	c, err := configs.Load(path)
	if err != nil {
		printError(stderr, err)
		return 1
	}
	fmt.Fprintf(stdout, "%s: ok (%d users, %d repos)\n", path, len(c.Users), len(c.Repos))
	return 0
}

// printError prints an error for people: a configuration's problems one
// per line as FILE:LINE: problem, then how many; anything else on one line.
func printError(w io.Writer, err error) {
	var ve *configs.ValidationError
	if errors.As(err, &ve) {
		for _, p := range ve.Problems {
			fmt.Fprintln(w, p)
		}
		if n := len(ve.Problems); n == 1 {
			fmt.Fprintln(w, "slipway: 1 problem in the configuration")
		} else {
			fmt.Fprintf(w, "slipway: %d problems in the configuration\n", n)
		}
		return
	}
	fmt.Fprintf(w, "slipway: %v\n", err)
}

// version reports the module version and VCS revision the binary was built
// from, as recorded by the go command.
func version() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := info.Main.Version
	var rev, modified string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				modified = "+dirty"
			}
		}
	}
	if rev != "" {
		if len(rev) > 12 {
			rev = rev[:12]
		}
		v += " (" + rev + modified + ")"
	}
	return v
}
