package main

import (
	"os"

	"github.com/evtdev/evt/cmd"
)

func main() { os.Exit(cmd.Main()) }
