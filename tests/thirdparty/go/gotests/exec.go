package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// execParent runs this same program (os.Executable) as a child through
// os/exec with arguments, an environment variable, stdin and stdout pipes,
// and reports what the child printed and its exit status.
func execParent(args []string) int {
	self, err := os.Executable()
	if err != nil {
		fmt.Println("executable:", err)
		return 1
	}
	cmd := exec.Command(self, "child", "alpha", "beta gamma")
	cmd.Env = []string{"GOTESTS_CHILD=yes"}
	cmd.Stdin = strings.NewReader("line one\nline two\n")
	out, err := cmd.Output()
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		fmt.Printf("child exit status %d\n", exitErr.ExitCode())
	} else if err != nil {
		fmt.Println("run child:", err)
		return 1
	}
	fmt.Print(string(out))

	// a child that succeeds, with its output combined
	ok := exec.Command(self, "child", "--ok")
	ok.Env = []string{}
	combined, err := ok.CombinedOutput()
	fmt.Printf("second child: %q err=%v\n", string(combined), err)

	// a program that does not exist
	_, err = exec.Command("/nonexistent/program").Output()
	fmt.Println("missing program:", err)
	return 0
}

func execChild(args []string) int {
	if len(args) == 1 && args[0] == "--ok" {
		fmt.Println("child ok")
		return 0
	}
	fmt.Printf("child args %q env GOTESTS_CHILD=%s\n", args, os.Getenv("GOTESTS_CHILD"))
	sc := bufio.NewScanner(os.Stdin)
	n := 0
	for sc.Scan() {
		n++
		fmt.Printf("child stdin %d: %s\n", n, sc.Text())
	}
	return 3
}
