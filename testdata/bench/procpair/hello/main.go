// Command hello is the Go hello-world of the paired start-up benchmark:
// what any static Go program costs to start and exit on this machine.
package main

import "fmt"

func main() { fmt.Println("hello, world") }
