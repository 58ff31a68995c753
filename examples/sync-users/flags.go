package main

import (
	"fmt"
	"strconv"
)

// optionalBool is a boolean flag that remembers whether it was set, so
// that an absent -invite leaves WeCom's default (ToInvite nil).
type optionalBool struct{ v *bool }

func (b *optionalBool) String() string {
	if b == nil || b.v == nil {
		return "unset"
	}
	return strconv.FormatBool(*b.v)
}

func (b *optionalBool) Set(s string) error {
	v, err := strconv.ParseBool(s)
	if err != nil {
		return fmt.Errorf("want true or false, got %q", s)
	}
	b.v = &v
	return nil
}

// IsBoolFlag lets -invite stand alone for -invite=true.
func (b *optionalBool) IsBoolFlag() bool { return true }
