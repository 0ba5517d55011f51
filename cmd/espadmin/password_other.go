//go:build !linux

package main

import (
	"errors"
	"io"
	"os"
)

// promptPassword is only implemented on Linux; elsewhere pipe the password on stdin.
func promptPassword(*os.File, io.Writer, string) (string, error) {
	return "", errors.New("cannot prompt for a password on this system; pipe it on standard input")
}
